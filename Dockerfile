# CrossPoint gateway image: the serving set only (FastAPI + ONNX Runtime + tritonclient + trimesh).
# No torch: `pip install .` without extras installs pyproject's [project] dependencies, nothing more.
#
#   docker build -t crosspoint-gateway .
#   docker run --rm -p 8000:8000 -v "$PWD/model_repository:/models:ro" crosspoint-gateway
#
# With Triton on a GPU host: `docker compose up` (docker-compose.yml, docs/deploy.md).

ARG PYTHON_IMAGE=python:3.11.10-slim-bookworm

# ---- build: wheels for everything, so the runtime stage needs no compiler ----
FROM ${PYTHON_IMAGE} AS build

# fpsample has no binary wheel: it builds from source with a C++ compiler (scikit-build-core
# fetches CMake and Ninja itself). The compiler stays in this stage.
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ make \
    && rm -rf /var/lib/apt/lists/*

# Pins = `pip freeze` of the environment the test suite runs in, for the serving set and all
# of its dependencies (docs/deploy.md: how to refresh). Constraints pin versions without adding
# packages, so nothing here can pull torch in.
RUN printf '%s\n' \
    aiohappyeyeballs==2.7.1 aiohttp==3.14.5 aiosignal==1.4.0 annotated-doc==0.0.7 \
    annotated-types==0.8.0 anyio==4.16.0 attrs==26.1.0 brotli==1.2.1 certifi==2026.10.18 \
    click==8.5.1 fastapi==0.165.0 flatbuffers==25.12.19 fpsample==1.0.2 frozenlist==1.8.0 \
    gevent==26.9.0 geventhttpclient==2.6.1 greenlet==3.3.2 grpcio==1.85.1 h11==0.16.0 \
    httpcore==1.0.9 httpx==0.28.1 idna==3.20 markdown-it-py==4.3.0 mdurl==0.1.2 \
    ml-dtypes==0.5.4 multidict==7.2.1 numpy==1.26.4 onnxruntime==1.31.1 \
    opentelemetry-api==1.45.2 packaging==26.3 prometheus-client==0.26.0 propcache==0.5.4 \
    protobuf==6.33.6 pybind11==3.1.0 pydantic==2.14.3 pydantic-core==2.50.4 \
    pydantic-settings==2.16.3 pygments==2.21.0 python-dotenv==1.2.4 python-multipart==0.0.34 \
    python-rapidjson==1.25 rich==15.0.0 scipy==1.17.1 shellingham==1.5.4 starlette==1.10.0 \
    tqdm==4.70.1 trimesh==5.2.0 tritonclient==2.73.0 typer==0.29.2 typing-extensions==4.16.0 \
    typing-inspection==0.4.5 urllib3==2.8.0 uvicorn==0.54.0 yarl==1.25.1 zope-event==6.2 \
    zope-interface==8.7 \
    > /constraints.txt

WORKDIR /src
COPY pyproject.toml README.md ./
COPY crosspoint ./crosspoint
COPY export ./export
COPY server ./server
COPY clients ./clients
RUN pip wheel --no-cache-dir --wheel-dir /wheels --constraint /constraints.txt .

# ---- runtime ----
FROM ${PYTHON_IMAGE}

# No apt packages: onnxruntime's CPU wheel and the fpsample build link nothing beyond glibc and
# libstdc++ (checked with ldd), and the slim image has both.
COPY --from=build /wheels /wheels
COPY --from=build /constraints.txt /constraints.txt
RUN pip install --no-cache-dir --no-index --find-links /wheels --constraint /constraints.txt crosspoint-serve \
    && pip check \
    && rm -rf /wheels \
    && ! pip show torch >/dev/null 2>&1

# Non-root: the gateway needs no privileges, and the model repository is mounted read-only.
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin crosspoint
USER crosspoint
WORKDIR /home/crosspoint

# The installed package cannot find a repository next to its sources (it lives in site-packages):
# mount one at /models. The backend defaults to in-process ONNX Runtime; compose switches it to Triton.
ENV CROSSPOINT_MODEL_REPOSITORY=/models \
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
