"""Loading a Config: defaults < file (``djdeploy.toml`` in the working directory, else
``[tool.djdeploy]`` in its ``pyproject.toml``) < ``DJDEPLOY_*`` environment variables < flags,
remembering where each value came from so an error can say it."""

from __future__ import annotations

import configparser
import dataclasses
import difflib
import os
import tomllib
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from deployer.config.model import Config, section
from deployer.config.rules import check_project, check_region, fail, show
from deployer.config.schema import (
    BuildConfig,
    CiConfig,
    CronEntry,
    DatabaseConfig,
    MediaConfig,
    MonitoringConfig,
    ProbeConfig,
    SecretRef,
    ServiceConfig,
    SuperuserConfig,
    VpcConfig,
    WorkerConfig,
)
from deployer.errors import ConfigError

EMULATOR_PROJECT = "djdeploy-demo"
CONFIG_FILE = "djdeploy.toml"

_TABLES: dict[str, type] = {
    "build": BuildConfig,
    "service": ServiceConfig,
    "vpc": VpcConfig,
    "database": DatabaseConfig,
    "media": MediaConfig,
    "superuser": SuperuserConfig,
    "probes": ProbeConfig,
    "monitoring": MonitoringConfig,
    "worker": WorkerConfig,
    "ci": CiConfig,
}
_OPTIONAL = ("vpc", "worker", "ci")  # absent: None
_MAPS = ("env", "secret_env", "labels")
_TOP = ("tenant", "project", "region", "app", "source", "settings_module", "domains")
_ENV_TOP = {f"DJDEPLOY_{k.upper()}": k for k in _TOP}


def _table_fields(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


_FIELDS: dict[str, dict[str, Any]] = {t: _table_fields(c) for t, c in _TABLES.items()}
_CRON_KEYS = tuple(f.name for f in dataclasses.fields(CronEntry) if f.name != "_")
_ALL_KEYS: list[str] = [
    *_TOP,
    "cron",
    *(f"cron.{k}" for k in _CRON_KEYS),
    *_MAPS,
    *_TABLES,
    *(f"{t}.{f}" for t, fs in _FIELDS.items() for f in fs),
]


def _closest(name: str, known: Iterable[str]) -> str | None:
    """The known name ``name`` is most likely a misspelling of (None: none is close)."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown(kind: str, name: str, known: Iterable[str], where: str) -> NoReturn:
    close = _closest(name, known)
    hint = f': did you mean "{close}"?' if close else ""
    raise ConfigError(f'unknown {kind} "{name}" in {where}{hint}')


#: Fields holding a command line: its arguments may hold commas, so a variable is not a comma list.
_COMMAND_LINES = frozenset({"worker.command"})


def _convert(dotted: str, value: Any, origin: str) -> Any:
    """A string from an env var or flag, converted to the field's type."""
    if not isinstance(value, str):
        return value
    table, _, name = dotted.partition(".")
    if not name:
        return value
    hint = _FIELDS[table][name]
    text = value.strip()
    if hint is int:
        try:
            return int(text)
        except ValueError:
            raise ConfigError(
                f"{origin} {show(value)} is invalid: {dotted} must be a whole number"
            ) from None
    if hint is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{origin} {show(value)} is invalid: {dotted} must be true or false")
    if dotted in _COMMAND_LINES:
        return value  # split like a shell by the schema, as the file's string form is
    if typing.get_origin(hint) is tuple:
        return tuple(p.strip() for p in text.split(",") if p.strip())
    if text == "" and type(None) in typing.get_args(hint):
        return None
    return value


class _Layers:
    """Accumulates values by dotted key, remembering where each came from."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.origin: dict[str, str] = {}
        self.maps: dict[str, dict[str, Any]] = {m: {} for m in _MAPS}
        self.base: dict[str, Path] = {}  # directory a relative source resolves against
        self.cron: list[tuple[dict[str, Any], str]] = []  # [[cron]] tables, where each is from
        self.file: Path | None = None  # the config file read, if any

    def set(self, dotted: str, value: Any, origin: str) -> None:
        self.values[dotted] = value
        self.origin[dotted] = origin


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def load_file(path: Path) -> dict[str, Any]:
    """The djdeploy settings in a file: all of a djdeploy.toml, or [tool.djdeploy] of a
    pyproject.toml ({} when it has none)."""
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})
        section = tool.get("djdeploy", {}) if isinstance(tool, dict) else {}
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: [tool.djdeploy] must be a table")
        return section
    return data


def find_config_file(cwd: Path) -> Path | None:
    """djdeploy.toml in cwd, else cwd/pyproject.toml when it has [tool.djdeploy]."""
    own = cwd / CONFIG_FILE
    if own.is_file():
        return own
    pyproject = cwd / "pyproject.toml"
    if pyproject.is_file() and load_file(pyproject):
        return pyproject
    return None


def _apply_file(layers: _Layers, data: Mapping[str, Any], path: Path) -> None:
    where = str(path) if path.name != "pyproject.toml" else f"{path} [tool.djdeploy]"
    for key, value in data.items():
        if key in _TOP:
            layers.set(key, value, f"{key} in {where}")
            if key == "source":
                layers.base["source"] = path.parent
        elif key in _MAPS:
            if not isinstance(value, dict):
                raise ConfigError(f"{key} in {where} must be a table ([{key}])")
            for k, v in value.items():
                layers.maps[key][k] = (v, f"{key}.{k} in {where}")
        elif key == "cron":
            _apply_cron(layers, value, where)
        elif key in _TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{key} in {where} must be a table ([{key}])")
            for k, v in value.items():
                if k not in _FIELDS[key]:
                    _unknown("key", f"{key}.{k}", _ALL_KEYS, where)
                layers.set(f"{key}.{k}", v, f"{key}.{k} in {where}")
        else:
            _unknown("key", key, _ALL_KEYS, where)


def _apply_cron(layers: _Layers, value: Any, where: str) -> None:
    """The [[cron]] tables of a file (only a file sets them: no env var or flag does)."""
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        raise ConfigError(f"cron in {where} must be an array of tables ([[cron]])")
    for table in value:
        for k in table:
            if k not in _CRON_KEYS:
                _unknown("key", f"cron.{k}", _ALL_KEYS, where)
        layers.cron.append((dict(table), f"[[cron]] {show(table.get('name'))} in {where}"))


_ENV_TABLES = {f"DJDEPLOY_{t.upper()}_": t for t in _TABLES}


def _apply_environ(layers: _Layers, environ: Mapping[str, str], cwd: Path) -> None:
    """The documented variables only: DJDEPLOY_<KEY> and DJDEPLOY_<TABLE>_<FIELD>. Any other
    DJDEPLOY_* (the CLI's own, a CI's DJDEPLOY_BUILD_NUMBER, an unrelated DJDEPLOY_VERBOSE)
    is not ours to refuse: ignored (misspelt_variables warns of the likely typos)."""
    tables = _ENV_TABLES
    for var, value in environ.items():
        if var in _ENV_TOP:
            key = _ENV_TOP[var]
            layers.set(key, value, var)
            if key == "source":
                layers.base["source"] = cwd
            continue
        for head, table in tables.items():
            name = var[len(head) :].lower() if var.startswith(head) else ""
            if name in _FIELDS[table]:
                layers.set(f"{table}.{name}", _convert(f"{table}.{name}", value, var), var)
                break


def misspelt_variables(environ: Mapping[str, str]) -> list[str]:
    """One warning line per ignored DJDEPLOY_<TABLE>_<NAME> whose NAME is close to a field of
    that table (DJDEPLOY_SERVICE_MEMRY), sorted. Others stay silent: DJDEPLOY_VERBOSE names no
    table, and DJDEPLOY_BUILD_ID (a CI's) is close to no field of [build]."""
    out = []
    for var in sorted(environ):
        head = next((h for h in _ENV_TABLES if var.startswith(h)), None)
        if head is None:
            continue
        fields = _FIELDS[_ENV_TABLES[head]]
        name = var[len(head) :].lower()
        close = None if name in fields else _closest(name, fields)
        if close is not None:
            out.append(
                f"{var} is not a djdeploy setting (did you mean {head}{close.upper()}?): ignored"
            )
    return out


def _pairs(key: str, value: Any) -> Iterable[tuple[str, Any]]:
    """A map flag given as a dict or as "K=V" strings."""
    if isinstance(value, Mapping):
        return value.items()
    if isinstance(value, str):
        value = [value]
    out = []
    for item in value:
        k, sep, v = str(item).partition("=")
        if not sep:
            raise ConfigError(f'{key} "{item}" is invalid: use NAME=value')
        out.append((k.strip(), v))
    return out


def _apply_flags(layers: _Layers, flags: Mapping[str, Any], cwd: Path) -> None:
    for key, value in flags.items():
        if value is None or key in ("config", "tenant"):
            continue
        origin = f"--{key}"
        if key in _TOP:
            layers.set(key, value, origin)
            if key == "source":
                layers.base["source"] = cwd
        elif key in _MAPS:
            for k, v in _pairs(key, value):
                layers.maps[key][k] = (v, f"{origin} {k}")
        elif "." in key and key.split(".", 1)[0] in _TABLES:
            table, name = key.split(".", 1)
            if name not in _FIELDS[table]:
                _unknown("flag", key, _ALL_KEYS, "the flags")
            layers.set(key, _convert(key, value, origin), origin)
        else:
            _unknown("flag", key, _ALL_KEYS, "the flags")


def _gcloud_project(environ: Mapping[str, str]) -> str | None:
    """The project gcloud would use, read from its config files without running gcloud."""
    if environ.get("CLOUDSDK_CORE_PROJECT"):
        return environ["CLOUDSDK_CORE_PROJECT"]
    if environ.get("CLOUDSDK_CONFIG"):
        root = Path(environ["CLOUDSDK_CONFIG"])
    elif os.name == "nt" and environ.get("APPDATA"):
        root = Path(environ["APPDATA"]) / "gcloud"
    else:
        home = environ.get("HOME")
        root = (Path(home) if home else Path.home()) / ".config" / "gcloud"
    name = environ.get("CLOUDSDK_ACTIVE_CONFIG_NAME")
    if not name:
        try:
            name = (root / "active_config").read_text().strip() or "default"
        except OSError:
            name = "default"
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(root / "configurations" / f"config_{name}", encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return None
    project = parser.get("core", "project", fallback="").strip()
    return project or None


def _resolve_project(layers: _Layers, environ: Mapping[str, str], emulator: bool) -> None:
    """Flag > DJDEPLOY_PROJECT > file > GOOGLE_CLOUD_PROJECT > gcloud config > emulator."""
    if "project" in layers.values:
        return  # flag, DJDEPLOY_PROJECT or the file (layered in that precedence)
    for var in ("GOOGLE_CLOUD_PROJECT",):
        if environ.get(var):
            layers.set("project", environ[var], var)
            return
    found = _gcloud_project(environ)
    if found:
        layers.set("project", found, "the gcloud config")
    elif emulator:
        layers.set("project", EMULATOR_PROJECT, "the emulator default")
    else:
        raise ConfigError(
            "no Google Cloud project: pass --project, set project in djdeploy.toml or "
            "DJDEPLOY_PROJECT, or run `gcloud config set project PROJECT_ID`"
        )


def _check_source_set(layers: _Layers, cwd: Path) -> None:
    """A Django project (its manage.py, or src/manage.py) in the working directory or beside
    the config file, with no `source` set, would deploy the bundled sample instead, silently
    (and from CI on every push): refused, naming the fix. Guessing the directory instead would
    make a file's meaning depend on what lies beside it, and a bare `djdeploy up` in a project
    would deploy it or not depending on a file's absence."""
    if layers.values.get("source") is not None:
        return
    file = layers.file
    if file is not None and holds_project(file.parent):
        where = "[tool.djdeploy] in " if file.name == "pyproject.toml" else ""
        raise ConfigError(
            f"{where}{file} sets no source, but its directory holds a Django project "
            f'(manage.py): add source = "." to it (without it djdeploy deploys its bundled '
            "sample project), or pass --source"
        )
    if not holds_project(cwd):
        return
    if file is None:
        raise ConfigError(
            f"{cwd} holds a Django project (manage.py) but no {CONFIG_FILE}, so djdeploy "
            "would deploy its bundled sample instead: run `djdeploy init` to write one that "
            "deploys this project, or pass --source ."
        )
    raise ConfigError(
        f"{file} sets no source, but the working directory {cwd} holds a Django project "
        "(manage.py): set source in it (relative to its directory), or pass --source ."
    )


def holds_project(directory: Path) -> bool:
    """The container's rule (discover.project_dir): manage.py at the root or in src/."""
    return any((d / "manage.py").is_file() for d in (directory, directory / "src"))


def _layers(*, cwd: Path, environ: Mapping[str, str], flags: Mapping[str, Any]) -> _Layers:
    layers = _Layers()
    explicit = flags.get("config") or environ.get("DJDEPLOY_CONFIG")
    if explicit:
        path = Path(explicit)
        path = path if path.is_absolute() else cwd / path
        if not path.is_file():
            where = "--config" if flags.get("config") else "DJDEPLOY_CONFIG"
            raise ConfigError(
                f'config "{explicit}" is invalid: no such file: point {where} at your '
                "djdeploy.toml (or a pyproject.toml with [tool.djdeploy]), or leave it out to "
                "read the one in the working directory"
            )
        file: Path | None = path
    else:
        file = find_config_file(cwd)
    if file is not None:
        _apply_file(layers, load_file(file), file)
        layers.file = file
    _apply_environ(layers, environ, cwd)
    _apply_flags(layers, flags, cwd)
    return layers


def load_project_and_region(
    *, cwd: Path, environ: Mapping[str, str], flags: Mapping[str, Any], emulator: bool = False
) -> tuple[str, str]:
    """Project and region alone, for commands that span tenants (status with no --tenant)."""
    layers = _layers(cwd=cwd, environ=environ, flags=flags)
    _resolve_project(layers, environ, emulator)
    project, region = layers.values["project"], layers.values.get("region", "europe-west1")
    try:
        check_project(project)
        check_region(region)
    except ConfigError as exc:
        raise _located(exc, layers) from None
    return str(project), str(region)


def load_config(
    *,
    tenant: str | None,
    cwd: Path,
    environ: Mapping[str, str],
    flags: Mapping[str, Any],
    emulator: bool = False,
) -> Config:
    """Build the Config from defaults < file < DJDEPLOY_* env < flags, and validate it.

    `tenant` is the --tenant flag (None: flags["tenant"], DJDEPLOY_TENANT, then the file).
    flags maps dotted keys ("region", "service.memory") to values; None means not given.
    Optional flags["config"] (or DJDEPLOY_CONFIG) names the config file explicitly.
    """
    layers = _layers(cwd=cwd, environ=environ, flags=flags)
    for given in (flags.get("tenant"), tenant):
        if given is not None:
            layers.set("tenant", given, "--tenant")
    if "tenant" not in layers.values:
        raise ConfigError(
            "no tenant: pass --tenant NAME, set DJDEPLOY_TENANT, or set tenant in djdeploy.toml"
        )
    _check_source_set(layers, cwd)
    _resolve_project(layers, environ, emulator)
    try:
        return _build(layers, cwd)
    except ConfigError as exc:
        raise _located(exc, layers) from None


def _located(exc: ConfigError, layers: _Layers) -> ConfigError:
    """The error, saying where its value came from (a file key, a variable, a flag)."""
    origin = _origin_of(exc, layers)
    if origin and origin not in str(exc):
        return ConfigError(f"{exc} (from {origin})")
    return exc


def _origin_of(exc: ConfigError, layers: _Layers) -> str | None:
    name = getattr(exc, "field", None)
    if not name:
        return None
    if name in layers.origin:
        return layers.origin[name]
    table, _, key = name.partition(".")
    if table in layers.maps and key in layers.maps[table]:
        return str(layers.maps[table][key][1])
    key = key.partition(".")[0]
    if table in layers.maps and key in layers.maps[table]:
        return str(layers.maps[table][key][1])
    return None


def _build(layers: _Layers, cwd: Path) -> Config:
    top: dict[str, Any] = {}
    tables: dict[str, dict[str, Any]] = {t: {} for t in _TABLES}
    for dotted, value in layers.values.items():
        table, _, name = dotted.partition(".")
        if name:
            tables[table][name] = value
        else:
            top[dotted] = value
    kwargs: dict[str, Any] = dict(top)
    if kwargs.get("settings_module") == "":
        kwargs["settings_module"] = None  # an empty DJDEPLOY_SETTINGS_MODULE or flag: unset
    if isinstance(kwargs.get("domains"), str):  # DJDEPLOY_DOMAINS: comma-separated
        kwargs["domains"] = tuple(d.strip() for d in kwargs["domains"].split(",") if d.strip())
    if "source" in kwargs and kwargs["source"] is not None:
        src = kwargs["source"]
        if not isinstance(src, str | Path):
            fail("source", src, "must be a path")
        path = Path(src).expanduser()
        kwargs["source"] = (
            path if path.is_absolute() else layers.base.get("source", cwd) / path
        ).resolve()
    for table, cls in _TABLES.items():
        values = tables[table]
        if table in _OPTIONAL:
            if values:
                kwargs[table] = section(cls, values, table)
            continue
        kwargs[table] = section(cls, values, table)
    kwargs["env"] = {k: v for k, (v, _) in layers.maps["env"].items()}
    kwargs["labels"] = {k: v for k, (v, _) in layers.maps["labels"].items()}
    kwargs["secret_env"] = {
        k: SecretRef.parse(v, where=f"secret_env.{k}")
        for k, (v, _) in layers.maps["secret_env"].items()
    }
    kwargs["cron"] = tuple(_cron(table, origin) for table, origin in layers.cron)
    kwargs["config_file"] = layers.file
    tenant = kwargs.pop("tenant")
    return Config(tenant, **kwargs)


def _cron(table: dict[str, Any], origin: str) -> CronEntry:
    if "name" not in table or "schedule" not in table or "command" not in table:
        missing = [k for k in ("name", "schedule", "command") if k not in table]
        raise ConfigError(f"{origin} is invalid: it needs {', '.join(missing)}")
    try:
        return CronEntry(**table)
    except ConfigError as exc:
        raise ConfigError(f"{exc} (from {origin})") from None
