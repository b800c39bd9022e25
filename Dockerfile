# CrossPoint gateway image: the serving set only (FastAPI + ONNX Runtime + tritonclient + trimesh).
# No torch: it installs requirements/serve.lock (pyproject's [project] dependencies, locked), nothing more.
#
#   docker build -t crosspoint-gateway .
#   docker run --rm -p 8000:8000 -v "$PWD/model_repository:/models:ro" crosspoint-gateway
#
# With Triton on a GPU host: `docker compose up` (docker-compose.yml, docs/deploy.md).

ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm

# ---- build: a venv from the serving lock, so the runtime stage needs no compiler ----
FROM ${PYTHON_IMAGE} AS build

# fpsample has no binary wheel: it builds from source with a C++ compiler (scikit-build-core
# fetches CMake and Ninja itself). The compiler stays in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ make \
    && rm -rf /var/lib/apt/lists/*

# Every package comes from requirements/serve.lock (the serving set of the one lock `make lock` writes):
# exact versions, sha256 checked, no resolution, so an image built on any day holds the same bytes as
# the environment the tests ran in. The venv moves to the runtime stage whole; torch is not in the lock.
WORKDIR /src
COPY requirements/serve.lock ./requirements/serve.lock
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps -r requirements/serve.lock
COPY pyproject.toml README.md ./
COPY crosspoint ./crosspoint
COPY export ./export
COPY server ./server
COPY clients ./clients
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation . \
    && /opt/venv/bin/pip check

# ---- runtime ----
FROM ${PYTHON_IMAGE}

# No apt packages: onnxruntime's CPU wheel and the fpsample build link nothing beyond glibc and
# libstdc++ (checked with ldd), and the slim image has both.
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
RUN pip check \
    && ! pip show torch >/dev/null 2>&1

# Non-root: the gateway needs no privileges, and the model repository is mounted read-only.
# data/: collections (SQLite + usearch); compose mounts a named volume there, which takes this owner.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin crosspoint \
    && install -d -o crosspoint -g crosspoint /home/crosspoint/data
USER crosspoint
WORKDIR /home/crosspoint

# The installed package cannot find a repository next to its sources (it lives in site-packages):
# mount one at /models. The backend defaults to in-process ONNX Runtime; compose switches it to Triton.
ENV CROSSPOINT_MODEL_REPOSITORY=/models \
    CROSSPOINT_DATA_DIR=/home/crosspoint/data \
    CROSSPOINT_BACKEND=onnxruntime \
    CROSSPOINT_TRITON_URL=triton:8001 \
    CROSSPOINT_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

EXPOSE 8000

# python, not curl: the slim image has no curl, and one process is cheaper than adding a package.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["crosspoint", "serve", "--host", "0.0.0.0", "--port", "8000"]
