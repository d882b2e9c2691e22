"""Django settings, every value read from the environment (see .env.example and the README)."""

import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url

from portal.env import (
    ConfigError,
    check_secret_key,
    envbool,
    envchoices,
    envint,
    envlist,
    envnetworks,
    envstr,
)

BASE_DIR = Path(__file__).resolve().parent.parent

try:
    DEBUG = envbool("DEBUG", False)
    SECRET_KEY = envstr("SECRET_KEY")
    check_secret_key(SECRET_KEY, DEBUG)
    if SECRET_KEY is None:
        # Stable across the dev processes (web signs links the worker's emails carry); DEBUG only.
        SECRET_KEY = "dev-only-key-DEBUG-is-on-never-in-production-0123456789"  # noqa: S105
    ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["127.0.0.1", "localhost"] if DEBUG else [])
    # Absolute links in emails. Unset, it follows PORT (what `make run` serves on).
    SITE_URL = envstr("SITE_URL", f"http://127.0.0.1:{envint('PORT', 8000, minimum=1)}")
    SITE_URL = SITE_URL.rstrip("/")
    if not SITE_URL.startswith(("http://", "https://")):
        raise ConfigError(f"SITE_URL: must start with http:// or https://, got {SITE_URL!r}")
    HTTPS = envbool("DSR_HTTPS", not DEBUG)
    DATABASE_URL = envstr("DATABASE_URL", f"sqlite:///{BASE_DIR / 'var' / 'db.sqlite3'}")
    if not DATABASE_URL.startswith(("sqlite:", "postgres:", "postgresql:")):
        raise ConfigError("DATABASE_URL: expected sqlite:///PATH or postgres://USER@HOST/NAME")
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
    # The owner role that runs migrations (`manage.py setup_database`); the application role
    # of DATABASE_URL may only INSERT and SELECT on the audit tables.
    DATABASE_MIGRATE_URL = envstr("DATABASE_MIGRATE_URL")
    if DATABASE_MIGRATE_URL:
        DATABASES["owner"] = dj_database_url.parse(DATABASE_MIGRATE_URL)
    if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        # Web, worker and scheduler write at once in the default setup: wait for the lock
        # instead of failing, take it up front, and let readers go on while one writes.
        DATABASES["default"].setdefault("OPTIONS", {}).update(
            timeout=30, transaction_mode="IMMEDIATE", init_command="PRAGMA journal_mode=WAL;"
        )
    else:
        # Short OLTP queries: PostgreSQL's JIT costs more to compile than it saves (bench/web.py).
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault("options", "-c jit=off")
    # Unset means "embedded": `make run` and the test suite start a Redis and set it for us.
    REDIS_URL = envstr("REDIS_URL")
    if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
        raise ConfigError("REDIS_URL: expected redis://HOST:PORT/DB or unix:///PATH?db=N")
    EMAIL_HOST = envstr("EMAIL_HOST", "localhost")
    EMAIL_PORT = envint("EMAIL_PORT", 25, minimum=1)
    EMAIL_HOST_USER = envstr("EMAIL_HOST_USER", "")
    EMAIL_HOST_PASSWORD = envstr("EMAIL_HOST_PASSWORD", "")
    EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", False)
    EMAIL_TIMEOUT = envint("EMAIL_TIMEOUT", 20, minimum=1)
    DEFAULT_FROM_EMAIL = envstr("DEFAULT_FROM_EMAIL", "DSR Portal <dsr-portal@localhost>")
    SERVER_EMAIL = DEFAULT_FROM_EMAIL
    # Dev mode only: mail is kept in the database and shown at /dev/outbox/.
    DSR_DEV_OUTBOX = envbool("DSR_DEV_OUTBOX", False)
    # Set by `make run` for its children: where the web is served (system check dsr.W002)
    # and the simulator's sample identifiers the intake form offers.
    DSR_DEV_SERVING = envstr("DSR_DEV_SERVING")
    DSR_DEV_SAMPLES = envstr("DSR_DEV_SAMPLES")
    DSR_DATA_DIR = Path(envstr("DSR_DATA_DIR", str(BASE_DIR / "var" / "data")))
    DSR_AZURE_TARGETS = envstr("DSR_AZURE_TARGETS")
    ERASURE_APPROVALS_REQUIRED = envint("ERASURE_APPROVALS_REQUIRED", 2, minimum=1)
    DSR_APPROVAL_LINK_MAX_AGE = envint("DSR_APPROVAL_LINK_MAX_AGE", 72 * 3600, minimum=60)
    # Sign-in (requests_app/accounts/): one lockout for every door, second factors, sessions.
    DSR_LOGIN_MAX_FAILURES = envint("DSR_LOGIN_MAX_FAILURES", 5, minimum=1)
    DSR_LOGIN_MAX_FAILURES_PER_IP = envint("DSR_LOGIN_MAX_FAILURES_PER_IP", 20, minimum=1)
    DSR_LOGIN_LOCKOUT_SECONDS = envint("DSR_LOGIN_LOCKOUT_SECONDS", 900, minimum=1)
    DSR_TRUSTED_PROXIES = envnetworks("DSR_TRUSTED_PROXIES")
    # Anonymous noise (failed sign-ins, refused links): one event per source and window, at
    # most this many first occurrences a minute; repeats are counted (accounts/noise.py).
    DSR_NOISE_WINDOW_SECONDS = envint("DSR_NOISE_WINDOW_SECONDS", 60, minimum=1)
    DSR_NOISE_EVENTS_PER_MINUTE = envint("DSR_NOISE_EVENTS_PER_MINUTE", 60, minimum=1)
    DSR_REQUIRE_2FA = envchoices(
        "DSR_REQUIRE_2FA",
        ["approver", "admin"],
        {"officer", "approver", "auditor", "admin", "all", "none"},
    )
    DSR_APPROVAL_REAUTH_SECONDS = envint("DSR_APPROVAL_REAUTH_SECONDS", 900, minimum=30)
    DSR_SESSION_IDLE_SECONDS = envint("DSR_SESSION_IDLE_SECONDS", 1800, minimum=60)
    DSR_LOCAL_LOGIN = envbool("DSR_LOCAL_LOGIN", True)
    DSR_PASSWORD_RESET = envbool("DSR_PASSWORD_RESET", DSR_LOCAL_LOGIN)
    # Microsoft Entra ID single sign-on (OpenID Connect); off unless tenant and client are set.
    DSR_OIDC_TENANT = envstr("DSR_OIDC_TENANT")
    DSR_OIDC_CLIENT_ID = envstr("DSR_OIDC_CLIENT_ID")
    DSR_OIDC_CLIENT_SECRET = envstr("DSR_OIDC_CLIENT_SECRET")
    DSR_OIDC_CLIENT_CERTIFICATE = envstr("DSR_OIDC_CLIENT_CERTIFICATE")  # PEM path
    DSR_OIDC_CLIENT_KEY = envstr("DSR_OIDC_CLIENT_KEY")  # PEM path of its private key
    DSR_OIDC_AUTHORITY = envstr("DSR_OIDC_AUTHORITY", "https://login.microsoftonline.com")
    DSR_OIDC_ISSUER = envstr("DSR_OIDC_ISSUER")  # default: Entra's, from the tenant
    DSR_OIDC_REDIRECT_URL = envstr("DSR_OIDC_REDIRECT_URL")  # default: SITE_URL + callback
    DSR_OIDC_ROLE_MAP = envlist(
        "DSR_OIDC_ROLE_MAP",
        ["DSR.Officer=officer", "DSR.Approver=approver", "DSR.Auditor=auditor", "DSR.Admin=admin"],
    )
    DSR_OIDC_MFA_AMR = envlist("DSR_OIDC_MFA_AMR", ["mfa"])
    DSR_OIDC_MFA_ACRS = envstr("DSR_OIDC_MFA_ACRS")  # a Conditional Access auth context
    DSR_JOB_TIMEOUT = envint("DSR_JOB_TIMEOUT", 1800, minimum=60)
    DSR_LEASE_SECONDS = envint("DSR_LEASE_SECONDS", 120, minimum=5)
    DSR_RECONCILE_SECONDS = envint("DSR_RECONCILE_SECONDS", 60, minimum=1)
    DSR_PARALLEL_JOBS = envint("DSR_PARALLEL_JOBS", 4, minimum=1)
    DSR_WORKER_THREADS = envint("DSR_WORKER_THREADS", 4, minimum=1)
    # A fulfilment job gives its worker back after this long when other jobs wait (fairness).
    DSR_FULFILMENT_SLICE_SECONDS = envint("DSR_FULFILMENT_SLICE_SECONDS", 2, minimum=0)
    # A request of at most this many devices is "short": its jobs go before the long ones'.
    DSR_SHORT_REQUEST_DEVICES = envint("DSR_SHORT_REQUEST_DEVICES", 20, minimum=0)
    # Retention (requests_app/evidence/retention.py): days after a request's completion.
    DSR_EXPORT_RETENTION_DAYS = envint("DSR_EXPORT_RETENTION_DAYS", 30, minimum=1)
    DSR_EVIDENCE_RETENTION_DAYS = envint("DSR_EVIDENCE_RETENTION_DAYS", 6 * 365, minimum=365)
    DSR_RETENTION_CHECK_SECONDS = envint("DSR_RETENTION_CHECK_SECONDS", 3600, minimum=60)
    # Delivery links to the data subject (requests_app/evidence/delivery.py): the defaults an
    # officer starts from, and the most they may choose.
    DSR_DELIVERY_DAYS = envint("DSR_DELIVERY_DAYS", 7, minimum=1)
    DSR_DELIVERY_MAX_DAYS = envint("DSR_DELIVERY_MAX_DAYS", 30, minimum=1)
    DSR_DELIVERY_DOWNLOADS = envint("DSR_DELIVERY_DOWNLOADS", 3, minimum=1)
    DSR_DELIVERY_MAX_DOWNLOADS = envint("DSR_DELIVERY_MAX_DOWNLOADS", 10, minimum=1)
    # Wrong passphrases before a link locks for good (the officer makes a new one).
    DSR_DELIVERY_ATTEMPTS = envint("DSR_DELIVERY_ATTEMPTS", 5, minimum=1)
    # How long a browser stays unlocked after the passphrase (a shared computer, then the next
    # person).
    DSR_DELIVERY_UNLOCK_SECONDS = envint("DSR_DELIVERY_UNLOCK_SECONDS", 900, minimum=60)
    # Job functions a worker runs besides the portal's own (none in production; tests add one).
    DSR_WORKER_EXTRA_JOBS = envlist("DSR_WORKER_EXTRA_JOBS", [])
    DSR_DASHBOARD_CACHE_SECONDS = envint("DSR_DASHBOARD_CACHE_SECONDS", 300, minimum=0)
    # Evidence: signed checkpoints of the audit chain, published outside the database.
    # The signing key is read by the scheduler only (never the web or the worker).
    DSR_AUDIT_SIGNING_KEY_FILE = envstr("DSR_AUDIT_SIGNING_KEY_FILE")
    DSR_AUDIT_PUBLIC_KEY = envstr("DSR_AUDIT_PUBLIC_KEY")  # base64 raw Ed25519, or _FILE
    DSR_AUDIT_CHECKPOINT_DIR = envstr("DSR_AUDIT_CHECKPOINT_DIR")
    DSR_AUDIT_CHECKPOINT_SECONDS = envint("DSR_AUDIT_CHECKPOINT_SECONDS", 3600, minimum=10)
    DSR_AUDIT_CHECKPOINT_EMAIL = envbool("DSR_AUDIT_CHECKPOINT_EMAIL", True)  # to auditors
    DSR_AUDIT_CHECKPOINT_WEBHOOK = envstr("DSR_AUDIT_CHECKPOINT_WEBHOOK")  # optional https URL
except ConfigError as exc:
    sys.exit(f"configuration error: {exc}")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "django_rq",
    "requests_app",
    "simulator",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "portal.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "requests_app.accounts.middleware.SignedInSessionMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: turns a lockout flagged during the view into the lockout page.
    "axes.middleware.AxesMiddleware",
]
AUTHENTICATION_BACKENDS = [
    # First: refuses any attempt while the username or the client address is locked out.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "requests_app.accounts.lockout.LockoutHandler"
AXES_FAILURE_LIMIT = DSR_LOGIN_MAX_FAILURES
AXES_COOLOFF_TIME = timedelta(seconds=DSR_LOGIN_LOCKOUT_SECONDS)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_USERNAME_CALLABLE = "requests_app.accounts.identity.lockout_username"
AXES_CLIENT_IP_CALLABLE = "requests_app.accounts.identity.client_ip"
AXES_LOCKOUT_CALLABLE = "requests_app.accounts.views.locked_out"
AXES_RESET_ON_SUCCESS = True
# A locked-out client's further attempts neither extend the lockout nor pile up in the tables.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_SENSITIVE_PARAMETERS = ["password", "otp_token", "new_password1", "new_password2"]
AXES_VERBOSE = False
OTP_TOTP_ISSUER = "DSR Portal"

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "requests_app.context_processors.portal",
            ]
        },
    }
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = envstr("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG and envbool("DSR_MANIFEST_STATIC", True)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG or not envbool("DSR_MANIFEST_STATIC", True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

EMAIL_BACKEND = (
    "requests_app.workflow.outbox.OutboxBackend"
    if DSR_DEV_OUTBOX
    else envstr("EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend")
)

# django-rq reads these for its staff-only dashboard; the portal's own code builds queues in
# requests_app/queues.py so jobs are serialized as JSON, never pickle.
# A worker takes jobs from these in order: planning first, then short requests' fulfilment, then
# the long ones' (which hand their workers back between devices; requests_app/jobs/fulfilment.py).
RQ_QUEUE_NAMES = ["default", "fulfilment-short", "fulfilment"]
RQ_QUEUES = {
    name: {
        "URL": REDIS_URL or "redis://127.0.0.1:6379/0",
        "DEFAULT_TIMEOUT": DSR_JOB_TIMEOUT,
        "SERIALIZER": "rq.serializers.JSONSerializer",
    }
    for name in RQ_QUEUE_NAMES
}
RQ_SHOW_ADMIN_LINK = True

# Security: strict by default in production, relaxed only when DEBUG is on or DSR_HTTPS=0.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = HTTPS
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = 31536000 if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SESSION_COOKIE_HTTPONLY = True
# __Host-: the browser only accepts the cookie over https, for this host, path / (no sub-domain
# or other path can set or shadow it).
SESSION_COOKIE_NAME = "__Host-dsr_session" if HTTPS else "dsr_session"
CSRF_COOKIE_NAME = "__Host-csrftoken" if HTTPS else "csrftoken"
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = envint("SESSION_COOKIE_AGE", 8 * 3600, minimum=300)
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [SITE_URL])
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # Approval-link and password-reset tokens never reach a log line (portal/logging.py).
    "filters": {"redact": {"()": "portal.logging.RedactTokens"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}
    },
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {
        # runserver's access log: through the redacting handler instead of Django's own.
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "django.request": {"level": "ERROR"},
        "httpx": {"level": "WARNING"},
        "axes": {"level": "WARNING"},
        "rq.worker": {"level": envstr("RQ_LOG_LEVEL", "INFO")},
    },
}
