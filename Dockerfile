# crm-engine: one image for every role (`crm serve handlers|projector|relay|all`).
# The roles, their health checks and the servers they need are in docker-compose.yml;
# docs/nats.md says how backend services talk to them.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/crm \
    PATH=/opt/crm/bin:$PATH \
    MPLBACKEND=Agg \
    MPLCONFIGDIR=/tmp/matplotlib

RUN python -m venv /opt/crm

WORKDIR /src

# Dependencies first, read from pyproject.toml (runtime only, no dev extras), so that a change
# to the code does not reinstall numpy, scipy and friends.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; d = tomllib.load(open('pyproject.toml', 'rb')); print('\n'.join(d['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

COPY domain ./domain
COPY handlers ./handlers
COPY projections ./projections
COPY replay ./replay
COPY infra ./infra
RUN pip install --no-deps . && cd / && rm -rf /src

# Never run as root. The default SQLite store lives in a volume-friendly directory the user owns;
# compose points every role at PostgreSQL instead.
RUN useradd --system --create-home --home-dir /home/crm --uid 10001 --user-group crm \
    && mkdir -p /var/lib/crm \
    && chown crm:crm /var/lib/crm
USER crm
WORKDIR /home/crm
ENV CRM_STORE_URL=sqlite:////var/lib/crm/crm.db \
    CRM_LOG_LEVEL=INFO

# HEALTHCHECK is set per role in docker-compose.yml (each role is healthy in its own way).
ENTRYPOINT ["crm"]
CMD ["serve", "all"]
