"""The regulation table: its real entries, and a new regulation added as one entry and nothing
else, which the model, deadlines, intake form, API and its document, register, planner, archive
and certificate all pick up."""

import csv
import io
import json
import re
import zipfile
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from requests_app.api import issue_token
from requests_app.intake import rules as intake
from requests_app.intake.form import IntakeForm
from requests_app.models import Artifact, DataRequest, Status
from requests_app.reporting.register import register_lines
from requests_app.workflow import deadlines, regulations
from requests_app.workflow.regulations import Extension, Period, Rules, add_months
from tests.conftest import sign_in
from tests.lifecycle_helpers import make_request
from tests.test_fulfilment import (
    approve,
    pick_mix,
    plan,
    serve_simulator,  # noqa: F401 (a fixture)
)

FAKE = Rules(
    code="fake_law",
    label="Fake Law 25",
    name="The Fake Privacy Act",
    reference="Fake Act s. 7(2)",
    due=Period(days=10),
    extension=Extension(by=Period(days=20), times=2, records=("reason",)),
)
# Another, whose deadline cannot be extended.
RIGID = replace(FAKE, code="rigid", label="Rigid Act", reference="Rigid Act s. 1")
RIGID = replace(RIGID, due=Period(months=1), extension=regulations.NO_EXTENSION)


@pytest.fixture
def fake(monkeypatch):
    """Two new regulations, each one entry of the table and nothing else."""
    monkeypatch.setitem(regulations.TABLE, FAKE.code, FAKE)
    monkeypatch.setitem(regulations.TABLE, RIGID.code, RIGID)
    return FAKE


# --- the real entries --------------------------------------------------------------------------


def test_the_entries():
    gdpr, uk, ccpa = (regulations.rules_for(code) for code in ("gdpr", "uk_gdpr", "ccpa"))
    assert regulations.codes() == ["gdpr", "uk_gdpr", "ccpa"]
    assert (gdpr.label, gdpr.reference) == ("GDPR", "GDPR Art. 12(3)")
    assert (uk.label, uk.reference) == ("UK GDPR", "UK GDPR Art. 12(3)")
    assert (ccpa.label, ccpa.reference) == ("CCPA/CPRA", "Cal. Civ. Code § 1798.130(a)(2)")
    for rules in (gdpr, uk):
        assert rules.due == Period(months=1)
        assert rules.extension == Extension(by=Period(months=2), times=1)
    assert ccpa.due == Period(days=45) and ccpa.extension == Extension(by=Period(days=45))
    assert all(rules.extension.records == ("reason", "notice_date") for rules in (gdpr, uk, ccpa))


def test_every_code_can_be_stored():
    max_length = DataRequest._meta.get_field("regulation").max_length
    labels = [rules.label for rules in regulations.TABLE.values()]
    assert len(set(labels)) == len(labels)
    for code, rules in regulations.TABLE.items():
        assert rules.code == code and re.fullmatch(r"[a-z][a-z0-9_]*", code)
        assert len(code) <= max_length


@pytest.mark.parametrize(
    ("code", "received", "due", "latest"),
    [
        ("gdpr", date(2025, 1, 31), date(2025, 2, 28), date(2025, 4, 28)),
        ("uk_gdpr", date(2024, 1, 31), date(2024, 2, 29), date(2024, 4, 29)),
        ("uk_gdpr", date(2025, 12, 31), date(2026, 1, 31), date(2026, 3, 31)),
        ("ccpa", date(2025, 1, 31), date(2025, 3, 17), date(2025, 5, 1)),
    ],
)
def test_due_dates_and_extension_limits(code, received, due, latest):
    assert regulations.due_date(code, received) == due
    assert regulations.latest_extension(code, due) == latest


def test_the_rule_in_words():
    assert regulations.rules_for("ccpa").describe() == (
        "CCPA/CPRA: 45 days from receipt, extendable once by up to 45 days, recording a reason "
        "and the date the data subject was told (Cal. Civ. Code § 1798.130(a)(2))."
    )
    assert FAKE.describe() == (
        "Fake Law 25: 10 days from receipt, extendable up to 2 times by up to 20 days in all, "
        "recording a reason (Fake Act s. 7(2))."
    )
    assert RIGID.describe() == (
        "Rigid Act: one calendar month from receipt, not extendable (Rigid Act s. 1)."
    )


def test_unknown_code():
    with pytest.raises(KeyError, match="hipaa"):
        regulations.due_date("hipaa", date(2025, 1, 1))


# --- a new entry, picked up everywhere ---------------------------------------------------------


def test_model_and_intake_form(fake, officer, client):
    today = timezone.localdate()
    form = IntakeForm(
        data={
            "kind": "export",
            "regulation": fake.code,
            "received_at": today.isoformat(),
            "subject_reference": "T-1",
            "identifiers": "reg-1\n",
        }
    )
    assert (fake.code, fake.label) in list(form.fields["regulation"].choices)
    assert fake.describe() in str(form.fields["regulation"].help_text)
    assert form.is_valid(), form.errors
    req = form.save(user=officer)
    assert req.due_at == today + timedelta(days=10)
    assert req.get_regulation_display() == "Fake Law 25" and req.regulation_rules == fake
    sign_in(client, officer)
    page = client.get("/requests/new/").content.decode()
    assert "Fake Law 25" in page and "Fake Act s. 7(2)" in page
    assert fake.label in client.get(req.get_absolute_url()).content.decode()


def _extend(req, officer, until, notice_date=None):
    deadlines.extend(
        DataRequest.objects.get(pk=req.pk),
        actor=officer,
        until=until,
        reason="Many devices",
        notice_date=notice_date,
    )


def test_deadlines(fake, officer):
    req = make_request(officer, ["reg-1"], regulation=fake.code)
    assert req.due_at == timezone.localdate() + timedelta(days=10)
    assert deadlines.extension_limit(req) == req.due_at + timedelta(days=20)
    with pytest.raises(ValueError, match=r"^Fake Law 25 allows an extension up to .*s\. 7\(2\)"):
        _extend(req, officer, req.due_at + timedelta(days=21))
    # Twice, within 20 days in all, with a reason and (not required here) no notice date.
    _extend(req, officer, req.due_at + timedelta(days=5))
    _extend(req, officer, req.due_at + timedelta(days=20))
    assert DataRequest.objects.get(pk=req.pk).extended_until == req.due_at + timedelta(days=20)
    with pytest.raises(ValueError, match="under Fake Law 25 a deadline can be extended at most 2"):
        _extend(req, officer, req.due_at + timedelta(days=20))


def test_a_regulation_without_extensions(fake, officer):
    req = make_request(officer, ["reg-1"], regulation="rigid")
    assert req.due_at == add_months(timezone.localdate(), 1)
    assert deadlines.extension_limit(req) == req.due_at
    with pytest.raises(ValueError, match=r"Rigid Act allows no extension .*\(Rigid Act s\. 1\)"):
        _extend(req, officer, req.due_at + timedelta(days=1), notice_date=timezone.localdate())


def test_api_and_its_document(fake, officer, monkeypatch):
    monkeypatch.setattr(intake, "configured_hub_names", set)
    _, raw = issue_token(officer)
    body = {
        "kind": "export",
        "regulation": fake.code,
        "subject_reference": "T-1",
        "identifiers": [{"registration_id": "reg-1"}],
    }
    client = Client(headers={"Authorization": f"Bearer {raw}"})
    created = client.post("/api/v1/requests", body, content_type="application/json")
    assert created.status_code == 201, created.json()
    assert created.json()["regulation"] == fake.code
    assert created.json()["due_at"] == (timezone.localdate() + timedelta(days=10)).isoformat()
    refused = client.post(
        "/api/v1/requests", {**body, "regulation": "hipaa"}, content_type="application/json"
    )
    assert refused.json()["fields"]["regulation"] == [
        "must be one of: gdpr, uk_gdpr, ccpa, fake_law, rigid"
    ]
    schemas = client.get("/api/v1/openapi.json").json()["components"]["schemas"]
    for name in ("NewRequest", "RequestSummary", "Request"):
        assert schemas[name]["properties"]["regulation"]["enum"][-2:] == ["fake_law", "rigid"]


def test_register(fake, officer):
    req = make_request(officer, ["reg-1"], regulation=fake.code)
    rows = list(
        csv.DictReader(io.StringIO("".join(register_lines(req.received_at, req.received_at))))
    )
    (row,) = rows
    assert (row["regulation"], row["regulation_label"], row["legal_reference"]) == (
        "fake_law",
        "Fake Law 25",
        "Fake Act s. 7(2)",
    )


@pytest.fixture
def azure(serve_simulator):  # noqa: F811
    """The simulator, throttled (and paced) at 60x Azure's rates, as in test_fulfilment."""
    return serve_simulator(throttle_scale=60)


@pytest.mark.django_db(transaction=True)
def test_planner_archive_and_certificate(fake, azure, officer, approver, approver2, run_jobs):
    ids, _, _ = pick_mix(azure)
    request = make_request(officer, ids[:2], kind="export_and_erasure", regulation=fake.code)
    request = approve(plan(request, officer, run_jobs), approver, approver2)
    run_jobs()
    request.refresh_from_db()
    assert request.status == Status.COMPLETED, request.failure
    data_dir = Path(django_settings.DSR_DATA_DIR)
    archive = request.artifacts.get(kind=Artifact.Kind.EXPORT_ARCHIVE)
    with zipfile.ZipFile(data_dir / archive.path) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        readme = zf.read("README.txt").decode()
    assert manifest["request"]["regulation"] == "fake_law"
    assert "Regulation:  Fake Law 25" in readme
    certificate = request.artifacts.get(kind=Artifact.Kind.CERTIFICATE_JSON)
    cert = json.loads((data_dir / certificate.path).read_bytes())
    assert cert["request"]["regulation"] == "fake_law"
    assert cert["request"]["regulation_label"] == "Fake Law 25"
