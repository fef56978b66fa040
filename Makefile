# Two commands from a fresh clone: `make demo` (install + run the embedded demo) and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CORES ?= 2

.PHONY: install demo test lint paper-dry-run clean-demo

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
