# syntax=docker/dockerfile:1
# amiflow's images: one target per service, e.g.
#   docker build --target billing -t amiflow/billing:0.1.0 .
# Targets, not one image with the service as an argument: every image holds only the code it runs (the
# shared dependency layer is the same for all six, so a node pulls it once), a change to notify rolls out
# only notify, and the entrypoint is fixed per image, so a manifest can only choose the role
# (api | worker | migrate, or a service's tool such as billing's `rebuild`). The `toolbox` target holds every
# service and the `amiflow` CLI with pg_dump for backup, restore and replays (deploy/RUNBOOK.md). The `console`
# target serves the operator console and customer portal, built from services/console/web in the `web` stage.
# The base images are pinned by tag; pin them by digest too where the registry allows (tests/deploy checks the tags).
ARG PYTHON_IMAGE=python:3.11.14-slim-trixie
# Node.js of the console's build (package.json `engines`: Vite needs 20.19 or newer); only its output, static
# files, reaches an image.
ARG NODE_IMAGE=node:20.20.2-bookworm-slim

# Wheels from the lock, hashes checked; the compiler needed by any sdist stays in this stage.
FROM ${PYTHON_IMAGE} AS dependencies
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
COPY deploy/docker/requirements-runtime.lock /tmp/requirements.lock
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps -r /tmp/requirements.lock \
 && find /opt/venv -name '__pycache__' -prune -exec rm -rf {} +

# What every service runs on: the dependencies, the event schemas and the runtime; a numeric non-root user
# (Kubernetes' runAsNonRoot can only verify a numeric one).
FROM ${PYTHON_IMAGE} AS platform
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AMIFLOW_DATA_DIR=/var/lib/amiflow
RUN groupadd --system --gid 10001 amiflow \
 && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/amiflow --create-home --shell /usr/sbin/nologin amiflow
COPY --from=dependencies /opt/venv /opt/venv
COPY schemas/amiflow_schemas /app/amiflow_schemas
COPY services/runtime/amiflow_runtime /app/amiflow_runtime
WORKDIR /app
USER 10001:10001

FROM platform AS ingest
COPY services/ingest/ingest /app/ingest
# 8001 API, 8101 worker ops, 9100 DTU gateway
EXPOSE 8001 8101 9100
ENTRYPOINT ["python", "-m", "ingest.main"]
CMD ["api"]

FROM platform AS vee
COPY services/vee/vee /app/vee
EXPOSE 8002 8102
ENTRYPOINT ["python", "-m", "vee.main"]
CMD ["api"]

FROM platform AS billing
COPY services/billing/billing /app/billing
EXPOSE 8003 8103
ENTRYPOINT ["python", "-m", "billing.main"]
CMD ["api"]

FROM platform AS commands
COPY services/commands/commands /app/commands
EXPOSE 8004 8104
ENTRYPOINT ["python", "-m", "commands.main"]
CMD ["api"]

FROM platform AS notify
COPY services/notify/notify /app/notify
EXPOSE 8005 8105
ENTRYPOINT ["python", "-m", "notify.main"]
CMD ["api"]

FROM platform AS identity
COPY services/identity/identity /app/identity
EXPOSE 8006 8106
ENTRYPOINT ["python", "-m", "identity.main"]
CMD ["api"]

# The console's web app: packages exactly as package-lock.json has them (npm ci checks their integrity hashes),
# the manifest and lock first so the install layer is reused while only sources change; `npm run build`
# type-checks (vue-tsc) and bundles (Vite) into dist/.
FROM ${NODE_IMAGE} AS web
WORKDIR /web
COPY services/console/web/package.json services/console/web/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY services/console/web/ ./
RUN npm run build

# Pages and assets from the web stage (no Node.js, no node_modules), served with the proxy to the APIs;
# CONSOLE_WEB_DIST tells the console where they are, and /readyz fails if they are missing.
FROM platform AS console
COPY services/console/console /app/console
COPY --from=web /web/dist /app/web
ENV CONSOLE_WEB_DIST=/app/web
EXPOSE 8007
ENTRYPOINT ["python", "-m", "console.main"]
CMD ["api"]

# Operations: `amiflow backup|restore|audit|topics`, every service's tools; pg_dump/pg_restore from Debian
# (they must be at least the server's major version: amiflow_runtime/backup_databases.py picks them).
FROM platform AS toolbox
USER root
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client \
 && rm -rf /var/lib/apt/lists/*
COPY services/ingest/ingest /app/ingest
COPY services/vee/vee /app/vee
COPY services/billing/billing /app/billing
COPY services/commands/commands /app/commands
COPY services/notify/notify /app/notify
COPY services/identity/identity /app/identity
USER 10001:10001
ENTRYPOINT ["python", "-m", "amiflow_runtime.cli"]
CMD ["--help"]
