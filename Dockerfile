# syntax=docker/dockerfile:1
# Build stage: moa-bot in a virtual environment. The dependencies get a layer of their own, built from
# pyproject.toml alone, so a change to the code reinstalls moa-bot only, not the forty packages under it.
FROM python:3.11.17-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /venv
ENV PATH=/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml ./
RUN --mount=type=cache,target=/root/.cache/pip \
    python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && python3 -m pip install -r requirements.txt
COPY README.md LICENSE ./
COPY bot ./bot
COPY adapters ./adapters
COPY moa ./moa
COPY storage ./storage
# the README's `python3 -m pip install .`, with the dependencies already in place
RUN --mount=type=cache,target=/root/.cache/pip python3 -m pip install --no-deps .

# Runtime stage: the virtual environment only, run as an unprivileged user, the database on a volume.
FROM python:3.11.17-slim-bookworm
RUN useradd --system --uid 10001 --user-group --home-dir /data --shell /usr/sbin/nologin moa \
    && mkdir -p /data && chown moa:moa /data
COPY --from=build /venv /venv
ENV PATH=/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MOA_DB=/data/moa.sqlite3 \
    MOA_HTTP_HOST=0.0.0.0 \
    MOA_HTTP_PORT=8080
VOLUME ["/data"]
WORKDIR /data
USER moa
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('MOA_HTTP_PORT', '8080'), timeout=4)"]
STOPSIGNAL SIGTERM
CMD ["moa-bot", "run"]
