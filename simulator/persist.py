"""The simulator's mutable state in a file, so a restart does not re-seed (``--state-file``).

What is kept: DPS enrollments, groups and registrations; hub devices, twins, modules, module
twins and jobs; the etag counter; the sample lists; Entra's signing keys and client
certificate. What is not: calls, fault settings, throttle buckets, Entra codes and sessions.

A file is used only if it was written for the same seed and device count; one for another
seed, or one that cannot be read, is reported in one line (``Simulator.state_notice``) and a
fresh seed replaces it (an unreadable file is first kept aside as ``PATH.bad``).

Writes are atomic (a temporary file, mode 0600, then ``os.replace``) and happen on a
background thread shortly after each mutating call (``mark_dirty``): a SIGKILL loses the last
~0.1 s of changes (about a second with 10,000 devices, whose snapshot is slow); ``close()``
(SIGTERM, Ctrl-C) writes whatever is pending.
"""

import datetime
import json
import os
import threading
import time
from pathlib import Path

FORMAT = "azuresim-state"
VERSION = 1
DEBOUNCE_SECONDS = 0.1
MAX_GAP_SECONDS = 0.6


class StateFileError(Exception):
    pass


def encode(seed, devices, state, etag_counter, samples, entra_keys):
    hubs = {}
    for host, hub in state["hubs"].items():
        hubs[host] = dict(hub)
        hubs[host]["module_twins"] = [[d, m, twin] for (d, m), twin in hub["module_twins"].items()]
    return {
        "format": FORMAT,
        "version": VERSION,
        "seed": seed,
        "devices": devices,
        "saved_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "etag_counter": etag_counter,
        "samples": samples,
        "dps": state["dps"],
        "hubs": hubs,
        "entra": entra_keys,
    }


def decode(data):
    """(state, etag counter, samples, entra keys) from a parsed file; StateFileError if its
    shape is wrong."""
    try:
        hubs = {}
        for host, hub in data["hubs"].items():
            hubs[host] = {name: hub[name] for name in ("devices", "twins", "modules", "jobs")}
            hubs[host]["module_twins"] = {(d, m): twin for d, m, twin in hub["module_twins"]}
        dps = {
            host: {name: d[name] for name in ("enrollments", "groups", "registrations")}
            for host, d in data["dps"].items()
        }
        counter = int(data["etag_counter"])
        samples = dict(data["samples"])
        entra = data.get("entra")
        if entra is not None and not (entra.get("signing") and entra.get("client")):
            raise StateFileError("the Entra keys are incomplete")
        return {"dps": dps, "hubs": hubs}, counter, samples, entra
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise StateFileError(f"unexpected content ({type(error).__name__}: {error})") from None


class StateFile:
    """One state file: ``load`` at start, then ``start(snapshot)`` to save in the background
    whenever ``mark_dirty`` is called. ``snapshot()`` returns the text to write."""

    def __init__(self, path):
        self.path = Path(path)
        self._dirty = threading.Event()
        self._stop = threading.Event()
        self._snapshot = None
        self._thread = None
        self._write_lock = threading.Lock()
        self.last_error = None

    def load(self, seed, devices):
        """(payload, notice): the decoded state or None, and a one-line explanation."""
        if not self.path.exists():
            return None, f"No simulator state at {self.path} yet: seeded fresh."
        try:
            data = json.loads(self.path.read_text())
            if not isinstance(data, dict) or data.get("format") != FORMAT:
                raise StateFileError("not a simulator state file")
            if data.get("version") != VERSION:
                raise StateFileError(f"format version {data.get('version')}, not {VERSION}")
        except (OSError, UnicodeDecodeError, ValueError, StateFileError) as error:
            return None, self._set_aside(error)
        if (data.get("seed"), data.get("devices")) != (seed, devices):
            return None, (
                f"Ignoring simulator state in {self.path}: it was written for seed "
                f"{data.get('seed')} with {data.get('devices')} devices, not seed {seed} with "
                f"{devices}; seeded fresh."
            )
        try:
            payload = decode(data)
        except StateFileError as error:
            return None, self._set_aside(error)
        return payload, f"Simulator state loaded from {self.path} (saved {data.get('saved_at')})."

    def _set_aside(self, error):
        bad = self.path.with_name(self.path.name + ".bad")
        try:
            os.replace(self.path, bad)
            kept = f"kept it as {bad} and "
        except OSError:
            kept = ""
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        return f"Simulator state in {self.path} is unreadable ({reason}); {kept}seeded fresh."

    def write(self, text):
        """Write ``text`` atomically, readable by the owner only."""
        with self._write_lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                os.fchmod(handle.fileno(), 0o600)
                handle.write(text)
            os.replace(tmp, self.path)

    def start(self, snapshot):
        self._snapshot = snapshot
        self._thread = threading.Thread(target=self._run, name="azuresim-state", daemon=True)
        self._thread.start()

    def mark_dirty(self):
        self._dirty.set()

    def _run(self):
        took = 0.0
        while not self._stop.is_set():
            if not self._dirty.wait(0.5):
                continue
            # Let a burst of calls settle, then write once for all of them. A big state takes
            # a while to snapshot (under the simulator's lock): wait longer between two, so
            # the API keeps most of its time (10,000 devices: ~0.35 s; 50: ~2 ms).
            self._stop.wait(min(MAX_GAP_SECONDS, max(DEBOUNCE_SECONDS, 2 * took)))
            self._dirty.clear()
            try:
                started = time.monotonic()
                text = self._snapshot()
                took = time.monotonic() - started
                self.write(text)
            except OSError as error:  # a full disk must not stop the simulator
                self.last_error = f"could not write {self.path}: {error}"
                self._dirty.set()
                self._stop.wait(1.0)

    def close(self):
        """Stop the saver and write what is pending."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._dirty.is_set() and self._snapshot is not None:
            self._dirty.clear()
            self.write(self._snapshot())
