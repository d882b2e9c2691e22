"""Signed checkpoints: the key, the sinks (directory, email, webhook) and their retries, the
chain held against them, and what the scheduler does without a key."""

import base64
import hashlib
import json
import os
import stat
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from requests_app.access import roles
from requests_app.evidence import checkpoints
from requests_app.evidence.checkpoints import keys, sinks
from requests_app.evidence.checkpoints.document import canonical
from requests_app.models import AuditCheckpoint, AuditEvent, CheckpointDelivery
from requests_app.models.audit import verify_chain
from tests.conftest import make_user


@pytest.fixture
def evidence(settings, tmp_path):
    """What production has: a signing key (a file), its public key, a checkpoint directory,
    email to the auditors."""
    key = keys.generate_key_file(tmp_path / "signing.pem")
    settings.DSR_AUDIT_SIGNING_KEY_FILE = str(tmp_path / "signing.pem")
    settings.DSR_AUDIT_PUBLIC_KEY = keys.public_b64(key.public_key())
    settings.DSR_AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    settings.DSR_AUDIT_CHECKPOINT_EMAIL = True
    settings.DSR_AUDIT_CHECKPOINT_WEBHOOK = None
    return key


@pytest.fixture
def auditor(db):
    return make_user("audrey", roles.AUDITOR)


def events(count, action="something"):
    return [AuditEvent.record(action, n=n) for n in range(count)]


def _dir(settings):
    return Path(settings.DSR_AUDIT_CHECKPOINT_DIR)


def checkpoint_file(settings, seq):
    return json.loads((_dir(settings) / f"checkpoint-{seq:012d}.json").read_text())


# --- the key ---------------------------------------------------------------------------------


def test_keygen_writes_a_private_key_only_its_owner_reads_and_prints_the_public_half(
    tmp_path, capsys
):
    path = tmp_path / "signing.pem"
    call_command("audit_keygen", "--out", str(path))
    out = capsys.readouterr().out
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    key = keys.read_key_file(path)
    public = keys.public_b64(key.public_key())
    assert f"DSR_AUDIT_PUBLIC_KEY={public}" in out
    raw = base64.b64decode(public)
    assert f"fingerprint: {hashlib.sha256(raw).hexdigest()[:16]}" in out
    with pytest.raises(CommandError, match="exists: refusing to overwrite a signing key"):
        call_command("audit_keygen", "--out", str(path))
    assert keys.read_key_file(path).public_key().public_bytes_raw() == raw


# --- writing and publishing ------------------------------------------------------------------


def test_a_checkpoint_is_signed_stored_and_published_to_the_directory_and_the_auditors(
    evidence, auditor, settings
):
    head = events(3)[-1]
    checkpoint = checkpoints.write_checkpoint()
    assert (checkpoint.seq, checkpoint.head_hash) == (head.seq, head.hash)
    published = checkpoint_file(settings, head.seq)
    statement = published["checkpoint"]
    name = f"checkpoint-{head.seq:012d}.json"
    assert statement == {
        "version": 1,
        "seq": head.seq,
        "head_hash": head.hash,
        "event_count": head.seq,
        "created_at": statement["created_at"],
        "key_fingerprint": keys.fingerprint(evidence.public_key()),
    }
    evidence.public_key().verify(
        base64.b64decode(published["signature"]), canonical(statement).encode()
    )
    assert stat.S_IMODE(os.stat(_dir(settings) / name).st_mode) == 0o444
    [message] = mail.outbox
    assert message.to == [auditor.email]
    assert message.subject == f"DSR Portal audit checkpoint #{head.seq}"
    assert head.hash in message.body and "/audit/offline-verification/" in message.body
    [(attached, content, mimetype)] = message.attachments
    assert (attached, mimetype) == (name, "application/json")
    assert json.loads(content) == published
    deliveries = {d.sink: d for d in CheckpointDelivery.objects.all()}
    assert set(deliveries) == {"directory", "email"}
    assert all(d.delivered_at and d.attempts == 1 for d in deliveries.values())


def test_no_second_checkpoint_for_the_same_head(evidence, auditor):
    first = events(2)[-1]
    assert checkpoints.write_checkpoint() is not None
    assert checkpoints.write_checkpoint() is None
    second = events(1)[-1]
    assert checkpoints.write_checkpoint().seq == second.seq
    assert list(AuditCheckpoint.objects.values_list("seq", flat=True)) == [first.seq, second.seq]


def test_an_empty_chain_gets_no_checkpoint(evidence, db):
    assert checkpoints.write_checkpoint() is None


def test_a_certificate_asks_for_a_checkpoint_without_the_key(evidence, auditor, settings):
    events(2)
    assert checkpoints.checkpoint_if_requested() is None  # nobody asked
    settings.DSR_AUDIT_SIGNING_KEY_FILE = "/nonexistent"  # the worker has no key
    request_event = checkpoints.request_checkpoint("certificate", data_request="DSR-2026-0001")
    assert (request_event.action, request_event.request_ref) == (
        "audit_checkpoint_requested",
        "DSR-2026-0001",
    )
    settings.DSR_AUDIT_SIGNING_KEY_FILE = str(_dir(settings).parent / "signing.pem")
    checkpoint = checkpoints.checkpoint_if_requested()
    assert checkpoint.seq == request_event.seq  # the request itself is covered
    assert checkpoints.checkpoint_if_requested() is None


def test_latest_checkpoint_is_what_certificates_carry(evidence, auditor):
    assert checkpoints.latest_checkpoint() is None
    head = events(4)[-1]
    checkpoints.write_checkpoint()
    latest = checkpoints.latest_checkpoint()
    assert latest["checkpoint"]["seq"] == head.seq
    assert latest["checkpoint"]["head_hash"] == head.hash
    assert latest["source"] == f"checkpoint-{head.seq:012d}.json"
    assert set(latest) == {"checkpoint", "signature", "source"}


# --- failing sinks: retried, reported, never in the way -----------------------------------------


def test_a_failing_sink_is_reported_and_retried_until_it_succeeds(evidence, settings, db):
    head = events(2)[-1]
    checkpoint = checkpoints.write_checkpoint()  # no auditor has an email address yet
    assert checkpoint is not None and mail.outbox == []
    status = checkpoints.checkpoint_status()
    assert status.pending == 1
    [failure] = status.failing
    assert failure["seq"] == head.seq and failure["sink"] == "Email to the auditors"
    assert failure["attempts"] == 1 and "no active auditor has an email address" in failure["error"]
    assert sinks.deliver_due() == 0  # not due before its back-off
    make_user("audrey", roles.AUDITOR)
    later = timezone.now() + timedelta(minutes=2)
    assert sinks.deliver_due(now=later) == 1
    assert len(mail.outbox) == 1
    status = checkpoints.checkpoint_status()
    assert (status.pending, status.failing) == (0, [])


def test_the_directory_never_replaces_a_checkpoint_file(evidence, auditor, settings):
    head = events(1)[-1]
    _dir(settings).mkdir()
    (_dir(settings) / f"checkpoint-{head.seq:012d}.json").write_text("{}")
    checkpoints.write_checkpoint()
    assert (_dir(settings) / f"checkpoint-{head.seq:012d}.json").read_text() == "{}"
    [failure] = checkpoints.checkpoint_status().failing
    assert failure["sink"] == "Checkpoint directory"
    assert "already holds a different checkpoint" in failure["error"]


def test_a_retried_directory_write_of_the_same_checkpoint_succeeds(evidence, auditor, settings):
    events(1)
    checkpoint = checkpoints.write_checkpoint()
    sinks.write_directory(checkpoint)  # e.g. the scheduler died before recording success
    assert len(list(_dir(settings).iterdir())) == 1


class _Webhook(BaseHTTPRequestHandler):
    received = []
    status = 204

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(settings):
    _Webhook.received, _Webhook.status = [], 204
    server = HTTPServer(("127.0.0.1", 0), _Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.DSR_AUDIT_CHECKPOINT_WEBHOOK = f"http://127.0.0.1:{server.server_port}/hook"
    yield _Webhook
    server.shutdown()


def test_the_webhook_receives_the_checkpoint(evidence, auditor, webhook, settings):
    head = events(2)[-1]
    checkpoints.write_checkpoint()
    [(content_type, document)] = webhook.received
    assert content_type == "application/json"
    assert document == checkpoint_file(settings, head.seq)


def test_a_webhook_error_is_reported(evidence, auditor, webhook):
    webhook.status = 500
    events(2)
    checkpoints.write_checkpoint()
    [failure] = checkpoints.checkpoint_status().failing
    assert failure["sink"] == "Webhook" and "HTTP 500" in failure["error"]


def test_a_webhook_must_be_https_unless_on_this_machine(evidence, auditor, settings):
    settings.DSR_AUDIT_CHECKPOINT_WEBHOOK = "http://hooks.example.org/x"
    events(1)
    checkpoints.write_checkpoint()
    [failure] = checkpoints.checkpoint_status().failing
    assert "must be an https:// URL" in failure["error"]


# --- the chain held against the checkpoints -----------------------------------------------------


def test_verify_chain_uses_the_directory_and_names_a_forged_checkpoint(evidence, auditor, settings):
    head = events(3)[-1]
    checkpoints.write_checkpoint()
    assert verify_chain()[0]
    path = _dir(settings) / f"checkpoint-{head.seq:012d}.json"
    document = json.loads(path.read_text())
    document["checkpoint"]["head_hash"] = "f" * 64
    path.chmod(0o644)
    path.write_text(json.dumps(document))
    ok, count, _, problem = verify_chain()
    assert (ok, count) == (False, head.seq)
    assert problem == f"checkpoint {path.name} is forged: its signature does not verify"
    assert checkpoints.latest_checkpoint() is None  # certificates never carry a forgery


def test_a_checkpoint_file_that_disappeared_is_named(evidence, auditor, settings):
    first = events(2)[-1]
    checkpoints.write_checkpoint()
    second = events(1)[-1]
    checkpoints.write_checkpoint()
    (_dir(settings) / f"checkpoint-{second.seq:012d}.json").unlink()
    ok, _, _, problem = verify_chain()
    assert not ok
    assert problem == (
        f"checkpoint #{second.seq} was written to {_dir(settings)} but its file is gone"
    )
    assert checkpoints.latest_checkpoint()["checkpoint"]["seq"] == first.seq


def test_a_checkpoint_signed_by_another_key_is_named(evidence, auditor, settings, tmp_path):
    events(2)
    settings.DSR_AUDIT_SIGNING_KEY_FILE = str(tmp_path / "other.pem")
    other = keys.generate_key_file(tmp_path / "other.pem")
    checkpoints.write_checkpoint(key=other)
    problem = verify_chain()[3]
    assert (
        f"is signed by an unknown key (fingerprint {keys.fingerprint(other.public_key())}"
        in problem
    )


def test_without_a_public_key_checkpoints_cannot_vouch(evidence, auditor, settings):
    events(2)
    checkpoints.write_checkpoint()
    settings.DSR_AUDIT_PUBLIC_KEY = None
    ok, _, _, problem = verify_chain()
    assert not ok and "DSR_AUDIT_PUBLIC_KEY holds none" in problem


def test_without_a_directory_the_database_copy_is_used(evidence, auditor, settings):
    head = events(3)[-1]
    checkpoints.write_checkpoint()
    settings.DSR_AUDIT_CHECKPOINT_DIR = None
    assert verify_chain()[0]
    latest = checkpoints.latest_checkpoint()
    assert latest["source"] == "database" and latest["checkpoint"]["seq"] == head.seq
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = replica")
        cursor.execute(
            f"UPDATE {AuditCheckpoint._meta.db_table} SET signature = %s",
            [base64.b64encode(bytes(64)).decode()],
        )
        if connection.vendor == "postgresql":
            cursor.execute("SET session_replication_role = DEFAULT")
    assert verify_chain()[3] == (
        f"checkpoint #{head.seq} in the database is forged: its signature does not verify"
    )


def test_a_missing_directory_is_named(evidence, settings, db):
    settings.DSR_AUDIT_CHECKPOINT_DIR = "/nonexistent/checkpoints"
    assert (
        verify_chain()[3] == "DSR_AUDIT_CHECKPOINT_DIR: /nonexistent/checkpoints is not a directory"
    )


def test_status_tells_how_far_the_chain_is_past_the_latest_checkpoint(evidence, auditor):
    status = checkpoints.checkpoint_status()
    assert (status.latest, status.overdue) == (None, False)
    head = events(2)[-1]
    checkpoints.write_checkpoint()
    events(3)
    status = checkpoints.checkpoint_status()
    assert status.latest["checkpoint"]["seq"] == head.seq and status.events_since == 3
    assert status.sinks == ["Checkpoint directory", "Email to the auditors"]
    assert not status.overdue
    assert checkpoints.checkpoint_status(now=timezone.now() + timedelta(hours=3)).overdue


# --- the scheduler and its key ----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_scheduler_signs_a_checkpoint_on_its_first_tick(evidence, redis_db, settings, capsys):
    settings.DSR_AUDIT_CHECKPOINT_EMAIL = False
    events(2)
    call_command("scheduler", "--once")
    out = capsys.readouterr().out
    assert f"audit checkpoints: key {keys.fingerprint(evidence.public_key())}" in out
    assert "ran: reconcile, reminders, anonymous_noise, audit_checkpoint" in out
    assert (_dir(settings) / "checkpoint-000000000002.json").exists()


def test_the_scheduler_warns_when_a_checkpoint_has_one_copy_outside(evidence, settings):
    settings.DSR_AUDIT_CHECKPOINT_EMAIL = False
    lines = checkpoints.start_scheduler()
    assert lines[-1].startswith("warning: checkpoints have a single copy outside the database")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("DSR_AUDIT_SIGNING_KEY_FILE", None, r"DSR_AUDIT_SIGNING_KEY_FILE: not set \(required"),
        (
            "DSR_AUDIT_SIGNING_KEY_FILE",
            "/nonexistent/key.pem",
            r"DSR_AUDIT_SIGNING_KEY_FILE: cannot read /nonexistent/key.pem: No such file",
        ),
        (
            "DSR_AUDIT_PUBLIC_KEY",
            base64.b64encode(bytes(range(32))).decode(),
            r"DSR_AUDIT_PUBLIC_KEY: does not hold the public key of DSR_AUDIT_SIGNING_KEY_FILE",
        ),
        ("DSR_AUDIT_PUBLIC_KEY", "not-a-key", r"DSR_AUDIT_PUBLIC_KEY: not-a-key… is not a base64"),
        ("DSR_AUDIT_CHECKPOINT_DIR", None, r"DSR_AUDIT_CHECKPOINT_DIR: not set \(required"),
    ],
)
def test_the_scheduler_stops_with_one_line_naming_the_variable(
    evidence, settings, variable, value, message
):
    setattr(settings, variable, value)
    with pytest.raises(CommandError, match=message) as raised:
        call_command("scheduler", "--once")
    assert "\n" not in str(raised.value)


def test_the_scheduler_refuses_a_file_that_is_no_key(evidence, settings, tmp_path):
    (tmp_path / "junk.pem").write_text("not a key")
    settings.DSR_AUDIT_SIGNING_KEY_FILE = str(tmp_path / "junk.pem")
    with pytest.raises(CommandError, match="is not an Ed25519 private key"):
        call_command("scheduler", "--once")


@pytest.mark.django_db(transaction=True)
def test_in_debug_without_a_key_a_development_key_is_made_and_said(
    settings, tmp_path, redis_db, capsys
):
    settings.DEBUG = True
    settings.DSR_DATA_DIR = tmp_path
    settings.DSR_AUDIT_SIGNING_KEY_FILE = None
    settings.DSR_AUDIT_PUBLIC_KEY = None
    settings.DSR_AUDIT_CHECKPOINT_DIR = None
    settings.DSR_AUDIT_CHECKPOINT_EMAIL = False
    events(2)
    call_command("scheduler", "--once")
    out = capsys.readouterr().out
    assert "DSR_AUDIT_SIGNING_KEY_FILE is not set: DEBUG, so checkpoints are signed with" in out
    assert (tmp_path / "audit" / "dev-signing-key.pem").exists()
    assert (tmp_path / "audit" / "checkpoints" / "checkpoint-000000000002.json").exists()
    assert verify_chain(checkpoints=checkpoints.trusted_checkpoints())[0]
    assert checkpoints.latest_checkpoint()["checkpoint"]["seq"] == 2
