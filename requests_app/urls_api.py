"""Routes of the JSON API (bearer tokens, no cookies): one per path of its Django Ninja API."""

from requests_app.api import views

urlpatterns = views.urlpatterns()
