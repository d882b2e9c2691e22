"""The two PostgreSQL roles of production, on a database of their own: docker-compose's init
script makes them, ``manage.py setup_database`` migrates as the owner and grants the
application role, which then cannot change, remove or truncate audit rows, nor disable the
trigger, while everything else it needs works."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import connection

pytestmark = [
    pytest.mark.skipif(
        "connection.vendor != 'postgresql'", reason="roles are PostgreSQL's; CI runs on it"
    ),
    pytest.mark.slow,
]

ROOT = Path(__file__).resolve().parent.parent
INIT_SCRIPT = ROOT / "config" / "postgres-init" / "10-dsr-roles.sh"
EVENTS, CHECKPOINTS = "requests_app_auditevent", "requests_app_auditcheckpoint"


class Server:
    """Where the suite's PostgreSQL is, and names derived from the suite's own database so
    that suites running side by side on one server do not meet."""

    def __init__(self, settings_dict):
        self.host = settings_dict["HOST"] or "127.0.0.1"
        self.port = str(settings_dict["PORT"] or 5432)
        self.admin = settings_dict["USER"] or "postgres"
        base = settings_dict["NAME"]
        self.database, self.owner, self.app = f"{base}_roles", f"{base}_owner", f"{base}_app"

    def url(self, role):
        return f"postgres://{role}:secret@{self.host}:{self.port}/{self.database}"

    def connect(self, role, dbname=None):
        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=role,
            password="secret",
            dbname=dbname or self.database,
            autocommit=True,
        )

    def drop(self):
        with self.connect(self.admin, "postgres") as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            for role in (self.app, self.owner):
                admin.execute(f'DROP ROLE IF EXISTS "{role}"')

    def create(self, tmp_path):
        """The init script docker-compose mounts, when psql is here; else the same SQL."""
        password_file = tmp_path / "owner-password"
        password_file.write_text("secret\n")
        env = {
            **os.environ,
            "PGHOST": self.host,
            "PGPORT": self.port,
            "POSTGRES_USER": self.admin,
            "DSR_DB_OWNER": self.owner,
            "DSR_DB_APP": self.app,
            "DSR_DB_NAME": self.database,
            "DSR_DB_OWNER_PASSWORD_FILE": str(password_file),
            "DSR_DB_APP_PASSWORD": "secret",
        }
        if shutil.which("psql"):
            subprocess.run(["sh", str(INIT_SCRIPT)], env=env, check=True, capture_output=True)
            return
        with self.connect(self.admin, "postgres") as admin:
            admin.execute(f"CREATE ROLE \"{self.owner}\" LOGIN PASSWORD 'secret'")
            admin.execute(f"CREATE ROLE \"{self.app}\" LOGIN PASSWORD 'secret'")
            admin.execute(f'CREATE DATABASE "{self.database}" OWNER "{self.owner}"')


def manage(server, *args, app=None, owner=None, extra=None):
    env = {**os.environ, "DATABASE_URL": server.url(app or server.app), **(extra or {})}
    env["DATABASE_MIGRATE_URL"] = server.url(owner or server.owner)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    server = Server(connection.settings_dict)
    server.drop()
    server.create(tmp_path_factory.mktemp("roles"))
    result = manage(server, "setup_database", "-v", "0")
    assert result.returncode == 0, result.stderr
    assert f"granted {server.app}: SELECT, INSERT, UPDATE, DELETE" in result.stdout
    yield server
    server.drop()


@pytest.fixture
def as_app(server):
    with server.connect(server.app) as app:
        yield app


@pytest.mark.parametrize(
    "statement",
    [
        f"UPDATE {EVENTS} SET action = 'forged'",
        f"DELETE FROM {EVENTS}",
        f"TRUNCATE {EVENTS}",
        f"ALTER TABLE {EVENTS} DISABLE TRIGGER dsr_audit_append_only",
        f"ALTER TABLE {EVENTS} DISABLE TRIGGER ALL",
        f"DROP TABLE {EVENTS}",
        f"ALTER TABLE {EVENTS} OWNER TO CURRENT_USER",
        f"UPDATE {CHECKPOINTS} SET head_hash = 'forged'",
        f"DELETE FROM {CHECKPOINTS}",
        f"TRUNCATE {CHECKPOINTS}",
        f"ALTER TABLE {CHECKPOINTS} DISABLE TRIGGER dsr_audit_append_only",
        f"SELECT setval(pg_get_serial_sequence('{EVENTS}', 'id'), 1)",
        "SET session_replication_role = replica",
        "INSERT INTO django_migrations (app, name, applied) VALUES ('x', 'y', now())",
        "CREATE TABLE mine (id int)",
    ],
)
def test_the_application_role_cannot(as_app, statement):
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        as_app.execute(statement)


def test_the_application_role_may_use_every_other_table(server, as_app):
    for table in ("requests_app_datarequest", "requests_app_outboxmessage", "auth_user"):
        as_app.execute(f"UPDATE {table} SET id = id WHERE false")  # noqa: S608
        as_app.execute(f"DELETE FROM {table} WHERE false")  # noqa: S608
    as_app.execute("INSERT INTO django_session VALUES ('k', 'data', now())")
    as_app.execute("DELETE FROM django_session WHERE session_key = 'k'")


def test_tables_of_later_migrations_are_the_application_roles_too(server, as_app):
    with server.connect(server.owner) as owner:
        owner.execute("CREATE TABLE later_migration (id serial PRIMARY KEY, note text)")
    as_app.execute("INSERT INTO later_migration (note) VALUES ('x')")
    as_app.execute("UPDATE later_migration SET note = 'y'")
    as_app.execute("DELETE FROM later_migration")


def test_the_portal_appends_verifies_and_signs_as_the_application_role(server, tmp_path):
    """INSERT and SELECT are enough: the chain's lock is an advisory lock, no head row."""
    record = (
        "from requests_app.models import AuditEvent\n"
        "for n in range(3): AuditEvent.record('as_app', n=n)"
    )
    assert manage(server, "shell", "-c", record).returncode == 0
    result = manage(server, "verify_audit")
    assert result.returncode == 0, result.stderr
    assert "audit chain OK: 3 events" in result.stdout
    key = tmp_path / "signing.pem"
    assert manage(server, "audit_keygen", "--out", str(key)).returncode == 0
    public = manage(server, "shell", "-v", "0", "-c", _public_of(key)).stdout.strip()
    env = {
        "DSR_AUDIT_SIGNING_KEY_FILE": str(key),
        "DSR_AUDIT_PUBLIC_KEY": public,
        "DSR_AUDIT_CHECKPOINT_DIR": str(tmp_path / "checkpoints"),
        "DSR_AUDIT_CHECKPOINT_EMAIL": "0",
    }
    result = manage(server, "scheduler", "--once", extra=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "checkpoints" / "checkpoint-000000000003.json").exists()


def _public_of(key):
    return (
        "from requests_app.evidence.checkpoints import keys\n"
        f"print(keys.public_b64(keys.read_key_file({str(key)!r}).public_key()))"
    )


def test_setup_database_runs_again_unchanged(server):
    result = manage(server, "setup_database", "-v", "0")
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("app", "owner", "message"),
    [
        ("admin", None, "is a superuser; connect as an ordinary role"),
        ("owner", None, "both connect as"),
    ],
)
def test_setup_database_refuses_roles_that_would_protect_nothing(server, app, owner, message):
    role = {"admin": server.admin, "owner": server.owner}[app]
    result = manage(server, "setup_database", app=role, owner=owner)
    assert result.returncode != 0
    assert message in result.stderr
