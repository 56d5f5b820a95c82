"""The runtime settings overlay (DJANGO_SETTINGS_MODULE=djdeploy_runtime.settings).

First the project's own settings module is imported and all of its settings copied here (what
``from <module> import *`` would do for the UPPERCASE names Django reads); then the environment
of the deployer/container contract (deployer/contract.py, docs/container.md) is applied on top.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from djdeploy_runtime.dbwait import db_env
from djdeploy_runtime.discover import (
    DiscoveryError,
    allowed_hosts,
    app_home,
    find_settings_module,
    project_dir,
)
from djdeploy_runtime.jsonlog import logging_config


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def _env_list(name: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def _add_unique(items: list[str], item: str, index: int) -> None:
    if item not in items:
        items.insert(index, item)


_HOME = app_home()
try:
    _PROJECT_DIR = project_dir(_HOME)
    PROJECT_SETTINGS_MODULE = find_settings_module(_HOME)
    _allowed_hosts = allowed_hosts()
except DiscoveryError as exc:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(str(exc)) from None
if str(_PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(_PROJECT_DIR))

_project = importlib.import_module(PROJECT_SETTINGS_MODULE)
globals().update({k: v for k, v in vars(_project).items() if k.isupper()})
_g: dict[str, Any] = globals()

# --- secrets and hosts -------------------------------------------------------------------------
SECRET_KEY = _env("SECRET_KEY") or _g.get("SECRET_KEY", "")
# After `djdeploy secrets rotate`: the previous key, so what it signed (sessions, password-reset
# links) stays valid until the next rotation (Django 4.1+; older versions ignore the setting).
SECRET_KEY_FALLBACKS = [
    key
    for key in (_env("SECRET_KEY_FALLBACKS"), *(_g.get("SECRET_KEY_FALLBACKS") or []))
    if key and key != SECRET_KEY
]
DEBUG = False
ALLOWED_HOSTS = _allowed_hosts  # never "*": the service's own host(s) only
CSRF_TRUSTED_ORIGINS = _env_list("CSRF_TRUSTED_ORIGINS")

# --- database: the tenant's PostgreSQL, over the Cloud SQL socket when DB_HOST is a path --------
# Merged into the project's own "default": its ATOMIC_REQUESTS, TEST, CONN_* and (PostgreSQL)
# OPTIONS are kept; a PostGIS engine stays PostGIS. Other aliases are kept as they are.
DATABASES = {alias: dict(conf) for alias, conf in (_g.get("DATABASES") or {}).items()}
_default: dict[str, Any] = DATABASES.get("default", {})
_project_engine = str(_default.get("ENGINE", ""))
_was_postgres = "postgresql" in _project_engine or "postgis" in _project_engine
_db = db_env()
_default.update(
    {
        "ENGINE": _project_engine
        if "postgis" in _project_engine
        else ("django.db.backends.postgresql"),
        "NAME": _db["name"],
        "USER": _db["user"],
        "PASSWORD": _db["password"],
        # A path (/cloudsql/<connection name>) is a Unix socket directory for libpq; anything
        # else is a host name reached over TCP.
        "HOST": _db["host"],
        "PORT": _db["port"],
    }
)
_default.setdefault("CONN_MAX_AGE", 60)
_default.setdefault("CONN_HEALTH_CHECKS", True)
# Another engine's OPTIONS (sqlite's timeout, say) mean nothing to libpq: dropped.
_options = dict(_default.get("OPTIONS") or {}) if _was_postgres else {}
_options.setdefault("connect_timeout", 10)
_options.setdefault("application_name", "djdeploy")
_default["OPTIONS"] = _options
DATABASES["default"] = _default

# --- HTTPS behind Cloud Run's TLS termination ----------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = int(_g.get("SECURE_HSTS_SECONDS") or 0) or 31536000
SECURE_CONTENT_TYPE_NOSNIFF = True
# Why these two are silenced: docs/container.md, "Silenced checks".
SILENCED_SYSTEM_CHECKS = list(_g.get("SILENCED_SYSTEM_CHECKS") or [])
for _check in ("security.W005", "security.W021"):
    if _check not in SILENCED_SYSTEM_CHECKS:
        SILENCED_SYSTEM_CHECKS.append(_check)

# --- middleware: health first, then security, whitenoise, media ---------------------------------
_HEALTH = "djdeploy_runtime.middleware.RequestContextMiddleware"
_SECURITY = "django.middleware.security.SecurityMiddleware"
_WHITENOISE = "whitenoise.middleware.WhiteNoiseMiddleware"
_MEDIA = "djdeploy_runtime.middleware.MediaMiddleware"
MIDDLEWARE = [m for m in (_g.get("MIDDLEWARE") or []) if m not in (_HEALTH, _MEDIA)]
_add_unique(MIDDLEWARE, _HEALTH, 0)
_add_unique(MIDDLEWARE, _SECURITY, 1)
_add_unique(MIDDLEWARE, _WHITENOISE, MIDDLEWARE.index(_SECURITY) + 1)
MIDDLEWARE.insert(MIDDLEWARE.index(_WHITENOISE) + 1, _MEDIA)

# --- static and media files ---------------------------------------------------------------------
STATIC_URL = _g.get("STATIC_URL") or "/static/"
# Outside the project tree: a project's STATICFILES_DIRS = [BASE_DIR / "static"] must not
# contain it (staticfiles.E002).
STATIC_ROOT = _env("STATIC_ROOT") or _g.get("STATIC_ROOT") or "/srv/static"
MEDIA_URL = _g.get("MEDIA_URL") or "/media/"
MEDIA_ROOT = _env("MEDIA_ROOT") or _g.get("MEDIA_ROOT") or str(_HOME / "media")
GS_BUCKET_NAME = _env("GS_BUCKET_NAME") or _g.get("GS_BUCKET_NAME")

# STORAGES replaces the pre-4.2 settings; the two cannot be set together.
_storages: dict[str, Any] = dict(_g.get("STORAGES") or {})
_legacy_default = _g.pop("DEFAULT_FILE_STORAGE", None)
_g.pop("STATICFILES_STORAGE", None)
STORAGES = {
    **_storages,
    "default": _storages.get("default")
    or {"BACKEND": _legacy_default or "django.core.files.storage.FileSystemStorage"},
    # Hashed names let whitenoise serve static files with far-future cache headers, and the
    # files are compressed once at collectstatic; collectstatic runs at image build, so a
    # reference to a missing file fails the build, not a request.
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# --- logging: JSON on stdout for Cloud Logging -----------------------------------------------
LOGGING_CONFIG = "logging.config.dictConfig"
LOGGING = logging_config()
