"""The JSON API: tokens, create → read → list → submit, and every refusal."""

import hashlib
import io
import json
from datetime import date, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from requests_app.api import issue_token
from requests_app.intake import rules as intake
from requests_app.models import (
    ApiToken,
    Approval,
    Artifact,
    AuditEvent,
    DataRequest,
    Operation,
    PlannedDevice,
    RequestIdentifier,
    Status,
)

HUB = "hub-1.azure-devices.net"
REQUESTS = "/api/v1/requests"


@pytest.fixture(autouse=True)
def hubs(monkeypatch):
    monkeypatch.setattr(intake, "configured_hub_names", lambda: {HUB})


@pytest.fixture
def api(officer):
    """A client that sends the officer's token and enforces CSRF like a browser would."""
    _, raw = issue_token(officer, name="ticketing")
    return ApiClient(raw)


class ApiClient:
    def __init__(self, token):
        self.client = Client(enforce_csrf_checks=True)
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def get(self, path, **params):
        return self.client.get(path, params, headers=self.headers)

    def post(self, path, body=None, content_type="application/json"):
        data = json.dumps(body) if not isinstance(body, str | bytes) else body
        return self.client.post(path, data or "", content_type=content_type, headers=self.headers)


def new_request(**changes):
    body = {
        "kind": "erasure",
        "regulation": "gdpr",
        "received_at": timezone.localdate().isoformat(),
        "subject_reference": "JIRA-123",
        "identifiers": [{"registration_id": "reg-1"}, {"device_id": "dev-1", "hub": HUB}],
        "block_reprovisioning": True,
    }
    body.update(changes)
    return {name: value for name, value in body.items() if value is not None}


def assert_nothing_stored():
    assert DataRequest.objects.count() == 0
    assert RequestIdentifier.objects.count() == 0
    assert not AuditEvent.objects.filter(action="request_created").exists()


# --- the happy path --------------------------------------------------------------------------


def test_create_get_list_submit(api, officer, redis_db):
    response = api.post(REQUESTS, new_request())
    assert response.status_code == 201, response.json()
    created = response.json()
    reference = created["reference"]
    assert reference == f"DSR-{timezone.localdate().year}-0001"
    assert created["status"] == "draft"
    assert response["Location"] == f"http://testserver/api/v1/requests/{reference}"
    assert response["Cache-Control"] == "no-store"

    req = DataRequest.objects.get()
    assert req.created_via == "api" and req.created_by == officer
    rows = list(req.identifiers.values_list("line", "registration_id", "device_id", "hub"))
    assert rows == [(1, "reg-1", "", ""), (2, "", "dev-1", HUB)]
    event = AuditEvent.objects.get(action="request_created")
    assert event.actor_user == officer
    assert event.details == {
        "via": "api",
        "identifiers": 2,
        "kind": "erasure",
        "regulation": "gdpr",
    }

    detail = api.get(f"{REQUESTS}/{reference}")
    assert detail.status_code == 200
    body = detail.json()
    assert body == created
    assert body["due_at"] == req.due_at.isoformat()
    assert body["extended_until"] is None
    assert body["subject_reference"] == "JIRA-123"
    assert body["identifiers"] == 2
    assert body["plan"] == {
        "version": None,
        "devices": [],
        "operations": 0,
        "steps": [],
        "unreachable": [],
        "not_found": [],
        "cost": {"buckets": [], "projected_seconds": 0.0, "projected": "no Azure calls"},
    }
    assert body["progress"] == {"done": 0, "total": 0, "failed": 0}
    assert body["approvals"] == [] and body["artifacts"] == []

    listing = api.get(REQUESTS).json()
    assert listing["count"] == 1 and listing["pages"] == 1 and listing["next"] is None
    assert [item["reference"] for item in listing["results"]] == [reference]

    submitted = api.post(f"{REQUESTS}/{reference}/submit")
    assert submitted.status_code == 202, submitted.json()
    assert submitted.json() == {"reference": reference, "status": "planning"}
    req.refresh_from_db()
    assert req.status == Status.PLANNING

    again = api.post(f"{REQUESTS}/{reference}/submit")
    assert again.status_code == 409
    assert "only a draft can be submitted" in again.json()["error"]


def test_duplicates_collapsed_with_notice(api):
    identifiers = [{"registration_id": name} for name in ("a-1", "A-1", "b", "B", "c")]
    response = api.post(REQUESTS, new_request(identifiers=identifiers))
    assert response.status_code == 201
    assert response.json()["notices"] == ["2 duplicate identifiers collapsed (indexes 1, 3)"]
    assert RequestIdentifier.objects.count() == 3


def test_defaults(api):
    body = new_request(kind="export", received_at=None, block_reprovisioning=None)
    response = api.post(REQUESTS, body)
    assert response.status_code == 201
    req = DataRequest.objects.get()
    assert req.received_at == timezone.localdate()
    assert req.block_reprovisioning is False  # meaningless for an export


def test_officers_see_each_others_requests(api, officer2):
    other = intake.create_request(
        user=officer2,
        kind="export",
        regulation="ccpa",
        received_at=timezone.localdate(),
        subject_reference="T-2",
        identifiers=[intake.Identifier(1, "reg-9")],
        block_reprovisioning=False,
    )
    assert api.get(f"{REQUESTS}/{other.reference}").status_code == 200


def test_unknown_reference(api):
    response = api.get(f"{REQUESTS}/DSR-2025-9999")
    assert response.status_code == 404
    assert response.json() == {"error": "no request DSR-2025-9999"}
    assert api.post(f"{REQUESTS}/DSR-2025-9999/submit").status_code == 404


def test_list_filters_and_pages(api, officer):
    for number in range(53):
        req = intake.create_request(
            user=officer,
            kind="export",
            regulation="gdpr",
            received_at=timezone.localdate(),
            subject_reference=f"T-{number}",
            identifiers=[intake.Identifier(1, "reg-1")],
            block_reprovisioning=False,
        )
    DataRequest.objects.filter(pk=req.pk).update(status=Status.CANCELLED)

    first = api.get(REQUESTS, status="draft").json()
    assert first["count"] == 52 and first["pages"] == 2 and first["page"] == 1
    assert len(first["results"]) == 50
    assert first["next"] == "http://testserver/api/v1/requests?status=draft&page=2"
    assert set(first["results"][0]) == {
        "reference",
        "kind",
        "regulation",
        "status",
        "received_at",
        "due_at",
        "extended_until",
        "created_at",
        "url",
    }
    second = api.get(REQUESTS, status="draft", page="2").json()
    assert len(second["results"]) == 2 and second["next"] is None
    cancelled = api.get(REQUESTS, status="cancelled").json()
    assert [item["reference"] for item in cancelled["results"]] == [req.reference]
    assert api.get(REQUESTS).json()["count"] == 53

    assert api.get(REQUESTS, status="lost").status_code == 400
    assert api.get(REQUESTS, page="0").status_code == 400
    assert api.get(REQUESTS, page="x").status_code == 400
    assert api.get(REQUESTS, page="9").status_code == 404


def add_plan_and_results(req, approver):
    """Rows for every part of a request's answer: devices of each state, operations of each
    state, a decision and a file."""
    req.plan_version = "v1"
    req.save()
    found = PlannedDevice.objects.create(
        request=req, position=1, registration_id="reg-1", device_id="reg-1", state="found",
        enrollment="individual", modules=["m1"],
    )  # fmt: skip
    PlannedDevice.objects.create(request=req, position=2, device_id="dev-1", state="not_found")
    PlannedDevice.objects.create(request=req, position=3, device_id="dev-2", state="unreachable")
    for seq, state in enumerate(["done", "already_absent", "skipped", "failed", "pending"], 1):
        Operation.objects.create(
            request=req, device=found, seq=seq, phase="erasure", action="x", method="DELETE",
            host=HUB, path=f"/p/{seq}", state=state,
        )  # fmt: skip
    Approval.objects.create(
        request=req, approver=approver, approver_name="ada", plan_version="v1",
        decision="approved", reason="ok", via="link",
    )  # fmt: skip
    Artifact.objects.create(
        request=req, kind="certificate_json", path="x", filename="c.json",
        content_type="application/json", sha256="ab" * 32, size=12,
    )  # fmt: skip


def test_plan_progress_approvals_and_artifacts(api, officer, approver):
    created = api.post(REQUESTS, new_request()).json()
    req = DataRequest.objects.get(reference=created["reference"])
    add_plan_and_results(req, approver)

    body = api.get(f"{REQUESTS}/{req.reference}").json()
    assert body["plan"]["version"] == "v1"
    assert body["plan"]["operations"] == 5
    assert body["plan"]["devices"][0] == {
        "registration_id": "reg-1",
        "device_id": "reg-1",
        "dps": "",
        "hub": "",
        "state": "found",
        "enrollment": "individual",
        "modules": ["m1"],
    }
    assert body["plan"]["not_found"] == ["dev-1"]
    assert body["plan"]["unreachable"] == ["dev-2"]
    assert body["progress"] == {"done": 3, "total": 5, "failed": 1}
    (approval,) = body["approvals"]
    assert approval["approver"] == "ada" and approval["decision"] == "approved"
    assert approval["reason"] == "ok" and approval["at"]
    assert body["artifacts"] == [
        {
            "kind": "certificate_json",
            "url": f"/requests/{req.reference}/artifacts/certificate_json/",
            "sha256": "ab" * 32,
            "size": 12,
            "purged_at": None,
        }
    ]


# --- invalid bodies: 400 with every problem, nothing stored ----------------------------------


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"kind": None}, "kind", "required"),
        ({"kind": "purge"}, "kind", "must be one of: export, erasure, export_and_erasure"),
        ({"regulation": "hipaa"}, "regulation", "must be one of: gdpr, uk_gdpr, ccpa"),
        ({"received_at": "31/01/2025"}, "received_at", "must be a date as YYYY-MM-DD"),
        ({"received_at": 20250131}, "received_at", "must be a date as YYYY-MM-DD"),
        (
            {"received_at": (date.today() + timedelta(days=2)).isoformat()},
            "received_at",
            "The received date cannot be in the future.",
        ),
        (
            {"subject_reference": None},
            "subject_reference",
            "required: a ticket number or pseudonym",
        ),
        (
            {"subject_reference": "a.person@example.org"},
            "subject_reference",
            "Use a ticket number or pseudonym, not an email address.",
        ),
        ({"block_reprovisioning": "yes"}, "block_reprovisioning", "must be true or false"),
        ({"identifiers": []}, "identifiers", "required: a list of at least one identifier"),
        ({"identifiers": "reg-1"}, "identifiers", "required: a list of at least one identifier"),
        ({"identifers": []}, "identifers", "unknown field"),
    ],
)
def test_invalid_fields(api, changes, field, message):
    response = api.post(REQUESTS, new_request(**changes))
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid request"
    assert body["fields"][field] == [message]
    assert_nothing_stored()


def test_received_over_a_year_ago(api):
    old = (timezone.localdate() - timedelta(days=370)).isoformat()
    response = api.post(REQUESTS, new_request(received_at=old))
    assert "more than a year ago" in response.json()["fields"]["received_at"][0]
    assert_nothing_stored()


def test_every_identifier_problem_by_index(api):
    identifiers = [
        {"registration_id": "ok-1"},
        {"registration_id": "a b"},
        {"registration_id": "r" * 129},
        {"device_id": "dev/1", "hub": HUB},
        {"device_id": "dev-2", "hub": "evil.example.com"},
        {"device_id": "dev-3"},
        {"hub": HUB},
        "reg-8",
        {"registration_id": 9},
        {"registration": "x"},
        {},
    ]
    response = api.post(REQUESTS, new_request(identifiers=identifiers))
    assert response.status_code == 400
    body = response.json()
    assert body["fields"] == {}
    assert body["identifiers"] == [
        {"index": 1, "error": "registration ID 'a b' has characters Azure does not allow: ' '"},
        {
            "index": 2,
            "error": f"registration ID '{'r' * 40}…' is 129 characters long; "
            "Azure allows at most 128",
        },
        {"index": 3, "error": "device ID 'dev/1' has characters Azure does not allow: '/'"},
        {
            "index": 4,
            "error": f"hub 'evil.example.com' is not configured; configured hubs: {HUB}",
        },
        {"index": 5, "error": "device ID 'dev-3' needs its hub"},
        {"index": 6, "error": f"hub '{HUB}' is given without a device ID"},
        {"index": 7, "error": "must be an object"},
        {"index": 8, "error": "registration_id must be a string"},
        {"index": 9, "error": "unknown field 'registration'"},
        {"index": 10, "error": "give a registration ID, or a device ID and its hub"},
    ]
    assert_nothing_stored()


def test_fields_and_identifiers_reported_together(api):
    response = api.post(REQUESTS, new_request(kind="x", identifiers=[{"registration_id": "a b"}]))
    body = response.json()
    assert set(body["fields"]) == {"kind"} and body["identifiers"][0]["index"] == 0


def test_many_bad_identifiers_are_summed_up(api):
    identifiers = [{"registration_id": f"bad {n}"} for n in range(70)]
    body = api.post(REQUESTS, new_request(identifiers=identifiers)).json()
    assert len(body["identifiers"]) == 50
    assert body["fields"]["identifiers"] == ["70 identifiers are invalid; the first 50 are listed"]


def test_over_ten_thousand_identifiers(api):
    identifiers = [{"registration_id": f"r-{n}"} for n in range(10_001)]
    response = api.post(REQUESTS, new_request(identifiers=identifiers))
    assert response.status_code == 400
    assert "at most 10,000" in response.json()["fields"]["identifiers"][0]
    assert_nothing_stored()


def test_body_must_be_a_json_object(api):
    response = api.post(REQUESTS, "kind=erasure", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415
    assert "Content-Type: application/json" in response.json()["error"]
    response = api.post(REQUESTS, "{not json")
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]
    response = api.post(REQUESTS, [1, 2])
    assert response.status_code == 400
    assert response.json() == {"error": "the body must be a JSON object"}
    assert_nothing_stored()


def test_body_too_large(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 100
    response = api.post(REQUESTS, new_request(subject_reference="T" * 200))
    assert response.status_code == 413
    assert response.json() == {"error": "the body is too large"}
    assert_nothing_stored()


def test_methods(api):
    response = api.client.put(REQUESTS, "{}", headers=api.headers)
    assert response.status_code == 405 and response["Allow"] == "GET, POST"
    assert "error" in response.json()
    response = api.get(f"{REQUESTS}/DSR-2025-0001/submit")
    assert response.status_code == 405 and response["Allow"] == "POST"


# --- tokens ----------------------------------------------------------------------------------


def test_missing_and_bad_tokens(db):
    for token in (None, "not-a-token"):
        response = ApiClient(token).get(REQUESTS)
        assert response.status_code == 401
        assert "error" in response.json()
        assert response["WWW-Authenticate"].startswith('Bearer realm="dsr-portal"')
    response = Client().get(REQUESTS, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert response.status_code == 401


def test_revoked_token(officer):
    token, raw = issue_token(officer)
    ApiToken.objects.filter(pk=token.pk).update(revoked=True)
    response = ApiClient(raw).post(REQUESTS, new_request())
    assert response.status_code == 401
    assert response.json() == {"error": "this token has been revoked"}
    assert_nothing_stored()


def test_token_of_a_non_officer(approver):
    _, raw = issue_token(approver)
    client = ApiClient(raw)
    assert client.get(REQUESTS).status_code == 403
    response = client.post(REQUESTS, new_request())
    assert response.status_code == 403
    assert response.json() == {"error": "the token's user is not a privacy officer"}
    assert_nothing_stored()


def test_token_of_a_deactivated_user(officer):
    _, raw = issue_token(officer)
    officer.is_active = False
    officer.save()
    assert ApiClient(raw).get(REQUESTS).status_code == 401


def test_token_use_is_recorded(api):
    api.get(REQUESTS)
    assert ApiToken.objects.get().last_used_at is not None


def test_create_api_token_prints_once_and_stores_the_hash(officer):
    out = io.StringIO()
    call_command("create_api_token", "olivia", "--name", "jira", stdout=out)
    lines = out.getvalue().splitlines()
    raw = lines[-1]
    assert "shown only this once" in lines[0]
    token = ApiToken.objects.get()
    assert token.user == officer and token.name == "jira"
    assert token.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert token.prefix == raw[:8] and len(raw) >= 40
    stored = [str(value) for value in ApiToken.objects.values().get().values()]
    assert raw not in stored
    event = AuditEvent.objects.get(action="api_token_created")
    assert raw not in event.canonical()
    assert ApiClient(raw).get(REQUESTS).status_code == 200


def test_create_api_token_refuses_non_officers(approver):
    with pytest.raises(CommandError, match="not a privacy officer"):
        call_command("create_api_token", "ada", stdout=io.StringIO())
    with pytest.raises(CommandError, match="no user 'nobody'"):
        call_command("create_api_token", "nobody", stdout=io.StringIO())
    assert ApiToken.objects.count() == 0


# --- the OpenAPI document --------------------------------------------------------------------


def test_openapi_request_schema_matches_the_answer(api):
    document = Client().get("/api/v1/openapi.json").json()
    schema = document["components"]["schemas"]["Request"]["properties"]
    created = api.post(REQUESTS, new_request()).json()
    assert set(created) <= set(schema)
    summary = document["components"]["schemas"]["RequestSummary"]["properties"]
    assert set(api.get(REQUESTS).json()["results"][0]) == set(summary)
