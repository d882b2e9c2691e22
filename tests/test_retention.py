"""Forgetting on time: export archives go DSR_EXPORT_RETENTION_DAYS after completion, the
certificate stays for DSR_EVIDENCE_RETENTION_DAYS, a legal hold suspends both, every purge is
audited once, and a purged file's link answers 410. The clock is the ``now`` the scheduler
passes (frozen here)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from requests_app.evidence import retention
from requests_app.evidence.artifacts import artifact_path, store_artifact
from requests_app.evidence.store import ExportStore
from requests_app.jobs import periodic
from requests_app.models import Artifact, AuditEvent, DataRequest, LegalHold, Status
from requests_app.models.audit import verify_chain
from tests.conftest import sign_in
from tests.lifecycle_helpers import make_request

pytestmark = pytest.mark.django_db

FILES = (
    (Artifact.Kind.EXPORT_ARCHIVE, "export.zip", "application/zip"),
    (Artifact.Kind.CERTIFICATE_PDF, "certificate.pdf", "application/pdf"),
    (Artifact.Kind.CERTIFICATE_JSON, "certificate.json", "application/json"),
)


@pytest.fixture
def completed(settings, tmp_path, officer):
    """A completed export-and-erasure with its three files, completed at a fixed time."""
    settings.DSR_DATA_DIR = tmp_path / "data"
    settings.DSR_EXPORT_RETENTION_DAYS = 30
    settings.DSR_EVIDENCE_RETENTION_DAYS = 6 * 365
    request = make_request(officer, ["reg-1"], kind="export_and_erasure")
    for kind, name, content_type in FILES:
        store_artifact(request, kind, f"{request.reference}-{name}", content_type, _write(kind))
    done = timezone.now().replace(microsecond=0) - timedelta(days=1)
    DataRequest.objects.filter(pk=request.pk).update(status=Status.COMPLETED, completed_at=done)
    request.refresh_from_db()
    return request


def _write(kind):
    return lambda fh: fh.write(f"the {kind}".encode())


class Killed(BaseException):
    """The scheduler process dying (not an error a run recovers from)."""


def files_of(request):
    return {a.kind: a for a in Artifact.objects.filter(request=request)}


def purges(request):
    return list(AuditEvent.objects.filter(request_ref=request.reference, action="artifact_purged"))


def test_the_archive_goes_after_30_days_and_the_certificate_stays(completed):
    at = completed.completed_at
    assert retention.purge_due(at + timedelta(days=29, hours=23)) == 0
    assert all(artifact_path(a).is_file() for a in files_of(completed).values())
    assert retention.purge_due(at + timedelta(days=30, minutes=1)) == 1
    files = files_of(completed)
    archive = files[Artifact.Kind.EXPORT_ARCHIVE]
    assert not artifact_path(archive).exists()
    assert archive.purged_at == at + timedelta(days=30, minutes=1)
    assert archive.purge_rule == "export" and len(archive.sha256) == 64  # the hash stays
    for kind in (Artifact.Kind.CERTIFICATE_PDF, Artifact.Kind.CERTIFICATE_JSON):
        assert artifact_path(files[kind]).is_file() and files[kind].purged_at is None
    [event] = purges(completed)
    assert event.details["kind"] == "export_archive"
    assert event.details["sha256"] == archive.sha256
    assert event.details["rule"] == "export" and event.details["days"] == 30
    # Idempotent: the next runs find nothing to do and record nothing.
    assert retention.purge_due(at + timedelta(days=31)) == 0
    assert len(purges(completed)) == 1
    ok, _, _, problem = verify_chain()
    assert ok, problem


def test_the_certificate_goes_after_the_evidence_period(completed):
    at = completed.completed_at
    assert retention.purge_due(at + timedelta(days=6 * 365 - 1)) == 1  # the archive only
    assert retention.purge_due(at + timedelta(days=6 * 365, minutes=1)) == 2
    assert all(a.purged_at and not artifact_path(a).exists() for a in files_of(completed).values())
    assert {e.details["rule"] for e in purges(completed)} == {"export", "evidence"}


def test_an_open_request_keeps_its_files(completed):
    DataRequest.objects.filter(pk=completed.pk).update(status=Status.RUNNING, completed_at=None)
    assert retention.purge_due(timezone.now() + timedelta(days=10 * 365)) == 0


def test_a_legal_hold_suspends_the_purge_and_both_ends_are_audited(completed, officer, officer2):
    later = completed.completed_at + timedelta(days=45)
    with pytest.raises(ValueError, match="reason"):
        retention.place_hold(completed, actor=officer, reason="   ")
    assert not LegalHold.objects.exists()
    retention.place_hold(completed, actor=officer, reason="Matter 2026-17, counsel's request")
    with pytest.raises(ValueError, match="already under a legal hold"):
        retention.place_hold(completed, actor=officer, reason="again")
    assert retention.purge_due(later) == 0
    assert artifact_path(files_of(completed)[Artifact.Kind.EXPORT_ARCHIVE]).is_file()
    with pytest.raises(ValueError, match="reason"):
        retention.release_hold(completed, actor=officer2, reason="")
    # Four eyes: who placed it may not release it alone.
    with pytest.raises(ValueError, match="Another officer or an admin"):
        retention.release_hold(completed, actor=officer, reason="Matter closed")
    retention.release_hold(completed, actor=officer2, reason="Matter closed")
    with pytest.raises(ValueError, match="not under a legal hold"):
        retention.release_hold(completed, actor=officer2, reason="again")
    assert retention.purge_due(later) == 1
    actions = list(
        AuditEvent.objects.filter(
            request_ref=completed.reference, action__startswith="legal_hold"
        ).values_list("action", "details__reason", "actor_user_id")
    )
    assert actions == [
        ("legal_hold_placed", "Matter 2026-17, counsel's request", officer.pk),
        ("legal_hold_released", "Matter closed", officer2.pk),
    ]


def test_a_hold_placed_while_the_purge_is_queued_wins(completed, officer):
    """The purge checks the hold again with the request's row locked."""
    archive = files_of(completed)[Artifact.Kind.EXPORT_ARCHIVE]
    retention.place_hold(completed, actor=officer, reason="Matter 9")
    assert not retention.purge(archive.pk, retention.BY_NAME["export"], timezone.now())
    assert artifact_path(archive).is_file()


def test_a_scheduler_that_dies_before_the_commit_changes_nothing(completed, officer, monkeypatch):
    later = completed.completed_at + timedelta(days=31)
    real_record = AuditEvent.record.__func__

    def dies(cls, action, **kwargs):
        if action == "artifact_purged":
            raise RuntimeError("the scheduler was killed")
        return real_record(cls, action, **kwargs)

    monkeypatch.setattr(AuditEvent, "record", classmethod(dies))
    assert retention.purge_due(later) == 0  # logged, the run goes on
    monkeypatch.undo()
    archive = files_of(completed)[Artifact.Kind.EXPORT_ARCHIVE]
    # As it was: the file, an unmarked row, no event. A hold placed now keeps all of it.
    assert artifact_path(archive).is_file() and archive.purged_at is None
    assert purges(completed) == []
    retention.place_hold(completed, actor=officer, reason="Matter 3")
    assert retention.purge_due(later) == 0
    assert artifact_path(archive).is_file()


def test_a_scheduler_that_dies_after_the_commit_leaves_the_file_to_the_next_run(
    completed, monkeypatch, client, officer
):
    later = completed.completed_at + timedelta(days=31)
    archive = files_of(completed)[Artifact.Kind.EXPORT_ARCHIVE]
    path = artifact_path(archive)
    real_unlink = type(path).unlink

    def dies(self, missing_ok=False):
        if self == path:
            raise Killed
        return real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(type(path), "unlink", dies)
    with pytest.raises(Killed):  # the process dies right after the purge's commit
        retention.purge_due(later)
    monkeypatch.undo()
    archive.refresh_from_db()
    assert archive.purged_at == later and path.is_file() and len(purges(completed)) == 1
    # Marked purged: never served, though the file is still there.
    sign_in(client, officer)
    url = f"/requests/{completed.reference}/artifacts/export_archive/"
    assert client.get(url).status_code == 410
    assert retention.purge_due(later + timedelta(hours=1)) == 0
    assert not path.exists() and len(purges(completed)) == 1  # deleted, recorded once


def test_one_file_that_cannot_be_purged_does_not_keep_the_others(completed, officer, settings):
    other = make_request(officer, ["reg-2"], kind="export")
    store_artifact(other, Artifact.Kind.EXPORT_ARCHIVE, "x.zip", "application/zip", _write("x"))
    DataRequest.objects.filter(pk=other.pk).update(
        status=Status.COMPLETED, completed_at=completed.completed_at
    )
    # The first archive's row points outside the artifacts directory: refused, logged.
    Artifact.objects.filter(request=completed, kind=Artifact.Kind.EXPORT_ARCHIVE).update(
        path="../outside.zip"
    )
    assert retention.purge_due(completed.completed_at + timedelta(days=31)) == 1
    assert Artifact.objects.get(request=other).purged_at is not None


def test_loose_exported_documents_go_with_the_export_rule(completed):
    store = ExportStore(completed)
    store.devices_dir.mkdir(parents=True)
    (store.devices_dir / "left.json").write_text("{}")
    retention.purge_due(completed.completed_at + timedelta(days=2))
    assert store.root.exists()
    retention.purge_due(completed.completed_at + timedelta(days=31))
    assert not store.root.exists()
    assert AuditEvent.objects.filter(
        request_ref=completed.reference, action="exported_documents_purged"
    ).exists()


def test_the_scheduler_runs_the_purge(settings):
    names = {name: interval for name, interval, _ in periodic.tasks()}
    assert names["retention"] == settings.DSR_RETENTION_CHECK_SECONDS


def test_the_request_page_and_a_purged_link_say_when_and_why(completed, officer, client):
    sign_in(client, officer)
    page = client.get(completed.get_absolute_url()).content.decode()
    due = (completed.completed_at + timedelta(days=30)).strftime("%-d %b %Y")
    assert f"to be deleted on {due}" in page
    retention.purge_due(completed.completed_at + timedelta(days=31))
    url = f"/requests/{completed.reference}/artifacts/export_archive/"
    gone = client.get(url)
    assert gone.status_code == 410
    text = gone.content.decode()
    assert "This file was deleted" in text and "Export archives are kept 30 days" in text
    assert files_of(completed)[Artifact.Kind.EXPORT_ARCHIVE].sha256 in text
    assert not AuditEvent.objects.filter(action="artifact_downloaded").exists()
    page = client.get(completed.get_absolute_url()).content.decode()
    assert "deleted on" in page and "(retention)" in page
    assert f'href="{url}"' not in page  # no link to a file that is gone
    # The certificate still downloads.
    cert = client.get(f"/requests/{completed.reference}/artifacts/certificate_pdf/")
    assert cert.status_code == 200


def test_officers_place_and_release_a_hold_from_the_request_page(
    completed, officer, officer2, client
):
    sign_in(client, officer)
    url = f"/requests/{completed.reference}/legal-hold"
    response = client.post(url, {"action": "place", "reason": ""}, follow=True)
    assert "Give the reason" in response.content.decode()
    assert not LegalHold.objects.exists()
    response = client.post(url, {"action": "place", "reason": "Matter 12"}, follow=True)
    page = response.content.decode()
    assert "Legal hold placed" in page and "Matter 12" in page
    assert LegalHold.objects.get().placed_by == officer
    response = client.post(url, {"action": "release", "reason": "Closed"}, follow=True)
    assert "Another officer or an admin" in response.content.decode()
    assert LegalHold.objects.exists()
    sign_in(client, officer2)
    client.post(url, {"action": "release", "reason": "Closed"})
    assert not LegalHold.objects.exists()


def test_the_api_says_when_a_file_was_purged(completed, officer):
    from requests_app.api import issue_token
    from tests.test_api import ApiClient

    _, raw = issue_token(officer, name="ticketing")
    api = ApiClient(raw)
    later = completed.completed_at + timedelta(days=31)
    retention.purge_due(later)
    body = api.get(f"/api/v1/requests/{completed.reference}").json()
    purged = {a["kind"]: a["purged_at"] for a in body["artifacts"]}
    assert purged["export_archive"] == later.isoformat()
    assert purged["certificate_pdf"] is None
