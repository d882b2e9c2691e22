"""Reports: the register CSV, a request's evidence PDF, the audit chain page and the audit log
in JSON lines, checked offline by the script the documentation gives."""

import csv
import io
import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from requests_app.evidence.certificate import build_certificate
from requests_app.models import (
    Approval,
    AuditEvent,
    DataRequest,
    Operation,
    PlannedDevice,
    Status,
)
from requests_app.models.audit import verify_chain
from requests_app.reporting.register import HEADER, parse_period, safe_cell
from tests.conftest import sign_in
from tests.lifecycle_helpers import make_request

DOC = Path(__file__).resolve().parent.parent / "docs" / "verify-audit-offline.md"
HUB = "demo-hub-1.azure-devices.net"


@pytest.fixture
def data_dir(settings, tmp_path):
    settings.DSR_DATA_DIR = tmp_path / "data"
    return settings.DSR_DATA_DIR


def walk(req, *statuses, actor=None):
    for status in statuses:
        req.transition(status, actor=actor)
    req.refresh_from_db()
    return req


def completed_request(officer, approver, approver2=None, *, received=None):
    req = make_request(officer, ["reg-1"], kind="erasure")
    if received:
        DataRequest.objects.filter(pk=req.pk).update(
            received_at=received, due_at=received + timedelta(days=30)
        )
        req.refresh_from_db()
    device = PlannedDevice.objects.create(
        request=req,
        position=0,
        registration_id="reg-1",
        device_id="dev-1",
        hub=HUB,
        state=PlannedDevice.State.FOUND,
        has_device=True,
    )
    walk(req, Status.PLANNING, Status.AWAITING_APPROVAL, actor=officer)
    for who, ip in ((approver, "198.51.100.7"), (approver2, "203.0.113.9")):
        if who is not None:
            Approval.objects.create(
                request=req,
                approver=who,
                approver_name=who.username,
                plan_version="v1",
                decision=Approval.Decision.APPROVED,
                via="link",
                ip=ip,
            )
    walk(req, Status.APPROVED, Status.RUNNING, actor=approver)
    now = timezone.now()
    for seq, phase, method, http_status, state in (
        (1, Operation.Phase.ERASURE, "DELETE", 204, Operation.State.DONE),
        (2, Operation.Phase.VERIFY, "GET", 404, Operation.State.DONE),
    ):
        Operation.objects.create(
            request=req,
            device=device,
            seq=seq,
            phase=phase,
            action=f"iothub.device.{phase}",
            method=method,
            host=HUB,
            path="/devices/dev-1",
            state=state,
            http_status=http_status,
            azure_request_id=f"REQID{seq}abc",
            tracking_id=f"TRACK{seq}xyz",
            started_at=now,
            finished_at=now,
        )
    return walk(req, Status.COMPLETED)


def download(response):
    return b"".join(response.streaming_content)


def pdf_text_of(body):
    """The text drawn in a PDF made by fpdf2 (each page stream read by its /Length)."""
    from tests.test_certificate import pdf_text_content

    return pdf_text_content(body)


def documented_script(tmp_path):
    """The offline verifier the guide documents (one file, standard library only)."""
    script = DOC.parent / "verify_audit_offline.py"
    assert script.name in DOC.read_text(encoding="utf-8")
    return script


def run_script(script, path, *extra):
    # -I -S: isolated, without site-packages, as on an auditor's laptop.
    return subprocess.run(
        [sys.executable, "-I", "-S", str(script), str(path), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


# --- period parsing and cells --------------------------------------------------------------
@pytest.mark.parametrize(
    "value, expected",
    [
        ("=1+2", "'=1+2"),
        ("+33 1", "'+33 1"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain = fine", "plain = fine"),
        (None, ""),
        (12, "12"),
    ],
)
def test_safe_cell_neutralises_formulas(value, expected):
    assert safe_cell(value) == expected


@pytest.mark.parametrize(
    "params, message",
    [
        ({}, "Missing 'from'"),
        ({"from": "2026-01-01"}, "Missing 'to'"),
        ({"from": "01/02/2026", "to": "2026-02-01"}, "YYYY-MM-DD"),
        ({"from": "20260101", "to": "2026-02-01"}, "YYYY-MM-DD"),
        ({"from": "2026-02-30", "to": "2026-03-01"}, "not a real date"),
        ({"from": "2026-03-02", "to": "2026-03-01"}, "after"),
    ],
)
def test_parse_period_refuses_bad_periods(params, message):
    with pytest.raises(ValueError, match=message):
        parse_period(params)


def test_parse_period_accepts_a_single_day():
    assert parse_period({"from": "2026-03-01", "to": "2026-03-01"}) == (
        date(2026, 3, 1),
        date(2026, 3, 1),
    )


# --- register --------------------------------------------------------------------------------
def test_register_csv_rows_headers_and_audit(
    client, officer, approver, approver2, auditor, data_dir
):
    today = timezone.localdate()
    done = completed_request(officer, approver, approver2)
    rejected = make_request(officer, ["reg-2"])
    walk(rejected, Status.PLANNING, Status.AWAITING_APPROVAL)
    DataRequest.objects.filter(pk=rejected.pk).update(
        rejection_reason='=HYPERLINK("http://evil.example","click")',
        extended_until=today + timedelta(days=60),
        extension_reason="@complex case",
        created_via="api",
    )
    walk(rejected, Status.REJECTED)
    open_late = make_request(officer, ["reg-3"])
    DataRequest.objects.filter(pk=open_late.pk).update(due_at=today - timedelta(days=1))
    outside = make_request(officer, ["reg-4"])
    DataRequest.objects.filter(pk=outside.pk).update(received_at=today - timedelta(days=400))

    client.force_login(auditor)
    period = {"from": (today - timedelta(days=10)).isoformat(), "to": today.isoformat()}
    response = client.get(reverse("register_csv"), period)
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert "no-store" in response["Cache-Control"]
    assert response["Content-Disposition"] == (
        f'attachment; filename="dsr-register-{period["from"]}-to-{period["to"]}.csv"'
    )
    rows = list(csv.reader(io.StringIO(download(response).decode("utf-8"))))
    assert tuple(rows[0]) == HEADER
    by_ref = {row[0]: dict(zip(HEADER, row, strict=True)) for row in rows[1:]}
    assert set(by_ref) == {done.reference, rejected.reference, open_late.reference}

    row = by_ref[done.reference]
    assert row["kind"] == "erasure" and row["regulation"] == "gdpr"
    assert row["received_via"] == "form"
    assert row["received"] == today.isoformat()
    assert row["approved_by"] == f"{approver.username};{approver2.username}"
    assert row["approved_at"].startswith(today.isoformat())
    assert row["completed"] == today.isoformat()
    assert row["outcome"] == "completed"
    assert row["days_taken"] == "0"
    assert row["on_time"] == "yes"

    row = by_ref[rejected.reference]
    assert row["received_via"] == "api"
    assert row["outcome"] == "rejected"
    assert row["rejection_or_cancellation_reason"].startswith("'=HYPERLINK(")
    assert row["extension_reason"] == "'@complex case"
    assert row["extended_until"] == (today + timedelta(days=60)).isoformat()
    assert row["approved_by"] == ""

    row = by_ref[open_late.reference]
    assert row["completed"] == "" and row["days_taken"] == ""
    assert row["on_time"] == "open, overdue"

    event = AuditEvent.objects.filter(action="report_downloaded").get()
    assert event.details["kind"] == "register"
    assert event.details["from"] == period["from"] and event.details["to"] == period["to"]
    assert event.actor_name == auditor.username


def test_register_days_taken_and_late_completion(client, officer, approver, auditor, data_dir):
    received = timezone.localdate() - timedelta(days=40)
    req = completed_request(officer, approver, received=received)
    client.force_login(auditor)
    response = client.get(
        reverse("register_csv"), {"from": received.isoformat(), "to": received.isoformat()}
    )
    rows = list(csv.DictReader(io.StringIO(download(response).decode("utf-8"))))
    assert [row["reference"] for row in rows] == [req.reference]
    assert rows[0]["days_taken"] == "40"
    assert rows[0]["on_time"] == "no"


def test_register_queries_do_not_grow_with_requests(
    client, officer, approver, auditor, data_dir, django_assert_max_num_queries
):
    for _ in range(6):
        completed_request(officer, approver)
    client.force_login(auditor)
    today = timezone.localdate().isoformat()
    response = client.get(reverse("register_csv"), {"from": today, "to": today})
    with django_assert_max_num_queries(4):
        body = download(response)
    assert body.count(b"\n") == 7


@pytest.mark.parametrize(
    "query",
    ["", "?from=2026-01-01", "?from=yesterday&to=2026-01-02", "?from=2026-02-01&to=2026-01-01"],
)
def test_register_bad_period_is_400_with_a_message(client, officer, query):
    client.force_login(officer)
    response = client.get(reverse("register_csv") + query)
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/plain")
    assert "YYYY-MM-DD" in response.content.decode() or "after" in response.content.decode()
    assert not AuditEvent.objects.filter(action="report_downloaded").exists()


def test_register_and_audit_pages_refuse_approvers(client, approver):
    sign_in(client, approver)
    period = {"from": "2026-01-01", "to": "2026-01-31"}
    assert client.get(reverse("register_csv"), period).status_code == 404
    assert client.get(reverse("audit_log_jsonl"), period).status_code == 404
    assert client.get(reverse("audit_chain")).status_code == 404
    assert client.get(reverse("reports")).status_code == 404
    assert not AuditEvent.objects.filter(action="report_downloaded").exists()


def test_officers_get_the_register_but_not_the_audit_log(client, officer):
    client.force_login(officer)
    period = {"from": "2026-01-01", "to": "2026-01-31"}
    assert client.get(reverse("register_csv"), period).status_code == 200
    assert client.get(reverse("reports")).status_code == 200
    assert client.get(reverse("audit_log_jsonl"), period).status_code == 404
    assert client.get(reverse("audit_chain")).status_code == 404


def test_reports_page_links_downloads_for_auditors(client, auditor):
    client.force_login(auditor)
    page = client.get(reverse("reports")).content.decode()
    assert reverse("register_csv") in page
    assert reverse("audit_log_jsonl") in page
    assert 'type="date"' in page
    nav = client.get(reverse("home")).content.decode()
    assert reverse("audit_chain") in nav


def test_reports_page_offers_officers_only_the_period_reports_of_their_role(client, officer):
    client.force_login(officer)
    page = client.get(reverse("reports")).content.decode()
    assert f'action="{reverse("register_csv")}"' in page
    assert 'id="register-from"' in page
    assert reverse("audit_log_jsonl") not in page
    assert reverse("audit_chain") not in page.split("<main", 1)[-1]


def test_a_period_report_is_one_entry_on_the_reports_page(client, auditor, monkeypatch):
    """Adding a report of a period: an entry of PERIOD_REPORTS (plus its view and route)."""
    from requests_app.views import reports

    extra = reports.PeriodReport(
        slug="overdue",
        url_name="register_csv",
        title="Overdue requests",
        about="Requests answered late.",
        button="Download the overdue requests",
        roles=reports.access.AUDIT_ROLES,
        kind="overdue",
        filename="dsr-overdue-{start}-to-{end}.csv",
        content_type="text/csv; charset=utf-8",
    )
    monkeypatch.setattr(reports, "PERIOD_REPORTS", (*reports.PERIOD_REPORTS, extra))
    client.force_login(auditor)
    page = client.get(reverse("reports")).content.decode()
    assert "Overdue requests" in page
    assert 'id="overdue-from"' in page
    assert "Download the overdue requests" in page

    # Its view is one line: the role, the period, the event and the download come with it.
    from django.test import RequestFactory

    request = RequestFactory().get("/x", {"from": "2026-01-01", "to": "2026-01-31"})
    request.user = auditor
    response = reports._period_download(request, extra, lambda start, end: iter([b"a,b\n"]))
    assert b"".join(response.streaming_content) == b"a,b\n"
    assert response["Content-Disposition"] == (
        'attachment; filename="dsr-overdue-2026-01-01-to-2026-01-31.csv"'
    )
    assert AuditEvent.objects.filter(action="report_downloaded", details__kind="overdue").exists()
    request.GET = request.GET.copy()
    request.GET["to"] = "2025-01-01"
    assert reports._period_download(request, extra, None).status_code == 400


# --- evidence report -------------------------------------------------------------------------
def test_evidence_pdf_for_a_completed_request(client, officer, approver, auditor, data_dir):
    req = completed_request(officer, approver)
    json_artifact, pdf_artifact = build_certificate(req)
    certified_head = json.loads((Path(data_dir) / json_artifact.path).read_bytes().decode("utf-8"))[
        "audit_chain"
    ]["head_hash"]

    client.force_login(auditor)
    response = client.get(reverse("evidence_pdf", args=[req.reference]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert "no-store" in response["Cache-Control"]
    assert response["Content-Disposition"] == (
        f'attachment; filename="{req.reference}-evidence.pdf"'
    )
    body = response.content
    assert body.startswith(b"%PDF")
    text = pdf_text_of(body)
    for expected in (
        req.reference,
        "Summary",
        "Timeline",
        "status_changed",
        approver.username,
        "198.51.100.7",
        "REQID1abc",
        "TRACK2xyz",
        "Verification results",
        "absent",
        pdf_artifact.sha256[:32],
        json_artifact.sha256[:32],
        certified_head[:32],
        "deletion certificate",
        "At report time: verified",
    ):
        assert expected in text, expected

    event = AuditEvent.objects.filter(action="report_downloaded").get()
    assert event.request_ref == req.reference
    assert event.details["kind"] == "evidence"
    assert event.actor_name == auditor.username


def test_evidence_pdf_without_certificate_uses_the_chain_at_completion(
    client, officer, approver, data_dir
):
    req = completed_request(officer, approver)
    last = AuditEvent.objects.filter(created_at__lte=req.completed_at).order_by("-seq").first()
    AuditEvent.record("later_event")
    client.force_login(officer)
    response = client.get(reverse("evidence_pdf", args=[req.reference]))
    assert response.status_code == 200
    text = pdf_text_of(response.content)
    assert f"#{last.seq}" in text
    assert last.hash[:32] in text


def test_evidence_pdf_handles_text_outside_latin1(client, officer, data_dir):
    req = make_request(officer, ["capteur-é"])
    DataRequest.objects.filter(pk=req.pk).update(subject_reference="TICKET-✓-漢字")
    client.force_login(officer)
    response = client.get(reverse("evidence_pdf", args=[req.reference]))
    assert response.status_code == 200
    assert "TICKET-\\\\u2713" in pdf_text_of(response.content)


def test_evidence_pdf_refused_to_approvers_and_unknown_references(client, officer, approver):
    req = make_request(officer, ["reg-1"])
    sign_in(client, approver)
    assert client.get(reverse("evidence_pdf", args=[req.reference])).status_code == 404
    client.force_login(officer)
    assert client.get(reverse("evidence_pdf", args=["DSR-1999-9999"])).status_code == 404
    assert not AuditEvent.objects.filter(action="report_downloaded").exists()


# --- audit chain page and log ----------------------------------------------------------------
def test_audit_chain_page_shows_a_good_chain(client, auditor, officer):
    for number in range(3):
        AuditEvent.record("something", number=number)
    client.force_login(auditor)  # writes a login event
    ok, count, head, _ = verify_chain()
    assert ok
    response = client.get(reverse("audit_chain"))
    page = response.content.decode()
    assert response.status_code == 200
    assert "Verified" in page
    assert f'<dd id="chain-count">{count}</dd>' in page
    assert head in page
    assert reverse("audit_log_jsonl") in page


def test_audit_chain_page_names_the_first_broken_event(client, admin_user):
    for number in range(4):
        AuditEvent.record("something", number=number)
    with connection.cursor() as cursor:
        bypass_append_only_trigger(cursor)
        cursor.execute(
            f"UPDATE {AuditEvent._meta.db_table} SET actor_name = %s WHERE seq = %s",
            ["mallory", 2],
        )
    sign_in(client, admin_user)
    page = client.get(reverse("audit_chain")).content.decode()
    assert "BROKEN" in page
    assert "event #2 was altered" in page


def test_audit_log_jsonl_lines_carry_every_hashed_field(client, auditor, officer):
    AuditEvent.record("note", actor=officer, request="DSR-2026-0001", text="naïve ✓", n=1.5)
    client.force_login(auditor)
    today = timezone.localdate().isoformat()
    response = client.get(reverse("audit_log_jsonl"), {"from": today, "to": today})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert response["Content-Disposition"] == (
        f'attachment; filename="dsr-audit-log-{today}-to-{today}.jsonl"'
    )
    lines = download(response).decode("utf-8").splitlines()
    events = list(AuditEvent.objects.order_by("seq"))
    assert len(lines) == len(events)  # the download's own event is included
    for text, event in zip(lines, events, strict=True):
        record = json.loads(text)
        assert set(record) == {
            "seq",
            "created_at",
            "actor_kind",
            "actor_user_id",
            "actor_name",
            "action",
            "request_ref",
            "details",
            "prev_hash",
            "hash",
        }
        assert record["created_at"] == event.created_at.isoformat(timespec="microseconds")
        assert record["hash"] == event.hash and record["prev_hash"] == event.prev_hash
    note = next(json.loads(line) for line in lines if json.loads(line)["action"] == "note")
    assert note["actor_user_id"] == officer.pk and note["details"]["text"] == "naïve ✓"
    last = AuditEvent.objects.order_by("-seq").first()
    assert last.action == "report_downloaded" and last.details["kind"] == "audit_log"


def test_documented_script_verifies_a_download_and_detects_a_modified_line(
    client, auditor, officer, tmp_path
):
    for number in range(5):
        AuditEvent.record("note", actor=officer, number=number, text="é ✓")
    client.force_login(auditor)
    today = timezone.localdate().isoformat()
    body = download(client.get(reverse("audit_log_jsonl"), {"from": today, "to": today}))
    good = tmp_path / "log.jsonl"
    good.write_bytes(body)
    script = documented_script(tmp_path)

    result = run_script(script, good)
    assert result.returncode == 0, result.stderr
    head = AuditEvent.objects.order_by("-seq").first().hash
    assert f"head (hash of the last line): {head}" in result.stdout
    assert "0" * 64 in result.stdout

    lines = body.decode("utf-8").splitlines(keepends=True)
    record = json.loads(lines[2])
    record["actor_name"] = "someone-else"
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("".join([*lines[:2], json.dumps(record) + "\n", *lines[3:]]), "utf-8")
    result = run_script(script, tampered)
    assert result.returncode == 1
    assert "BROKEN: event #3 was altered (hash mismatch)" in result.stdout

    # Rehashing the edited line does not help: the next line no longer links to it.
    import hashlib

    fields = {k: record[k] for k in record if k not in ("prev_hash", "hash")}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    record["hash"] = hashlib.sha256((record["prev_hash"] + canonical).encode()).hexdigest()
    tampered.write_text("".join([*lines[:2], json.dumps(record) + "\n", *lines[3:]]), "utf-8")
    result = run_script(script, tampered)
    assert result.returncode == 1
    assert "BROKEN: event #3 was replaced (event #4 links to a hash no event has)" in result.stdout

    removed = tmp_path / "removed.jsonl"
    removed.write_text("".join([*lines[:1], *lines[2:]]), "utf-8")
    result = run_script(script, removed)
    assert result.returncode == 1
    assert "BROKEN: event #2 is missing" in result.stdout


def test_a_later_period_is_anchored_on_the_earlier_head(client, auditor, tmp_path):
    old = AuditEvent.record("old_event")
    before = timezone.now() - timedelta(days=3)
    with connection.cursor() as cursor:  # move every event so far three days back, rehashed
        bypass_append_only_trigger(cursor)
        prev = "0" * 64
        for event in AuditEvent.objects.filter(seq__lte=old.seq).order_by("seq"):
            event.created_at, event.prev_hash = before, prev
            prev = event.compute_hash()
            cursor.execute(
                f"UPDATE {AuditEvent._meta.db_table} "
                "SET created_at = %s, prev_hash = %s, hash = %s WHERE id = %s",
                [before, event.prev_hash, prev, event.pk],
            )
        new_hash = prev
    AuditEvent.record("new_event")
    assert verify_chain()[0]
    client.force_login(auditor)
    today = timezone.localdate().isoformat()
    body = download(client.get(reverse("audit_log_jsonl"), {"from": today, "to": today}))
    path = tmp_path / "today.jsonl"
    path.write_bytes(body)
    result = run_script(documented_script(tmp_path), path, "--period")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"OK: events #{old.seq + 1} to #" in result.stdout
    assert f"anchor (prev_hash of the first line): {new_hash}" in result.stdout


def test_audit_log_bad_period_is_400(client, auditor):
    client.force_login(auditor)
    response = client.get(reverse("audit_log_jsonl"), {"from": "2026-01-01"})
    assert response.status_code == 400
    assert b"Missing 'to'" in response.content


def test_anonymous_users_are_sent_to_login(client, officer):
    req = make_request(officer, ["reg-1"])
    for url in (
        reverse("reports"),
        reverse("register_csv") + "?from=2026-01-01&to=2026-01-02",
        reverse("evidence_pdf", args=[req.reference]),
        reverse("audit_chain"),
        reverse("audit_log_jsonl") + "?from=2026-01-01&to=2026-01-02",
    ):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def bypass_append_only_trigger(cursor):
    """Edit the table as someone with database superuser rights could (PostgreSQL's trigger
    refuses ordinary updates; that is the point of these tampering tests)."""
    if connection.vendor == "postgresql":
        cursor.execute("SET LOCAL session_replication_role = replica")
