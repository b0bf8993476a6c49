# mammoflow on CPUs: standardize, evaluate, and training on CPU nodes.
#   docker build -f docker/cpu.Dockerfile -t mammoflow-cpu:0.1.0 .
# For a smaller image, pass PyTorch's CPU wheel index: --build-arg PIP_EXTRA_INDEX_URL=<that index>
# (torch==2.13.0 then resolves to its CPU build; without it, to the default CUDA build).
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ARG PIP_EXTRA_INDEX_URL=
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_EXTRA_INDEX_URL=${PIP_EXTRA_INDEX_URL}
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
# dependencies first (a layer kept while only the code changes), at the tested versions of constraints.txt
COPY pyproject.toml constraints.txt requirements-xla.txt MANIFEST.in README.md ./
COPY mammolibs/__init__.py ./mammolibs/
RUN pip install --no-cache-dir -c constraints.txt ".[serve]"
COPY mammolibs ./mammolibs
RUN pip install --no-cache-dir --no-deps .

FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH
RUN useradd --create-home --uid 10001 mammoflow
COPY --from=builder /opt/venv /opt/venv
WORKDIR /opt/mammoflow
COPY train ./train
USER 10001
RUN mammo --help > /dev/null
ENTRYPOINT []
