"""Migrate as the owner role, then give the application role only what it needs.

The application (DATABASE_URL) must not own the tables: an owner can TRUNCATE the audit
trail, disable its trigger or drop it. So migrations run as another role (DATABASE_MIGRATE_URL,
used by this command only), and the application role gets SELECT, INSERT, UPDATE and DELETE
on every table except the audit tables, where it may only INSERT and SELECT. Idempotent: run
it after every deployment (docker-compose's ``migrate`` service does).
"""

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections, transaction

from requests_app.models import AuditCheckpoint, AuditEvent

APPEND_ONLY_TABLES = (AuditEvent._meta.db_table, AuditCheckpoint._meta.db_table)
READ_ONLY_TABLES = ("django_migrations",)  # only `migrate`, as the owner, writes it


def ident(name):
    """An SQL identifier, quoted (role and schema names come from settings)."""
    return '"' + name.replace('"', '""') + '"'


def schema_statements(schema, owner, app):
    """What holds before any table exists: some migrations (django-rq's) read and write
    through the application's connection while the owner migrates, so the tables the owner
    creates are the application's to use from the start; the audit tables are narrowed after."""
    s, o, a = ident(schema), ident(owner), ident(app)
    return [
        f"GRANT USAGE ON SCHEMA {s} TO {a}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {a}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {o} IN SCHEMA {s} "
        f"GRANT USAGE, SELECT ON SEQUENCES TO {a}",
    ]


def table_statements(schema, app):
    """The grants on the tables as they are after migrating."""
    s, a = ident(schema), ident(app)
    tables = ", ".join(ident(t) for t in APPEND_ONLY_TABLES)
    read_only = ", ".join(ident(t) for t in READ_ONLY_TABLES)
    return [
        f"REVOKE TRUNCATE, REFERENCES, TRIGGER ON ALL TABLES IN SCHEMA {s} FROM {a}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {a}",
        f"REVOKE ALL ON {tables}, {read_only} FROM {a}",
        f"GRANT SELECT, INSERT ON {tables} TO {a}",
        f"GRANT SELECT ON {read_only} TO {a}",
        f"REVOKE UPDATE ON ALL SEQUENCES IN SCHEMA {s} FROM {a}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {s} TO {a}",
    ]


def check_roles(cursor, app):
    """Refuse a set-up in which the grants would protect nothing."""
    cursor.execute("SELECT current_user, current_schema()")
    owner, schema = cursor.fetchone()
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = %s", [app])
    row = cursor.fetchone()
    if row is None:
        raise CommandError(f"DATABASE_URL: the role {app!r} does not exist")
    if app == owner:
        raise CommandError(
            f"DATABASE_URL and DATABASE_MIGRATE_URL: both connect as {app!r}; the application "
            "role must not own the tables"
        )
    if row[0]:
        raise CommandError(f"DATABASE_URL: {app!r} is a superuser; connect as an ordinary role")
    cursor.execute("SELECT pg_has_role(%s, current_user, 'MEMBER')", [app])
    if cursor.fetchone()[0]:
        raise CommandError(f"DATABASE_URL: {app!r} is a member of the owner role {owner!r}")
    cursor.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tableowner = %s "
        "ORDER BY tablename",
        [schema, app],
    )
    owned = [name for (name,) in cursor.fetchall()]
    if owned:
        raise CommandError(
            f"DATABASE_URL: {app!r} owns {len(owned)} tables ({owned[0]}, …); as a superuser "
            f"run REASSIGN OWNED BY {ident(app)} TO {ident(owner)}; then run this again"
        )
    return owner, schema


def grant_application_role(connection, app, *, tables=True):
    """Run the grants on ``connection`` (the owner's): the schema's default privileges, then
    (``tables``) those of the existing tables. Returns the statements run."""
    with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
        owner, schema = check_roles(cursor, app)
        statements = schema_statements(schema, owner, app)
        statements += table_statements(schema, app) if tables else []
        for statement in statements:
            cursor.execute(statement)
    return statements


class Command(BaseCommand):
    help = (
        "Migrate as the owner role (DATABASE_MIGRATE_URL), then grant the application role "
        "(DATABASE_URL) what it needs: INSERT and SELECT only on the audit tables."
    )

    def handle(self, **options):
        verbosity = options["verbosity"]
        if "owner" not in connections.databases:
            call_command("migrate", interactive=False, verbosity=verbosity)
            self.stdout.write(
                "DATABASE_MIGRATE_URL is not set: migrated as the application role, which owns "
                "the tables (fine for development; in production see the README's Evidence)."
            )
            return
        owner = connections["owner"]
        if owner.vendor != "postgresql" or connections["default"].vendor != "postgresql":
            raise CommandError("DATABASE_MIGRATE_URL: separate roles need PostgreSQL")
        app = self.application_role(owner.settings_dict, connections["default"].settings_dict)
        grant_application_role(owner, app, tables=False)
        call_command("migrate", database="owner", interactive=False, verbosity=verbosity)
        grant_application_role(owner, app)
        self.stdout.write(
            f"granted {app}: SELECT, INSERT, UPDATE, DELETE on the portal's tables; only "
            f"SELECT, INSERT on {', '.join(APPEND_ONLY_TABLES)}; only SELECT on "
            f"{', '.join(READ_ONLY_TABLES)}"
        )

    def application_role(self, owner, default):
        """The role to grant: DATABASE_URL's user, on the database DATABASE_MIGRATE_URL names."""
        if (owner["NAME"], owner["HOST"], owner["PORT"]) != (
            default["NAME"],
            default["HOST"],
            default["PORT"],
        ):
            raise CommandError("DATABASE_MIGRATE_URL: names another database than DATABASE_URL")
        if not default["USER"]:
            raise CommandError("DATABASE_URL: names no user (postgres://ROLE:PASSWORD@HOST/DB)")
        return default["USER"]
