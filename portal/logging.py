"""Keep secrets in URLs out of every log line the portal writes.

Three URLs carry a secret in their path: the approval link emailed to approvers
(``/approve/<token>/``, exchanged on first use for a session-bound page, see
requests_app/views/approval.py), the data subject's delivery link (``/d/<token>/``, exchanged
the same way for ``/d/``, see requests_app/views/delivery.py) and Django's password reset link
(``/accounts/reset/<uidb64>/<token>/``). Proxies and browsers are outside our reach, but the
portal's own logs are not: runserver's access log and error reports go through
``RedactTokens`` (LOGGING in settings), and gunicorn's access log through
``RedactingGunicornLogger`` (``gunicorn --logger-class portal.logging.RedactingGunicornLogger``,
as the Dockerfile runs it).
"""

import logging
import re

SECRET_PATHS = re.compile(
    r"(/approve/)(?!t/)[^/\s\"'?#]+"  # the approval token (not the session-bound /approve/t/…)
    r"|(/accounts/reset/[^/\s\"'?#]+/)(?!set-password)[^/\s\"'?#]+"  # a password reset token
    r"|(/d/)(?!download(?:[/\s\"'?#]|$))[^/\s\"'?#]+"  # a delivery token (not /d/download)
)
REDACTED = "[redacted]"


def redact(text):
    """``text`` with every approval, delivery or password-reset token replaced by
    ``[redacted]``."""
    return SECRET_PATHS.sub(lambda m: (m.group(1) or m.group(2) or m.group(3)) + REDACTED, text)


class RedactTokens(logging.Filter):
    """A logging filter: rewrites the record's message (and args) before any handler sees it."""

    def filter(self, record):
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        # Error reports carry the request, whose repr holds the path.
        request = getattr(record, "request", None)
        if request is not None and SECRET_PATHS.search(getattr(request, "path", "") or ""):
            record.request = None
        return True


try:
    from gunicorn.glogging import Logger as _GunicornLogger
except ImportError:  # gunicorn is only installed where it serves
    _GunicornLogger = object


class RedactingGunicornLogger(_GunicornLogger):
    """gunicorn's logger with every access-log atom redacted (request line, path, referer,
    headers), whatever ``--access-logformat`` is in use."""

    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        return {k: redact(v) if isinstance(v, str) else v for k, v in atoms.items()}
