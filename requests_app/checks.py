"""System checks: configuration mistakes reported with an id and a hint at start-up."""

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
