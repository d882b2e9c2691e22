# One image for web, worker and scheduler; the command picks the role (see docker-compose.yml).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=portal.settings DSR_DATA_DIR=/data
WORKDIR /app

COPY pyproject.toml constraints.txt ./
COPY portal ./portal
COPY requests_app ./requests_app
COPY simulator ./simulator
COPY templates ./templates
# The audit page shows docs/verify-audit-offline.md; the offline verifier sits beside it.
COPY docs ./docs
COPY static ./static
COPY manage.py ./
RUN pip install -c constraints.txt . \
    && SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
       python manage.py collectstatic --noinput \
    && useradd --system --uid 10001 --home /app dsr \
    && mkdir -p /data /checkpoints /audit-key && chown dsr /data /checkpoints /audit-key \
    && chmod 700 /audit-key
USER dsr
# /checkpoints: signed audit checkpoints (the scheduler writes, web and worker read);
# /audit-key: the signing key, mounted into the scheduler only. Named volumes start with
# these owners, so the unprivileged user can write them.
VOLUME ["/data"]
EXPOSE 8000
# The access log goes through portal.logging.RedactingGunicornLogger: no approval token in it.
CMD ["gunicorn", "portal.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "60", \
     "--logger-class", "portal.logging.RedactingGunicornLogger", \
     "--access-logfile", "-"]
