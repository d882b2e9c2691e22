"""docs/verify_audit_offline.py: an auditor's check of a downloaded log against checkpoint files,
with nothing but Python's standard library."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.urls import reverse
from django.utils import timezone

from requests_app.access import roles
from requests_app.evidence import checkpoints
from requests_app.evidence.checkpoints import keys
from requests_app.models import AuditEvent
from requests_app.views.reports import audit_line
from tests.conftest import make_user, sign_in

SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "verify_audit_offline.py"
GUIDE = SCRIPT.with_name("verify-audit-offline.md")


def load_verifier():
    spec = importlib.util.spec_from_file_location("verify_audit_offline", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


verifier = load_verifier()


@pytest.fixture
def evidence(settings, tmp_path):
    key = keys.generate_key_file(tmp_path / "signing.pem")
    settings.DSR_AUDIT_SIGNING_KEY_FILE = str(tmp_path / "signing.pem")
    settings.DSR_AUDIT_PUBLIC_KEY = keys.public_b64(key.public_key())
    settings.DSR_AUDIT_CHECKPOINT_DIR = str(tmp_path / "checkpoints")
    settings.DSR_AUDIT_CHECKPOINT_EMAIL = False
    return key


@pytest.fixture
def trail(evidence, db, tmp_path):
    """30 events with checkpoints at #10, #20 and #30, and the log exported as JSON lines."""
    for n in range(1, 31):
        AuditEvent.record("something", n=n, note="é ✓")
        if n % 10 == 0:
            checkpoints.write_checkpoint()
    log = tmp_path / "log.jsonl"
    log.write_text("".join(audit_line(e) for e in AuditEvent.objects.order_by("seq")))
    return log


def run(log, directory, public_key, *extra):
    """The script as an auditor runs it: a separate interpreter without site-packages."""
    args = [str(log), "--checkpoints", str(directory), "--public-key", public_key, *extra]
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stdout + result.stderr


def lines(log):
    return [json.loads(line) for line in log.read_text().splitlines()]


def write(log, events):
    log.write_text(
        "".join(json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n" for e in events)
    )


def test_a_sound_log_is_ok_and_says_what_the_checkpoints_cover(trail, evidence, settings):
    public = keys.public_b64(evidence.public_key())
    code, out = run(trail, settings.DSR_AUDIT_CHECKPOINT_DIR, public)
    assert code == 0, out
    assert "OK: events #1 to #30 (30)" in out
    assert f"anchor (prev_hash of the first line): {'0' * 64}" in out
    head = AuditEvent.objects.get(seq=30).hash
    assert f"head (hash of the last line): {head}" in out
    assert f"3 verified with key {keys.fingerprint(evidence.public_key())}" in out


def test_the_log_downloaded_from_the_audit_page_verifies(
    trail, evidence, settings, client, tmp_path
):
    sign_in(client, make_user("audrey", roles.AUDITOR))
    today = timezone.localdate().isoformat()
    response = client.get(reverse("audit_log_jsonl"), {"from": "2000-01-01", "to": today})
    log = tmp_path / "downloaded.jsonl"
    log.write_bytes(b"".join(response.streaming_content))
    public = keys.public_b64(evidence.public_key())
    code, out = run(log, settings.DSR_AUDIT_CHECKPOINT_DIR, public)
    assert code == 0, out
    # The sign-in and the download itself come after the latest checkpoint.
    assert "come after the latest checkpoint (#30" in out


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda e: e[4].update(action="forged"), "BROKEN: event #5 was altered (hash mismatch)"),
        (lambda e: e.pop(11), "BROKEN: event #12 is missing (next present is #13)"),
        (
            lambda e: e.__setitem__(slice(6, 9), [e[8], e[7], e[6]]),
            "BROKEN: event #7 is out of order: line 7 holds event #9, and event #7 is at line 9",
        ),
        (lambda e: e.__delitem__(slice(25, None)), "BROKEN: the last events were removed: "),
    ],
)
def test_tampering_is_named(trail, evidence, settings, tamper, message):
    events = lines(trail)
    tamper(events)
    write(trail, events)
    code, out = run(
        trail, settings.DSR_AUDIT_CHECKPOINT_DIR, keys.public_b64(evidence.public_key())
    )
    assert code == 1 and out.startswith(message), out


def test_a_forged_checkpoint_is_named(trail, evidence, settings):
    path = Path(settings.DSR_AUDIT_CHECKPOINT_DIR) / "checkpoint-000000000020.json"
    document = json.loads(path.read_text())
    document["checkpoint"]["seq"] = 19
    path.chmod(0o644)
    path.write_text(json.dumps(document))
    code, out = run(trail, path.parent, keys.public_b64(evidence.public_key()))
    assert (code, out.strip()) == (
        1,
        "BROKEN: checkpoint checkpoint-000000000020.json is forged: its signature does not verify",
    )


def test_the_wrong_public_key_is_named(trail, settings):
    other = keys.public_b64(Ed25519PrivateKey.generate().public_key())
    code, out = run(trail, settings.DSR_AUDIT_CHECKPOINT_DIR, other)
    assert code == 1 and "is signed by an unknown key" in out


def test_a_period_is_checked_against_the_checkpoint_before_it(trail, evidence, settings):
    public = keys.public_b64(evidence.public_key())
    events = lines(trail)[10:25]  # events #11 to #25
    write(trail, events)
    code, out = run(trail, settings.DSR_AUDIT_CHECKPOINT_DIR, public)
    assert code == 1 and "BROKEN: event #1 is missing (next present is #11): download" in out
    code, out = run(trail, settings.DSR_AUDIT_CHECKPOINT_DIR, public, "--period")
    assert code == 0 and "OK: events #11 to #25 (15)" in out
    assert "checkpoints after event #25 were not compared" in out
    events[0]["prev_hash"] = "a" * 64
    write(trail, events)
    code, out = run(trail, settings.DSR_AUDIT_CHECKPOINT_DIR, public, "--period")
    assert "BROKEN: event #11 does not follow checkpoint #10" in out


def test_usage_errors(trail, tmp_path):
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), str(trail), "--checkpoints", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and "--checkpoints needs --public-key" in result.stderr
    code, out = run(
        tmp_path / "missing.jsonl",
        tmp_path,
        keys.public_b64(Ed25519PrivateKey.generate().public_key()),
    )
    assert code == 2 and "cannot read" in out


def test_without_checkpoints_it_checks_the_chain_and_says_what_it_cannot(trail):
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(SCRIPT), str(trail)], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "no checkpoints given: a removed or rewritten tail would go unnoticed" in result.stdout


# --- the pure-Python Ed25519 ------------------------------------------------------------------


def test_ed25519_matches_rfc_8032_test_1():
    public = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
    signature = bytes.fromhex(
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e3970"
        "1cf9b46bd25bf5f0595bbe24655141438e7a100b"
    )
    assert verifier.ed25519_verify(public, b"", signature)
    assert not verifier.ed25519_verify(public, b"x", signature)


def test_ed25519_agrees_with_the_cryptography_package():
    for size in range(0, 200, 7):
        key = Ed25519PrivateKey.generate()
        public = key.public_key().public_bytes_raw()
        message = bytes(range(size % 256))[:size]
        signature = key.sign(message)
        assert verifier.ed25519_verify(public, message, signature)
        tampered = bytearray(signature)
        tampered[size % 64] ^= 0x01
        assert not verifier.ed25519_verify(public, message, bytes(tampered))
        assert not verifier.ed25519_verify(public, message + b".", signature)
    assert not verifier.ed25519_verify(b"\xff" * 32, b"", bytes(64))


def test_the_script_needs_only_the_standard_library():
    imported = {
        line.split()[1].split(".")[0]
        for line in SCRIPT.read_text().splitlines()
        if line.startswith(("import ", "from "))
    }
    assert imported <= set(sys.stdlib_module_names)


def test_the_guide_documents_the_script():
    assert "verify_audit_offline.py LOG.jsonl --checkpoints" in GUIDE.read_text()
