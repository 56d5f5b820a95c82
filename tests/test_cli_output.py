"""What plan, up and destroy print: changed leaves with old -> new, every skipped step and what
it waited for, progress lines whose columns fit the longest step name, each kept resource once
with its own reason."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from deployer import render
from deployer.cli import _LazyConsole
from deployer.emulator.testing import EmulatorHandle
from deployer.render import leaves
from deployer.steps.base import Action, Change
from tests.test_scenarios import TENANT, config_env, djdeploy, up


def test_leaves_name_each_changed_field_path() -> None:
    old = {"containers": [{"resources": {"limits": {"memory": "512Mi", "cpu": "1"}}}], "x": 1}
    new = {"containers": [{"resources": {"limits": {"memory": "1Gi", "cpu": "1"}}}], "x": 1}
    assert list(leaves("template", old, new)) == [
        ("template.containers[0].resources.limits.memory", "512Mi", "1Gi")
    ]
    assert list(leaves("env", [1], [1, 2])) == [("env", [1], [1, 2])]  # a list that grew
    assert list(leaves("", {"a": 1}, {"b": 2})) == [("a", 1, None), ("b", None, 2)]


def test_live_progress_on_a_terminal_runs_on_the_clis_console(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """rich's Live enters its console (`with console:`): the CLI's lazy one must allow it, or
    up and destroy die on a terminal before their first step."""
    monkeypatch.setenv("TTY_COMPATIBLE", "1")  # rich: a terminal, whatever stderr is
    console = _LazyConsole(stderr=True)
    with render.Progress(console=console) as progress:  # type: ignore[arg-type]
        assert progress.live_mode


@pytest.mark.parametrize("terminal", [False, True])
def test_a_progress_line_imports_nothing_in_the_step_thread(terminal: bool) -> None:
    """A step thread that imports waits behind the import lock (the clients' import thread
    holds it for seconds): its first progress line must import nothing. rich replaces
    ``:emoji:`` codes by default, importing its emoji table on first use; the CLI's console
    prints text as it is, so a reason's ``:smile:`` stays. In a fresh interpreter: this one
    may have imported the table already. On a terminal the step thread builds the live
    table (rich's own thread draws it)."""
    probe = (
        "import sys, threading\n"
        "from deployer import render\n"
        "from deployer.cli import err\n"
        "from deployer.engine import Event, Phase\n"
        "from deployer.steps.base import Action, Change\n"
        "imported = []\n"
        "def audit(event, args):\n"
        "    if event == 'import' and threading.current_thread().name == 'step':\n"
        "        imported.append(args[0])\n"
        "sys.addaudithook(audit)\n"
        "change = Change('service', 'a service', Action.UPDATE, 'image :smile: differs')\n"
        "def step():\n"
        "    progress(Event('service', Phase.APPLY, 0.5, change))\n"
        "    progress(Event('service', Phase.DONE, 1.5, change, 'updated'))\n"
        "with render.Progress(console=err) as progress:\n"
        "    thread = threading.Thread(target=step, name='step')\n"
        "    thread.start()\n"
        "    thread.join()\n"
        "print(imported)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("TTY_COMPATIBLE", "FORCE_COLOR")}
    env.update(TTY_COMPATIBLE="1" if terminal else "0", COLUMNS="200")
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "[]\n", proc.stderr
    assert "updated: image :smile: differs" in proc.stderr, proc.stderr


@pytest.mark.slow  # whole deployments, and a Python process
def test_a_noop_up_imports_nothing_outside_the_main_and_import_threads(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    """The Google modules come from the clients' import thread, the rest before the steps
    start: a step thread (observing, printing its line) imports nothing, so none waits behind
    the import lock."""
    assert up(emulator)[0] == 0
    found = tmp_path / "imports"
    probe = (
        "import atexit, sys, threading\n"
        "imported = []\n"
        "def audit(event, args):\n"
        "    thread = threading.current_thread().name\n"
        "    if event == 'import' and thread not in ('MainThread', 'google-imports'):\n"
        "        imported.append(f'{thread} {args[0]}')\n"
        "sys.addaudithook(audit)\n"
        f"atexit.register(lambda: open({str(found)!r}, 'w').write(repr(imported)))\n"
        "sys.argv[0] = 'djdeploy'\n"
        "from deployer.__main__ import main\n"
        "main()\n"
    )
    args = ("--endpoint", emulator.url, "--time-scale", "0.001", "up", "--tenant", TENANT)
    proc = subprocess.run(
        [sys.executable, "-c", probe, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **config_env()},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "0 step(s) changed" in proc.stdout, proc.stdout  # a no-op, its lines printed
    assert "ok: 8 APIs enabled" in proc.stderr, proc.stderr
    assert found.read_text() == "[]"


def test_leaves_name_the_env_var_added_or_removed() -> None:
    """Not the two whole env lists, cut short to the same first variable on both sides."""
    foo, bar = {"name": "FOO", "value": "1"}, {"name": "BAR", "value": "2"}
    redis = {"name": "REDIS_URL", "valueSource": {"secretKeyRef": {"secret": "r", "version": "1"}}}
    assert list(leaves("env", [bar, foo, redis], [bar, foo])) == [("env[REDIS_URL]", redis, None)]
    assert list(leaves("env", [], [foo])) == [("env[FOO]", None, foo)]
    renamed = {"name": "BAZ", "value": "1"}
    assert list(leaves("env", [bar, foo], [bar, renamed])) == [
        ("env[FOO]", foo, None),
        ("env[BAZ]", None, renamed),
    ]
    changed = {"name": "FOO", "value": "3"}  # the same names: by position, as before
    assert list(leaves("env", [bar, foo], [bar, changed])) == [("env[1].value", "1", "3")]


@pytest.mark.slow  # a whole up
def test_plan_shows_the_one_changed_leaf(
    emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert up(emulator)[0] == 0
    monkeypatch.setenv("DJDEPLOY_SERVICE_MEMORY", "1Gi")
    code, output = djdeploy(emulator, "plan", "--tenant", TENANT)
    assert code == 2, output
    changed = [line.split() for line in output.splitlines() if "->" in line]
    memory = [parts for parts in changed if parts[0].endswith("limits.memory")]
    # the service's; the jobs take a new memory at their next run (docs/steps-run.md)
    assert [parts[0] for parts in memory] == ["template.containers[0].resources.limits.memory"], (
        output
    )
    assert all(parts[1:] == ["512Mi", "->", "1Gi"] for parts in memory), output
    assert not any("[{" in " ".join(parts) for parts in changed), output  # no whole lists


def test_a_failed_up_names_each_skipped_step_and_what_it_waited_for(
    emulator: EmulatorHandle,
) -> None:
    emulator.control.fail("sql.operation", "demo-django-pg", "it broke on purpose")
    code, output = up(emulator)
    assert code == 1
    lines = output.splitlines()
    assert sum(line.startswith("failed ") for line in lines) == 1, output
    assert "failed sql-instance: " in output
    assert "not run sql-database: waits for sql-instance, which failed" in lines
    assert "not run sql-user: waits for sql-database, which did not run either" in lines
    assert "not run service: waits for migrate, which did not run either" in lines

    # the progress lines: the state column starts after the longest step name, on every line
    phases = ("observe", "apply", "wait", "done", "failed", "skipped")
    progress = [line for line in lines if len(line.split()) > 1 and line.split()[1] in phases]
    assert any(line.startswith("monitoring-retired ") for line in progress), output
    columns = {line.index(line.split()[1], len(line.split()[0])) for line in progress}
    assert columns == {len("monitoring-retired") + 1}, output


def test_a_failed_up_json_says_what_failed_and_null_for_no_url(emulator: EmulatorHandle) -> None:
    emulator.control.fail("sql.operation", "demo-django-pg", "it broke on purpose")
    code, output = up(emulator, "--json")
    assert code == 1
    doc = json.loads(output)
    assert doc["ok"] is False
    assert doc["error"].startswith("sql-instance: Cloud SQL instance demo-django-pg is in state")
    assert "sql-database" not in doc["error"]  # only waited for it: in steps, not the cause
    assert doc["url"] is None and doc["local_url"] is None


@pytest.mark.slow
def test_destroy_names_the_shared_staging_bucket_once_as_shared(emulator: EmulatorHandle) -> None:
    assert up(emulator)[0] == 0
    code, output = djdeploy(emulator, "destroy", "--tenant", TENANT)
    assert code == 0, output
    lines = output.splitlines()
    lines = lines[lines.index("destroy") :]  # the table on stdout, after the progress lines
    sources = [" ".join(line.split()) for line in lines if " keep " in line and "sources" in line]
    shared = "shared by every tenant of the project"
    assert sources == [f"sources-bucket bucket acme-prod-djdeploy-sources keep {shared}"], output
    assert sum("shared by every tenant" in line for line in lines) == 1, output
    assert lines[-1].startswith("deleted ") and "kept " in lines[-1], output
    assert all("run with --delete-data to delete" not in line for line in lines)


ACCOUNTS = "demo-django-run@acme-prod.iam.gserviceaccount.com"
DESTROYED = [
    Change("service", "run service demo-django", Action.DELETE, "deleted service demo-django"),
    Change(
        "service-accounts",
        f"service accounts {ACCOUNTS}, {ACCOUNTS.replace('run', 'build')}",
        Action.DELETE,
        "deleted both",
    ),
    Change(
        "sources-bucket",
        "bucket acme-prod-djdeploy-sources",
        Action.NOOP,
        "kept: shared by every tenant of the project",
    ),
    Change(
        "sql-instance",
        "demo-django-pg",
        Action.NOOP,
        "kept: database instance demo-django-pg holds data; --delete-data to delete",
    ),
    Change("apis", "APIs of project acme-prod", Action.NOOP, "APIs stay enabled"),
]


def destroy_output(width: int, *, terminal: bool) -> list[str]:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=terminal, color_system=None)
    render.destroyed(DESTROYED, as_json=False, out=console)
    return [line.rstrip() for line in buffer.getvalue().splitlines()]


@pytest.mark.parametrize(("width", "terminal"), [(100, True), (200, True), (100_000, False)])
def test_destroy_names_each_kept_resource_once_and_ends_with_a_summary(
    width: int, terminal: bool
) -> None:
    lines = destroy_output(width, terminal=terminal)
    text = "\n".join(lines)
    assert text.count("shared by every tenant") == 1, text
    assert text.count("database instance demo-django-pg") == 1, text
    kept = [line.split() for line in lines if " keep " in line]
    assert [words[0] for words in kept] == ["sources-bucket", "sql-instance"], text
    assert lines[-1] == "deleted 2, kept 2 (1 holds data: --delete-data deletes it)"


@pytest.mark.parametrize(("width", "terminal"), [(100, True), (200, True), (100_000, False)])
def test_table_columns_fit_their_content_and_the_terminal(width: int, terminal: bool) -> None:
    """Nothing cut (no ellipsis), every line within a terminal's width; the resource column
    no wider than its longest name (the action column starts right after it, padding aside)."""
    lines = destroy_output(width, terminal=terminal)
    assert not any("…" in line for line in lines), lines
    assert all(len(line) <= width for line in lines), lines
    header = next(line for line in lines if line.startswith("step"))
    longest = max(len(word) for c in DESTROYED for word in c.resource.split())
    resource = max(render.RESOURCE_MIN_WIDTH, min(longest, width // 3))
    assert header.index("action") <= len("service-accounts") + 2 + resource + 2, lines
    if not terminal:  # a pipe: the service accounts wrap between names, never inside one
        assert any(line.strip() == f"{ACCOUNTS.replace('run', 'build')}" for line in lines)


def test_an_emulator_runs_hints_name_the_same_emulator(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A failed step's logs, the lease's unlock and the `up` again, copied as printed from an
    --emulator run, go to that emulator, not to Google Cloud (render.same_target, as for the
    error lines)."""
    from deployer.engine import Event, Phase, RunResult, StepResult
    from deployer.lease import Holder, Notice, NoticeKind

    flags = " --emulator --state-dir /tmp/s"
    error = "migrate: execution x failed; logs: `djdeploy logs --tenant demo --job migrate`"
    buffer = io.StringIO()
    console = Console(file=buffer, width=100_000, force_terminal=False, color_system=None)
    progress = render.Progress(console=console, flags=flags)
    progress(Event("migrate", Phase.FAILED, 1.0, message=error))
    holder = Holder(id="h", tenant="demo", command="up")
    progress.lease(Notice(NoticeKind.WAITING, "demo", holder=holder, waited=3))
    failed = RunResult([StepResult("migrate", error=error)], 1.0)
    render.up_result(failed, as_json=False, out=console, flags=flags)
    text = buffer.getvalue()
    assert "`djdeploy logs --tenant demo --job migrate --emulator --state-dir /tmp/s`" in text
    assert text.count("--job migrate --emulator") == 2, text  # progress, then the summary
    assert "`djdeploy unlock --tenant demo --emulator --state-dir /tmp/s` if it is stuck" in text
    assert "run `djdeploy up --emulator --state-dir /tmp/s` again once the cause" in text
    assert "`djdeploy logs --tenant demo --job migrate`" not in text
    render.up_result(failed, as_json=True, out=console, flags=flags)  # --json: on stdout
    assert json.loads(capsys.readouterr().out)["error"] == render.same_target(error, flags)


def test_manage_no_wait_names_the_tenant_and_emulator_of_its_logs() -> None:
    from deployer.management import ManageRun

    buffer = io.StringIO()
    console = Console(file=buffer, width=100_000, force_terminal=False, color_system=None)
    run = ManageRun(execution="demo-django-manage-x1", job="j", revision="r", state="running")
    render.manage_run(
        run, tenant="demo", as_json=False, out=console, err=console, flags=" --emulator"
    )
    assert buffer.getvalue().splitlines()[-1] == (
        "started; its logs: `djdeploy logs --tenant demo --job manage --emulator` "
        "(execution demo-django-manage-x1)"
    )
