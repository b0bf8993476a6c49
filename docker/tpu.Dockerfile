# mammoflow on Cloud TPU VMs: torch and the matching torch-xla with libtpu (PJRT_DEVICE=TPU is set).
#   docker build -f docker/tpu.Dockerfile -t mammoflow-tpu:0.1.0 .
ARG PYTHON_IMAGE=python:3.11.7-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
# dependencies first (a layer kept while only the code changes): torch and torch-xla as the torch-xla
# tests pin them (the tpu extra adds libtpu), then the rest but torch at the versions of constraints.txt
COPY pyproject.toml constraints.txt requirements-xla.txt MANIFEST.in README.md ./
COPY mammolibs/__init__.py ./mammolibs/
RUN pip install --no-cache-dir -r requirements-xla.txt "torch-xla[tpu]==2.9.0" \
    && grep -v '^torch==' constraints.txt > constraints-but-torch.txt \
    && pip install --no-cache-dir -c constraints-but-torch.txt .
COPY mammolibs ./mammolibs
RUN pip install --no-cache-dir --no-deps .

FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH PJRT_DEVICE=TPU
RUN useradd --create-home --uid 10001 mammoflow
COPY --from=builder /opt/venv /opt/venv
WORKDIR /opt/mammoflow
COPY train ./train
USER 10001
RUN mammo --help > /dev/null
ENTRYPOINT []
