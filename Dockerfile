# One image for both roles: `linkwatch server --config ...` and `linkwatch agent --config ... --site ID`.
# No Docker engine runs on the development machines; this file is linted, not built, in CI.

FROM python:3.11-slim-bookworm AS build
WORKDIR /src
RUN python -m venv /opt/linkwatch
ENV PATH=/opt/linkwatch/bin:$PATH
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY probes ./probes
COPY api ./api
RUN pip install --no-cache-dir . && pip uninstall -y linkwatch

FROM python:3.11-slim-bookworm
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/linkwatch --create-home linkwatch
COPY --from=build /opt/linkwatch /opt/linkwatch
WORKDIR /app
COPY monitor ./monitor
COPY probes ./probes
COPY api ./api
COPY alembic ./alembic
COPY alembic.ini ./
COPY examples ./examples
# ICMP needs a raw socket: give the interpreter CAP_NET_RAW and nothing else, run as non-root.
RUN setcap cap_net_raw+ep "$(readlink -f /opt/linkwatch/bin/python)"
ENV PATH=/opt/linkwatch/bin:$PATH PYTHONPATH=/app PYTHONUNBUFFERED=1
USER linkwatch
WORKDIR /var/lib/linkwatch
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD ["python", "-c", "import sys,urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status != 200)"]
ENTRYPOINT ["python", "-m", "monitor"]
CMD ["--help"]
