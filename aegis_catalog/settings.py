"""Django settings for Aegis Catalog, read from environment variables.

Defaults give a working local setup (SQLite under var/, a local artifact directory); production-only
requirements fail at start when DEBUG is off. Every secret may also come from ``NAME_FILE``.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("AEGIS_VAR_DIR", BASE_DIR / "var"))

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no), got {raw!r}")


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, got {value}")
    return value


def env_secret(name: str, default: str = "") -> str:
    """A secret from ``NAME``, or from the file named by ``NAME_FILE`` (container secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as error:
            raise ImproperlyConfigured(
                f"{name}_FILE points to {file_name!r}, which cannot be read: {error.strerror}"
            ) from None
    return os.environ.get(name, default)


def env_choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = os.environ.get(name, default).strip().lower() or default
    if value not in choices:
        raise ImproperlyConfigured(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# "development" (default) gives a working local setup; "production" refuses to start without the
# settings a shared deployment must choose itself.
AEGIS_ENV = env_choice("AEGIS_ENV", "development", ("development", "production"))
PRODUCTION = AEGIS_ENV == "production"
DEBUG = env_bool("DJANGO_DEBUG", False)
if PRODUCTION:
    _missing = [
        name
        for name in ("DJANGO_SECRET_KEY", "DATABASE_URL", "REDIS_URL", "VAULT_ADDR")
        if not (os.environ.get(name) or os.environ.get(f"{name}_FILE"))
    ]
    if _missing:
        raise ImproperlyConfigured(
            f"AEGIS_ENV=production needs {', '.join(_missing)} to be set (or *_FILE for secrets)"
        )
    if DEBUG:
        raise ImproperlyConfigured("DJANGO_DEBUG must be off when AEGIS_ENV=production")
SECRET_KEY = env_secret("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    # Development only: a random key kept under var/ so sessions survive restarts.
    _key_file = VAR_DIR / "secret_key"
    if not _key_file.exists():
        import secrets

        VAR_DIR.mkdir(parents=True, exist_ok=True)
        _key_file.write_text(secrets.token_urlsafe(50))
        _key_file.chmod(0o600)
    SECRET_KEY = _key_file.read_text().strip()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "aegis_catalog.apps.AegisAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "template_partials",
    "django_rq",
    "registry",
    "imports",
    "api",
    "serving",
    "webhooks",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "aegis_catalog.middleware.jobs_dashboard_csp",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "aegis_catalog.urls"
WSGI_APPLICATION = "aegis_catalog.wsgi.application"

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
                "aegis_catalog.views.navigation",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_secret("DATABASE_URL", f"sqlite:///{VAR_DIR / 'aegis.sqlite3'}"),
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 0, minimum=0),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web server, RQ worker, CLI) share the file: wait for locks.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 30
    # A transaction that reads and then writes while another connection wrote in between gets
    # "database is locked" at once, without waiting: take the write lock at BEGIN instead (the
    # import runner and its progress thread write through two connections).
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
    # A file, not memory: tests run real worker processes against the test database.
    # One per test run, so runs side by side do not share it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / f"test-aegis-{os.getpid()}.sqlite3")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env_secret("REDIS_URL", "redis://127.0.0.1:6379/0")
RQ_QUEUES = {
    "imports": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": env_int("AEGIS_IMPORT_TIMEOUT", 6 * 3600)},
    "default": {"URL": REDIS_URL, "DEFAULT_TIMEOUT": 600},
}
RQ = {"WORKER_CLASS": "imports.worker.ImportWorker"}
CACHES = {
    "default": {
        # A Redis that is down is a cache miss: the pages still render.
        "BACKEND": "aegis_catalog.cache.TolerantRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "aegis",
        "TIMEOUT": env_int("AEGIS_CACHE_SECONDS", 300, minimum=0),
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]

# --- Hugging Face Hub ---
HF_ENDPOINT = env_str("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
HF_TOKEN = env_secret("HF_TOKEN") or None
# Imports repeat a Hub request that got HTTP 408/429/5xx or a network error this many times,
# waiting AEGIS_HUB_RETRY_WAIT_MS, doubling each time (at most 8 s), or what Retry-After says.
AEGIS_HUB_RETRIES = env_int("AEGIS_HUB_RETRIES", 4, minimum=0)
AEGIS_HUB_RETRY_WAIT_MS = env_int("AEGIS_HUB_RETRY_WAIT_MS", 1000, minimum=0)
# Connections one import downloads on at once: 8 MiB ranges of its files, in the tarball's
# order (with AEGIS_ONE_PASS_IMPORT off: whole files at once). Four fill a gigabit link; more
# only add threads contending for the packager's cores.
AEGIS_HUB_DOWNLOAD_WORKERS = env_int("AEGIS_HUB_DOWNLOAD_WORKERS", 4, minimum=1)
# huggingface_hub reports usage to huggingface.co unless told not to; an audit tool does not.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

# --- Vault / OpenBao Transit ---
VAULT_ADDR = env_str("VAULT_ADDR", "http://127.0.0.1:8200").rstrip("/")
VAULT_TOKEN = env_secret("VAULT_TOKEN") or None
VAULT_NAMESPACE = env_str("VAULT_NAMESPACE") or None
VAULT_AUTH_METHOD = env_choice(
    "VAULT_AUTH_METHOD", "token", ("token", "approle", "jwt", "kubernetes")
)
VAULT_ROLE_ID = env_secret("VAULT_ROLE_ID") or None
VAULT_SECRET_ID = env_secret("VAULT_SECRET_ID") or None
VAULT_APPROLE_MOUNT = env_str("VAULT_APPROLE_MOUNT", "approle")
VAULT_JWT_ROLE = env_str("VAULT_JWT_ROLE") or None
VAULT_JWT = env_secret("VAULT_JWT") or None
VAULT_JWT_MOUNT = env_str("VAULT_JWT_MOUNT", "jwt")
VAULT_JWT_AUDIENCE = env_str("VAULT_JWT_AUDIENCE") or None
VAULT_KUBERNETES_ROLE = env_str("VAULT_KUBERNETES_ROLE") or None
VAULT_KUBERNETES_MOUNT = env_str("VAULT_KUBERNETES_MOUNT", "kubernetes")
VAULT_KUBERNETES_JWT_PATH = env_str(
    "VAULT_KUBERNETES_JWT_PATH", "/var/run/secrets/kubernetes.io/serviceaccount/token"
)
VAULT_CACERT = env_str("VAULT_CACERT") or None
AEGIS_TRANSIT_MOUNT = env_str("AEGIS_TRANSIT_MOUNT", "transit").strip("/")
AEGIS_SIGN_KEY = env_str("AEGIS_SIGN_KEY", "aegis-model-sign")

# --- Artifact storage ---
AWS_ENDPOINT_URL_S3 = env_str("AWS_ENDPOINT_URL_S3") or env_str("AWS_ENDPOINT_URL") or None
AWS_ACCESS_KEY_ID = env_secret("AWS_ACCESS_KEY_ID") or None
AWS_SECRET_ACCESS_KEY = env_secret("AWS_SECRET_ACCESS_KEY") or None
AWS_SESSION_TOKEN = env_secret("AWS_SESSION_TOKEN") or None
AWS_REGION = env_str("AWS_REGION") or env_str("AWS_DEFAULT_REGION") or None
AEGIS_S3_BUCKET = env_str("AEGIS_S3_BUCKET") or None
AEGIS_S3_PREFIX = env_str("AEGIS_S3_PREFIX").strip("/")
# botocore "standard" retry mode: attempts per S3 request (throttling, 5xx, dropped connections).
AEGIS_S3_MAX_ATTEMPTS = env_int("AEGIS_S3_MAX_ATTEMPTS", 5, minimum=1)
# Parts of one artifact uploaded at once (each part is 8 MiB held in memory while in flight).
AEGIS_S3_MAX_CONCURRENCY = env_int("AEGIS_S3_MAX_CONCURRENCY", 4, minimum=1)
# Stream the tarball into the store while it is packaged (off: upload it after packaging).
# `make bench` prints the whole import both ways.
AEGIS_STREAM_UPLOADS = env_bool("AEGIS_STREAM_UPLOADS", True)
# Download, check, scan, package and upload in one pass, each file packaged as it arrives
# (imports.pipeline.stream). Off: one stage after the other, as before (AEGIS_STREAM_UPLOADS
# then says whether packaging streams into the store). `make bench` measures both.
AEGIS_ONE_PASS_IMPORT = env_bool("AEGIS_ONE_PASS_IMPORT", True)
# Threads compressing the tarball (0: one per CPU). The bytes are the same for any count.
AEGIS_PACKAGE_THREADS = env_int("AEGIS_PACKAGE_THREADS", 0, minimum=0)
AEGIS_ARTIFACT_ROOT = Path(env_str("AEGIS_ARTIFACT_ROOT", str(VAR_DIR / "artifacts")))
AEGIS_WORK_DIR = Path(env_str("AEGIS_WORK_DIR", str(VAR_DIR / "work")))
# Free space the preflight stage demands beyond the snapshot's size (download + package copies).
AEGIS_MIN_FREE_BYTES = env_int("AEGIS_MIN_FREE_BYTES", 256 * 1024 * 1024, minimum=0)
AEGIS_MAX_IMPORT_BYTES = env_int("AEGIS_MAX_IMPORT_BYTES", 200 * 1024**3, minimum=1)
# The import policy's initial answer to a missing or non-SPDX license (registry admins change
# it later in the admin: registry.ImportPolicy).
AEGIS_POLICY_UNKNOWN_LICENSE = env_choice(
    "AEGIS_POLICY_UNKNOWN_LICENSE", "warn", ("block", "warn", "allow")
)
# A running import whose worker wrote no heartbeat for this long is marked failed (worker lost).
AEGIS_IMPORT_HEARTBEAT_TIMEOUT = env_int("AEGIS_IMPORT_HEARTBEAT_TIMEOUT", 30, minimum=5)
# How long the work directory of a failed import is kept for a retry to resume from.
AEGIS_WORK_DIR_MAX_AGE = env_int("AEGIS_WORK_DIR_MAX_AGE", 3 * 24 * 3600, minimum=0)
# How often the maintenance jobs run (rqcron): stale imports, old work dirs, audit anchors.
AEGIS_MAINTENANCE_SECONDS = env_int("AEGIS_MAINTENANCE_SECONDS", 300, minimum=10)
# How often the audit chain's head is signed and stored as an anchor outside the database.
AEGIS_AUDIT_ANCHOR_SECONDS = env_int("AEGIS_AUDIT_ANCHOR_SECONDS", 3600, minimum=10)
# The upstream watch (rqcron): every registered model's Hub repo is compared with what was
# imported this often. A check repeats a Hub request answered 408/429/5xx AEGIS_HUB_RETRIES
# times, waiting AEGIS_HUB_RETRY_WAIT_MS and doubling, or what Retry-After says, but never
# longer than AEGIS_UPSTREAM_MAX_WAIT at once (the Hub asking for more: the next pass checks).
AEGIS_UPSTREAM_WATCH_SECONDS = env_int("AEGIS_UPSTREAM_WATCH_SECONDS", 3600, minimum=60)
AEGIS_UPSTREAM_MAX_WAIT = env_int("AEGIS_UPSTREAM_MAX_WAIT", 60, minimum=0)
# How long /healthz reuses its storage probe (a file written to and removed from the store).
AEGIS_HEALTH_PROBE_SECONDS = env_int("AEGIS_HEALTH_PROBE_SECONDS", 60, minimum=0)

# How long a "Verify now" job may run (a multi-GB artifact is fetched, hashed and extracted).
AEGIS_VERIFY_TIMEOUT = env_int("AEGIS_VERIFY_TIMEOUT", 3 * 3600, minimum=60)
# The Hugging Face-compatible endpoint at /hf/ (HF_ENDPOINT=<aegis>/hf): registered models
# answer as <namespace>/<name>; pulls need an API token unless anonymous pulls are allowed; a
# version whose artifact failed verification is checked again after this many seconds.
AEGIS_HF_NAMESPACE = env_str("AEGIS_HF_NAMESPACE", "aegis")
AEGIS_HF_ALLOW_ANONYMOUS = env_bool("AEGIS_HF_ALLOW_ANONYMOUS", False)
AEGIS_HF_RECHECK_SECONDS = env_int("AEGIS_HF_RECHECK_SECONDS", 300, minimum=0)
# A version up to this size is verified inside its first pull's request; a larger one by a job,
# the pull answering 503 until it is done (or run `manage.py check_for_serving` beforehand).
AEGIS_HF_INLINE_CHECK_BYTES = env_int("AEGIS_HF_INLINE_CHECK_BYTES", 512 * 1024 * 1024, minimum=0)
# Webhooks (registry admins add them in the admin): each delivery is attempted this many times,
# waiting the backoff doubled after each failure (at most an hour), each request this long.
AEGIS_WEBHOOK_ATTEMPTS = env_int("AEGIS_WEBHOOK_ATTEMPTS", 6, minimum=1)
AEGIS_WEBHOOK_BACKOFF_SECONDS = env_int("AEGIS_WEBHOOK_BACKOFF_SECONDS", 30, minimum=0)
AEGIS_WEBHOOK_TIMEOUT_SECONDS = env_int("AEGIS_WEBHOOK_TIMEOUT_SECONDS", 10, minimum=1)
AEGIS_BUILDER_ID = env_str("AEGIS_BUILDER_ID", "https://aegis-catalog.local/builder")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("AEGIS_LOG_LEVEL", "INFO")},
}

# --- Browser security (every environment) ---
# Only the app's own scripts and styles run (htmx is served from static by django-htmx; its
# injected indicator <style> is turned off in base.html, the rules live in aegis.css).
# django-csp rather than a hand-written header: per-response overrides (the /rq/ dashboard)
# and nonces if ever needed; Django's own CSP support arrives only in 6.0.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page (hx-headers), not the cookie
# Secure cookies whenever DEBUG is off in production (AEGIS_ENV=production forbids DEBUG); a
# development run on http://localhost keeps plain cookies unless DJANGO_SECURE_COOKIES=1.
SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", PRODUCTION and not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

if PRODUCTION:
    # TLS is terminated in front of Django: trust its X-Forwarded-Proto only when told to.
    if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # load-balancer probes speak plain http
    SECURE_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", True)
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", False)
    if not SECURE_HSTS_PRELOAD:
        # Preloading is a submission to the browsers' lists for the whole domain: the
        # operator's decision (DJANGO_HSTS_PRELOAD=1), not a default.
        SILENCED_SYSTEM_CHECKS = ["security.W021"]
