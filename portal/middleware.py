"""Response headers Django 5.2 does not set itself."""

from urllib.parse import urlsplit

from django.conf import settings


def content_security_policy():
    """The strict CSP from settings. With Entra ID sign-in on, ``form-action`` also names the
    identity provider: "Sign in with Microsoft" is a form whose answer redirects there, and
    browsers apply form-action to that redirect too."""
    policy = settings.CONTENT_SECURITY_POLICY
    if settings.DSR_OIDC_TENANT and settings.DSR_OIDC_CLIENT_ID:
        parts = urlsplit(settings.DSR_OIDC_AUTHORITY)
        policy = policy.replace(
            "form-action 'self'", f"form-action 'self' {parts.scheme}://{parts.netloc}"
        )
    return policy


class ContentSecurityPolicyMiddleware:
    """Send the strict CSP on every response that has not set its own."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        response.headers.setdefault("Content-Security-Policy", content_security_policy())
        return response
