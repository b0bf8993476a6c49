# mammoflow: `make help` lists the targets.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
XLA_VENV ?= .venv-xla
TOOLS_VENV ?= .venv-tools
WORKDIR ?= demo-output
REGISTRY ?= mammoflow
TAG ?= $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' mammolibs/__init__.py)
TARGET ?= kubeflow
HARDWARE ?=
IMAGES := cpu cuda tpu
MIAS ?=
BUSI ?=
BUSBRA ?=
DICOM ?=

.PHONY: help install browser demo test test-xla bench compile images clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

install: $(VENV)/.installed ## create .venv: torch 2.13.0 (CPU) first, then mammoflow and its extras at the versions of constraints.txt

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $@

demo: install ## run the whole pipeline locally with kfp.local (MIAS=, BUSI=, BUSBRA=, DICOM= point it at real folders)
	$(BIN)/python -m pipelines.mammoflow run-local --workdir $(WORKDIR) \
		$(if $(MIAS),--mias $(MIAS)) $(if $(BUSI),--busi $(BUSI)) \
		$(if $(BUSBRA),--busbra $(BUSBRA)) $(if $(DICOM),--dicom $(DICOM))

$(XLA_VENV)/.installed: pyproject.toml constraints.txt requirements-xla.txt
	$(PYTHON) -m venv $(XLA_VENV)
	$(XLA_VENV)/bin/pip install --quiet -r requirements-xla.txt
	grep -v '^torch==' constraints.txt > $(XLA_VENV)/constraints.txt
	$(XLA_VENV)/bin/pip install --quiet -c $(XLA_VENV)/constraints.txt -e '.[demo]' pytest pytest-timeout
	touch $@

$(TOOLS_VENV)/.installed: requirements-tools.txt
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/pip install --quiet -r requirements-tools.txt
	touch $@

browser: ## install Debian's chromium and chromium-driver (the page's tests drive them), unless present
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver; }

test: ## lint and format check, the test suite, then the torch-xla suite on CPU XLA devices
	$(MAKE) --jobs=3 --output-sync=target install browser $(XLA_VENV)/.installed $(TOOLS_VENV)/.installed  # side by side
	$(TOOLS_VENV)/bin/ruff check .
	$(TOOLS_VENV)/bin/ruff format --check .
	$(TOOLS_VENV)/bin/mypy --python-executable $(BIN)/python
	MAMMOFLOW_CHECKOV=$(TOOLS_VENV)/bin/checkov MAMMOFLOW_REQUIRE_BROWSER=1 $(BIN)/python -m pytest tests
	PJRT_DEVICE=CPU $(XLA_VENV)/bin/python -m pytest tests/xla

test-xla: $(XLA_VENV)/.installed ## run only the torch-xla suite (torch 2.9.0 + torch-xla 2.9.0, CPU XLA devices)
	PJRT_DEVICE=CPU $(XLA_VENV)/bin/python -m pytest tests/xla

bench: install ## run the benchmarks; reports in benchmarks/results/
	$(BIN)/python benchmarks/standardize.py
	$(BIN)/python benchmarks/loader.py
	$(BIN)/python benchmarks/train_step.py
	$(BIN)/python benchmarks/train_command.py

compile: install ## compile the pipeline to mammoflow.yaml (TARGET=vertex|kubeflow, REGISTRY=, TAG=, HARDWARE='--accelerator encoder=tpu-v5e:8 ...')
	$(BIN)/python -m pipelines.mammoflow compile --output mammoflow.yaml --target $(TARGET) \
		--registry $(REGISTRY) --tag $(TAG) $(HARDWARE)

images: ## build and push mammoflow-{cpu,cuda,tpu}:TAG to REGISTRY (e.g. REGISTRY=us-docker.pkg.dev/PROJECT/mammoflow)
	for kind in $(IMAGES); do \
		docker build -f docker/$$kind.Dockerfile -t $(REGISTRY)/mammoflow-$$kind:$(TAG) . && \
		docker push $(REGISTRY)/mammoflow-$$kind:$(TAG) || exit 1; \
	done

clean: ## remove the virtual environment and demo outputs
	rm -rf $(VENV) $(XLA_VENV) $(TOOLS_VENV) $(WORKDIR)
