# mammoflow: `make help` lists the targets.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
WORKDIR ?= demo-output
MIAS ?=
BUSI ?=
DICOM ?=

.PHONY: help install demo test bench compile clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## create .venv: torch 2.13.0 (CPU) first, then mammoflow with pinned dependencies

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

demo: install ## run the whole pipeline locally with kfp.local (MIAS=, BUSI=, DICOM= point it at real folders)
	$(BIN)/python -m pipelines.mammoflow run-local --workdir $(WORKDIR) \
		$(if $(MIAS),--mias $(MIAS)) $(if $(BUSI),--busi $(BUSI)) $(if $(DICOM),--dicom $(DICOM))

test: install ## run the test suite
	$(BIN)/python -m pytest tests

bench: install ## run the benchmarks; reports in benchmarks/results/
	$(BIN)/python benchmarks/standardize.py

compile: install ## compile the pipeline to mammoflow.yaml for Kubeflow / Vertex AI
	$(BIN)/python -m pipelines.mammoflow compile --output mammoflow.yaml

clean: ## remove the virtual environment and demo outputs
	rm -rf $(VENV) $(WORKDIR)
