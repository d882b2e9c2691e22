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
COPY static ./static
COPY manage.py ./
RUN pip install -c constraints.txt . \
    && SECRET_KEY="$(python -c 'import secrets; print(secrets.token_urlsafe(50))')" \
       python manage.py collectstatic --noinput \
    && useradd --system --uid 10001 --home /app dsr \
    && mkdir -p /data && chown dsr /data
USER dsr
VOLUME ["/data"]
EXPOSE 8000
# The access log goes through portal.logging.RedactingGunicornLogger: no approval token in it.
CMD ["gunicorn", "portal.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--timeout", "60", \
     "--logger-class", "portal.logging.RedactingGunicornLogger", \
     "--access-logfile", "-"]
