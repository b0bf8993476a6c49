# mammoflow on NVIDIA GPUs: the training stages under torchrun (NCCL). PyPI's torch==2.13.0 carries
# CUDA and cuDNN as pip packages, so the node only needs its NVIDIA driver.
#   docker build -f docker/cuda.Dockerfile -t mammoflow-cuda:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
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
ENV PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH NVIDIA_VISIBLE_DEVICES=all NVIDIA_DRIVER_CAPABILITIES=compute,utility
RUN useradd --create-home --uid 10001 mammoflow
COPY --from=builder /opt/venv /opt/venv
WORKDIR /opt/mammoflow
COPY train ./train
USER 10001
RUN mammo --help > /dev/null
ENTRYPOINT []
