"""Random tampering with a 1,000-event chain and its signed checkpoints, as the database's owner
could do it: every mutation is found, and the first bad event named, by ``verify_audit`` (on
the database) and by the offline verifier (on the exported log and checkpoint files).

Each kind is applied PER_KIND times at random places (a fixed seed), each time to a fresh copy:
a rolled-back savepoint in the database, fresh files for the offline verifier. The figures are
printed at the end of each test. A tail cut *after* the latest checkpoint is out of scope: no
checkpoint covers it (the chain here ends on a checkpoint, as it does after a certificate).
"""

import base64
import contextlib
import importlib.util
import io
import json
import random
import re
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import CommandError, call_command
from django.db import connection, transaction

from requests_app.evidence import checkpoints
from requests_app.evidence.checkpoints import keys
from requests_app.evidence.checkpoints.document import canonical
from requests_app.models import AuditCheckpoint, AuditEvent
from requests_app.views.reports import audit_line

SCRIPT = Path(__file__).resolve().parent.parent / "docs" / "verify_audit_offline.py"
_spec = importlib.util.spec_from_file_location("verify_audit_offline", SCRIPT)
verifier = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(verifier)

N, EVERY, PER_KIND, SEED = 1000, 200, 20, 20261130
EVENTS, CHECKPOINTS = AuditEvent._meta.db_table, AuditCheckpoint._meta.db_table
EDITABLE = (
    "action",
    "actor_name",
    "details",
    "created_at",
    "request_ref",
    "actor_kind",
    "actor_user_id",
    "hash",
)
KINDS = (
    "edit",
    "delete",
    "insert",
    "swap",
    "truncate",
    "remove_head",
    "reset_head",
    "rewrite",
    "forge_signature",
    "forge_numbers",
    "forge_key",
)


@pytest.fixture
def chain(settings, tmp_path, db):
    """1,000 events, a checkpoint every 200 (the last on the head), the log exported."""
    key = keys.generate_key_file(tmp_path / "signing.pem")
    settings.DSR_AUDIT_SIGNING_KEY_FILE = str(tmp_path / "signing.pem")
    settings.DSR_AUDIT_PUBLIC_KEY = keys.public_b64(key.public_key())
    settings.DSR_AUDIT_CHECKPOINT_DIR = str(tmp_path / "published")
    settings.DSR_AUDIT_CHECKPOINT_EMAIL = False
    rng = random.Random(SEED)
    for n in range(1, N + 1):
        AuditEvent.record(
            rng.choice(["status_changed", "azure_call", "email_sent", "login"]),
            actor_name=rng.choice(["alice", "bob", "system"]),
            request=f"DSR-2026-{rng.randint(1, 50):04d}",
            n=n,
            note=rng.choice(["é ✓", "plain", ""]),
        )
        if n % EVERY == 0:
            checkpoints.write_checkpoint()
    published = Path(settings.DSR_AUDIT_CHECKPOINT_DIR)
    files = {p.name: json.loads(p.read_text()) for p in sorted(published.iterdir())}
    lines = [json.loads(audit_line(e)) for e in AuditEvent.objects.order_by("seq")]
    return key, lines, files


def plan(rng):
    """(kind, parameters, expected problem as a regex) for every mutation to try."""
    mutations = []
    for kind in KINDS:
        for _ in range(PER_KIND):
            mutations.append((kind, *_parameters(kind, rng)))
    return mutations


def _checkpoint_name(c):
    return rf"checkpoint (#{c} in the database|checkpoint-{c:012d}\.json)"


def _rewritten(first_changed):
    c = -(-first_changed // EVERY) * EVERY  # the first checkpoint at or after the change
    return (
        rf"^history was rewritten: event #{c} is not the one signed in checkpoint #{c} "
        rf"\(.*\); the change is in events #{c - EVERY + 1} to #{c}$"
    )


def _parameters(kind, rng):
    k = rng.randint(1, N - 1)
    if kind == "edit":
        altered = rf"^event #{k} was altered \(hash mismatch\)$"
        return {"k": k, "field": rng.choice(EDITABLE)}, altered
    if kind == "delete":
        return {"k": k}, rf"^event #{k} is missing"
    if kind == "insert":
        return {"p": k}, rf"^event #{k} was inserted \(event #{k + 1} links to "
    if kind == "swap":
        j = rng.randint(k + 1, N)
        return {"k": k, "j": j}, rf"^event #{k} (is out of order|does not start the chain)"
    if kind in ("truncate", "remove_head"):
        t = k if kind == "truncate" else N - 1
        return {"t": t}, (
            rf"^the last events were removed: the (chain|log) ends at event #{t} but signed "
            rf"checkpoint #{N} \(.*\) covers events up to #{N}$"
        )
    if kind == "reset_head":
        r = rng.randint(0, N - 1)
        return {"r": r}, _rewritten(r + 1)
    if kind == "rewrite":
        return {"k": k}, _rewritten(k)
    c = rng.randint(1, N // EVERY) * EVERY
    variant = rng.choice(["head_hash", "seq", "event_count", "created_at"])
    if kind == "forge_key":
        variant = rng.choice(["own_fingerprint", "claimed_fingerprint"])
    forged = rf"^{_checkpoint_name(c)} is (forged|signed by an unknown key)"
    return {"c": c, "variant": variant}, forged


# --- on the exported log and files (the offline verifier) --------------------------------------


def forged_event(seq, prev_hash):
    event = {
        "seq": seq,
        "created_at": "2026-11-30T12:00:00.000000+00:00",
        "actor_kind": "user",
        "actor_user_id": None,
        "actor_name": "mallory",
        "action": "forged",
        "request_ref": "",
        "details": {"seq": seq},
        "prev_hash": prev_hash,
    }
    event["hash"] = verifier.event_hash(event)
    return event


def rechain(events, start):
    """Recompute links and hashes from index ``start``, as someone hiding a change would."""
    for index in range(start, len(events)):
        events[index]["seq"] = index + 1
        events[index]["prev_hash"] = events[index - 1]["hash"] if index else "0" * 64
        events[index]["hash"] = verifier.event_hash(events[index])


def edited(event, field):
    value = event[field]
    if field == "created_at":
        moved = datetime.fromisoformat(value) + timedelta(seconds=1)
        return moved.isoformat(timespec="microseconds")
    return {
        "action": "forged",
        "actor_name": "mallory",
        "details": {"forged": True},
        "request_ref": "DSR-9999-0001",
        "actor_kind": "anonymous" if value != "anonymous" else "system",
        "actor_user_id": 4242,
        "hash": "f" * 64,
    }[field]


def mutate_log(kind, params, events, files, rng):
    if kind == "edit":
        events[params["k"] - 1][params["field"]] = edited(events[params["k"] - 1], params["field"])
    elif kind == "delete":
        del events[params["k"] - 1]
    elif kind == "insert":
        p = params["p"]
        for event in events[p - 1 :]:
            event["seq"] += 1
        events.insert(p - 1, forged_event(p, events[p - 2]["hash"] if p > 1 else "0" * 64))
    elif kind == "swap":
        k, j = params["k"] - 1, params["j"] - 1
        events[k], events[j] = events[j], events[k]
    elif kind in ("truncate", "remove_head"):
        del events[params["t"] :]
    elif kind == "reset_head":
        r = params["r"]
        del events[r:]
        while len(events) < N:
            events.append(forged_event(len(events) + 1, events[-1]["hash"] if events else "0" * 64))
    elif kind == "rewrite":
        events[params["k"] - 1]["action"] = "forged"
        rechain(events, params["k"] - 1)
    else:
        name = f"checkpoint-{params['c']:012d}.json"
        files[name] = forge_checkpoint(kind, params["variant"], files[name], events, rng)


def forge_checkpoint(kind, variant, document, events, rng):
    document = json.loads(json.dumps(document))
    statement = document["checkpoint"]
    if kind == "forge_signature":
        signature = bytearray(base64.b64decode(document["signature"]))
        signature[rng.randrange(64)] ^= 1 << rng.randrange(8)
        document["signature"] = base64.b64encode(bytes(signature)).decode()
    elif kind == "forge_numbers":
        statement[variant] = {
            "head_hash": events[rng.randrange(len(events))]["hash"],
            "seq": statement["seq"] - rng.randint(1, 50),
            "event_count": statement["event_count"] - rng.randint(1, 50),
            "created_at": "2030-01-01T00:00:00+00:00",
        }[variant]
    else:  # re-signed with a key of one's own
        own = Ed25519PrivateKey.generate()
        statement["head_hash"] = "e" * 64
        if variant == "own_fingerprint":
            statement["key_fingerprint"] = keys.fingerprint(own.public_key())
        signed = own.sign(canonical(statement).encode())
        document["signature"] = base64.b64encode(signed).decode()
    return document


def run_offline(tmp_path, events, files, public):
    directory = tmp_path / "checkpoints"
    directory.mkdir(exist_ok=True)
    for stale in directory.iterdir():
        stale.unlink()
    for name, document in files.items():
        (directory / name).write_text(json.dumps(document, indent=2))
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in events))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = verifier.main([str(log), "--checkpoints", str(directory), "--public-key", public])
    return code, out.getvalue().strip().removeprefix("BROKEN: ")


def test_every_mutation_is_found_offline(chain, tmp_path, capsys):
    key, lines, files = chain
    public = keys.public_b64(key.public_key())
    assert run_offline(tmp_path, lines, files, public)[0] == 0
    rng = random.Random(SEED)
    figures, misses = Counter(), []
    for kind, params, expected in plan(rng):
        events, copies = [dict(e) for e in lines], dict(files)
        mutate_log(kind, params, events, copies, rng)
        code, problem = run_offline(tmp_path, events, copies, public)
        figures[kind, "applied"] += 1
        figures[kind, "detected"] += code == 1
        figures[kind, "named"] += code == 1 and bool(_match(expected, problem))
        if code != 1 or not _match(expected, problem):
            misses.append((kind, params, problem))
    report("offline verifier (exported log + checkpoint files)", figures, capsys)
    assert misses == []


def _match(expected, problem):
    return re.search(expected, problem)


# --- in the database (verify_audit), as the owner: triggers disabled, raw SQL -----------------


def owner_sql(sql, params=()):
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            for table in (EVENTS, CHECKPOINTS):
                cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER dsr_audit_append_only")
        cursor.execute(sql, params)


def insert(event):
    """A row written straight into the table (the owner's INSERT); hashes as given."""
    AuditEvent.objects.bulk_create([event])


def db_event(seq, prev_hash):
    event = AuditEvent(
        seq=seq,
        created_at=datetime.fromisoformat("2026-11-30T12:00:00+00:00"),
        actor_kind="user",
        actor_name="mallory",
        action="forged",
        details={"seq": seq},
        prev_hash=prev_hash,
    )
    event.hash = event.compute_hash()
    return event


def renumber(first, by):
    """seq += by for every event from ``first`` (in two steps: seq is unique)."""
    owner_sql(f"UPDATE {EVENTS} SET seq = -seq - %s WHERE seq >= %s", [by, first])
    owner_sql(f"UPDATE {EVENTS} SET seq = -seq WHERE seq < 0")


def head_hash(seq):
    if seq == 0:
        return "0" * 64
    return AuditEvent.objects.values_list("hash", flat=True).get(seq=seq)


def mutate_db(kind, params, rng):
    if kind == "edit":
        k, field = params["k"], params["field"]
        event = AuditEvent.objects.get(seq=k)
        value = edited({**json.loads(audit_line(event)), "hash": event.hash}, field)
        if field == "details":
            value = json.dumps(value)
        elif field == "created_at":
            value = event.created_at + timedelta(seconds=1)
        owner_sql(f"UPDATE {EVENTS} SET {field} = %s WHERE seq = %s", [value, k])  # noqa: S608
    elif kind == "delete":
        owner_sql(f"DELETE FROM {EVENTS} WHERE seq = %s", [params["k"]])
    elif kind == "insert":
        p = params["p"]
        renumber(p, 1)
        insert(db_event(p, head_hash(p - 1)))
    elif kind == "swap":
        k, j = params["k"], params["j"]
        owner_sql(f"UPDATE {EVENTS} SET seq = -1 WHERE seq = %s", [k])
        owner_sql(f"UPDATE {EVENTS} SET seq = %s WHERE seq = %s", [k, j])
        owner_sql(f"UPDATE {EVENTS} SET seq = %s WHERE seq = -1", [j])
    elif kind in ("truncate", "remove_head"):
        owner_sql(f"DELETE FROM {EVENTS} WHERE seq > %s", [params["t"]])
    elif kind == "reset_head":
        r = params["r"]
        owner_sql(f"DELETE FROM {EVENTS} WHERE seq > %s", [r])
        for seq in range(r + 1, N + 1):
            insert(db_event(seq, head_hash(seq - 1)))
    elif kind == "rewrite":
        rewrite_db(params["k"])
    else:
        forge_db_checkpoint(kind, params, rng)


def rewrite_db(k):
    prev = head_hash(k - 1)
    for event in AuditEvent.objects.filter(seq__gte=k).order_by("seq"):
        event.action = "forged" if event.seq == k else event.action
        event.prev_hash = prev
        event.hash = prev = event.compute_hash()
        owner_sql(
            f"UPDATE {EVENTS} SET action = %s, prev_hash = %s, hash = %s WHERE id = %s",
            [event.action, event.prev_hash, event.hash, event.pk],
        )


def forge_db_checkpoint(kind, params, rng):
    row = AuditCheckpoint.objects.get(seq=params["c"])
    document = {"checkpoint": json.loads(row.body), "signature": row.signature}
    events = [{"hash": h} for h in AuditEvent.objects.values_list("hash", flat=True)]
    forged = forge_checkpoint(kind, params["variant"], document, events, rng)
    owner_sql(
        f"UPDATE {CHECKPOINTS} SET body = %s, signature = %s WHERE id = %s",
        [canonical(forged["checkpoint"]), forged["signature"], row.pk],
    )


class _Rollback(Exception):
    pass


def run_db(kind, params, rng):
    """The problem verify_audit names after the mutation, which is then rolled back."""
    problem = None
    try:
        with transaction.atomic():
            mutate_db(kind, params, rng)
            try:
                call_command("verify_audit", stdout=io.StringIO())
            except CommandError as exc:
                problem = str(exc).split(" good events: ", 1)[1]
            raise _Rollback
    except _Rollback:
        pass
    return problem


def test_every_mutation_is_found_by_verify_audit(chain, settings, capsys):
    settings.DSR_AUDIT_CHECKPOINT_DIR = None  # the database's copy of the checkpoints
    call_command("verify_audit", stdout=io.StringIO())
    rng = random.Random(SEED)
    figures, misses = Counter(), []
    for kind, params, expected in plan(rng):
        problem = run_db(kind, params, rng)
        figures[kind, "applied"] += 1
        figures[kind, "detected"] += problem is not None
        figures[kind, "named"] += problem is not None and bool(_match(expected, problem))
        if problem is None or not _match(expected, problem):
            misses.append((kind, params, problem))
    call_command("verify_audit", stdout=io.StringIO())  # every change was rolled back
    report(f"verify_audit ({connection.vendor})", figures, capsys)
    assert misses == []


def report(title, figures, capsys):
    rows = [
        f"{kind:16} {figures[kind, 'applied']:4} {figures[kind, 'detected']:4} "
        f"{figures[kind, 'named']:4}"
        for kind in KINDS
    ]
    total = [sum(figures[k, column] for k in KINDS) for column in ("applied", "detected", "named")]
    with capsys.disabled():
        print(f"\n{title}: {N} events, a checkpoint every {EVERY}")
        print(f"{'mutation':16} {'done':>4} {'found':>4} {'named':>4}")
        print("\n".join(rows))
        print(f"{'all':16} {total[0]:4} {total[1]:4} {total[2]:4}")
