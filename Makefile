# Two commands from a fresh clone: `make demo` (install + run the embedded demo) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: install lock demo test lint paper-dry-run clean-demo dvc-pipeline dvc-check dvc-demo dvc-test readme-figure model

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml requirements-torch.txt requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch/torchvision first (requirements-torch.txt), then every other dependency at its locked version,
	# then apl itself without letting pip pick anything else; pip check proves the set is complete.
	$(BIN)/python -m pip install --quiet -r requirements-torch.txt
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e ".[pipeline,test]"
	$(BIN)/python -m pip check
	touch $@

# Rewrite requirements.lock from the installed environment, after changing a dependency in pyproject.toml
# (`$(BIN)/python -m pip install -e ".[pipeline,test]"` first). torch, torchvision and the CUDA libraries
# torch pins stay out of it (requirements-torch.txt).
lock:
	@{ echo "# Every Python dependency of apl[pipeline,test] at the version tested, except torch/torchvision"; \
	  echo "# (requirements-torch.txt) and the CUDA libraries torch pins. Written by \`make lock\`; used by make install."; \
	  $(BIN)/python -m pip freeze --exclude-editable --all | grep -v -i -E '^(pip|torch|torchvision|triton|nvidia-[a-z0-9-]+|cuda-[a-z-]+)==' ; \
	} > requirements.lock
	@echo "requirements.lock: $$(grep -c '==' requirements.lock) pinned packages"

demo: install
	$(BIN)/snakemake --cores $(CORES) --configfile config/demo.yaml
	@echo ""
	@echo "Demo finished. Read first: results/demo/REPORT.md"
	@echo "  tables:  results/demo/tables/table{1..5}.{md,csv,tex}"
	@echo "  figure:  results/demo/figures/figure7.png (and .pdf)"

test: install
	$(BIN)/python -m pytest -q

# The rules name no conda environment on purpose (README, "Environments"): that lint is expected.
lint: install
	$(BIN)/python -m pytest -q tests/test_pipeline.py -k lint
	$(BIN)/snakemake -n --quiet rules

# The default models apl predict ships (docs/model.md): the real-data profile's candidate detectors (config key
# model.stages, every seed) trained and scored, the best on the validation split exported with the deblurrer of
# its seed (model.deblurrer), then copied into the package. Needs CUHK under data/raw/cuhk and full-clear
# photographs under data/raw/fullclear (docs/real-photographs.md); about an hour on 2 cores.
model: install
	$(BIN)/snakemake --cores $(CORES) --configfile config/cuhk.yaml -- results/cuhk/model/detector.pt
	install -m 644 results/cuhk/model/detector.pt results/cuhk/model/deblurrer.pt apl/pretrained/
	@echo "apl/pretrained/{detector,deblurrer}.pt <- results/cuhk/model/ (what and why: results/cuhk/model/*.json)"

# The README's picture (docs/images/cuhk.png): CUHK test photographs, B(I), the default detector's map, GT;
# drawn from a finished run of the real-data profile's B(I) (make model, or the whole profile, first)
readme-figure: install
	$(BIN)/apl showcase --results results/cuhk --datasets data/cuhk/datasets --out docs/images/cuhk.png

clean-demo:
	rm -rf data/demo results/demo

# DVC: dvc.yaml (paper) and pipelines/<profile>/dvc.yaml are generated from the Snakemake workflow.
dvc-pipeline: install
	$(BIN)/apl dvc-pipeline

dvc-check: install
	$(BIN)/apl dvc-pipeline --check

# The demo / test profile through DVC (stages run one at a time; their commands call `apl`, hence PATH).
# dvc-test then requires `dvc status` to be clean and `dvc metrics show` / `dvc plots show` to work (the whole
# test profile, serially: minutes). CI leaves it to `make test`: tests/test_dvc.py checks the same on the
# suite's one Snakemake run, and has `dvc repro` run a stage of every `apl` command.
dvc-demo: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro pipelines/demo/dvc.yaml
	$(BIN)/dvc status pipelines/demo/dvc.yaml

dvc-test: install
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/dvc repro pipelines/test/dvc.yaml
	@status="$$($(BIN)/dvc status --json pipelines/test/dvc.yaml)"; \
	if [ "$$status" != "{}" ]; then echo "dvc status is not clean after dvc repro: $$status"; exit 1; fi
	$(BIN)/dvc metrics show results/test/metrics/seed0/ufat/gws_O3.json results/test/metrics/seed0/ufat/gsr_O3.json
	$(BIN)/dvc plots show "pipelines/test/dvc.yaml::" -o results/test/dvc_plots
	@echo "dvc status clean after dvc repro pipelines/test/dvc.yaml"
