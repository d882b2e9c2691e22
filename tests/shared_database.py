"""A database that subprocesses (workers) can open too: on PostgreSQL the test database
itself; on SQLite, whose test database lives in memory, a migrated file every thread of this
process is pointed at."""

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from django.db import connections

ROOT = Path(__file__).resolve().parent.parent

SQLITE_OPTIONS = {"timeout": 30, "transaction_mode": "IMMEDIATE"}


def migrated_sqlite_template(directory):
    """A migrated SQLite file (one ``migrate`` per module; each test copies it)."""
    path = Path(directory) / "template.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{path}"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    return path


class SharedDatabase:
    """Points every thread of this process at a database another process can open, and gives
    the DATABASE_URL for the child processes. ``restore()`` puts everything back."""

    def __init__(self, tmp_path, template=None):
        self._restore = None
        connection = connections["default"]
        settings_dict = connection.settings_dict
        if connection.vendor == "postgresql":
            user = settings_dict["USER"] or ""
            auth = user + (f":{settings_dict['PASSWORD']}" if settings_dict.get("PASSWORD") else "")
            host = settings_dict["HOST"] or "127.0.0.1"
            port = settings_dict["PORT"] or 5432
            self.url = f"postgres://{auth}@{host}:{port}/{settings_dict['NAME']}"
            return
        assert connection.vendor == "sqlite", connection.vendor
        path = Path(tmp_path) / "browser.sqlite3"
        shutil.copyfile(template, path)
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA journal_mode=WAL")
        self.url = f"sqlite:///{path}?timeout=30&transaction_mode=IMMEDIATE"
        # Threads open their connections from connections.settings: point it at the file (in
        # place, so every holder of the dict sees it) and swap this thread's open connection.
        shared = connections.settings["default"]
        saved = dict(shared)
        original = connection
        shared.update(NAME=str(path), OPTIONS=dict(SQLITE_OPTIONS))
        swapped = original.__class__(dict(shared), alias="default")
        connections["default"] = swapped

        def restore():
            swapped.close()
            shared.clear()
            shared.update(saved)
            original.settings_dict.update(saved)
            connections["default"] = original

        self._restore = restore

    def restore(self):
        if self._restore:
            self._restore()
            self._restore = None
