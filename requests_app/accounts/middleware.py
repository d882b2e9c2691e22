"""What every signed-in request goes through, after Django's and django-otp's middleware.

- Idle timeout: a session unused for DSR_SESSION_IDLE_SECONDS is signed out (besides
  SESSION_COOKIE_AGE, the absolute limit).
- A session whose user now needs a second factor it did not give (a role was added, the
  device removed, DSR_REQUIRE_2FA changed) is signed out: no page is served half-signed-in.
- ``Cache-Control: no-store`` on every response to a signed-in user: pages with personal data
  and plans must not stay in a shared or back-button cache.
"""

import time

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.utils.cache import add_never_cache_headers, patch_cache_control

from requests_app.accounts import changes, twofactor
from requests_app.models import AuditEvent

LAST_SEEN = "dsr_last_seen"
# Write the last-seen time at most this often (each write is a session save).
TOUCH_EVERY = 30


class SignedInSessionMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = request.user
        if user.is_authenticated:
            refused = self.check_session(request, user)
            if refused is not None:
                return refused
        # Privileged changes made by this request are attributed to its user (accounts.changes).
        with changes.acting(user if user.is_authenticated else None):
            response = self.get_response(request)
        if request.user.is_authenticated or request.session.get(twofactor.PENDING):
            add_never_cache_headers(response)
            patch_cache_control(response, no_store=True, private=True)
        return response

    def check_session(self, request, user):
        now = time.time()
        last = request.session.get(LAST_SEEN)
        if last is not None and now - last > settings.DSR_SESSION_IDLE_SECONDS:
            AuditEvent.record("session_expired", actor=user, idle_seconds=round(now - last))
            return self.sign_out(request, "You were signed out after a period of inactivity.")
        needs = twofactor.second_factor_required(user)
        if needs and not twofactor.proof_of(request).second_factor:
            return self.sign_out(request, "Sign in again with your second factor.")
        polling = request.path.endswith("/progress")  # the page refreshing itself, not a person
        if last is None or (now - last > TOUCH_EVERY and not polling):
            request.session[LAST_SEEN] = now
        return None

    @staticmethod
    def sign_out(request, message):
        path = request.get_full_path()
        logout(request)
        messages.info(request, message)
        return redirect_to_login(path)
