"""The load: signed-in officers, each in its own thread, fetching random pages over HTTP."""

import random
import re
import threading
import time

from webbench.data import OFFICER
from webbench.pages import PAGES, choose_page


def login(url, username, password):
    """An HTTP client signed in to the portal at ``url`` with the password form."""
    import httpx
    from django.conf import settings

    client = httpx.Client(base_url=url, timeout=30, follow_redirects=False)
    page = client.get("/accounts/login/")
    match = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    if page.status_code != 200 or not match:
        raise RuntimeError(f"login page: HTTP {page.status_code}, no CSRF token")
    response = client.post(
        "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": match[1]},
    )
    # The portal names its session cookie (dsr_session, not Django's default sessionid).
    if response.status_code != 302 or settings.SESSION_COOKIE_NAME not in client.cookies:
        raise RuntimeError(f"login failed: HTTP {response.status_code}")
    return client


def sign_in_clients(server, count, password):
    """``count`` clients signed in as ``OFFICER`` on ``server``, all at once (one thread each)."""
    clients = [None] * count

    def sign_in(i):
        clients[i] = login(server.url, OFFICER, password)

    logins = [threading.Thread(target=sign_in, args=(i,)) for i in range(count)]
    for thread in logins:
        thread.start()
    for thread in logins:
        thread.join()
    if any(c is None for c in clients):
        raise RuntimeError("some clients could not sign in; see gunicorn's log:\n" + server.tail())
    return clients


def run_clients(clients, seconds, iterations, warmup, think_ms=0):
    """Each client fetches a random page, again and again; returns {page: ([ms], errors)} and
    the seconds from the moment every client had warmed up to the last one's end."""
    results = {name: ([], []) for name, _ in PAGES}
    lock = threading.Lock()
    state = {"started": None, "stop_at": None}

    def begin():  # run once, when every client has warmed up, before any is released
        state["started"] = time.monotonic()
        state["stop_at"] = state["started"] + seconds

    barrier = threading.Barrier(len(clients) + 1, action=begin)

    def worker(index, client):
        rng = random.Random(1000 + index)
        _warm_up(client, rng, warmup)
        barrier.wait()
        local = _fetch_pages(client, rng, iterations, state["stop_at"], think_ms)
        with lock:
            for name, (times, errors) in local.items():
                results[name][0].extend(times)
                results[name][1].extend(errors)

    threads = [
        threading.Thread(target=worker, args=(i, c), daemon=True) for i, c in enumerate(clients)
    ]
    for thread in threads:
        thread.start()
    barrier.wait()
    for thread in threads:
        thread.join()
    return results, time.monotonic() - state["started"]


def _warm_up(client, rng, seconds):
    """Every page once, then random pages for ``seconds`` (--warmup)."""
    try:
        for _name, make in PAGES:
            client.get(make(rng))
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            client.get(choose_page(rng)[1](rng))
    except Exception:  # noqa: S110 (a lasting failure shows as errors in the measured run)
        pass


def _fetch_pages(client, rng, iterations, stop_at, think_ms):
    """Random pages, ``iterations`` of them or (None) until ``stop_at`` (monotonic time), with
    a think time around ``think_ms``; {page: ([ms of each 200], [each error])}."""
    local = {name: ([], []) for name, _ in PAGES}
    done = 0
    while True:
        if iterations is not None and done >= iterations:
            break
        if iterations is None and time.monotonic() >= stop_at:
            break
        name, make = choose_page(rng)
        started = time.perf_counter()
        try:
            response = client.get(make(rng))
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code == 200:
                local[name][0].append(elapsed)
            else:
                local[name][1].append(f"HTTP {response.status_code}")
        except Exception as exc:  # a timeout or dropped connection is a failed request
            local[name][1].append(exc.__class__.__name__)
        done += 1
        if think_ms:
            time.sleep(rng.uniform(0.5, 1.5) * think_ms / 1000)
    return local
