"""Who gets what, for every route of the project, as every kind of user.

The routes are read from the resolver, so a new route without a row here fails
``test_every_route_has_a_matrix_row``. Columns: anonymous, officer A (created the requests under
test), officer B, approver, auditor, administrator. ``None`` means "not requested as that user"
(used for POSTs that would legitimately change something). Downloads must write exactly one
audit event when they succeed and none when refused.
"""

from dataclasses import dataclass, field

import pytest
from django.core import mail
from django.urls import URLPattern, URLResolver, get_resolver

from requests_app.evidence.artifacts import store_artifact
from requests_app.models import (
    Approval,
    Artifact,
    AuditEvent,
    DataRequest,
    OutboxMessage,
    Status,
)
from requests_app.workflow.tokens import make_token
from tests.conftest import sign_in
from tests.lifecycle_helpers import make_request

ROLES = ("anonymous", "officer", "officer2", "approver", "auditor", "admin")
DOWNLOAD_ACTIONS = ("artifact_downloaded", "report_downloaded")
PERIOD = "?from=2026-01-01&to=2026-12-31"
UNKNOWN = "DSR-1999-0001"

# Not requested here, each with the reason.
SKIPPED_PREFIXES = {
    "admin/": "Django's admin and the django-rq dashboard: staff-only, their roots are checked",
}
SKIPPED_ROUTES = {
    "accounts/password_change/done/": "django.contrib.auth internal confirmation page",
    "accounts/password_reset/": "throttled and audited reset: tests/test_signin.py",
    "accounts/password_reset/done/": "django.contrib.auth internal",
    "accounts/reset/<uidb64>/<token>/": "signed reset link: tests/test_signin.py",
    "accounts/reset/done/": "django.contrib.auth internal",
}


@dataclass
class Case:
    url: str  # formatted with the world's references: {a}, {b}, {token}, {outbox}
    expect: tuple  # one status (or None) per entry of ROLES
    method: str = "GET"
    download: bool = False
    unchanged: bool = False  # the POST must leave requests, approvals and mail as they were
    headers: dict = field(default_factory=dict)


def same(anonymous, everyone):
    return (anonymous, everyone, everyone, everyone, everyone, everyone)


POST_WRONG_ROLE = (302, None, None, 404, 404, 404)

MATRIX = {
    "": [Case("/", same(302, 200))],
    "healthz": [Case("/healthz", same(200, 200))],
    "accounts/login/": [Case("/accounts/login/", same(200, 200))],
    "accounts/logout/": [Case("/accounts/logout/", same(405, 405))],
    # Sign-in steps (tests/test_signin.py has their behaviour; here: nobody gets in sideways).
    "accounts/login/code/": [Case("/accounts/login/code/", same(302, 302))],
    "accounts/reauth/": [Case("/accounts/reauth/", same(302, 200))],
    "accounts/security/": [Case("/accounts/security/", same(302, 200))],
    "accounts/2fa/setup/": [Case("/accounts/2fa/setup/", same(302, 200))],
    "accounts/2fa/recovery-codes/": [Case("/accounts/2fa/recovery-codes/", same(302, 302))],
    "accounts/2fa/recovery-codes/new": [Case("/accounts/2fa/recovery-codes/new", same(302, 405))],
    "accounts/sso/login/": [
        Case("/accounts/sso/login/", same(405, 405)),
        Case("/accounts/sso/login/", same(404, 404), method="POST", unchanged=True),
    ],
    "accounts/sso/callback/": [Case("/accounts/sso/callback/", same(404, 404))],
    "accounts/password_change/": [Case("/accounts/password_change/", same(302, 200))],
    "dashboard/": [Case("/dashboard/", same(302, 200))],
    "admin/rq/": [Case("/admin/rq/", (302, 302, 302, 302, 302, 200))],
    # --- requests ---------------------------------------------------------------------------
    "requests/new/": [Case("/requests/new/", (302, 200, 200, 404, 404, 404))],
    "requests/": [Case("/requests/", same(302, 200))],
    "requests/<str:reference>/": [
        Case("/requests/{a}/", same(302, 200)),
        Case(f"/requests/{UNKNOWN}/", same(302, 404)),
    ],
    "requests/<str:reference>/progress": [
        Case("/requests/{a}/progress", same(302, 200)),
        Case(f"/requests/{UNKNOWN}/progress", same(302, 404)),
    ],
    "requests/<str:reference>/submit": [
        Case("/requests/{draft}/submit", same(302, 405)),
        Case("/requests/{draft}/submit", POST_WRONG_ROLE, method="POST", unchanged=True),
    ],
    "requests/<str:reference>/cancel": [
        Case("/requests/{draft}/cancel", same(302, 405)),
        Case("/requests/{a}/cancel", POST_WRONG_ROLE, method="POST", unchanged=True),
    ],
    "requests/<str:reference>/retry": [
        Case("/requests/{a}/retry", same(302, 405)),
        Case("/requests/{a}/retry", POST_WRONG_ROLE, method="POST", unchanged=True),
    ],
    "requests/<str:reference>/resend": [
        Case("/requests/{a}/resend", same(302, 405)),
        Case("/requests/{a}/resend", POST_WRONG_ROLE, method="POST", unchanged=True),
    ],
    "requests/<str:reference>/decide": [
        Case("/requests/{a}/decide", same(302, 405)),
        # Only approvers may decide; for everyone else the action does not exist.
        Case(
            "/requests/{a}/decide?decision=approved",
            (302, 404, 404, None, 404, 404),
            method="POST",
            unchanged=True,
        ),
    ],
    "requests/<str:reference>/extend": [
        Case("/requests/{a}/extend", same(302, 405)),
        Case("/requests/{a}/extend", POST_WRONG_ROLE, method="POST", unchanged=True),
    ],
    "requests/<str:reference>/legal-hold": [
        Case("/requests/{a}/legal-hold", same(302, 405)),
        # Officers and admins may place a hold; without a reason nothing is placed.
        Case(
            "/requests/{a}/legal-hold",
            (302, 302, 302, 404, 404, 302),
            method="POST",
            unchanged=True,
        ),
    ],
    # Finding devices by owner: officers only (the page shows the subject keys). An empty
    # search and an unknown search change nothing.
    "requests/<str:reference>/discovery/": [
        Case("/requests/{draft}/discovery/", (302, 200, 200, 404, 404, 404)),
    ],
    "requests/<str:reference>/discovery/start": [
        Case("/requests/{draft}/discovery/start", same(302, 405)),
        Case("/requests/{draft}/discovery/start", POST_WRONG_ROLE, method="POST", unchanged=True),
    ],
    "requests/<str:reference>/discovery/<int:pk>/retry": [
        Case("/requests/{draft}/discovery/1/retry", same(302, 405)),
        Case(
            "/requests/{draft}/discovery/1/retry",
            (302, 404, 404, 404, 404, 404),
            method="POST",
            unchanged=True,
        ),
    ],
    "requests/<str:reference>/discovery/<int:pk>/confirm": [
        Case("/requests/{draft}/discovery/1/confirm", same(302, 405)),
        Case(
            "/requests/{draft}/discovery/1/confirm",
            (302, 404, 404, 404, 404, 404),
            method="POST",
            unchanged=True,
        ),
    ],
    # Delivery links: only who may download the archive may make or revoke them ({a} is not
    # completed: refused with a message, nothing made).
    "requests/<str:reference>/deliveries": [
        Case("/requests/{a}/deliveries", same(302, 405)),
        Case(
            "/requests/{a}/deliveries",
            (302, 302, 404, 404, 404, 302),
            method="POST",
            unchanged=True,
        ),
    ],
    "requests/<str:reference>/deliveries/<int:pk>/revoke": [
        Case("/requests/{a}/deliveries/1/revoke", same(302, 405)),
        Case(
            "/requests/{a}/deliveries/1/revoke",
            (302, 404, 404, 404, 404, 404),
            method="POST",
            unchanged=True,
        ),
    ],
    # The data subject's pages need no account; an unknown token is a 404 for everyone.
    "d/<str:token>/": [Case("/d/not-a-token/", same(404, 404))],
    # Without a link opened in this browser there is nothing at /d/.
    "d/": [Case("/d/", same(404, 404))],
    "d/download": [Case("/d/download", same(405, 405))],
    "requests/<str:reference>/artifacts/<str:kind>/": [
        Case(
            "/requests/{a}/artifacts/export_archive/", (302, 200, 404, 404, 404, 200), download=True
        ),
        Case(
            "/requests/{a}/artifacts/certificate_pdf/",
            (302, 200, 200, 404, 200, 200),
            download=True,
        ),
        Case("/requests/{a}/artifacts/certificate_json/", same(302, 404)),
        # Guessing: another request's reference with a kind it does not have, or no request.
        Case("/requests/{b}/artifacts/export_archive/", same(302, 404)),
        Case(f"/requests/{UNKNOWN}/artifacts/certificate_pdf/", same(302, 404)),
        Case("/requests/{a}/artifacts/nonsense/", same(302, 404)),
    ],
    "approve/<str:token>/": [
        Case("/approve/not-a-token/", same(403, 403)),
        # A valid link is exchanged for a page of this session (who may use it: that page).
        Case("/approve/{token}/", same(302, 302)),
        Case("/approve/{token}/", same(405, 405), method="POST", unchanged=True),
    ],
    # A reference that is not this session's: nothing, whoever asks.
    "approve/t/<str:ref>/": [Case("/approve/t/not-mine/", same(404, 404))],
    # --- JSON API: bearer tokens only, session cookies do not count ------------------------
    "api/v1/openapi.json": [Case("/api/v1/openapi.json", same(200, 200))],
    "api/v1/requests": [
        Case("/api/v1/requests", same(401, 401)),
        Case("/api/v1/requests", same(401, 401), method="POST", unchanged=True),
    ],
    "api/v1/requests/<str:reference>": [Case("/api/v1/requests/{a}", same(401, 401))],
    "api/v1/requests/<str:reference>/submit": [
        Case("/api/v1/requests/{draft}/submit", same(405, 405)),
        Case("/api/v1/requests/{draft}/submit", same(401, 401), method="POST", unchanged=True),
    ],
    # --- reports ----------------------------------------------------------------------------
    "reports/": [Case("/reports/", (302, 200, 200, 404, 200, 200))],
    "reports/register.csv": [
        Case("/reports/register.csv" + PERIOD, (302, 200, 200, 404, 200, 200), download=True),
        Case("/reports/register.csv", (302, 400, 400, 404, 400, 400)),
    ],
    "requests/<str:reference>/evidence.pdf": [
        Case("/requests/{a}/evidence.pdf", (302, 200, 200, 404, 200, 200), download=True),
        Case(f"/requests/{UNKNOWN}/evidence.pdf", same(302, 404)),
    ],
    "audit/": [
        Case("/audit/", (302, 404, 404, 404, 200, 200)),
        Case("/audit/?request={a}&action=status_changed&page=2", (302, 404, 404, 404, 200, 200)),
    ],
    "audit/offline-verification/": [
        Case("/audit/offline-verification/", (302, 404, 404, 404, 200, 200)),
    ],
    "audit/log.jsonl": [
        Case("/audit/log.jsonl" + PERIOD, (302, 404, 404, 404, 200, 200), download=True),
    ],
    # --- dev outbox: off unless DSR_DEV_OUTBOX ----------------------------------------------
    "dev/outbox/": [Case("/dev/outbox/", same(404, 404))],
    "dev/outbox/<int:pk>/": [Case("/dev/outbox/{outbox}/", same(404, 404))],
}

# Routes inside the skipped prefixes whose root is still checked: staff only.
EXTRA = [Case("/admin/", (302, 302, 302, 302, 302, 200))]


def routes(patterns=None, prefix=""):
    """Every route of the project as its full pattern string."""
    found = []
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            found.extend(routes(entry.url_patterns, prefix + str(entry.pattern)))
        elif isinstance(entry, URLPattern):
            found.append(prefix + str(entry.pattern))
    return found


def skipped(route):
    return route in SKIPPED_ROUTES or (
        route not in MATRIX and any(route.startswith(p) for p in SKIPPED_PREFIXES)
    )


def test_every_route_has_a_matrix_row():
    all_routes = set(routes())
    missing = sorted(route for route in all_routes if route not in MATRIX and not skipped(route))
    assert not missing, f"routes without a row in the access matrix: {missing}"
    stale = sorted(set(MATRIX) - all_routes)
    assert not stale, f"matrix rows for routes that no longer exist: {stale}"


@pytest.fixture
def world(settings, tmp_path, officer, officer2, approver, auditor, admin_user):
    settings.DSR_DATA_DIR = tmp_path / "data"
    settings.DSR_DEV_OUTBOX = False
    a = make_request(officer, ["reg-a"])
    a.transition(Status.PLANNING, actor=officer)
    a.transition(Status.AWAITING_APPROVAL, actor=officer)
    DataRequest.objects.filter(pk=a.pk).update(plan_version="v1")
    a.refresh_from_db()
    for kind, name, content_type in (
        (Artifact.Kind.EXPORT_ARCHIVE, f"{a.reference}-export.zip", "application/zip"),
        (Artifact.Kind.CERTIFICATE_PDF, f"{a.reference}-certificate.pdf", "application/pdf"),
    ):
        store_artifact(a, kind, name, content_type, lambda fh: fh.write(b"content"))
    b = make_request(officer2, ["reg-b"])
    store_artifact(
        b,
        Artifact.Kind.CERTIFICATE_PDF,
        f"{b.reference}-certificate.pdf",
        "application/pdf",
        lambda fh: fh.write(b"b"),
    )
    draft = make_request(officer, ["reg-d"])
    message = OutboxMessage.objects.create(
        **{
            f.name: "x"
            for f in OutboxMessage._meta.concrete_fields
            if f.get_internal_type() in ("CharField", "TextField") and not f.blank
        }
    )
    users = {
        "anonymous": None,
        "officer": officer,
        "officer2": officer2,
        "approver": approver,
        "auditor": auditor,
        "admin": admin_user,
    }
    values = {
        "a": a.reference,
        "b": b.reference,
        "draft": draft.reference,
        "token": make_token(a, approver),
        "outbox": message.pk,
    }
    return users, values


def snapshot():
    return (
        sorted(
            DataRequest.objects.values_list(
                "reference", "status", "plan_version", "due_at", "extended_until"
            )
        ),
        Approval.objects.count(),
        len(mail.outbox),
        OutboxMessage.objects.count(),
        Artifact.objects.count(),
    )


def downloads():
    return AuditEvent.objects.filter(action__in=DOWNLOAD_ACTIONS).count()


def request_as(client, user, case, url):
    client.logout()
    if user is not None:
        sign_in(client, user)
    response = client.generic(case.method, url, **case.headers)
    if response.streaming:
        # Consuming it lets the test client close it (and the file) the safe way; an explicit
        # close() would fire request_finished and drop the database connection mid-test.
        b"".join(response.streaming_content)
    return response


def check(client, users, case, url):
    failures = []
    for role, expected in zip(ROLES, case.expect, strict=True):
        if expected is None:
            continue
        before, state = downloads(), snapshot()
        response = request_as(client, users[role], case, url)
        where = f"{case.method} {url} as {role}"
        if response.status_code != expected:
            failures.append(f"{where}: {response.status_code}, expected {expected}")
            continue
        # Anonymous redirects lead to sign-in (an approval link: to its session's page first).
        allowed = ("/accounts/login/", "/admin/login/", "/approve/t/")
        if expected == 302 and role == "anonymous" and not response["Location"].startswith(allowed):
            failures.append(f"{where}: redirected to {response['Location']}, not to login")
        wrote = downloads() - before
        if case.download and expected == 200:
            if wrote != 1:
                failures.append(f"{where}: {wrote} download audit events, expected 1")
            if not response["Content-Disposition"].startswith("attachment;"):
                failures.append(f"{where}: not sent as an attachment")
            if "no-store" not in response["Cache-Control"]:
                failures.append(f"{where}: Cache-Control {response['Cache-Control']!r}")
        elif wrote:
            failures.append(f"{where}: refused, yet wrote {wrote} download audit events")
        if case.unchanged and snapshot() != state:
            failures.append(f"{where}: changed something")
    return failures


def test_access_matrix(client, world):
    users, values = world
    failures = []
    for cases in MATRIX.values():
        for case in cases:
            failures.extend(check(client, users, case, case.url.format(**values)))
    for case in EXTRA:
        failures.extend(check(client, users, case, case.url))
    assert not failures, "\n".join(failures)


def test_export_archive_is_only_for_its_officer_and_admins(client, world):
    users, values = world
    url = f"/requests/{values['a']}/artifacts/export_archive/"
    for role, expected in (("officer", 200), ("officer2", 404), ("auditor", 404), ("admin", 200)):
        assert request_as(client, users[role], Case(url, ()), url).status_code == expected, role
    events = AuditEvent.objects.filter(action="artifact_downloaded", details__kind="export_archive")
    assert sorted(events.values_list("actor_name", flat=True)) == sorted(
        [users["officer"].username, users["admin"].username]
    )
