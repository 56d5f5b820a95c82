"""The deployer/container contract: the environment the deployer sets and the container reads.

This is the one place in code that lists it (docs/container.md is the one place in docs);
tests/test_contract.py checks that both, and the container runtime, agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EnvVar:
    name: str
    secret: bool  # set as a Secret Manager reference pinned to a numeric version
    where: str  # "all" (service and both jobs) or "migrate" (the migrate job only)
    doc: str


CONTRACT: tuple[EnvVar, ...] = (
    EnvVar(
        "DJANGO_SETTINGS_MODULE",
        False,
        "all",
        "djdeploy_runtime.settings: imports the project's settings, then applies this env",
    ),
    EnvVar("DJANGO_PROJECT_SETTINGS", False, "all", "the project's own settings module"),
    EnvVar("SECRET_KEY", True, "all", "Django SECRET_KEY"),
    EnvVar(
        "SECRET_KEY_FALLBACKS",
        True,
        "all",
        "the SECRET_KEY before the last rotation (only after one): Django SECRET_KEY_FALLBACKS",
    ),
    EnvVar("DB_NAME", False, "all", "the tenant's database"),
    EnvVar("DB_USER", False, "all", "the tenant's database user"),
    EnvVar("DB_PASSWORD", True, "all", "the database user's password"),
    EnvVar("DB_HOST", False, "all", "/cloudsql/<project>:<region>:<instance> (Unix socket dir)"),
    EnvVar("DB_PORT", False, "all", "5432"),
    EnvVar("MEDIA_ROOT", False, "all", "/app/media, the GCS FUSE mount of the media bucket"),
    EnvVar(
        "STATIC_ROOT",
        False,
        "all",
        "/srv/static, collected at image build (and again at migrate), served by whitenoise",
    ),
    EnvVar(
        "ALLOWED_HOSTS",
        False,
        "all",
        "the service's hosts, comma-separated: <service>-<number>.<region>.run.app, (service "
        "only) its older <service>-*-<code>.a.run.app host as a pattern, and config.domains",
    ),
    EnvVar("CSRF_TRUSTED_ORIGINS", False, "all", "https:// + each exact host of ALLOWED_HOSTS"),
    EnvVar("GS_BUCKET_NAME", False, "all", "the media bucket's name"),
    EnvVar("DJANGO_SUPERUSER_USERNAME", False, "migrate", "superuser created if missing"),
    EnvVar("DJANGO_SUPERUSER_EMAIL", False, "migrate", "its email"),
    EnvVar("DJANGO_SUPERUSER_PASSWORD", True, "migrate", "its password (its own secret)"),
    EnvVar(
        "DJANGO_SUPERUSER_PASSWORD_PREVIOUS",
        True,
        "migrate",
        "the password secret before its last rotation (only after one): an existing superuser "
        "whose password is still this one is moved to DJANGO_SUPERUSER_PASSWORD",
    ),
    EnvVar("HEALTH_PATH", False, "all", "the path the health checks answer (probes.path)"),
    EnvVar("GOOGLE_CLOUD_PROJECT", False, "all", "the project id, for log-trace correlation"),
    EnvVar("DB_EXTENSIONS", False, "all", "comma-separated PostgreSQL extensions db-init creates"),
)

CONTRACT_NAMES: frozenset[str] = frozenset(v.name for v in CONTRACT)
