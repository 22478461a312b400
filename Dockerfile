# rtc-engage: one node on the embedded store. Data (SQLite file, uploads, secret) lives in /data.
FROM node:20-bookworm-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY web/ ./
RUN npm run build

FROM python:3.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 RTC_HOST=0.0.0.0 RTC_PORT=8080 RTC_DATA_DIR=/data
RUN apt-get update && apt-get install -y --no-install-recommends libopus0 libvpx7 libsrtp2-1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --create-home --uid 10001 rtc \
    && mkdir -p /data && chown rtc:rtc /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY signaling/ signaling/
COPY rtc_server/ rtc_server/
# gcc and SQLite's headers build the WAL write shim (signaling/storage/_walvfs.c), then leave the image;
# so do the sources: the installed package (with the shim) is the one every process imports, the SQLite
# writer's `python -m` from this working directory included
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev libsqlite3-dev \
    && pip install --no-cache-dir '.[fast]' \
    && rm -rf signaling rtc_server build \
    && python -c "import signaling.storage._walvfs" \
    && apt-get purge -y gcc libc6-dev libsqlite3-dev && rm -rf /var/lib/apt/lists/*
COPY --from=web /src/web/dist /app/web/dist
ENV RTC_WEB_DIR=/app/web/dist
USER rtc
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz').status==200 else 1)"
CMD ["rtc-server", "serve"]
