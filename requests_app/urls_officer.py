"""Routes for the officer pages: dashboard, the filtered request list, deadline extension.

Included before ``requests_app.urls``, so this ``request_list`` is the one that answers.
"""

from django.urls import path

from requests_app.views import officer

urlpatterns = [
    path("dashboard/", officer.dashboard, name="dashboard"),
    path("requests/", officer.request_list, name="request_list"),
    path("requests/<str:reference>/extend", officer.request_extend, name="request_extend"),
]
