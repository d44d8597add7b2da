# syntax=docker/dockerfile:1
# One image for both roles:
#   docker run ... linkwatch:0.1.0 server --config /etc/linkwatch/linkwatch.yaml --host 0.0.0.0
#   docker run ... linkwatch:0.1.0 agent --config /etc/linkwatch/linkwatch.yaml --site ftb2
# The run-time stage has no compiler and no package manager caches, runs as uid 10001, and
# its Python interpreter holds CAP_NET_RAW (and nothing else) for ICMP: run the container
# with `--cap-drop ALL --cap-add NET_RAW` and without no-new-privileges (which would ignore
# the file capability). See deploy/compose.yaml and docs/operations.md.
#
# No container engine runs where this project is developed and tested: this file is linted
# (tests/deploy/test_dockerfile.py, and hadolint when installed), not built, in CI.

# Pinned to a full version; pin the digest too (python:3.11.11-slim-bookworm@sha256:...)
# where your registry allows, and bump both deliberately.
ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# --copies: the interpreter is a file of this environment, not a link to the system one, so
# the capability given to it below belongs to this environment only.
RUN python -m venv --copies /opt/linkwatch
COPY pyproject.toml README.md ./
COPY monitor ./monitor
COPY probes ./probes
COPY api ./api
# Install the dependencies only: the application runs from /app (below), where the alembic
# migrations and the demo's examples sit next to the code that finds them.
RUN /opt/linkwatch/bin/pip install . \
 && /opt/linkwatch/bin/pip uninstall -y linkwatch

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="Linkwatch" \
      org.opencontainers.image.description="Link health and latency monitoring for remote sites: server and agent" \
      org.opencontainers.image.licenses="Apache-2.0"
ENV PATH=/opt/linkwatch/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LINKWATCH_HEALTH_URL=http://127.0.0.1:8080/healthz
COPY --from=build /opt/linkwatch /opt/linkwatch
# setcap is needed only to mark the interpreter: install it, use it, remove it, in one layer.
# Its version is not pinned (DL3008): the base tag fixes the Debian release, whose point-release
# package versions are replaced on the mirrors, so a pin would break the build, not secure it.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcap2-bin \
 && find /opt/linkwatch/bin -maxdepth 1 -type f -name 'python*' -exec setcap cap_net_raw+ep {} + \
 && apt-get purge -y --auto-remove libcap2-bin \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 linkwatch \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/linkwatch --create-home \
      --shell /usr/sbin/nologin linkwatch
WORKDIR /app
COPY monitor ./monitor
COPY probes ./probes
COPY api ./api
COPY alembic ./alembic
COPY alembic.ini ./
COPY examples ./examples
RUN python -m compileall -q /app
USER 10001:10001
# The agent's spool and a SQLite database (when configured with a relative path) live here.
WORKDIR /var/lib/linkwatch
VOLUME ["/var/lib/linkwatch"]
EXPOSE 8080
# The server answers /healthz (compose checks /readyz through LINKWATCH_HEALTH_URL); an agent
# container sets its own check or disables it (deploy/compose.yaml).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen(os.environ['LINKWATCH_HEALTH_URL'], timeout=4).status == 200 else 1)"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "monitor"]
CMD ["--help"]
