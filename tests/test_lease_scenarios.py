"""Concurrent runs on one tenant, through the CLI in processes of their own, against the
emulator: the tenant's lease makes them take turns, a killed holder is taken over, and what
they leave is whole.

No test waits for a timing window: each waits for a condition (a process holds the lease, a
process says it waits, a request reached the emulator), with a deadline that only bounds a
failure. To keep a holder inside its run until a waiter is seen waiting, an operation kind is
made to last 1000 emulated seconds, then the emulator's clock jumps past it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from deployer.emulator.testing import EmulatorHandle, storage_client
from tests.test_scenarios import PROJECT, TENANT, djdeploy, labelled_resources, status_json, up

pytestmark = pytest.mark.slow  # CLI scenarios: each runs whole deployments

STAGING = f"{PROJECT}-djdeploy-sources"
LEASE = f"djdeploy-leases/{TENANT}"
DEADLINE = 180.0  # seconds: bounds a failure, never decides a pass


class Run:
    """`djdeploy <args>` in a process of its own; a thread collects its output, so the test
    can wait for a line while the process runs."""

    def __init__(self, emulator: EmulatorHandle, cwd: Path, *args: str) -> None:
        env = {**os.environ, "GOOGLE_CLOUD_PROJECT": PROJECT, "DJDEPLOY_TENANT": TENANT}
        cmd = [sys.executable, "-m", "deployer", "--endpoint", emulator.url, "--time-scale"]
        self.proc = subprocess.Popen(
            [*cmd, "0.001", *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str) -> None:
        with self._changed:
            if not self._changed.wait_for(
                lambda: text in self.output or self.proc.poll() is not None, DEADLINE
            ):
                raise AssertionError(f"no {text!r} within {DEADLINE}s:\n{self.output}")
        assert text in self.output, self.output

    def finish(self) -> tuple[int, str]:
        code = self.proc.wait(timeout=DEADLINE)
        self._reader.join(timeout=DEADLINE)
        return code, self.output

    def kill(self) -> None:
        self.proc.kill()
        self.finish()


def until(condition: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"never: {what}")


def lease_fields(emulator: EmulatorHandle) -> dict[str, str] | None:
    blob = storage_client(emulator.url, PROJECT).bucket(STAGING).get_blob(LEASE)
    return dict(blob.metadata or {}) if blob is not None else None


def holds_lease(emulator: EmulatorHandle, run: Run) -> bool:
    try:
        fields = lease_fields(emulator)
    except Exception:  # the staging bucket may not exist yet
        return False
    return fields is not None and fields.get("pid") == str(run.proc.pid)


def sent(emulator: EmulatorHandle, method: str, path_end: str) -> bool:
    return any(
        e["method"] == method and e["path"].endswith(path_end)
        for e in emulator.control.transcript()
    )


def block(emulator: EmulatorHandle, kind: str) -> Callable[[], None]:
    """Make every `kind` operation last 1000 emulated seconds; the returned function moves
    the emulator's clock past them."""
    emulator.control.set_latency(durations={kind: 1_000_000.0})  # x time scale 0.001

    def unblock() -> None:
        emulator.control.set_latency(durations={kind: 0.0})
        base = emulator.emu.clock
        emulator.emu.clock = lambda: base() + 1500.0

    return unblock


def counts(emulator: EmulatorHandle) -> dict[str, int]:
    state = emulator.emu.store.dump()
    executions = Counter(
        job
        for key in state.get("run.execution", {})
        for job in ("db-init", "migrate")
        if f"/jobs/{TENANT}-django-{job}/" in key
    )
    return {
        "builds": len(state.get("cloudbuild.build", {})),
        "db-init": executions["db-init"],
        "migrate": executions["migrate"],
        "secret versions": len(state.get("secretmanager.version", {})),
    }


ONCE = {"builds": 1, "db-init": 1, "migrate": 1, "secret versions": 3}


def deployed(emulator: EmulatorHandle) -> bool:
    states = {s["state"] for s in status_json(emulator)["steps"]}
    return states == {"ok"} and djdeploy(emulator, "plan", "--tenant", TENANT)[0] == 0


@pytest.mark.parametrize("n", [2, 4])
def test_concurrent_ups_take_turns_and_build_and_migrate_once(
    emulator: EmulatorHandle, tmp_path: Path, n: int
) -> None:
    runs = [Run(emulator, tmp_path, "up", "--tenant", TENANT) for _ in range(n)]
    results = [run.finish() for run in runs]
    assert [code for code, _ in results] == [0] * n, results
    assert counts(emulator) == ONCE
    assert any("waiting for the lease on tenant demo held by" in out for _, out in results)
    code, output = djdeploy(emulator, "plan", "--tenant", TENANT)
    assert code == 0, output
    assert lease_fields(emulator) is None  # every run released it


def test_destroy_beside_an_up_that_holds_the_lease_leaves_it_deployed(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    unblock = block(emulator, "sql.instance.create")
    first = Run(emulator, tmp_path, "up", "--tenant", TENANT)
    until(lambda: holds_lease(emulator, first) and sent(emulator, "POST", "/instances"), "up")
    second = Run(emulator, tmp_path, "destroy", "--tenant", TENANT, "--delete-data", "--yes")
    second.wait_for("waiting for the lease on tenant demo held by `djdeploy up`")
    unblock()
    code, output = first.finish()
    assert code == 0, output
    code, output = second.finish()
    assert code == 1, output
    assert "while this `djdeploy destroy --delete-data` waited, `djdeploy up`" in output
    assert "Traceback" not in output
    assert deployed(emulator)
    assert counts(emulator) == ONCE


def test_up_beside_a_destroy_that_holds_the_lease_leaves_it_destroyed(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    assert up(emulator)[0] == 0
    unblock = block(emulator, "sql.instance.delete")
    emulator.control.clear_transcript()
    first = Run(emulator, tmp_path, "destroy", "--tenant", TENANT, "--delete-data", "--yes")
    until(lambda: holds_lease(emulator, first) and sent(emulator, "DELETE", "-pg"), "destroy")
    second = Run(emulator, tmp_path, "up", "--tenant", TENANT)
    second.wait_for("waiting for the lease on tenant demo held by `djdeploy destroy")
    unblock()
    code, output = first.finish()
    assert code == 0, output
    code, output = second.finish()
    assert code == 1, output
    assert "while this `djdeploy up` waited, `djdeploy destroy --delete-data`" in output
    assert labelled_resources(emulator) == Counter()  # nothing of the tenant is left


def lease_takers(emulator: EmulatorHandle) -> list[str]:
    """The commands that took the tenant's lease, in order (from the emulator's transcript)."""
    return [
        e["response"]["metadata"]["command"]
        for e in emulator.control.transcript()
        if e["path"].startswith("/upload/")
        and e["status"] == 200
        and e["query"].get("ifGenerationMatch") == ["0"]
        and e["response"]["name"] == LEASE
    ]


def test_up_and_destroy_started_together_leave_the_tenant_whole(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    assert up(emulator)[0] == 0
    unblock = block(emulator, "sql.instance.delete")
    emulator.control.clear_transcript()
    destroy = Run(emulator, tmp_path, "destroy", "--tenant", TENANT, "--delete-data", "--yes")
    deploy = Run(emulator, tmp_path, "up", "--tenant", TENANT)
    # a destroy that got the lease stays in its SQL delete until the up has looked at the
    # lease (it waits) or is done: the two overlap whatever the machine's load
    until(
        lambda: (
            destroy.proc.poll() is not None
            or (
                sent(emulator, "DELETE", "-pg")
                and (deploy.proc.poll() is not None or "waiting for the lease" in deploy.output)
            )
        ),
        "the destroy is done, or in its SQL delete beside the up",
    )
    unblock()
    (up_code, up_output), (destroy_code, destroy_output) = deploy.finish(), destroy.finish()
    takers = lease_takers(emulator)
    if up_code == 1:  # it waited for the destroy
        assert "while this `djdeploy up` waited, `djdeploy destroy --delete-data`" in up_output
        assert takers == ["destroy --delete-data"]
    if destroy_code == 1:  # it waited for the up
        assert "while this `djdeploy destroy --delete-data` waited, `djdeploy up`" in (
            destroy_output
        )
        assert takers == ["up"]
    assert {up_code, destroy_code} <= {0, 1} and 0 in {up_code, destroy_code}
    if takers[-1] == "up":
        assert deployed(emulator), (takers, up_output, destroy_output)
    else:
        assert labelled_resources(emulator) == Counter(), (takers, up_output, destroy_output)


def test_kill_9_of_the_lease_holder_then_up_takes_over_and_converges(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    holder = Run(emulator, tmp_path, "up", "--tenant", TENANT)
    until(lambda: holds_lease(emulator, holder) and sent(emulator, "POST", "/instances"), "up")
    holder.kill()
    assert lease_fields(emulator) is not None  # left behind: nobody released it
    code, output = up(emulator)
    assert code == 0, output
    assert "took over the lease on tenant demo: `djdeploy up`" in output
    assert f"pid {holder.proc.pid}" in output
    assert counts(emulator) == ONCE
    assert djdeploy(emulator, "plan", "--tenant", TENANT)[0] == 0


def test_kill_9_during_destroy_then_destroy_takes_over_and_finishes(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    assert up(emulator)[0] == 0
    unblock = block(emulator, "sql.instance.delete")
    emulator.control.clear_transcript()
    holder = Run(emulator, tmp_path, "destroy", "--tenant", TENANT, "--delete-data", "--yes")
    until(lambda: holds_lease(emulator, holder) and sent(emulator, "DELETE", "-pg"), "destroy")
    holder.kill()
    unblock()
    code, output = djdeploy(emulator, "destroy", "--tenant", TENANT, "--delete-data", "--yes")
    assert code == 0, output
    assert "took over the lease on tenant demo: `djdeploy destroy --delete-data`" in output
    assert labelled_resources(emulator) == Counter()
    assert lease_fields(emulator) is None


def test_a_holder_whose_lease_is_removed_stops_with_one_line_and_up_then_converges(
    emulator: EmulatorHandle, tmp_path: Path
) -> None:
    unblock = block(emulator, "sql.instance.create")
    holder = Run(emulator, tmp_path, "up", "--tenant", TENANT)
    until(lambda: holds_lease(emulator, holder) and sent(emulator, "POST", "/instances"), "up")
    code, output = djdeploy(emulator, "unlock", "--tenant", TENANT, "--yes")
    assert code == 0, output
    assert "removed the lease on tenant demo held by `djdeploy up` (" in output
    code, output = holder.finish()
    assert code == 1, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert errors == [
        "error: lost the lease on tenant demo: it was removed (djdeploy unlock); stopped. "
        "Run the command again once the other run is done"
    ], output
    assert "Traceback" not in output
    unblock()
    code, output = up(emulator)
    assert code == 0, output
    assert counts(emulator) == ONCE


def test_no_wait_fails_at_once_naming_the_holder_and_plan_and_status_show_it(
    emulator: EmulatorHandle,
) -> None:
    assert up(emulator)[0] == 0
    # a holder as another machine would leave it, written straight to the bucket
    blob = storage_client(emulator.url, PROJECT).bucket(STAGING).blob(LEASE)
    blob.metadata = {
        "id": "other",
        "tenant": TENANT,
        "command": "up",
        "user": "alice",
        "host": "laptop",
        "pid": "4242",
        "since": "2026-12-01T21:30:05Z",
        "seconds": "60",
    }
    blob.upload_from_string(b"", if_generation_match=0)
    emulator.control.clear_transcript()
    code, output = up(emulator, "--no-wait")
    assert code == 1
    assert len(output.strip().splitlines()) == 1, output  # no bootstrap lines before it
    assert output.strip().endswith(
        "error: tenant demo is locked by `djdeploy up` (alice@laptop, pid 4242) since "
        "2026-12-01 21:30:05 UTC: run again once it is done, or `djdeploy unlock --tenant "
        "demo` if it is stuck"
    ), output
    assert not [e for e in emulator.control.transcript() if e["method"] != "GET"]
    code, output = djdeploy(emulator, "plan", "--tenant", TENANT)
    assert code == 0, output
    assert "deploy in progress: `djdeploy up` (alice@laptop, pid 4242) since" in output
    doc = status_json(emulator)
    assert doc["lease"]["pid"] == 4242 and doc["lease"]["user"] == "alice"
    code, output = djdeploy(emulator, "destroy", "--tenant", TENANT, "--no-wait")
    assert code == 1 and "tenant demo is locked by `djdeploy up`" in output
    assert len(output.strip().splitlines()) == 1, output
    code, output = djdeploy(emulator, "secrets", "rotate", "--tenant", TENANT, "--no-wait")
    assert code == 1 and len(output.strip().splitlines()) == 1, output
    assert "tenant demo is locked by `djdeploy up`" in output
    assert deployed(emulator)  # the destroy deleted nothing


def test_unlock_asks_first_and_says_when_there_is_nothing_to_remove(
    emulator: EmulatorHandle,
) -> None:
    code, output = djdeploy(emulator, "unlock", "--tenant", TENANT)
    assert code == 0, output
    assert "tenant demo is not locked: nothing to remove" in output
    assert up(emulator)[0] == 0
    blob = storage_client(emulator.url, PROJECT).bucket(STAGING).blob(LEASE)
    blob.metadata = {"id": "x", "command": "destroy", "host": "ci-7", "pid": "9"}
    blob.upload_from_string(b"", if_generation_match=0)
    result = _invoke(emulator, ["unlock", "--tenant", TENANT], stdin="n\n")
    assert result[0] == 1
    assert "Remove the lease on tenant demo held by `djdeploy destroy` (ci-7, pid 9)?" in result[1]
    assert "not confirmed: the lease was kept" in result[1]
    assert lease_fields(emulator) is not None
    result = _invoke(emulator, ["unlock", "--tenant", TENANT], stdin="y\n")
    assert result[0] == 0, result[1]
    assert lease_fields(emulator) is None


def _invoke(emulator: EmulatorHandle, args: list[str], *, stdin: str) -> tuple[int, str]:
    from typer.testing import CliRunner

    from deployer.cli import app

    result = CliRunner().invoke(
        app,
        ["--endpoint", emulator.url, "--time-scale", "0.001", *args],
        input=stdin,
        env={"GOOGLE_CLOUD_PROJECT": PROJECT, "DJDEPLOY_TENANT": TENANT},
        catch_exceptions=False,
    )
    return result.exit_code, result.output


@pytest.mark.parametrize(
    ("signum", "exit_code", "word"),
    [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")],
)
def test_ctrl_c_sigterm_and_a_failed_step_release_the_lease(
    emulator: EmulatorHandle, tmp_path: Path, signum: str, exit_code: int, word: str
) -> None:
    """SIGTERM (`timeout`, a cancelled CI job, a plain `kill`) stops as Ctrl-C does: the
    next run must not wait for the lease to lapse."""
    import signal

    unblock = block(emulator, "sql.instance.create")
    holder = Run(emulator, tmp_path, "up", "--tenant", TENANT)
    until(lambda: holds_lease(emulator, holder) and sent(emulator, "POST", "/instances"), "up")
    holder.proc.send_signal(getattr(signal, signum))
    code, output = holder.finish()
    assert code == exit_code, output
    assert f"{word}: nothing is lost" in output and "Traceback" not in output, output
    assert lease_fields(emulator) is None
    unblock()
    emulator.control.fail("build", TENANT, "it broke on purpose")
    code, output = up(emulator, "--no-wait")  # a lease left behind would fail it at once
    assert code == 1 and "failed image:" in output, output
    assert lease_fields(emulator) is None
