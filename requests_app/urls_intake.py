"""Routes for taking in a request through the browser."""

from django.urls import path

from requests_app.views import intake

urlpatterns = [
    path("requests/new/", intake.request_create, name="request_create"),
]
