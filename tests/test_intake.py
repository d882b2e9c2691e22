"""Taking in a request through the officer's form: every input rule, and nothing half-stored."""

from datetime import date, timedelta

import pytest
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from requests_app.intake import rules as intake
from requests_app.models import (
    AuditEvent,
    DataRequest,
    Kind,
    ReferenceCounter,
    Regulation,
    RequestIdentifier,
    Status,
)
from tests.conftest import sign_in

URL = "/requests/new/"
HUB = "hub-1.azure-devices.net"
CONFIGURED_HUB_NAMES = intake.configured_hub_names  # the real one, before the fixture patches it


@pytest.fixture(autouse=True)
def hubs(monkeypatch):
    monkeypatch.setattr(intake, "configured_hub_names", lambda: {HUB})


@pytest.fixture
def officer_client(client, officer):
    sign_in(client, officer)
    return client


def submit(client, files=None, **fields):
    data = {
        "kind": "erasure",
        "regulation": "gdpr",
        "received_at": timezone.localdate().isoformat(),
        "subject_reference": "TICKET-4711",
        "identifiers": "reg-1\n",
        "block_reprovisioning": "on",
    }
    data.update(fields)
    data = {name: value for name, value in data.items() if value is not None}
    if files:
        data.update(files)
    return client.post(URL, data)


def errors(response, field="identifiers"):
    assert response.status_code == 200, response.status_code
    return response.context["form"].errors.get(field, [])


def assert_nothing_stored():
    assert DataRequest.objects.count() == 0
    assert RequestIdentifier.objects.count() == 0
    assert not AuditEvent.objects.filter(action="request_created").exists()
    assert not ReferenceCounter.objects.filter(last__gt=0).exists()


def csv_file(content, name="ids.csv"):
    return {"csv_file": SimpleUploadedFile(name, content, content_type="text/csv")}


# --- the page --------------------------------------------------------------------------------


def test_dates_are_entered_as_iso_text(officer_client):
    """A date input would show the browser's mm/dd/yyyy; the portal writes YYYY-MM-DD."""
    page = officer_client.get(URL).content.decode()
    assert 'placeholder="YYYY-MM-DD"' in page and 'type="date"' not in page
    response = submit(officer_client, received_at="03/31/2026")
    assert errors(response, "received_at") == ["Enter the date as YYYY-MM-DD, e.g. 2026-03-31."]
    assert_nothing_stored()


def test_dev_mode_offers_the_simulators_sample_ids(officer_client, settings, tmp_path):
    from requests_app.intake import samples as devsamples
    from simulator.app import Simulator
    from simulator.server import serve

    sim = Simulator(seed=1, devices=20)
    server = serve(sim)
    try:
        devsamples.write(tmp_path / "samples.json", server.url)
    finally:
        server.shutdown()
    settings.DSR_DEV_SAMPLES = str(tmp_path / "samples.json")
    settings.DEBUG = False
    assert "dev-samples" not in officer_client.get(URL).content.decode()  # never in production
    settings.DEBUG = True
    page = officer_client.get(URL).content.decode()
    samples = sim.samples()
    assert samples["individual_symmetric"][0] in page
    hub_only = samples["hub_only"][0]
    hub = next(
        h
        for h, s in sim.state()["hubs"].items()
        if any(d["deviceId"] == hub_only for d in s["devices"])
    )
    assert f"{hub_only}@{hub}" in page  # hub-only devices are written device@hub
    assert "Provisioned through an enrollment group" in page


def test_form_defaults(officer_client):
    response = officer_client.get(URL)
    assert response.status_code == 200
    page = response.content.decode()
    assert f'value="{timezone.localdate().isoformat()}"' in page
    assert "checked" in str(response.context["form"]["block_reprovisioning"])
    assert "device-id@hub-name.azure-devices.net" in page
    assert "Keep personal data" in page
    assert 'enctype="multipart/form-data"' in page


def test_only_officers(client, approver, auditor):
    assert client.get(URL).status_code == 302  # to the login page
    for user in (approver, auditor):
        sign_in(client, user)
        assert client.get(URL).status_code == 404  # not theirs: as if it did not exist
        assert submit(client).status_code == 404
    assert DataRequest.objects.count() == 0


# --- creation --------------------------------------------------------------------------------


def test_creates_a_draft_with_identifiers_and_audit(officer_client, officer):
    today = timezone.localdate()
    pasted = f"reg-1\n\n  dev-7@{HUB.upper()}  \nreg.2:x_y\n"
    response = submit(officer_client, identifiers=pasted)
    req = DataRequest.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/requests/{req.reference}/"
    assert req.reference == f"DSR-{today.year}-0001"
    assert req.status == Status.DRAFT
    assert req.kind == Kind.ERASURE and req.regulation == Regulation.GDPR
    assert req.received_at == today
    assert req.subject_reference == "TICKET-4711"
    assert req.block_reprovisioning is True
    assert req.created_by == officer and req.created_via == "form"
    rows = list(req.identifiers.values_list("line", "registration_id", "device_id", "hub"))
    assert rows == [(1, "reg-1", "", ""), (3, "", "dev-7", HUB), (4, "reg.2:x_y", "", "")]
    event = AuditEvent.objects.get(action="request_created")
    assert event.request_ref == req.reference and event.actor_user == officer
    assert event.details == {
        "via": "form",
        "identifiers": 3,
        "kind": "erasure",
        "regulation": "gdpr",
    }
    assert "TICKET-4711" not in event.canonical() and "reg-1" not in event.canonical()
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    assert any(req.reference in message for message in shown)


def test_references_count_up_per_year(officer_client):
    year = timezone.localdate().year
    for _ in range(3):
        assert submit(officer_client).status_code == 302
    references = sorted(DataRequest.objects.values_list("reference", flat=True))
    assert references == [f"DSR-{year}-0001", f"DSR-{year}-0002", f"DSR-{year}-0003"]


def test_device_id_with_every_allowed_character(officer_client):
    device = "a-.+%_#*?!(),:=@$'Z9"
    response = submit(officer_client, identifiers=f"{device}@{HUB}")
    assert response.status_code == 302
    # The hub is after the last "@"; device IDs may hold "@" themselves.
    assert RequestIdentifier.objects.get().device_id == device


def test_block_reprovisioning_is_ignored_for_an_export(officer_client):
    submit(officer_client, kind="export", block_reprovisioning="on")
    submit(officer_client, kind="erasure", block_reprovisioning=None)
    submit(officer_client, kind="export_and_erasure", block_reprovisioning="on")
    stored = dict(DataRequest.objects.values_list("kind", "block_reprovisioning"))
    assert stored == {"export": False, "erasure": False, "export_and_erasure": True}


def test_duplicates_are_collapsed_and_said_so(officer_client):
    pasted = "Reg-1\nreg-2\nreg-3\nreg-4\nREG-1\nreg-5\nreg-6\nreg-7\nREG-2\n"
    response = submit(officer_client, identifiers=pasted)
    assert response.status_code == 302
    assert RequestIdentifier.objects.count() == 7
    assert RequestIdentifier.objects.first().registration_id == "Reg-1"
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    assert "2 duplicate identifiers collapsed (lines 5, 9)" in shown


# --- invalid input: errors by line, nothing stored, input kept ------------------------------


def test_bad_characters_are_reported_by_line(officer_client):
    response = submit(officer_client, identifiers="reg-1\nreg-2\nreg-3\na b\nbad/one!\n")
    assert errors(response) == [
        "line 4: registration ID 'a b' has characters Azure does not allow: ' '",
        "line 5: registration ID 'bad/one!' has characters Azure does not allow: '/', '!'",
    ]
    page = response.content.decode()
    assert "line 4: registration ID" in page and "Nothing was saved" in page
    assert "reg-3\na b" in page and "TICKET-4711" in page  # the input is kept
    assert_nothing_stored()


def test_bad_device_id_and_non_ascii(officer_client):
    response = submit(officer_client, identifiers=f"dev/1@{HUB}\nrég-1\n")
    assert errors(response) == [
        "line 1: device ID 'dev/1' has characters Azure does not allow: '/'",
        "line 2: registration ID 'rég-1' has characters Azure does not allow: 'é'",
    ]
    assert_nothing_stored()


def test_too_long(officer_client):
    ok, too_long = "r" * 128, "r" * 129
    response = submit(officer_client, identifiers=f"{ok}\n{too_long}\n{'d' * 129}@{HUB}")
    found = errors(response)
    assert len(found) == 2
    assert found[0].startswith("line 2: registration ID 'rrrr")
    assert found[0].endswith("is 129 characters long; Azure allows at most 128")
    assert found[1].startswith("line 3: device ID")
    assert_nothing_stored()


def test_unknown_hub(officer_client):
    response = submit(officer_client, identifiers="dev-1@other.azure-devices.net\ndev-2@")
    assert errors(response) == [
        f"line 1: hub 'other.azure-devices.net' is not configured; configured hubs: {HUB}",
        "line 2: device ID 'dev-2' needs its hub",
    ]
    assert_nothing_stored()


def test_no_hub_configured(officer_client, monkeypatch):
    monkeypatch.setattr(intake, "configured_hub_names", set)
    response = submit(officer_client, identifiers=f"dev-1@{HUB}")
    assert "no IoT hubs are configured" in errors(response)[0]


def test_configured_hub_names_from_the_targets_file(settings, tmp_path):
    settings.DSR_AZURE_TARGETS = ""
    assert CONFIGURED_HUB_NAMES() == set()
    settings.DSR_AZURE_TARGETS = str(tmp_path / "missing.toml")
    assert CONFIGURED_HUB_NAMES() == set()
    targets = tmp_path / "targets.toml"
    targets.write_text('[[hub]]\nhostname = "Hub-9.azure-devices.net"\nauth = "entra"\n')
    settings.DSR_AZURE_TARGETS = str(targets)
    assert CONFIGURED_HUB_NAMES() == {"hub-9.azure-devices.net"}


def test_empty_list_refused(officer_client):
    response = submit(officer_client, identifiers="\n  \n")
    assert errors(response) == [
        "Paste at least one identifier, upload a CSV file, or enter the subject's key to find "
        "their devices."
    ]
    assert_nothing_stored()


def test_over_ten_thousand_refused(officer_client):
    pasted = "\n".join(f"reg-{n}" for n in range(10_001))
    response = submit(officer_client, identifiers=pasted)
    (message,) = errors(response)
    assert "More than 10,000 identifiers" in message and "at most 10,000" in message
    assert_nothing_stored()


def test_ten_thousand_accepted(officer_client):
    pasted = "\n".join(f"reg-{n}" for n in range(10_000))
    assert submit(officer_client, identifiers=pasted).status_code == 302
    assert RequestIdentifier.objects.count() == 10_000


def test_error_list_is_capped(officer_client):
    response = submit(officer_client, identifiers="\n".join("bad id" for _ in range(80)))
    found = errors(response)
    assert len(found) == intake.MAX_REPORTED_ERRORS + 1
    assert found[-1] == "… and 30 more lines with errors"


def test_future_received_date(officer_client):
    tomorrow = timezone.localdate() + timedelta(days=1)
    response = submit(officer_client, received_at=tomorrow.isoformat())
    assert errors(response, "received_at") == ["The received date cannot be in the future."]
    assert_nothing_stored()


def test_received_date_over_a_year_ago(officer_client):
    old = timezone.localdate() - timedelta(days=400)
    response = submit(officer_client, received_at=old.isoformat())
    assert "more than a year ago" in errors(response, "received_at")[0]
    assert_nothing_stored()


def test_subject_reference_rules(officer_client):
    response = submit(officer_client, subject_reference="jane.doe@example.com")
    assert errors(response, "subject_reference") == [
        "Use a ticket number or pseudonym, not an email address."
    ]
    response = submit(officer_client, subject_reference="  ")
    assert errors(response, "subject_reference")
    assert_nothing_stored()


def test_unknown_kind_and_regulation(officer_client):
    response = submit(officer_client, kind="delete-everything", regulation="hipaa")
    assert errors(response, "kind") and errors(response, "regulation")
    assert_nothing_stored()


# --- CSV -------------------------------------------------------------------------------------


def test_csv_with_bom_crlf_and_quotes(officer_client):
    content = (
        "\ufeffRegistration_ID,device_id,hub,notes\r\n"
        '"reg-1",,,"a, quoted note"\r\n'
        f',"dev,1",{HUB},\r\n'
        "\r\n"
        f'reg-2,dev-2,"{HUB}",x\r\n'
    ).encode()
    response = submit(officer_client, identifiers="", files=csv_file(content))
    assert response.status_code == 302, response.context["form"].errors
    rows = list(
        RequestIdentifier.objects.values_list("line", "registration_id", "device_id", "hub")
    )
    assert rows == [(2, "reg-1", "", ""), (3, "", "dev,1", HUB), (5, "reg-2", "dev-2", HUB)]


def test_csv_errors_name_the_file_line(officer_client):
    content = (
        "device_id,hub\n"
        f"dev-1,{HUB}\n"
        '"multi\nline",x\n'  # one record over two lines: reported where it starts
        "dev-3,\n"
        f"dev-1,{HUB}\n"
    ).encode()
    response = submit(officer_client, identifiers="", files=csv_file(content))
    assert errors(response, "csv_file") == [
        "line 3: device ID 'multi\\nline' has characters Azure does not allow: '\\n'; "
        "hub 'x' is not configured; configured hubs: hub-1.azure-devices.net",
        "line 5: device ID 'dev-3' needs its hub",
    ]
    assert "choose the CSV file again" in response.content.decode()
    assert_nothing_stored()


def test_csv_semicolons(officer_client):
    content = b"registration_id;hub;device_id\nreg-1;;\n;" + HUB.encode() + b";dev-1\n"
    response = submit(officer_client, identifiers="", files=csv_file(content))
    assert response.status_code == 302
    assert RequestIdentifier.objects.count() == 2


def test_csv_missing_columns(officer_client):
    response = submit(officer_client, identifiers="", files=csv_file(b"device_id,name\nd1,x\n"))
    (message,) = errors(response, "csv_file")
    assert message.startswith("The first line of the file must name the columns")
    assert "It names: device_id, name." in message
    assert_nothing_stored()


def test_csv_header_only_is_empty(officer_client):
    response = submit(officer_client, identifiers="", files=csv_file(b"registration_id\r\n"))
    assert errors(response, "csv_file") == ["No identifiers given: name at least one device."]
    response = submit(officer_client, identifiers="", files=csv_file(b""))
    assert errors(response, "csv_file") == ["The submitted file is empty."]
    assert_nothing_stored()


def test_csv_over_five_megabytes(officer_client):
    content = b"registration_id\n" + b"r" * (5 * 1024 * 1024)
    response = submit(officer_client, identifiers="", files=csv_file(content))
    (message,) = errors(response, "csv_file")
    assert "the limit is 5 MB" in message
    assert_nothing_stored()


def test_csv_not_utf8(officer_client):
    response = submit(officer_client, identifiers="", files=csv_file(b"registration_id\nr\xe9g\n"))
    assert "not UTF-8" in errors(response, "csv_file")[0]


def test_pasted_and_csv_together_refused(officer_client):
    response = submit(officer_client, files=csv_file(b"registration_id\nreg-9\n"))
    assert errors(response) == ["Paste the identifiers or upload a CSV file, not both at once."]
    assert_nothing_stored()


# --- deadlines and references (create_request directly: dates the form would refuse) --------


def make(officer, received, regulation=Regulation.GDPR):
    return intake.create_request(
        user=officer,
        kind=Kind.EXPORT,
        regulation=regulation,
        received_at=received,
        subject_reference="T-1",
        identifiers=[intake.Identifier(1, "reg-1")],
        block_reprovisioning=True,
    )


@pytest.mark.parametrize(
    ("regulation", "received", "due"),
    [
        (Regulation.GDPR, date(2025, 1, 31), date(2025, 2, 28)),
        (Regulation.GDPR, date(2024, 1, 31), date(2024, 2, 29)),
        (Regulation.GDPR, date(2025, 3, 15), date(2025, 4, 15)),
        (Regulation.GDPR, date(2025, 12, 31), date(2026, 1, 31)),
        (Regulation.CCPA, date(2025, 1, 31), date(2025, 3, 17)),
        (Regulation.CCPA, date(2024, 12, 1), date(2025, 1, 15)),
    ],
)
def test_due_dates(officer, regulation, received, due):
    req = make(officer, received, regulation)
    assert req.due_at == due
    assert req.block_reprovisioning is False  # an export


def test_reference_year_is_the_received_year(officer):
    assert make(officer, date(2024, 12, 30)).reference == "DSR-2024-0001"
    assert make(officer, date(2025, 1, 2)).reference == "DSR-2025-0001"
    assert make(officer, date(2024, 6, 1)).reference == "DSR-2024-0002"


def test_form_computes_the_due_date(officer_client):
    received = timezone.localdate() - timedelta(days=10)
    submit(officer_client, regulation="ccpa", received_at=received.isoformat())
    assert DataRequest.objects.get().due_at == received + timedelta(days=45)


def test_one_duplicate_notice(officer_client):
    response = submit(officer_client, identifiers="reg-1\nREG-1")
    shown = [str(message) for message in get_messages(response.wsgi_request)]
    assert "1 duplicate identifier collapsed (line 2)" in shown


def test_identifier_rules_directly():
    assert intake.check_registration_id("abc-DEF.1_2:3") == ""
    assert intake.check_registration_id("a@b")
    assert intake.check_device_id("a@b") == ""
