"""The rules every config value is checked against: patterns, limits, the lists of allowed
values, and the one error shape (`fail`: field, bad value, rule and fix).

Shared by the schema of each table, the names and the Config itself. Imports nothing heavy and
nothing from google.* (this runs on the ``--help`` and bad-input paths).
"""

from __future__ import annotations

import difflib
import keyword
import math
import re
from collections.abc import Iterable
from typing import Any, NoReturn, TypeVar

from deployer.contract import CONTRACT_NAMES
from deployer.errors import ConfigError
from deployer.regions import (
    CLOUD_RUN_REGIONS,
    STORAGE_DUAL_REGIONS,
    STORAGE_MULTI_REGIONS,
    STORAGE_REGIONS,
)

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
USERNAME_RE = re.compile(r"^[\w.@+-]{1,150}$")
MODULE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
#: a custom domain: a lowercase DNS name of two labels or more (no scheme, port, path or "*")
DOMAIN_RE = re.compile(
    r"^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,61}$"
)
#: Cloud Run's own domains: its URLs are added to ALLOWED_HOSTS whatever domains says
RUN_DOMAINS = (".run.app",)
APT_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")  # Debian package names

# Cloud SQL for PostgreSQL tiers: shared-core, custom (vCPUs 1 or even up to 96; memory a
# multiple of 256 MiB, at least 3840 MiB, 0.9-6.5 GiB per vCPU), Enterprise Plus performance.
SHARED_CORE_TIERS = ("db-f1-micro", "db-g1-small")
CUSTOM_TIER_RE = re.compile(r"^db-custom-([1-9][0-9]*)-([1-9][0-9]*)$")
PERF_TIER_RE = re.compile(r"^db-perf-optimized-N-([1-9][0-9]*)$")
PERF_TIER_CPUS = (2, 4, 8, 16, 32, 48, 64, 80, 96, 128)
# A [vpc] key's full resource path (instead of a bare name); REGION is a place.
VPC_PATH_FORMS = {
    "network": "projects/PROJECT/global/networks/NAME",
    "subnetwork": "projects/PROJECT/regions/REGION/subnetworks/NAME",
    "connector": "projects/PROJECT/locations/REGION/connectors/NAME",
}
VPC_PATHS = {
    "network": re.compile(r"^projects/(?P<project>[^/]+)/global/networks/(?P<name>[^/]+)$"),
    "subnetwork": re.compile(
        r"^projects/(?P<project>[^/]+)/regions/(?P<region>[^/]+)/subnetworks/(?P<name>[^/]+)$"
    ),
    "connector": re.compile(
        r"^projects/(?P<project>[^/]+)/locations/(?P<region>[^/]+)/connectors/(?P<name>[^/]+)$"
    ),
}

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
UPTIME_PERIODS = (60, 300, 600, 900)  # seconds: the only periods Cloud Monitoring accepts
#: a GitHub repository (OWNER/REPO: GitHub's limits on each) and a git branch name
GITHUB_REPO_RE = re.compile(r"^[A-Za-z0-9-]{1,39}/[A-Za-z0-9._-]{1,100}$")
BRANCH_RE = re.compile(r"^[A-Za-z0-9._/-]{1,200}$")
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def memory_mib(value: str) -> int | None:
    m = MEMORY_RE.match(value)
    if not m:
        return None
    return int(m.group(1)) * (1024 if m.group(2) == "Gi" else 1)


def check_place(
    field_name: str,
    value: object,
    *,
    places: Iterable[str],
    kind: str,
    examples: str,
    any_case: bool = False,
) -> None:
    """A value that names a place must be one of `places` (deployer/regions.py); the fix offers
    the closest names, else `examples`. `any_case`: Google accepts the name in either case."""
    text = check_str(field_name, value)
    spelled = {(p.upper() if any_case else p): p for p in places}
    key = text.upper() if any_case else text
    if key in spelled:
        return
    close = _closest(key, spelled)
    if close:
        fix = "did you mean " + ", ".join(show(spelled[c]) for c in close) + "?"
    else:
        fix = "e.g. " + examples
    fail(field_name, value, f"not {kind}: {fix}")


def _closest(key: str, names: Iterable[str]) -> list[str]:
    """The three names most like `key`; of equally close ones the first in order, so that
    "europe-west" offers europe-west1, 2, 3 (difflib alone offers the last: 9, 8, 6)."""
    scored = [(difflib.SequenceMatcher(None, key, name).ratio(), name) for name in names]
    close = sorted((-score, name) for score, name in scored if score >= 0.75)
    return [name for _, name in close[:3]]


def check_tier(tier: object) -> None:
    """A Cloud SQL for PostgreSQL tier (the edition rule is DatabaseConfig's)."""
    text = check_str("database.tier", tier)
    if text in SHARED_CORE_TIERS:
        return
    perf = PERF_TIER_RE.match(text)
    if perf is not None:
        if int(perf[1]) not in PERF_TIER_CPUS:
            fail(
                "database.tier",
                tier,
                "db-perf-optimized-N-* tiers have "
                + ", ".join(str(n) for n in PERF_TIER_CPUS)
                + " vCPUs",
            )
        return
    custom = CUSTOM_TIER_RE.match(text)
    if custom is None:
        fail(
            "database.tier",
            tier,
            'PostgreSQL takes "db-f1-micro", "db-g1-small", "db-custom-<vCPUs>-<MiB>" '
            '(e.g. "db-custom-2-7680") or "db-perf-optimized-N-<vCPUs>" (ENTERPRISE_PLUS)',
        )
    cpus, mib = int(custom[1]), int(custom[2])
    if cpus != 1 and (cpus % 2 or cpus > 96):
        fail("database.tier", tier, "a custom tier has 1 vCPU or an even number up to 96")
    lo = max(3840, math.ceil(cpus * 0.9 * 1024 / 256) * 256)  # 0.9 GiB a vCPU, in 256 MiB steps
    hi = cpus * 6656  # 6.5 GiB a vCPU
    if mib % 256 or not lo <= mib <= hi:
        fail(
            "database.tier",
            tier,
            f"with {cpus} vCPU{'s' if cpus > 1 else ''} Cloud SQL allows {lo} to {hi} MiB "
            f'in steps of 256 (e.g. "db-custom-{cpus}-{lo}")',
        )


def check_project(project: object) -> None:
    if not PROJECT_RE.match(check_str("project", project)):
        fail(
            "project",
            project,
            "a project id is 6-30 lowercase letters, digits or hyphens, starting with a "
            "letter and not ending with a hyphen (see `gcloud projects list`)",
        )


def check_region(region: object) -> None:
    check_place(
        "region",
        region,
        places=CLOUD_RUN_REGIONS,
        kind="a Cloud Run region",
        examples='"europe-west1", "us-central1"',
    )


def check_storage_location(field_name: str, value: object) -> None:
    """A bucket location: a region, a predefined dual-region or a multi-region, in any case."""
    check_place(
        field_name,
        value,
        places=STORAGE_REGIONS | STORAGE_DUAL_REGIONS | STORAGE_MULTI_REGIONS,
        kind="a Cloud Storage location",
        examples='a region ("europe-west1"), a dual-region ("EUR4", "NAM4") or a multi-region '
        '("EU", "US", "ASIA")',
        any_case=True,
    )


def check_settings_module(value: object) -> None:
    value = check_str("settings_module", value)
    if not MODULE_RE.match(value) or any(keyword.iskeyword(p) for p in value.split(".")):
        fail(
            "settings_module",
            value,
            "use a dotted Python module path importable from the project root (e.g. "
            '"mysite.settings" or "config.settings.production")',
        )


def check_domains(value: object) -> tuple[str, ...]:
    """``domains``: custom host names, added to ALLOWED_HOSTS and CSRF_TRUSTED_ORIGINS."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        fail("domains", value, 'use a list of host names, e.g. ["www.example.com"]')
    seen: set[str] = set()
    for domain in value:
        if not isinstance(domain, str) or not DOMAIN_RE.match(domain):
            fail(
                "domains",
                domain,
                'use a lowercase host name such as "www.example.com" (no scheme, port, path '
                'or "*")',
            )
        if domain.endswith(RUN_DOMAINS):
            fail("domains", domain, "the service's run.app URLs are always allowed: remove it")
        if domain in seen:
            fail("domains", domain, "listed twice: keep one")
        seen.add(domain)
    return tuple(value)


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
    if key in ("ALLOWED_HOSTS", "CSRF_TRUSTED_ORIGINS"):
        fail(
            where,
            key,
            "djdeploy sets this variable to every URL of the service: list your own host names "
            'in domains = ["www.example.com"] instead',
        )
    if key in CONTRACT_NAMES:
        fail(
            where,
            key,
            "djdeploy sets this variable itself (see docs/container.md): choose another name",
        )
    if key in CLOUD_RUN_RESERVED_ENV or key.startswith("CLOUD_RUN_"):
        fail(where, key, "Cloud Run sets this variable itself: choose another name")


# --------------------------------------------------------------------------- scheduled commands

CRON_NAME_RE = re.compile(r"^[a-z](?:[a-z0-9-]{0,18}[a-z0-9])?$")
#: unix-cron fields as Cloud Scheduler reads them: (name, lowest, highest, names for values)
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
CRON_FIELDS: tuple[tuple[str, int, int, tuple[str, ...]], ...] = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 7, _DAYS),  # 0 and 7 are Sunday
)
_CRON_ITEM_RE = re.compile(r"^(?P<range>\*|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/(?P<step>[0-9]+))?$")
#: Django commands that wait for a terminal: a scheduled run would hang until its timeout
INTERACTIVE_COMMANDS = {
    "shell": "it opens an interactive shell: write a management command instead",
    "dbshell": "it opens an interactive database shell: write a management command instead",
    "shell_plus": "it opens an interactive shell: write a management command instead",
    "createsuperuser": "it prompts for input: add --noinput (the migrate job already creates "
    "the configured superuser)",
    "changepassword": "it prompts for the password: set passwords another way",
}
#: commands that stay non-interactive with one of these flags
NONINTERACTIVE_FLAGS = frozenset({"--noinput", "--no-input"})


def _cron_value(text: str, lo: int, hi: int, names: tuple[str, ...]) -> int | None:
    if text.isdigit():
        return int(text) if lo <= int(text) <= hi else None
    upper = text.upper()
    return names.index(upper) + lo if upper in names else None  # JAN = 1, SUN = 0


def cron_problem(schedule: str) -> str | None:
    """What is wrong with a unix-cron schedule (five fields, each ``*``, a value, a range
    ``a-b``, a step ``*/n`` or ``a-b/n``, or a comma list of those; names for months and days),
    or None when Cloud Scheduler accepts it."""
    fields = schedule.split()
    if len(fields) != 5:
        return (
            f"a schedule has 5 fields (minute hour day-of-month month day-of-week), not "
            f'{len(fields)}: e.g. "0 3 * * *" for 03:00 every day'
        )
    for text, (what, lo, hi, names) in zip(fields, CRON_FIELDS, strict=True):
        for item in text.split(","):
            m = _CRON_ITEM_RE.match(item)
            bounds = (m["range"].split("-") if m and m["range"] != "*" else []) if m else []
            values = [_cron_value(b, lo, hi, names) for b in bounds]
            step = m["step"] if m else None
            if (
                m is None
                or None in values
                or (len(values) == 2 and values[0] > values[1])  # type: ignore[operator]
                or (step is not None and int(step) == 0)
            ):
                return (
                    f'the {what} field "{text}" is not valid: use *, a number {lo}-{hi}, a '
                    "range a-b, a step */n or a-b/n, or a comma list of those"
                )
    return None


def check_cron_command(field_name: str, command: tuple[str, ...]) -> None:
    """A management command that runs without a terminal."""
    if not command or not all(isinstance(p, str) and p for p in command):
        fail(
            field_name,
            list(command),
            'give the management command and its arguments, e.g. ["clearsessions"]',
        )
    name = command[0]
    if name in ("manage.py", "python", "django-admin") or name.startswith("-"):
        fail(
            field_name,
            list(command),
            'give the command as manage.py takes it, without "manage.py": e.g. ["clearsessions"]',
        )
    why = INTERACTIVE_COMMANDS.get(name)
    if why is not None and not (name == "createsuperuser" and NONINTERACTIVE_FLAGS & set(command)):
        fail(field_name, list(command), f'"{name}" cannot run on a schedule: {why}')
