"""The background emulator behind `--emulator` (deployer/emulator/daemon.py): started on first
use, reused, found through daemon.json, a stale file replaced, one daemon when several commands
start it at once, stopped with no process left, a different time scale or execute mode refused
in one line, `emulator status`, `emulator reset` while it runs. Real processes, no mocks; the
conftest stops any daemon a test leaves under its tmp_path."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployer import __version__
from deployer.cli import app
from deployer.emulator import EmulatorControl, daemon
from deployer.emulator.local.redis import find_server
from deployer.emulator.testing import discovery_client
from deployer.target import BUILTIN_TIME_SCALE


def cli(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


def status_of(state: Path, *options: str) -> tuple[int, str, str]:
    """A command that reaches the emulator: `status` (every tenant) on the state dir."""
    return cli("--emulator", *options, "status", "--state-dir", str(state))


def recorded(state: Path) -> dict[str, object]:
    return json.loads((state / daemon.INFO_NAME).read_text())  # type: ignore[no-any-return]


def session_members(sid: int) -> list[int]:
    """Every process of session `sid` (the daemon's own: start_new_session)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(entry.name))
    return members


def test_first_use_starts_one_and_the_next_command_reuses_it(tmp_path: Path) -> None:
    code, _, stderr = status_of(tmp_path)
    assert code == 0, stderr
    info = recorded(tmp_path)
    pid, url = info["pid"], info["url"]
    assert stderr.splitlines() == [
        f"started the local emulator (pid {pid}, {url}, state {tmp_path})"
    ]
    assert info["time_scale"] == BUILTIN_TIME_SCALE and info["execute"] is True
    assert info["version"] == __version__ and info["state_dir"] == str(tmp_path)
    assert isinstance(pid, int) and daemon.alive(pid)
    assert os.getsid(pid) != os.getsid(0)  # detached: a session of its own
    assert "listening on " + str(url) in (tmp_path / daemon.LOG_NAME).read_text()

    code, _, stderr = status_of(tmp_path)
    assert code == 0 and stderr == ""  # said the first time only
    assert recorded(tmp_path)["pid"] == pid
    assert EmulatorControl(str(url)).health()["state_dir"] == str(tmp_path)


@pytest.mark.parametrize("pid_reused", [False, True])
def test_a_stale_file_is_replaced(tmp_path: Path, pid_reused: bool) -> None:
    """Its process is gone; or its pid is another process's now (this one), and nothing
    listens at its address."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    old_pid = os.getpid() if pid_reused else gone.pid
    stale = {**_record(pid=old_pid, url=f"http://127.0.0.1:{closed}"), "state_dir": str(tmp_path)}
    (tmp_path / daemon.INFO_NAME).write_text(json.dumps(stale))
    code, _, stderr = status_of(tmp_path)
    assert code == 0, stderr
    assert stderr.startswith("started the local emulator")
    pid = recorded(tmp_path)["pid"]
    assert pid != old_pid and isinstance(pid, int) and daemon.alive(pid)


def _record(*, pid: int, url: str) -> dict[str, object]:
    return {
        "pid": pid,
        "url": url,
        "state_dir": "",
        "time_scale": BUILTIN_TIME_SCALE,
        "execute": True,
        "version": __version__,
        "started": 0.0,
    }


def test_commands_starting_it_at_once_make_one(tmp_path: Path) -> None:
    """Threads of one process each open the lock file: flock excludes them as it does
    processes (the slow test below uses processes)."""
    results: list[tuple[daemon.Daemon, bool]] = []

    def start() -> None:
        results.append(
            daemon.ensure(
                tmp_path,
                time_scale=None,
                execute=False,
                default_time_scale=BUILTIN_TIME_SCALE,
                stop_command="djdeploy emulator stop",
                version=__version__,
            )
        )

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 4
    assert sorted(started for _, started in results) == [False, False, False, True]
    assert len({found.pid for found, _ in results}) == 1


@pytest.mark.slow  # three djdeploy processes
def test_processes_starting_it_at_once_make_one(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "deployer", "--emulator", "--no-execute", "status"]
    command += ["--state-dir", str(tmp_path)]  # every tenant: none yet
    procs = [
        subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    started = [e for e in errors if e.startswith("started the local emulator")]
    assert len(started) == 1, errors
    pid = recorded(tmp_path)["pid"]
    assert f"pid {pid}," in started[0]
    assert session_members(os.getsid(int(str(pid)))) == [pid]


def test_stop_ends_it_and_everything_it_ran(tmp_path: Path) -> None:
    code, _, stderr = status_of(tmp_path)
    assert code == 0, stderr
    info = recorded(tmp_path)
    pid = int(str(info["pid"]))
    session = os.getsid(pid)
    code, stdout, _ = cli("emulator", "stop", "--state-dir", str(tmp_path))
    assert code == 0
    assert stdout.splitlines() == [
        f"stopped the local emulator (pid {pid}, {info['url']}, state {tmp_path})"
    ]
    assert not daemon.alive(pid)
    assert session_members(session) == []
    assert not (tmp_path / daemon.INFO_NAME).exists()
    code, stdout, _ = cli("emulator", "stop", "--state-dir", str(tmp_path))
    assert code == 0
    assert stdout.splitlines() == [f"no local emulator was running for {tmp_path}"]


def test_a_different_time_scale_or_execute_mode_is_refused_in_one_line(tmp_path: Path) -> None:
    code, _, stderr = status_of(tmp_path)
    assert code == 0, stderr
    stop = f"`djdeploy emulator stop --state-dir {tmp_path}` first"
    for extra, says in [
        (["--time-scale", "1"], f"runs at time scale {BUILTIN_TIME_SCALE:g}, not 1"),
        (["--no-execute"], "executes what it deploys (you asked for --no-execute)"),
    ]:
        code, stdout, stderr = cli(
            "--emulator", *extra, "plan", "--tenant", "demo", "--state-dir", str(tmp_path)
        )
        assert code == 1 and stdout == ""
        assert len(stderr.splitlines()) == 1, stderr
        assert says in stderr and stop in stderr
    code, _, _ = cli(
        "--emulator",
        "--time-scale",
        "0.01",
        "plan",
        "--tenant",
        "demo",
        "--state-dir",
        str(tmp_path),
    )
    assert code == 2  # the scale it runs at: changes pending, as for any fresh tenant


def test_status_json_while_running_and_after_stop(tmp_path: Path) -> None:
    code, stdout, _ = cli("emulator", "status", "--json", "--state-dir", str(tmp_path / "none"))
    assert code == 0
    assert json.loads(stdout) == {"running": False, "state_dir": str(tmp_path / "none")}
    assert not (tmp_path / "none").exists()  # observing creates nothing

    code, _, stderr = status_of(tmp_path, "--no-execute")
    assert code == 0, stderr
    info = recorded(tmp_path)
    code, stdout, _ = cli("emulator", "status", "--json", "--state-dir", str(tmp_path))
    assert code == 0
    doc = json.loads(stdout)
    assert doc.pop("uptime_seconds") >= 0
    assert doc == {
        "running": True,
        "state_dir": str(tmp_path),
        "address": info["url"],
        "pid": info["pid"],
        "executing": False,
        "time_scale": BUILTIN_TIME_SCALE,
        "version": __version__,
        "log": str(tmp_path / daemon.LOG_NAME),
    }
    code, stdout, _ = cli("emulator", "status", "--state-dir", str(tmp_path))
    assert stdout.splitlines()[0] == f"the local emulator is running at {info['url']}"
    assert f"pid: {info['pid']}" in stdout.splitlines()
    cli("emulator", "stop", "--state-dir", str(tmp_path))
    code, stdout, _ = cli("emulator", "status", "--state-dir", str(tmp_path))
    assert stdout.splitlines() == [
        f"no local emulator is running for {tmp_path} (--emulator starts one)"
    ]


def test_reset_while_it_runs_goes_through_its_admin_api(tmp_path: Path) -> None:
    code, _, stderr = status_of(tmp_path, "--no-execute")
    assert code == 0, stderr
    info = recorded(tmp_path)
    control = EmulatorControl(str(info["url"]))
    control.add_fault(method="GET", path="/never$", code=503)
    code, stdout, _ = cli("emulator", "reset", "--state-dir", str(tmp_path), input="n\n")
    assert code == 1 and control.faults()
    code, stdout, _ = cli("emulator", "reset", "--yes", "--state-dir", str(tmp_path))
    assert code == 0
    assert stdout.splitlines() == [
        f"reset the state of the local emulator (pid {info['pid']}) in {tmp_path}"
    ]
    assert control.faults() == []
    assert recorded(tmp_path)["pid"] == info["pid"]  # still the same one, running


def test_one_started_by_another_version_is_refused(tmp_path: Path) -> None:
    found, started = daemon.ensure(
        tmp_path,
        time_scale=None,
        execute=False,
        default_time_scale=BUILTIN_TIME_SCALE,
        stop_command="djdeploy emulator stop",
        version="0.0.1",
    )
    assert started and found.version == "0.0.1"
    code, stdout, stderr = status_of(tmp_path)
    assert code == 1 and stdout == ""
    assert stderr.splitlines() == [
        f"error: the local emulator for {tmp_path} is djdeploy 0.0.1's, this is {__version__}: "
        f"run `djdeploy emulator stop --state-dir {tmp_path}` first"
    ]


def test_one_that_does_not_answer_is_named_with_its_pid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stopped (SIGSTOP) emulator accepts the connection and never answers: whatever the
    health timeout, it expires."""
    code, _, stderr = status_of(tmp_path, "--no-execute")
    assert code == 0, stderr
    pid = int(str(recorded(tmp_path)["pid"]))
    monkeypatch.setattr(daemon, "HEALTH_TIMEOUT", 0.2)
    os.kill(pid, signal.SIGSTOP)
    try:
        code, _, stderr = status_of(tmp_path)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert code == 1
    assert len(stderr.splitlines()) == 1, stderr
    assert f"the local emulator (pid {pid}) does not answer at " in stderr
    assert f"stop it with `kill {pid}`, then run again" in stderr


@pytest.mark.slow  # a daemon running a redis-server, killed by SIGKILL
@pytest.mark.skipif(find_server() is None, reason="no redis-server here")
def test_stop_after_the_daemon_was_killed_stops_what_it_left(tmp_path: Path) -> None:
    code, _, stderr = status_of(tmp_path)
    assert code == 0, stderr
    info = recorded(tmp_path)
    url, pid = str(info["url"]), int(str(info["pid"]))
    project, parent = "left-proj", "projects/left-proj/locations/europe-west1"
    usage = discovery_client(url, "serviceusage", "v1")
    op = usage.services().enable(name=f"projects/{project}/services/redis.googleapis.com")
    name = op.execute()["name"]
    while not usage.operations().get(name=name).execute().get("done"):
        time.sleep(0.05)
    instances = discovery_client(url, "redis", "v1").projects().locations().instances()
    body = {"tier": "BASIC", "memorySizeGb": 1}
    instances.create(parent=parent, instanceId="r1", body=body).execute()
    while instances.get(name=f"{parent}/instances/r1").execute()["state"] != "READY":
        time.sleep(0.05)  # its redis-server answers
    os.kill(pid, signal.SIGKILL)
    while daemon.alive(pid):
        time.sleep(0.01)
    redis_pid = leftover_pids(tmp_path)
    assert len(redis_pid) == 1

    code, stdout, _ = cli("emulator", "status", "--state-dir", str(tmp_path))
    assert code == 0
    assert stdout.splitlines()[1] == (
        f"still running, left by a killed emulator: redis {parent}/instances/r1 "
        f"(pid {redis_pid[0]}) (`djdeploy emulator stop --state-dir {tmp_path}` stops them)"
    )
    code, stdout, _ = cli("emulator", "stop", "--state-dir", str(tmp_path))
    assert code == 0
    assert stdout.splitlines() == [
        f"no local emulator was running for {tmp_path}",
        f"stopped what a killed emulator left running: redis {parent}/instances/r1 "
        f"(pid {redis_pid[0]})",
    ]
    assert leftover_pids(tmp_path) == []
    code, stdout, _ = cli("emulator", "status", "--json", "--state-dir", str(tmp_path))
    assert json.loads(stdout) == {"running": False, "state_dir": str(tmp_path)}


def leftover_pids(state: Path) -> list[int]:
    """The pids the state dir's process records name that still run."""
    pids = []
    for record in (state / "processes").glob("*.json"):
        pid = int(json.loads(record.read_text())["pid"])
        if daemon.alive(pid):
            pids.append(pid)
    return pids
