"""Usernames and client addresses, each normalised by one function used everywhere.

A username is compared as Django's login form cleans it (NFKC, surrounding spaces removed), so
"alice ", "ａｌｉｃｅ" and "alice" are one account for counting failures and for signing in.

The client address is REMOTE_ADDR, unless the peer is a proxy listed in DSR_TRUSTED_PROXIES:
then X-Forwarded-For is read from the right, skipping trusted proxies, and the first address
that is not one is the client. A client cannot choose its address by sending the header itself.
"""

import ipaddress
import unicodedata
from functools import lru_cache

from django.conf import settings


def normalise_username(value):
    return unicodedata.normalize("NFKC", str(value or "")).strip()[:150]


def lockout_username(request, credentials):
    """django-axes' AXES_USERNAME_CALLABLE: the normalised username from the credentials."""
    credentials = credentials or {}
    raw = credentials.get("username")
    if raw is None and request is not None and request.method == "POST":
        raw = request.POST.get("username")
    return normalise_username(raw) or None


@lru_cache(maxsize=8)
def _trusted(proxies):
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in proxies if p.strip())


def _address(hop):
    """The IP address of a hop, which proxies write as ``ip``, ``ip:port``, ``[v6]`` or
    ``[v6]:port`` (Azure Application Gateway and App Service add the port); None if it is
    none of these."""
    hop = hop.strip()
    if hop.startswith("["):
        hop = hop[1:].split("]", 1)[0]
    elif hop.count(":") == 1:
        hop = hop.split(":", 1)[0]
    try:
        return ipaddress.ip_address(hop)
    except ValueError:
        return None


def _is_trusted(address):
    ip = _address(address)
    trusted = _trusted(tuple(settings.DSR_TRUSTED_PROXIES))
    return ip is not None and any(ip in network for network in trusted)


def client_ip(request):
    """The address of the client that sent ``request`` (also django-axes' callable)."""
    remote = request.META.get("REMOTE_ADDR", "") or ""
    if not _is_trusted(remote):
        return remote
    hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    for hop in reversed([h for h in hops if h]):
        if not _is_trusted(hop):
            ip = _address(hop)
            # A malformed hop: the trusted proxy wrote something odd; trust nothing left of it.
            return str(ip) if ip is not None else remote
    return remote


def client_of(request):
    """Address and browser of a request, as audit events record them."""
    if request is None:
        return {}
    return {"ip": client_ip(request), "user_agent": request.META.get("HTTP_USER_AGENT", "")[:300]}
