# The JStore image: the API, the CLI, Spark jobs and Airflow (all components) with the locked
# packages of uv.lock. Built by `docker compose build` (docker-compose.yaml).
FROM python:3.11.11-slim-bookworm

RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless libpostgresql-jdbc-java procps \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 50000 jstore \
    && mkdir -p /opt/jstore /opt/airflow /data \
    && chown jstore /opt/jstore /opt/airflow /data

COPY --from=ghcr.io/astral-sh/uv:0.13.9 /uv /usr/local/bin/uv

WORKDIR /opt/jstore
USER jstore
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PROJECT_ENVIRONMENT=/opt/jstore/.venv \
    PATH=/opt/jstore/.venv/bin:$PATH \
    PYTHONPATH=/opt/jstore \
    AIRFLOW_HOME=/opt/airflow

# Dependencies first (a layer reused until uv.lock changes), then the project itself.
COPY --chown=jstore pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --all-extras --no-dev --no-install-project
COPY --chown=jstore jstore ./jstore
COPY --chown=jstore jobs ./jobs
COPY --chown=jstore dags ./dags
COPY --chown=jstore plugins ./plugins
COPY --chown=jstore serving ./serving
COPY --chown=jstore examples ./examples
RUN uv sync --frozen --all-extras --no-dev

EXPOSE 8765
CMD ["jstore", "serve", "--host", "0.0.0.0", "--port", "8765"]
