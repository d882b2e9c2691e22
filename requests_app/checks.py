"""System checks: configuration mistakes reported with an id and a hint at start-up."""

import os
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import Error, Warning, register


@register()
def check_portal_settings(app_configs, **kwargs):
    problems = []
    if not settings.DEBUG and settings.DSR_DEV_OUTBOX:
        problems.append(
            Error(
                "DSR_DEV_OUTBOX is on while DEBUG is off.",
                hint="The dev outbox shows every email to anyone; use SMTP in production.",
                id="dsr.E001",
            )
        )
    if not settings.DEBUG and settings.SITE_URL.startswith("http://"):
        problems.append(
            Warning(
                "SITE_URL uses http:// in production.",
                hint="Approval links in emails should use https://.",
                id="dsr.W001",
            )
        )
    problems.extend(check_site_url_served())
    problems.extend(check_targets())
    return problems


def check_targets():
    """The targets file is validated at start-up of every process (without reading secrets
    here: only the worker needs them, and it loads them when it starts)."""
    from requests_app.azure import TargetsError, load_targets

    if not settings.DSR_AZURE_TARGETS:
        return []
    try:
        load_targets(settings.DSR_AZURE_TARGETS, secrets=False)
    except TargetsError as exc:
        return [
            Error(str(exc), hint="Fix the targets file named by DSR_AZURE_TARGETS.", id="dsr.E002")
        ]
    return []


def check_site_url_served():
    """In DEBUG, links in emails must reach the server being run (`PORT=8811 make run` with a
    SITE_URL left at :8000 would give approvers links that are refused)."""
    served = settings.DSR_DEV_SERVING or (
        f"http://127.0.0.1:{os.environ['PORT']}" if os.environ.get("PORT") else None
    )
    if not (settings.DEBUG and served):
        return []
    site, here = urlsplit(settings.SITE_URL), urlsplit(served)
    local = {"127.0.0.1", "localhost", "::1"}
    same_host = site.hostname == here.hostname or {site.hostname, here.hostname} <= local
    if same_host and (site.port or 80) == (here.port or 80):
        return []
    return [
        Warning(
            f"SITE_URL is {settings.SITE_URL} but the portal is served at {served}.",
            hint="Links in emails would not reach this server: unset SITE_URL (it follows "
            "PORT) or set it to the address people open.",
            id="dsr.W002",
        )
    ]
