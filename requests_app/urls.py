"""Every route of the portal's pages, one per line, each name unique. portal/urls.py mounts
this at the root beside sign-in, the admin and Django's own."""

from django.urls import include, path

from requests_app.views import (
    approval,
    delivery,
    discovery,
    intake,
    officer,
    reports,
    requests,
    retention,
    system,
)

urlpatterns = [
    path("", officer.dashboard, name="home"),
    path("dashboard/", officer.dashboard, name="dashboard"),
    path("healthz", system.healthz, name="healthz"),
    # Requests: the list, intake, the request page and one small view per action.
    path("requests/", officer.request_list, name="request_list"),
    path("requests/new/", intake.request_create, name="request_create"),
    path("requests/<str:reference>/", requests.request_detail, name="request_detail"),
    path("requests/<str:reference>/progress", requests.request_progress, name="request_progress"),
    path("requests/<str:reference>/submit", requests.request_submit, name="request_submit"),
    path("requests/<str:reference>/cancel", requests.request_cancel, name="request_cancel"),
    path("requests/<str:reference>/retry", requests.request_retry, name="request_retry"),
    path("requests/<str:reference>/resend", requests.request_resend, name="request_resend"),
    path("requests/<str:reference>/decide", requests.request_decide, name="request_decide"),
    path("requests/<str:reference>/extend", officer.request_extend, name="request_extend"),
    path("requests/<str:reference>/legal-hold", retention.legal_hold, name="legal_hold"),
    path("requests/<str:reference>/discovery/", discovery.discovery_page, name="discovery_page"),
    path(
        "requests/<str:reference>/discovery/start",
        discovery.discovery_start,
        name="discovery_start",
    ),
    path(
        "requests/<str:reference>/discovery/<int:pk>/retry",
        discovery.discovery_retry,
        name="discovery_retry",
    ),
    path(
        "requests/<str:reference>/discovery/<int:pk>/confirm",
        discovery.discovery_confirm,
        name="discovery_confirm",
    ),
    path("requests/<str:reference>/deliveries", delivery.delivery_create, name="delivery_create"),
    path(
        "requests/<str:reference>/deliveries/<int:pk>/revoke",
        delivery.delivery_revoke,
        name="delivery_revoke",
    ),
    # The data subject's link: no account, a passphrase.
    path("d/", delivery.delivery_page, name="delivery_page"),
    path("d/download", delivery.delivery_download, name="delivery_download"),
    path("d/<str:token>/", delivery.delivery_link, name="delivery_link"),
    path(
        "requests/<str:reference>/artifacts/<str:kind>/",
        requests.artifact_download,
        name="artifact_download",
    ),
    path("requests/<str:reference>/evidence.pdf", reports.evidence_pdf, name="evidence_pdf"),
    # The approver's email link, then the page bound to their session.
    path("approve/t/<str:ref>/", approval.approval_page, name="approval_page"),
    path("approve/<str:token>/", approval.approval_link, name="approval_link"),
    # Reports and the audit trail.
    path("reports/", reports.reports_index, name="reports"),
    path("reports/register.csv", reports.register_csv, name="register_csv"),
    path("audit/", reports.audit_chain, name="audit_chain"),
    path("audit/log.jsonl", reports.audit_log_jsonl, name="audit_log_jsonl"),
    path("audit/offline-verification/", reports.audit_offline_guide, name="audit_offline_guide"),
    # The JSON API (bearer tokens, no cookies).
    path("", include("requests_app.urls_api")),
    # Dev mode only (404 unless DSR_DEV_OUTBOX).
    path("dev/outbox/", system.outbox, name="outbox"),
    path("dev/outbox/<int:pk>/", system.outbox_message, name="outbox_message"),
]
