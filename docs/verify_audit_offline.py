#!/usr/bin/env python3
"""Verify a DSR Portal audit log offline, against its signed checkpoints.

    python3 verify_audit_offline.py LOG.jsonl --checkpoints DIR --public-key BASE64

LOG.jsonl is the audit log downloaded from the portal's audit page; DIR holds checkpoint files
(checkpoint-000000001234.json: from the portal's checkpoint directory or the checkpoint emails);
BASE64 is the portal's public key (DSR_AUDIT_PUBLIC_KEY; repeat --public-key for old keys).
Prints OK and exits 0, or prints BROKEN naming the first problem and exits 1.

Python 3.9+ and its standard library only: an auditor's laptop needs nothing installed, and the
whole check (hashes, links, Ed25519 signatures) is in this one file to read. The format is
described in verify-audit-offline.md beside it.
"""

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys
from pathlib import Path

GENESIS = "0" * 64
EVENT_FIELDS = (
    "seq",
    "created_at",
    "actor_kind",
    "actor_user_id",
    "actor_name",
    "action",
    "request_ref",
    "details",
)
CHECKPOINT_FIELDS = ("version", "seq", "head_hash", "event_count", "created_at", "key_fingerprint")
CHECKPOINT_FILE = re.compile(r"^checkpoint-(\d{12})\.json$")


class Broken(Exception):
    """The first problem found; the message names it."""


# --- Ed25519 signature verification (RFC 8032, section 5.1.7; the reference algorithm) -------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _add(a, b):
    """Point addition in extended coordinates (X, Y, Z, T)."""
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa, bb = (y1 - x1) * (y2 - x2) % P, (y1 + x1) * (y2 + x2) % P
    cc, dd = 2 * t1 * t2 * D % P, 2 * z1 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _multiply(scalar, point):
    result = (0, 1, 1, 0)
    while scalar > 0:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _same(a, b):
    return (a[0] * b[2] - b[0] * a[2]) % P == 0 and (a[1] * b[2] - b[1] * a[2]) % P == 0


def _x_of(y, sign):
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P:
        return None
    return P - x if (x & 1) != sign else x


def _point(data):
    if len(data) != 32:
        return None
    y = int.from_bytes(data, "little")
    sign, y = y >> 255, y & ((1 << 255) - 1)
    x = _x_of(y, sign)
    return None if x is None else (x, y, 1, x * y % P)


BASE = _point((4 * pow(5, P - 2, P) % P).to_bytes(32, "little"))


def ed25519_verify(public_key, message, signature):
    """True when ``signature`` (64 bytes) is ``public_key``'s (32 bytes) over ``message``."""
    if len(public_key) != 32 or len(signature) != 64:
        return False
    a, r = _point(public_key), _point(signature[:32])
    s = int.from_bytes(signature[32:], "little")
    if a is None or r is None or s >= L:
        return False
    digest = hashlib.sha512(signature[:32] + public_key + message).digest()
    h = int.from_bytes(digest, "little") % L
    return _same(_multiply(s, BASE), _add(r, _multiply(h, a)))


# --- checkpoints -----------------------------------------------------------------------------


def canonical(value):
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def fingerprint(public_key):
    return hashlib.sha256(public_key).hexdigest()[:16]


def read_public_keys(texts):
    keys = {}
    for text in texts:
        try:
            raw = base64.b64decode(text.strip(), validate=True)
        except binascii.Error:
            raw = b""
        if len(raw) != 32:
            raise SystemExit(f"--public-key {text[:12]}…: not a base64 Ed25519 public key")
        keys[fingerprint(raw)] = raw
    return keys


def read_checkpoint(path, keys):
    """The checkpoint of one file, its signature verified; raises Broken naming the file."""
    label = f"checkpoint {path.name}"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        statement, signature = document["checkpoint"], document["signature"]
        signature = base64.b64decode(signature, validate=True)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise Broken(f"{label} cannot be read ({exc.__class__.__name__})") from None
    if not isinstance(statement, dict) or sorted(statement) != sorted(CHECKPOINT_FIELDS):
        raise Broken(f"{label} is forged or of an unknown version")
    key = keys.get(statement["key_fingerprint"])
    if key is None:
        raise Broken(f"{label} is signed by an unknown key ({statement['key_fingerprint']})")
    if statement["version"] != 1 or not ed25519_verify(
        key, canonical(statement).encode("utf-8"), signature
    ):
        raise Broken(f"{label} is forged: its signature does not verify")
    if path.name != f"checkpoint-{statement['seq']:012d}.json":
        raise Broken(f"{label} is forged: it holds checkpoint #{statement['seq']}")
    return statement


def read_checkpoints(directory, keys):
    """{seq: checkpoint} of every checkpoint file in ``directory``, all verified."""
    names = sorted(p.name for p in Path(directory).iterdir() if CHECKPOINT_FILE.match(p.name))
    found = {}
    for name in names:
        statement = read_checkpoint(Path(directory) / name, keys)
        found[statement["seq"]] = statement
    return found


# --- the log ---------------------------------------------------------------------------------


def events(path):
    """(line number, event) for each line of the log, the fields checked."""
    with open(path, encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            if not text.strip():
                continue
            try:
                event = json.loads(text)
            except ValueError:
                raise Broken(f"line {number} is not valid JSON") from None
            missing = [f for f in (*EVENT_FIELDS, "prev_hash", "hash") if f not in event]
            if missing or not isinstance(event["seq"], int):
                raise Broken(f"line {number} is not an audit event (lacks {missing or 'seq'})")
            yield number, event


def event_hash(event):
    body = canonical({key: event[key] for key in EVENT_FIELDS})
    return hashlib.sha256((event["prev_hash"] + body).encode("utf-8")).hexdigest()


def find(path, test):
    """The first (line number, event) for which ``test`` holds: only read on a problem."""
    return next(((n, e) for n, e in events(path) if test(e)), (None, None))


def seq_problem(path, number, seq, expected):
    if seq < expected:
        earlier, _ = find(path, lambda e: e["seq"] == seq)
        return f"event #{seq} appears twice (lines {earlier} and {number})"
    where, _ = find(path, lambda e: e["seq"] == expected)
    if where is not None:
        return (
            f"event #{expected} is out of order: line {number} holds event #{seq}, and "
            f"event #{expected} is at line {where}"
        )
    return f"event #{expected} is missing (next present is #{seq})"


def link_problem(path, event):
    seq = event["seq"]
    if seq == 1:
        return "event #1 does not start the chain (its prev_hash is not 64 zeros)"
    if event["prev_hash"] == GENESIS:
        linked = 0
    else:
        linked = find(path, lambda e: e["hash"] == event["prev_hash"])[1]
        linked = None if linked is None else linked["seq"]
    if linked is not None and linked == seq - 2:
        return f"event #{seq - 1} was inserted (event #{seq} links to {named(linked)})"
    if linked is not None:
        return f"event #{seq} is out of order (it links to {named(linked)}, not #{seq - 1})"
    if event_hash(event) == event["hash"]:
        return f"event #{seq - 1} was replaced (event #{seq} links to a hash no event has)"
    return f"event #{seq} does not link to event #{seq - 1} (removed or altered)"


def named(seq):
    return f"event #{seq}" if seq else "the start of the chain"


def verify_log(path, checkpoints, period=False):
    """(first event, last event) of a sound log; raises Broken naming the first problem."""
    first = last = None
    confirmed = 0
    for number, event in events(path):
        seq = event["seq"]
        if first is None:
            first, confirmed = event, seq - 1
            check_start(path, event, checkpoints, period)
        elif seq != last["seq"] + 1:
            raise Broken(seq_problem(path, number, seq, last["seq"] + 1))
        elif event["prev_hash"] != last["hash"]:
            raise Broken(link_problem(path, event))
        if event_hash(event) != event["hash"]:
            raise Broken(f"event #{seq} was altered (hash mismatch)")
        anchor = checkpoints.get(seq)
        if anchor is not None and anchor["head_hash"] != event["hash"]:
            raise Broken(
                f"history was rewritten: event #{seq} is not the one signed in checkpoint "
                f"#{seq} ({anchor['created_at']}); the change is in events #{confirmed + 1} "
                f"to #{seq}"
            )
        confirmed = seq if anchor is not None else confirmed
        last = event
    if first is None:
        raise Broken("the log holds no events")
    check_end(last, checkpoints, period)
    return first, last


def check_start(path, event, checkpoints, period):
    if event["seq"] == 1 and event["prev_hash"] != GENESIS:
        raise Broken("event #1 does not start the chain (its prev_hash is not 64 zeros)")
    if event["seq"] != 1 and not period:
        problem = seq_problem(path, 1, event["seq"], 1)
        if "missing" in problem:
            problem += ": download the log from the first day, or pass --period for a period"
        raise Broken(problem)
    before = checkpoints.get(event["seq"] - 1)
    if before is not None and before["head_hash"] != event["prev_hash"]:
        raise Broken(
            f"event #{event['seq']} does not follow checkpoint #{before['seq']} "
            "(rewritten history, or an event before it was removed or altered)"
        )


def check_end(last, checkpoints, period):
    latest = max(checkpoints, default=0)
    if latest > last["seq"] and not period:
        raise Broken(
            f"the last events were removed: the log ends at event #{last['seq']} but signed "
            f"checkpoint #{latest} ({checkpoints[latest]['created_at']}) covers events up to "
            f"#{latest}"
        )


def report(first, last, checkpoints, keys, period):
    print(f"OK: events #{first['seq']} to #{last['seq']} ({last['seq'] - first['seq'] + 1})")
    print(f"anchor (prev_hash of the first line): {first['prev_hash']}")
    print(f"head (hash of the last line): {last['hash']}")
    if not checkpoints:
        print("no checkpoints given: a removed or rewritten tail would go unnoticed")
        return
    inside = [seq for seq in checkpoints if first["seq"] <= seq <= last["seq"]]
    latest = max(checkpoints)
    print(
        f"checkpoints: {len(checkpoints)} verified with key {', '.join(sorted(keys))}; "
        f"{len(inside)} within the log match it"
    )
    if latest < last["seq"]:
        print(
            f"events #{latest + 1} to #{last['seq']} come after the latest checkpoint "
            f"(#{latest}, {checkpoints[latest]['created_at']}): not anchored yet"
        )
    elif period and latest > last["seq"]:
        print(f"--period: checkpoints after event #{last['seq']} were not compared")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", help="the audit log (JSON lines) downloaded from the portal")
    parser.add_argument("--checkpoints", metavar="DIR", help="directory of checkpoint files")
    parser.add_argument("--public-key", action="append", default=[], metavar="BASE64")
    parser.add_argument(
        "--period", action="store_true", help="the log covers a period, not the whole trail"
    )
    args = parser.parse_args(argv)
    if args.checkpoints and not args.public_key:
        parser.error("--checkpoints needs --public-key (the portal's DSR_AUDIT_PUBLIC_KEY)")
    keys = read_public_keys(args.public_key)
    try:
        checkpoints = read_checkpoints(args.checkpoints, keys) if args.checkpoints else {}
        first, last = verify_log(args.log, checkpoints, args.period)
    except Broken as problem:
        print(f"BROKEN: {problem}")
        return 1
    except OSError as exc:
        print(f"cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    report(first, last, checkpoints, keys, args.period)
    return 0


if __name__ == "__main__":
    sys.exit(main())
