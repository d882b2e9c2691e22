"""Routes for request pages, officer actions, approval links and downloads."""

from django.urls import path

from requests_app.views import approval, requests

urlpatterns = [
    path("requests/", requests.request_list, name="request_list"),
    path("requests/<str:reference>/", requests.request_detail, name="request_detail"),
    path("requests/<str:reference>/progress", requests.request_progress, name="request_progress"),
    path("requests/<str:reference>/submit", requests.request_submit, name="request_submit"),
    path("requests/<str:reference>/cancel", requests.request_cancel, name="request_cancel"),
    path("requests/<str:reference>/retry", requests.request_retry, name="request_retry"),
    path("requests/<str:reference>/resend", requests.request_resend, name="request_resend"),
    path("requests/<str:reference>/decide", requests.request_decide, name="request_decide"),
    path(
        "requests/<str:reference>/artifacts/<str:kind>/",
        requests.artifact_download,
        name="artifact_download",
    ),
    path("approve/t/<str:ref>/", approval.approval_page, name="approval_page"),
    path("approve/<str:token>/", approval.approval_link, name="approval_link"),
]
