"""The audit trail is append-only and any edit or removal is found by verify_audit."""

import threading

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from requests_app.evidence import checkpoints
from requests_app.evidence.checkpoints import keys
from requests_app.models import AuditCheckpoint, AuditEvent
from requests_app.models.audit import AppendOnlyError, verify_chain
from tests.conftest import make_user

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


@pytest.fixture
def signing(settings, tmp_path):
    """A signing key and its public key, as production has them (checkpoints in the DB)."""
    key = keys.generate_key_file(tmp_path / "signing.pem")
    settings.DSR_AUDIT_SIGNING_KEY_FILE = str(tmp_path / "signing.pem")
    settings.DSR_AUDIT_PUBLIC_KEY = keys.public_b64(key.public_key())
    settings.DSR_AUDIT_CHECKPOINT_EMAIL = False
    return key


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


def test_removed_last_event_is_found_against_the_checkpoint(chain, signing):
    checkpoints.write_checkpoint()
    raw(f"DELETE FROM {TABLE} WHERE seq = 5")
    with pytest.raises(
        CommandError,
        match=r"the last events were removed: the chain ends at event #4 but signed "
        r"checkpoint #5 .* covers events up to #5",
    ):
        call_command("verify_audit")


def test_without_a_checkpoint_a_removed_tail_cannot_be_seen_and_verify_audit_says_so(chain, capsys):
    raw(f"DELETE FROM {TABLE} WHERE seq = 5")
    call_command("verify_audit")
    out = capsys.readouterr().out
    assert "audit chain OK: 4 events" in out
    assert "no signed checkpoint yet: removing the last events would go unnoticed" in out


def test_verify_audit_says_what_the_checkpoints_cover(chain, signing, capsys):
    checkpoints.write_checkpoint()
    AuditEvent.record("later")
    call_command("verify_audit")
    out = capsys.readouterr().out
    assert "audit chain OK: 6 events" in out
    assert "held against 1 signed checkpoint(s)" in out
    assert "the latest covers event #5" in out and "events #6 to #6 are not anchored yet" in out


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


def test_model_refuses_changing_a_checkpoint(chain, signing):
    checkpoint = checkpoints.write_checkpoint()
    with pytest.raises(AppendOnlyError):
        AuditCheckpoint.objects.filter(pk=checkpoint.pk).update(head_hash="0" * 64)
    with pytest.raises(AppendOnlyError):
        checkpoint.delete()


@pytest.mark.parametrize("table", [TABLE, AuditCheckpoint._meta.db_table])
@pytest.mark.parametrize("statement", ["UPDATE {table} SET seq = seq", "DELETE FROM {table}"])
def test_database_refuses_update_and_delete_on_postgresql(chain, signing, table, statement):
    if connection.vendor != "postgresql":
        pytest.xfail("the trigger exists on PostgreSQL only (SQLite relies on the model)")
    checkpoints.write_checkpoint()
    with (
        pytest.raises(Exception, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(statement.format(table=table))


# --- who acted: kept as written ---------------------------------------------------------------


def test_audit_rows_have_no_foreign_key_that_could_rewrite_them(db):
    """Deleting a user (however it is done) cannot cascade into the trail or null a field."""
    assert not any(field.is_relation for field in AuditEvent._meta.get_fields())
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, TABLE)
    assert [name for name, c in constraints.items() if c["foreign_key"]] == []


def test_the_actor_is_kept_as_written_when_the_user_row_is_gone(db):
    alice = make_user("alice")
    event = AuditEvent.record("something", actor=alice)
    assert (event.actor_user_id, event.actor_name) == (alice.pk, "alice")
    assert AuditEvent.objects.get(pk=event.pk).actor_user == alice
    with connection.cursor() as cursor:  # past any guard the admin has against deleting
        cursor.execute("DELETE FROM auth_user WHERE id = %s", [alice.pk])
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.actor_user_id, stored.actor_name) == (alice.pk, "alice")
    assert stored.actor_user is None
    assert verify_chain()[0]


# --- appends are serialised without a mutable head row -----------------------------------------


@pytest.mark.skipif(
    "connection.vendor == 'sqlite'",
    reason="the in-memory SQLite test database is one connection; CI runs this on PostgreSQL",
)
@pytest.mark.django_db(transaction=True)
def test_concurrent_appends_make_one_unbroken_chain():
    barrier = threading.Barrier(6)
    errors = []

    def append(writer):
        barrier.wait()
        try:
            for number in range(20):
                AuditEvent.record("concurrent", writer=writer, number=number)
        except Exception as exc:  # the test reports any, rather than hanging
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=append, args=(w,)) for w in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert verify_chain() == (True, 120, AuditEvent.objects.order_by("-seq")[0].hash, None)
