# The image for sweep's Kubernetes manifests: the driver, the Ray workers and the MLflow server.
# Build on a machine with internet access (pip fetches torch's CUDA build from PyPI):
#   docker build -t registry.example.com/sweep:0.1.0 . && docker push registry.example.com/sweep:0.1.0
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/sweep
COPY pyproject.toml README.md ./
COPY cli ./cli
COPY sweeps ./sweeps
COPY models ./models
RUN pip install . && useradd --uid 1000 --create-home sweep
COPY search.yaml sweep.schema.json ./
COPY examples ./examples

# Non-root, matching the manifests' securityContext (runAsUser 1000).
USER 1000
WORKDIR /home/sweep
CMD ["sweep", "--help"]
