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
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
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
AEGIS_ARTIFACT_ROOT = Path(env_str("AEGIS_ARTIFACT_ROOT", str(VAR_DIR / "artifacts")))
AEGIS_WORK_DIR = Path(env_str("AEGIS_WORK_DIR", str(VAR_DIR / "work")))
# Free space the preflight stage demands beyond the snapshot's size (download + package copies).
AEGIS_MIN_FREE_BYTES = env_int("AEGIS_MIN_FREE_BYTES", 256 * 1024 * 1024, minimum=0)
AEGIS_MAX_IMPORT_BYTES = env_int("AEGIS_MAX_IMPORT_BYTES", 200 * 1024**3, minimum=1)
# A running import whose worker wrote no heartbeat for this long is marked failed (worker lost).
AEGIS_IMPORT_HEARTBEAT_TIMEOUT = env_int("AEGIS_IMPORT_HEARTBEAT_TIMEOUT", 30, minimum=5)
AEGIS_BUILDER_ID = env_str("AEGIS_BUILDER_ID", "https://aegis-catalog.local/builder")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("AEGIS_LOG_LEVEL", "INFO")},
}

if PRODUCTION:
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
    SESSION_COOKIE_HTTPONLY = True
    CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
    SECURE_CONTENT_TYPE_NOSNIFF = True
    X_FRAME_OPTIONS = "DENY"
