"""Unit tests of the runtime package's pieces (no database, no server)."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from container_helpers import CONTAINER

sys.path.insert(0, str(CONTAINER))

from djdeploy_runtime import discover, jsonlog, pyproject_deps
from djdeploy_runtime.dbinit import DbInitError, extensions_from_env
from djdeploy_runtime.gunicorn_conf import available_cpus


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")', "mysite.settings"),
        ("os.environ.setdefault( 'DJANGO_SETTINGS_MODULE' ,\n 'a.b.prod' )", "a.b.prod"),
        ('os.environ["DJANGO_SETTINGS_MODULE"] = "x.settings"', None),
        ("", None),
    ],
)
def test_settings_from_manage_py(text: str, expected: str | None) -> None:
    assert discover.settings_from_manage_py(text) == expected


def test_explicit_project_settings_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "manage.py").write_text(
        'os.environ.setdefault("DJANGO_SETTINGS_MODULE", "from_manage.settings")'
    )
    monkeypatch.setenv("DJANGO_PROJECT_SETTINGS", "explicit.settings")
    assert discover.find_settings_module(tmp_path) == "explicit.settings"
    monkeypatch.delenv("DJANGO_PROJECT_SETTINGS")
    assert discover.find_settings_module(tmp_path) == "from_manage.settings"


def test_the_runtime_is_not_a_project_settings_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "manage.py").write_text("")
    monkeypatch.setenv("DJANGO_PROJECT_SETTINGS", "djdeploy_runtime.settings")
    with pytest.raises(discover.DiscoveryError, match="that is the runtime"):
        discover.find_settings_module(tmp_path)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("105445aa7843bc8bf206b12000100000/1;o=1", ("105445aa7843bc8bf206b12000100000", "1", True)),
        ("abcdef0123", ("abcdef0123", None, False)),
        ("abc/77;o=0", ("abc", "77", False)),
        ("not hex/1", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_trace_header(header: str | None, expected: tuple | None) -> None:
    assert jsonlog.parse_trace_header(header) == expected


def test_formatter_writes_cloud_logging_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "my-proj")
    record = logging.LogRecord("app", logging.WARNING, "/x.py", 7, 'say "%s"', ("hi",), None)
    token = jsonlog.current_trace.set(("abc123", "9", True))
    try:
        entry = json.loads(jsonlog.CloudLoggingFormatter().format(record))
    finally:
        jsonlog.current_trace.reset(token)
    assert entry["severity"] == "WARNING"
    assert entry["message"] == 'say "hi"'
    assert entry["logging.googleapis.com/trace"] == "projects/my-proj/traces/abc123"
    assert entry["logging.googleapis.com/spanId"] == "9"
    assert entry["logging.googleapis.com/trace_sampled"] is True
    assert entry["logging.googleapis.com/sourceLocation"]["line"] == "7"


def test_formatter_without_project_or_request_has_no_trace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("a", logging.ERROR, "f", 1, "failed", (), sys.exc_info())
    token = jsonlog.current_trace.set(("abc", None, False))
    try:
        entry = json.loads(jsonlog.CloudLoggingFormatter().format(record))
    finally:
        jsonlog.current_trace.reset(token)
    assert "logging.googleapis.com/trace" not in entry
    assert entry["severity"] == "ERROR"
    assert (
        entry["message"].startswith("failed\nTraceback") and "ValueError: boom" in entry["message"]
    )


@pytest.mark.parametrize(
    ("cpu_max", "expected"), [("200000 100000", 2), ("150000 100000", 2), ("50000 100000", 1)]
)
def test_cpus_from_cgroup_quota(tmp_path: Path, cpu_max: str, expected: int) -> None:
    path = tmp_path / "cpu.max"
    path.write_text(cpu_max + "\n")
    assert available_cpus(path) == expected


def test_cpus_without_quota_fall_back_to_affinity(tmp_path: Path) -> None:
    path = tmp_path / "cpu.max"
    path.write_text("max 100000\n")
    assert available_cpus(path) >= 1
    assert available_cpus(tmp_path / "missing") >= 1


def test_pyproject_dependencies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname = "x"\ndependencies = ["Django>=5,<6", "pillow"]\n')
    assert pyproject_deps.main(["pyproject_deps.py", str(path)]) == 0
    assert capsys.readouterr().out.splitlines() == ["Django>=5,<6", "pillow"]
    path.write_text('[tool.poetry]\nname = "x"\n')
    assert pyproject_deps.main(["pyproject_deps.py", str(path)]) == 1
    assert "lists no [project].dependencies" in capsys.readouterr().err


def test_extension_names_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_EXTENSIONS", " citext, pg_trgm ,citext,,uuid-ossp")
    assert extensions_from_env() == ["citext", "pg_trgm", "uuid-ossp"]
    monkeypatch.setenv("DB_EXTENSIONS", 'x"; DROP TABLE y')
    with pytest.raises(DbInitError):
        extensions_from_env()
