"""The parts of the web benchmark (``bench/web.py``, its entry point).

- ``environment``: the benchmark's database, settings and Django, and the machine it runs on;
- ``data``: its users and the generated requests, loaded with COPY;
- ``pages``: the pages under test and what each costs in process (queries, time, plans);
- ``server``: gunicorn, serving the portal;
- ``clients``: the signed-in officers fetching the pages;
- ``report``: the printed tables.
"""

from pathlib import Path

# The project's root: manage.py, gunicorn's working directory, the portal's packages.
ROOT = Path(__file__).resolve().parent.parent.parent
