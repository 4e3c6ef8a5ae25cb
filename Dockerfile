# The hosted endpoint: Streamable HTTP at /mcp, SSE at /sse, /healthz. Each user sends their own
# FLORA key as `Authorization: Bearer sk_live_…`. Set FLORA_ALLOWED_HOSTS to your public host name.
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY flora_mcp ./flora_mcp
RUN pip install . && useradd --create-home --uid 10001 flora

USER flora
ENV FLORA_HOST=0.0.0.0 \
    FLORA_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 CMD ["python", "-c", "import urllib.request, sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
CMD ["flora-mcp", "--transport", "http"]
