"""Routes of the JSON API (bearer tokens, no cookies)."""

from django.urls import path

from requests_app.views import api

urlpatterns = [
    path("api/v1/openapi.json", api.openapi, name="api_openapi"),
    path("api/v1/requests", api.requests_collection, name="api_requests"),
    path("api/v1/requests/<str:reference>", api.request_detail, name="api_request"),
    path("api/v1/requests/<str:reference>/submit", api.request_submit, name="api_request_submit"),
]
