"""The audit trail is append-only and any edit or removal is found by verify_audit."""

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from requests_app.models import AuditEvent
from requests_app.models.audit import AppendOnlyError, verify_chain

TABLE = AuditEvent._meta.db_table


def raw(sql, params=()):
    """Change the table behind the model's back, as an attacker with database access would."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")  # triggers off
        cursor.execute(sql, params)
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = DEFAULT")


@pytest.fixture
def chain(db):
    return [AuditEvent.record("test_event", n=n, note="é ✓") for n in range(1, 6)]


def test_clean_chain_verifies(chain, capsys):
    ok, count, head, problem = verify_chain()
    assert (ok, count, problem) == (True, 5, None)
    assert head == chain[-1].hash
    call_command("verify_audit")
    assert f"audit chain OK: 5 events, head {head}" in capsys.readouterr().out


def test_each_event_links_to_the_previous(chain):
    assert chain[0].prev_hash == "0" * 64
    for before, after in zip(chain, chain[1:], strict=False):
        assert after.prev_hash == before.hash


def test_altered_event_is_named(chain):
    raw(f"UPDATE {TABLE} SET details = %s WHERE seq = 3", ['{"n": 99}'])
    with pytest.raises(CommandError, match=r"event #3 was altered"):
        call_command("verify_audit")


def test_removed_event_is_named(chain):
    raw(f"DELETE FROM {TABLE} WHERE seq = 2")
    with pytest.raises(CommandError, match=r"event #2 is missing"):
        call_command("verify_audit")


def test_removed_last_event_is_found(chain):
    raw(f"DELETE FROM {TABLE} WHERE seq = 5")
    with pytest.raises(CommandError, match=r"the last events were removed"):
        call_command("verify_audit")


def test_model_refuses_update_and_delete(chain):
    event = chain[0]
    event.action = "forged"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(seq=1).update(action="forged")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.all().delete()


def test_database_refuses_update_on_postgresql(chain):
    if connection.vendor != "postgresql":
        pytest.xfail("the trigger exists on PostgreSQL only (SQLite relies on the model)")
    with (
        pytest.raises(Exception, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(f"UPDATE {TABLE} SET action = 'forged' WHERE seq = 1")
