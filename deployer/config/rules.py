"""The rules every config value is checked against: patterns, limits, the lists of allowed
values, and the one error shape (`fail`: field, bad value, rule and fix).

Shared by the schema of each table, the names and the Config itself. Imports nothing heavy and
nothing from google.* (this runs on the ``--help`` and bad-input paths).
"""

from __future__ import annotations

import difflib
import keyword
import re
from collections.abc import Iterable
from typing import Any, NoReturn, TypeVar

from deployer.contract import CONTRACT_NAMES
from deployer.errors import ConfigError
from deployer.regions import CLOUD_RUN_REGIONS

K = TypeVar("K")
V = TypeVar("V")

RESERVED_LABELS = ("managed-by", "djdeploy-tenant", "djdeploy-app")
# Set by Cloud Run itself; a service or job that sets them is refused.
CLOUD_RUN_RESERVED_ENV = frozenset(
    {
        "PORT",
        "K_SERVICE",
        "K_REVISION",
        "K_CONFIGURATION",
        "CLOUD_RUN_JOB",
        "CLOUD_RUN_EXECUTION",
        "CLOUD_RUN_TASK_INDEX",
        "CLOUD_RUN_TASK_ATTEMPT",
        "CLOUD_RUN_TASK_COUNT",
    }
)


# --------------------------------------------------------------------------- the error shape


class FrozenDict(dict[K, V]):
    """A dict that refuses mutation and hashes by content.

    A real dict subclass (not a Mapping) so it goes straight into JSON bodies and proto
    constructors; immutable and hashable so the frozen dataclasses holding it stay so.
    """

    def _immutable(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("FrozenDict is immutable: build a new one (dict(x) | {...})")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _immutable
    __ior__ = _immutable  # type: ignore[assignment]

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(frozenset(self.items()))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (dict(self),))

    def __repr__(self) -> str:
        return f"FrozenDict({dict.__repr__(self)})"


def show(value: object) -> str:
    """A value as the user typed it: strings in double quotes, the rest as-is."""
    return f'"{value}"' if isinstance(value, str) else repr(value)


def fail(field_name: str, value: object, rule: str) -> NoReturn:
    """Raise the one ConfigError shape: field, bad value, rule and fix."""
    err = ConfigError(f"{field_name} {show(value)} is invalid: {rule}")
    err.field = field_name  # type: ignore[attr-defined]  # lets the loader say where it came from
    raise err


def check_int(field_name: str, value: object, lo: int, hi: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        fail(field_name, value, "must be a whole number")
    if value < lo or (hi is not None and value > hi):
        bound = f"between {lo} and {hi}" if hi is not None else f"at least {lo}"
        fail(field_name, value, f"must be {bound}")


def check_str(field_name: str, value: object) -> str:
    if not isinstance(value, str):
        fail(field_name, value, "must be a string")
    return value


def check_bool(field_name: str, value: object) -> None:
    if not isinstance(value, bool):
        fail(field_name, value, "must be true or false")


def check_choice(field_name: str, value: object, choices: Iterable[str]) -> None:
    choices = list(choices)
    if value not in choices:
        fail(field_name, value, "must be one of " + ", ".join(show(c) for c in choices))


# --------------------------------------------------------------------------- patterns and limits

TENANT_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,18}[a-z0-9])?$")
APP_RE = re.compile(r"^[a-z][a-z0-9]{0,19}$")
PROJECT_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
SA_ID_RE = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
SERVICE_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,47}[a-z0-9])?$")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$")
SQL_INSTANCE_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,82}[a-z0-9])?$")
MEMORY_RE = re.compile(r"^([1-9][0-9]*)(Mi|Gi)$")
EXTENSION_RE = re.compile(r"^[a-z_][a-z0-9_-]*$")
ENV_NAME_RE = re.compile(r"^[A-Z_][A-Z0-9_]*$")
SECRET_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,255}$")
LABEL_KEY_RE = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE_RE = re.compile(r"^[a-z0-9_-]{0,63}$")
RESOURCE_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$")  # network, subnet, connector
LOCATION_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,40}$")
USERNAME_RE = re.compile(r"^[\w.@+-]{1,150}$")
MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
APT_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")  # Debian package names

CPUS = ("1", "2", "4", "6", "8")
# Cloud Run: memory allowed per CPU count, in MiB (min, max).
MEMORY_FOR_CPU = {
    "1": (512, 4096),
    "2": (512, 8192),
    "4": (2048, 16384),
    "6": (4096, 24576),
    "8": (4096, 32768),
}
INGRESS = ("all", "internal", "internal-and-cloud-load-balancing")
EGRESS = ("private-ranges-only", "all-traffic")
EDITIONS = ("ENTERPRISE", "ENTERPRISE_PLUS")


def memory_mib(value: str) -> int | None:
    m = MEMORY_RE.match(value)
    if not m:
        return None
    return int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1)


def check_region(region: object) -> None:
    check_str("region", region)
    if region not in CLOUD_RUN_REGIONS:
        close = difflib.get_close_matches(str(region), sorted(CLOUD_RUN_REGIONS), n=3, cutoff=0.8)
        hint = (
            ("did you mean " + ", ".join(show(c) for c in close) + "?")
            if close
            else 'e.g. "europe-west1", "us-central1"'
        )
        fail("region", region, f"not a Cloud Run region: {hint}")


def check_settings_module(value: object) -> None:
    value = check_str("settings_module", value)
    if not MODULE_RE.match(value) or any(keyword.iskeyword(p) for p in value.split(".")):
        fail(
            "settings_module",
            value,
            "use a dotted Python module path importable from the project root (e.g. "
            '"mysite.settings" or "config.settings.production")',
        )


def with_field(err: ConfigError, field_name: str) -> ConfigError:
    err.field = field_name  # type: ignore[attr-defined]
    return err


def check_env_name(where: str, key: object) -> None:
    if not isinstance(key, str) or not ENV_NAME_RE.match(key):
        fail(
            where,
            key,
            "env var names are uppercase letters, digits and '_', not starting "
            'with a digit (e.g. "SENTRY_DSN")',
        )
    if key == "DJANGO_PROJECT_SETTINGS":
        fail(where, key, "djdeploy sets this variable itself: set settings_module instead")
    if key in CONTRACT_NAMES:
        fail(
            where,
            key,
            "djdeploy sets this variable itself (see docs/container.md): choose another name",
        )
    if key in CLOUD_RUN_RESERVED_ENV or key.startswith("CLOUD_RUN_"):
        fail(where, key, "Cloud Run sets this variable itself: choose another name")
