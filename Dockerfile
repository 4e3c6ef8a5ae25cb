# The hosted endpoint: Streamable HTTP at /mcp, SSE at /sse, /healthz. Each user sends their own
# FLORA key as `Authorization: Bearer sk_live_…`. Set FLORA_ALLOWED_HOSTS to your public host name.
# Over stdio instead (one user, like uvx):  docker run -i --rm -e FLORA_API_KEY flora-mcp flora-mcp
FROM python:3.12-slim

# The MCP registry matches an OCI image to its server.json entry by this label.
LABEL io.modelcontextprotocol.server.name="io.github.flora-mcp/flora-mcp"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY docker/constraints.txt ./docker/
COPY flora_mcp ./flora_mcp
# Dependencies pinned to the versions the tests passed with (scripts/pin-docker-deps writes the file).
RUN pip install --constraint docker/constraints.txt . && useradd --create-home --uid 10001 flora

USER flora
ENV FLORA_HOST=0.0.0.0 \
    FLORA_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 CMD ["python", "-c", "import urllib.request, sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
CMD ["flora-mcp", "--transport", "http"]
