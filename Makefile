# Two commands from a fresh clone: `make demo` (install + run the embedded demo) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: install demo test lint paper-dry-run clean-demo dvc-pipeline dvc-check dvc-demo dvc-test

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch/torchvision first, pinned: the releases this project is tested with (CUDA build, runs on CPU too)
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -e ".[pipeline,test]"
	touch $@

demo: install
	$(BIN)/snakemake --cores $(CORES) --configfile config/demo.yaml
	@echo ""
	@echo "Demo finished. Read first: results/demo/REPORT.md"
	@echo "  tables:  results/demo/tables/table{1..5}.{md,csv,tex}"
	@echo "  figure:  results/demo/figures/figure7.png (and .pdf)"

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/snakemake --lint
	$(BIN)/snakemake -n --quiet rules

clean-demo:
	rm -rf data/demo results/demo

# DVC: dvc.yaml (paper) and pipelines/<profile>/dvc.yaml are generated from the Snakemake workflow.
dvc-pipeline: install
	$(BIN)/apl dvc-pipeline

dvc-check: install
	$(BIN)/apl dvc-pipeline --check

# The demo / test profile through DVC (stages run one at a time; their commands call `apl`, hence PATH).
# dvc-test (CI) then requires `dvc status` to be clean and `dvc metrics show` / `dvc plots show` to work.
dvc-demo: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro pipelines/demo/dvc.yaml
	$(BIN)/dvc status pipelines/demo/dvc.yaml

dvc-test: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro pipelines/test/dvc.yaml
	@status="$$($(BIN)/dvc status --json pipelines/test/dvc.yaml)"; \
	if [ "$$status" != "{}" ]; then echo "dvc status is not clean after dvc repro: $$status"; exit 1; fi
	$(BIN)/dvc metrics show results/test/metrics/ufat/gws_O3.json results/test/metrics/ufat/gsr_O3.json
	$(BIN)/dvc plots show "pipelines/test/dvc.yaml::" -o results/test/dvc_plots
	@echo "dvc status clean after dvc repro pipelines/test/dvc.yaml"
