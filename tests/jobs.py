"""Jobs only the tests enqueue (the worker imports them by path, as it does the portal's)."""

import time
from pathlib import Path


def slow_write(path, seconds):
    time.sleep(seconds)
    Path(path).write_text("finished")
