"""Routes for the reports pages: register, evidence report, audit trail and log, and the
offline-verification guide."""

from django.urls import path

from requests_app.views import reports

urlpatterns = [
    path("reports/", reports.reports_index, name="reports"),
    path("reports/register.csv", reports.register_csv, name="register_csv"),
    path("requests/<str:reference>/evidence.pdf", reports.evidence_pdf, name="evidence_pdf"),
    path("audit/", reports.audit_chain, name="audit_chain"),
    path("audit/log.jsonl", reports.audit_log_jsonl, name="audit_log_jsonl"),
    path(
        "audit/offline-verification/",
        reports.audit_offline_guide,
        name="audit_offline_guide",
    ),
]
