"""The JSON API against its OpenAPI document, which is generated from the code.

The document says what the code does (security scheme, refusals, the tables' choices). Over HTTP
on a live server, real answers of every operation (successes and refusals) have a documented
status and match their schema; then Schemathesis generates requests from the document
(property-based, about 50 per operation, valid and invalid) with an officer's token and checks
that none gets a 500, an undocumented status, or a body, content type or header that breaks it.
"""

import json

import hypothesis
import pytest
import requests
import schemathesis
from django.test import Client
from django.utils import timezone
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from requests_app.access import roles
from requests_app.api import issue_token
from requests_app.api.views import api
from requests_app.intake import rules as intake
from requests_app.models import (
    DataRequest,
    Status,
)
from tests.browser_helpers import LiveServer, browser_sqlite_template
from tests.conftest import make_user
from tests.lifecycle_helpers import make_request
from tests.shared_database import SharedDatabase
from tests.test_api import HUB, add_plan_and_results

LIVE = pytest.mark.django_db(transaction=True)  # the live server's threads share the database

DOCUMENT = "/api/v1/openapi.json"
# A documented example: the examples phase names it, so submit and get meet a real draft.
EXAMPLE_REFERENCE = "DSR-2025-0001"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


@pytest.fixture(scope="module")
def sqlite_template(tmp_path_factory, django_db_setup):
    return browser_sqlite_template(tmp_path_factory, "api-schema-db")


@pytest.fixture
def live_api(transactional_db, sqlite_template, redis_db, settings, tmp_path, monkeypatch):
    """The portal on a live server, a database its threads share, one configured hub, and a
    lockout that tolerates the bad tokens Schemathesis may send."""
    settings.AXES_FAILURE_LIMIT = settings.DSR_LOGIN_MAX_FAILURES = 10_000
    settings.DSR_LOGIN_MAX_FAILURES_PER_IP = 10_000
    monkeypatch.setattr(intake, "configured_hub_names", lambda: {HUB})
    database = SharedDatabase(tmp_path, sqlite_template)
    server = LiveServer()
    try:
        yield server.url
    finally:
        server.stop()
        database.restore()


@pytest.fixture
def token(live_api):
    officer = make_user("olivia", roles.OFFICER)
    _, raw = issue_token(officer, name="schemathesis")
    draft = make_request(officer, ["reg-1"])
    DataRequest.objects.filter(pk=draft.pk).update(reference=EXAMPLE_REFERENCE)
    return raw


# The document the live server serves (test_real_answers_are_documented checks), made
# here at import because Schemathesis parametrizes the test by its operations.
schema = schemathesis.openapi.from_dict(api.get_openapi_schema(path_prefix=""))


# --- the document -----------------------------------------------------------------------------


def test_openapi_document(db):
    response = Client().get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    document = response.json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {
        "/api/v1/requests",
        "/api/v1/requests/{reference}",
        "/api/v1/requests/{reference}/submit",
        "/api/v1/openapi.json",
    }
    assert set(document["paths"]["/api/v1/requests"]) == {"get", "post"}
    assert "Approving or rejecting is not possible" in document["info"]["description"]
    assert not any("approv" in path for path in document["paths"])
    # Every $ref points at something that exists.
    text = json.dumps(document)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "#/')[1:]}:
        node = document
        for key in ref.split("/"):
            node = node[key]


def test_openapi_says_what_the_code_does(db):
    """Generated from the code: the bearer scheme, the refusals and the tables' choices."""
    document = Client().get("/api/v1/openapi.json").json()
    (scheme,) = document["components"]["securitySchemes"].values()
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    operations = {
        (path, method): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
    }
    for (path, method), operation in operations.items():
        if path == "/api/v1/openapi.json":
            assert "security" not in operation
            continue
        assert operation["security"] and {"401", "403", "429"} <= set(operation["responses"])
        for status, answer in operation["responses"].items():
            if status.startswith("4"):
                schema = answer["content"]["application/json"]["schema"]
                assert "Error" in json.dumps(schema), (path, method, status)
    create = operations[("/api/v1/requests", "post")]
    assert set(create["responses"]) == {"201", "400", "401", "403", "413", "415", "429"}
    assert "InvalidRequest" in json.dumps(create["responses"]["400"])
    schemas = document["components"]["schemas"]
    new = schemas["NewRequest"]
    # identifiers or subject_keys: one of the two (the operation answers 400 without either).
    assert set(new["required"]) == {"kind", "regulation", "subject_reference"}
    assert new["properties"]["subject_keys"]["anyOf"][0]["maxItems"] == 20
    assert new["additionalProperties"] is False
    assert new["properties"]["regulation"]["enum"] == ["gdpr", "uk_gdpr", "ccpa"]
    assert new["properties"]["kind"]["enum"] == ["export", "erasure", "export_and_erasure"]
    listed = new["properties"]["identifiers"]["anyOf"][0]
    assert listed["maxItems"] == intake.MAX_IDENTIFIERS
    assert schemas["RequestSummary"]["properties"]["regulation"]["enum"] == [
        "gdpr",
        "uk_gdpr",
        "ccpa",
    ]
    parameters = {p["name"]: p for p in operations[("/api/v1/requests", "get")]["parameters"]}
    assert parameters["status"]["schema"]["items"]["enum"] == list(Status.values)
    assert parameters["page"]["schema"]["minimum"] == 1


# --- real answers ----------------------------------------------------------------------------


def _calls(token, other_token):
    """(method, path template, path, keyword arguments) of real calls, refusals included."""
    ok = {"headers": {"Authorization": f"Bearer {token}"}}
    body = {"kind": "export", "regulation": "uk_gdpr", "subject_reference": "T-9"}
    detail, submit = "/api/v1/requests/{reference}", "/api/v1/requests/{reference}/submit"
    return [
        ("GET", DOCUMENT, DOCUMENT, {}),
        ("GET", "/api/v1/requests", "/api/v1/requests", ok),
        ("GET", "/api/v1/requests", "/api/v1/requests?status=lost", ok),
        ("GET", "/api/v1/requests", "/api/v1/requests?page=9", ok),
        ("GET", "/api/v1/requests", "/api/v1/requests", {}),
        ("GET", "/api/v1/requests", "/api/v1/requests", {"headers": {"Authorization": "x"}}),
        ("GET", "/api/v1/requests", "/api/v1/requests", other_token),
        ("POST", "/api/v1/requests", "/api/v1/requests", {**ok, "json": body}),
        (
            "POST",
            "/api/v1/requests",
            "/api/v1/requests",
            {**ok, "json": {**body, "identifiers": [{"registration_id": "r-1"}] * 2}},
        ),
        ("POST", "/api/v1/requests", "/api/v1/requests", {**ok, "json": [1]}),
        ("POST", "/api/v1/requests", "/api/v1/requests", {**ok, "data": "kind=export"}),
        ("GET", detail, f"/api/v1/requests/{EXAMPLE_REFERENCE}", ok),
        ("GET", detail, "/api/v1/requests/DSR-1999-0001", ok),
        ("POST", submit, "/api/v1/requests/DSR-1999-0001/submit", ok),
        ("POST", submit, f"/api/v1/requests/{EXAMPLE_REFERENCE}/submit", ok),
        ("POST", submit, f"/api/v1/requests/{EXAMPLE_REFERENCE}/submit", ok),
    ]


@LIVE
def test_real_answers_are_documented(live_api, token, approver, settings):
    """Each operation's real answers, successes and refusals, have a documented status and
    match the schema the document gives for it."""
    served = requests.get(live_api + DOCUMENT, timeout=10).json()
    assert served == json.loads(json.dumps(api.get_openapi_schema(path_prefix="")))
    add_plan_and_results(DataRequest.objects.get(reference=EXAMPLE_REFERENCE), approver)
    _, refused = issue_token(approver)
    calls = _calls(token, {"headers": {"Authorization": f"Bearer {refused}"}})
    # Last, two guessed tokens under a lockout of one failure: 401, then 429.
    guess = {"headers": {"Authorization": "Bearer guessed"}}
    calls += [("GET", "/api/v1/requests", "/api/v1/requests", guess)] * 2
    seen = set()
    for method, template, path, arguments in calls:
        if arguments is guess:
            settings.AXES_FAILURE_LIMIT = settings.DSR_LOGIN_MAX_FAILURES = 1
            settings.DSR_LOGIN_MAX_FAILURES_PER_IP = 1
        response = requests.request(method, live_api + path, timeout=10, **arguments)
        documented = served["paths"][template][method.lower()]["responses"]
        assert str(response.status_code) in documented, (method, path, response.status_code)
        schema[template][method].validate_response(response)
        # The lockout's answer comes from django-axes' middleware (accounts.views.locked_out).
        if response.status_code != 429:
            assert response.headers["Cache-Control"] == "no-store", (method, path)
        seen.add((method, template, response.status_code))
    assert len(seen) == 15 and ("GET", "/api/v1/requests", 429) in seen, sorted(seen)


def _within_reach(case):
    """Generated bodies that only break rules JSON Schema cannot say (received within the
    last year, a configured hub) are brought within them, so creation is explored too."""
    if case.operation.label != "POST /api/v1/requests" or not isinstance(case.body, dict):
        return
    if case.meta and case.meta.generation.mode.is_positive:
        case.body["received_at"] = timezone.localdate().isoformat()
        for item in case.body.get("identifiers") or []:
            if isinstance(item, dict) and item.get("hub"):
                item["hub"] = HUB


@LIVE
@schema.parametrize()
@hypothesis.settings(
    max_examples=50,
    deadline=None,
    database=None,
    suppress_health_check=list(hypothesis.HealthCheck),
)
def test_generated_requests_meet_the_document(case, live_api, token):
    _within_reach(case)
    case.call_and_validate(
        base_url=live_api, headers={"Authorization": f"Bearer {token}"}, checks=CHECKS
    )
