"""Helpers for the simulator tests: SAS tokens, in-process clients, paging to the end, and a
browser stand-in for the Entra sign-in pages."""

import time
import urllib.parse
from html.parser import HTMLParser

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


# -- the Entra stand-in's pages, driven like a browser would -------------------------------


class _Forms(HTMLParser):
    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attrs.get("action"), "fields": {}, "upn": None})
        elif tag == "input" and self.forms and attrs.get("name"):
            self.forms[-1]["fields"][attrs["name"]] = attrs.get("value", "")
        elif tag == "button" and self.forms and attrs.get("data-upn"):
            self.forms[-1]["upn"] = attrs["data-upn"]


def html_forms(text):
    """Every form of a page: {"action", "fields" (hidden inputs), "upn" (account button)}."""
    parser = _Forms()
    parser.feed(text)
    return parser.forms


def redirect_params(response):
    """The parameters a redirect to the app carries (query or fragment)."""
    assert response.status_code == 302, response.text[:2000]
    parts = urllib.parse.urlsplit(response.headers["location"])
    return dict(urllib.parse.parse_qsl(parts.fragment or parts.query, keep_blank_values=True))


class LoginBrowser:
    """Cookies and forms against the served login pages, as a browser would."""

    def __init__(self):
        self.http = httpx.Client(timeout=10, follow_redirects=False)

    def close(self):
        self.http.close()

    def open(self, authorize_url, **params):
        return self.http.get(authorize_url, params=params or None)

    def choose(self, page, upn=None, cancel=False):
        """Press the account button for ``upn`` (or Cancel) on the picker ``page``."""
        assert page.status_code == 200, page.text[:2000]
        for form in html_forms(page.text):
            if (cancel and "sim_cancel" in form["fields"]) or (upn and form["upn"] == upn):
                return self.http.post(form["action"], data=form["fields"])
        raise AssertionError(f"no button for {upn or 'Cancel'} on the page")

    def sign_in(self, authorize_url, upn, **params):
        """Open the authorize URL, pick ``upn``: the parameters sent back to the app."""
        return redirect_params(self.choose(self.open(authorize_url, **params), upn))
