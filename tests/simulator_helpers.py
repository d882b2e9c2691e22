"""Helpers for the simulator tests: SAS tokens, in-process clients, paging to the end."""

import time

import httpx

from simulator import auth
from simulator.hosts import DPS_HOST

HUB_API = {"api-version": "2021-04-12"}
DPS_API = {"api-version": "2021-10-01"}


def sas(sim, host, policy=None, *, audience=None, expiry=None, key=None):
    policy = policy or auth.owner_policy(host)
    key = key or sim.policy_key(host, policy)
    expiry = expiry if expiry is not None else time.time() + 3600
    return auth.make_sas_token(audience or host, policy, key, expiry=expiry)


def client(sim, host, policy=None, *, token=None):
    """An httpx client talking to ``sim`` in-process, as https://<host>, authorised."""
    authorization = token if token is not None else sas(sim, host, policy)
    return httpx.Client(
        transport=httpx.WSGITransport(app=sim),
        base_url=f"https://{host}",
        headers={"Authorization": authorization},
        params=DPS_API if host == DPS_HOST else HUB_API,
    )


def query_all(http, path, body, page_size):
    """Follow x-ms-continuation to the end; return (items, page lengths, item types)."""
    items, lengths, types, token = [], [], set(), None
    while True:
        headers = {"x-ms-max-item-count": str(page_size)}
        if token:
            headers["x-ms-continuation"] = token
        response = http.post(path, json=body, headers=headers)
        assert response.status_code == 200, response.text
        page = response.json()
        assert isinstance(page, list)
        items += page
        lengths.append(len(page))
        types.add(response.headers["x-ms-item-type"])
        token = response.headers.get("x-ms-continuation")
        if not token:
            return items, lengths, types
