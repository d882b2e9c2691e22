"""The benchmark's environment: settings, its own database, this process's Django, the machine."""

import os
import secrets
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from webbench import ROOT

# What this process's Django takes from the benchmark's environment (gunicorn gets all of it).
DJANGO_VARIABLES = (
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "DEBUG",
    "DSR_HTTPS",
    "ALLOWED_HOSTS",
    "SITE_URL",
    "LOG_LEVEL",
)


def bench_env(args):
    """The environment both gunicorn and this process's Django run with."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        SECRET_KEY=secrets.token_urlsafe(50),
        DEBUG="0",
        DSR_HTTPS="0",
        ALLOWED_HOSTS="127.0.0.1",
        SITE_URL="http://127.0.0.1",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    env.pop("DSR_DEV_OUTBOX", None)
    if args.pgoptions:
        env["PGOPTIONS"] = args.pgoptions
    return env


def ensure_database(url):
    """CREATE DATABASE when it is missing (connecting to the server's ``postgres`` database)."""
    import psycopg
    from psycopg import sql

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    if not name:
        sys.exit("--database-url: name the database, e.g. postgres://postgres@HOST:5432/dsr_bench")
    if name in ("postgres", "template0", "template1"):
        sys.exit(f"--database-url: refusing to use the {name!r} database for the benchmark")
    admin = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    with psycopg.connect(admin, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            print(f"creating database {name}")
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def manage(env, *argv, quiet=True):
    """Run ``manage.py argv`` in ``env``; exit with its output when it fails."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *argv],
        cwd=ROOT,
        env=env,
        capture_output=quiet,
        text=True,
    )
    if result.returncode:
        sys.exit(f"manage.py {' '.join(argv)} failed:\n{result.stdout or ''}{result.stderr or ''}")


def prepare_database(env, database_url):
    """Create and migrate the benchmark's database, and collect the static files."""
    ensure_database(database_url)
    print("migrating ...", flush=True)
    manage(env, "migrate", "--noinput")
    # DEBUG off serves hashed files from the manifest, as in the Docker image.
    manage(env, "collectstatic", "--noinput")


def setup_django(env, pgoptions):
    """Set up Django in this process with the settings gunicorn gets."""
    os.environ.update({name: env[name] for name in DJANGO_VARIABLES})
    os.environ.pop("DSR_DEV_OUTBOX", None)
    if pgoptions:
        os.environ["PGOPTIONS"] = pgoptions
    import django

    django.setup()


def machine():
    """(CPU count, CPU model, memory, PostgreSQL version): the machine the figures come from."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0]
    return os.cpu_count(), model, memory, pg
