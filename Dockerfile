# The project's image: the pipeline (ingest, dbt, Feast), the API and the flow's scheduler share it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    DBT_SEND_ANONYMOUS_USAGE_STATS=false \
    DBT_VERSION_CHECK=false \
    FEAST_USAGE=false

WORKDIR /app
RUN pip install --no-cache-dir uv==0.13.8

# Dependencies first (cached while only the code changes), exactly as locked.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --group flow --no-install-project

COPY streamflow ./streamflow
COPY scripts ./scripts
COPY serving ./serving
COPY dbt_project ./dbt_project
COPY feature_repo ./feature_repo
RUN uv sync --frozen --no-dev --group flow \
    && useradd --create-home --uid 10001 streamflow \
    && mkdir -p /app/.streamflow /app/data \
    && chown -R streamflow /app/.streamflow /app/data /app/dbt_project /app/feature_repo

USER streamflow
EXPOSE 8000
CMD ["python", "-m", "serving"]
