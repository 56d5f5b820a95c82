"""Failures a user causes outside the config: no login, an expired one, an endpoint with
nothing behind it, an emulator state that cannot be used, an address `emulator serve` cannot
listen on. Each is one line naming the problem and its fix, exit 1, no traceback, and no API
call where the problem is local."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from deployer.cli import app
from deployer.emulator.server import Emulator
from deployer.emulator.store import DB_NAME


def one_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    return lines[0]


def cli(*args: str, input: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), input=input)
    return result.exit_code, result.output


def djdeploy(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """A fresh process: google-auth reads NO_GCE_CHECK when first imported (so no metadata
    server is probed), and nothing of the test's environment leaks in."""
    base = {"PATH": os.environ["PATH"], "HOME": str(home), "NO_GCE_CHECK": "true"}
    return subprocess.run(
        [sys.executable, "-m", "deployer", *args],
        capture_output=True,
        text=True,
        cwd=home,
        env={**base, **env},
        timeout=120,
    )


def with_key(command: str, key: Path, *, home: Path) -> str:
    """`djdeploy <command>` on Google with GOOGLE_APPLICATION_CREDENTIALS=key: its one line."""
    proc = djdeploy(
        command,
        "--tenant",
        "demo",
        "--project",
        "acme-prod",
        home=home,
        GOOGLE_APPLICATION_CREDENTIALS=str(key),
    )
    assert proc.returncode == 1
    return one_line(proc.stderr + proc.stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- credentials -------------------------------------------------------------------------------


@pytest.mark.slow  # a djdeploy process
def test_no_credentials_names_the_login_command(tmp_path: Path) -> None:
    proc = djdeploy("plan", "--tenant", "demo", "--project", "acme-prod", home=tmp_path)
    assert proc.returncode == 1
    line = one_line(proc.stderr + proc.stdout)
    assert line.startswith("error: no usable Google credentials: run `gcloud auth "), line
    assert "GOOGLE_APPLICATION_CREDENTIALS" in line and "--emulator" in line


@pytest.mark.slow
def test_a_missing_key_file_is_named(tmp_path: Path) -> None:
    key = tmp_path / "gone.json"
    line = with_key("status", key, home=tmp_path)
    assert f"GOOGLE_APPLICATION_CREDENTIALS names ({key})" in line
    assert "gcloud auth application-default login" in line


class TokenEndpoint(BaseHTTPRequestHandler):
    """Google's token endpoint refusing a revoked key, as it answers (400 invalid_grant)."""

    paths: list[str] = []

    def do_POST(self) -> None:
        self.paths.append(self.path)
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps(
            {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        ).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def token_endpoint() -> Iterator[tuple[str, list[str]]]:
    TokenEndpoint.paths = []
    server = HTTPServer(("127.0.0.1", 0), TokenEndpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/token", TokenEndpoint.paths
    server.shutdown()
    server.server_close()


@pytest.mark.slow
def test_refused_credentials_say_so_before_any_api_call(
    tmp_path: Path, token_endpoint: tuple[str, list[str]]
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    url, seen = token_endpoint
    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    key = tmp_path / "key.json"
    key.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": "acme-prod",
                "private_key_id": "1",
                "private_key": pem,
                "client_email": "deployer@acme-prod.iam.gserviceaccount.com",
                "client_id": "1",
                "token_uri": url,
            }
        )
    )
    line = with_key("up", key, home=tmp_path)
    assert "Google refused your credentials (invalid_grant: Invalid JWT Signature)" in line
    assert f"check the key file GOOGLE_APPLICATION_CREDENTIALS names ({key})" in line
    assert seen == ["/token"]  # the token request, and no API call after it


def test_the_project_comes_from_the_active_gcloud_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read from gcloud's files (no gcloud process): the destroy question shows it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT", "CLOUDSDK_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("CLOUDSDK_ACTIVE_CONFIG_NAME", raising=False)
    gcloud = tmp_path / ".config" / "gcloud"
    (gcloud / "configurations").mkdir(parents=True)
    (gcloud / "active_config").write_text("work\n")
    (gcloud / "configurations" / "config_work").write_text("[core]\nproject = from-gcloud\n")
    (gcloud / "configurations" / "config_default").write_text("[core]\nproject = not-this\n")
    code, output = cli("--emulator", "destroy", "--tenant", "demo", "--delete-data")
    assert code == 1
    assert "in project from-gcloud?" in output
    assert "error: no answer (stdin closed): nothing was done" in output


# -- endpoints ---------------------------------------------------------------------------------


def test_an_endpoint_with_nothing_listening_says_how_to_start_the_emulator() -> None:
    port = free_port()
    code, output = cli(
        "plan",
        "--tenant",
        "demo",
        "--project",
        "acme-prod",
        "--endpoint",
        f"http://127.0.0.1:{port}",
    )
    assert code == 1
    line = one_line(output)
    assert f"nothing answers at http://127.0.0.1:{port} (Connection refused)" in line
    assert f"`djdeploy emulator serve --port {port}`" in line and "--emulator" in line


# -- emulator state ----------------------------------------------------------------------------


def test_a_corrupt_state_file_names_its_path_and_the_reset(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_text("this is not a database")
    code, output = cli("--emulator", "plan", "--tenant", "demo", "--state-dir", str(tmp_path))
    assert code == 1
    line = one_line(output)
    assert f"the emulator state in {tmp_path} cannot be used" in line
    assert "file is not a database" in line
    assert f"`djdeploy emulator reset --state-dir {tmp_path}`" in line


def test_a_state_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "state").write_text("")
    state = str(tmp_path / "state")
    code, output = cli("status", "--emulator", "--tenant", "demo", "--state-dir", state)
    assert code == 1
    assert "File exists" in one_line(output)


@pytest.mark.parametrize(
    ("stored", "message"),
    [
        ({"time_scale": math.inf, "request_delay": 0.0, "durations": {}}, "time_scale inf"),
        ({"time_scale": -1, "request_delay": 0.0, "durations": {}}, "time_scale -1 is below 0"),
        ({"time_scale": 1, "request_delay": "x", "durations": {}}, "request_delay 'x'"),
        ({"time_scale": 1, "request_delay": 0, "durations": {"build": math.nan}}, "build nan"),
        ({"time_scale": 1}, "are not the emulator's"),
    ],
)
def test_bad_stored_latency_settings_are_a_state_error(
    tmp_path: Path, stored: dict[str, object], message: str
) -> None:
    emu = Emulator(state_dir=tmp_path)
    emu.store.put("_emulator", "latency", stored)
    emu.store.close()
    code, output = cli("--emulator", "plan", "--tenant", "demo", "--state-dir", str(tmp_path))
    assert code == 1
    line = one_line(output)
    assert message in line and "djdeploy emulator reset" in line


# -- emulator serve ----------------------------------------------------------------------------


def test_serve_on_a_port_in_use_fails_without_touching_the_state(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, output = cli(
            "emulator", "serve", "--port", str(port), "--state-dir", str(tmp_path / "s")
        )
    assert code == 1
    line = one_line(output)
    assert f"cannot listen on 127.0.0.1:{port} (Address already in use)" in line
    assert "--port 0" in line
    assert not (tmp_path / "s").exists()  # the running one's time scale is left alone


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--host", "no-such-host.invalid"], "cannot listen on no-such-host.invalid:"),
        (["--host", "192.0.2.1"], "192.0.2.1 is not an address of this machine"),
        (["--port", "70000"], "Input should be less than or equal to 65535"),
        (["--port", "http"], "Invalid value for '--port': Input should be a valid integer"),
        (["--time-scale", "-1"], "time scale -1 is invalid"),
        (["--time-scale", "0"], "time scale 0 is invalid"),
        (["--time-scale", "inf"], "time scale inf is invalid"),
        (["--time-scale", "nan"], "time scale nan is invalid"),
    ],
)
def test_serve_refuses_bad_addresses_and_time_scales(
    args: list[str], message: str, tmp_path: Path
) -> None:
    code, output = cli("emulator", "serve", "--state-dir", str(tmp_path), *args)
    assert code == 1
    assert message in one_line(output)


# -- --time-scale, --state-dir, emulator reset ---------------------------------------------------


@pytest.mark.parametrize("command", ["up", "plan", "status", "destroy", "unlock"])
@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0"])
def test_time_scale_is_finite_and_above_zero(command: str, value: str) -> None:
    code, output = cli("--emulator", command, "--tenant", "demo", "--time-scale", value)
    assert code == 1
    assert f"time scale {value} is invalid: use a number above 0" in one_line(output)


@pytest.mark.parametrize("command", ["up", "plan", "status", "destroy", "unlock"])
def test_every_emulator_command_takes_state_dir(command: str, tmp_path: Path) -> None:
    """The option reaches the emulator: a corrupt state there is what each one reports."""
    (tmp_path / DB_NAME).write_text("not a database")
    code, output = cli(command, "--emulator", "--tenant", "demo", "--state-dir", str(tmp_path))
    assert code == 1
    assert f"the emulator state in {tmp_path} cannot be used" in one_line(output)


def test_state_dir_needs_the_builtin_emulator(tmp_path: Path) -> None:
    code, output = cli("plan", "--tenant", "demo", "--project", "acme-prod", "--state-dir", "s")
    assert code == 1
    assert "--state-dir only applies to the built-in emulator: add --emulator" in one_line(output)


def test_status_shows_the_state_dir(tmp_path: Path) -> None:
    code, output = cli("--emulator", "status", "--state-dir", str(tmp_path))  # every tenant
    assert code == 0, output
    assert f"emulator state: {tmp_path}" in output.splitlines()
    code, output = cli("--emulator", "status", "--json", "--state-dir", str(tmp_path))
    assert json.loads(output)["emulator_state_dir"] == str(tmp_path)


def test_emulator_reset_asks_then_removes_the_state(tmp_path: Path) -> None:
    emu = Emulator(state_dir=tmp_path)
    emu.store.put("probe", "k", {"v": 1})
    emu.store.close()
    code, output = cli("emulator", "reset", "--state-dir", str(tmp_path), input="n\n")
    assert code == 1
    assert "not confirmed: the emulator state was kept" in output
    assert (tmp_path / DB_NAME).exists()
    code, output = cli("emulator", "reset", "--state-dir", str(tmp_path), input="y\n")
    assert code == 0
    assert f"Delete the emulator state in {tmp_path}" in output
    assert f"removed the emulator state in {tmp_path}: {DB_NAME}" in output
    assert not list(tmp_path.iterdir())
    code, output = cli("emulator", "reset", "--state-dir", str(tmp_path), "--yes")
    assert code == 0
    assert one_line(output) == f"no emulator state in {tmp_path}: nothing to remove"


def test_emulator_reset_clears_a_corrupt_state(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_text("not a database")
    code, output = cli("emulator", "reset", "--yes", "--state-dir", str(tmp_path))
    assert code == 0
    assert one_line(output) == f"removed the emulator state in {tmp_path}: {DB_NAME}"
    code, output = cli("--emulator", "status", "--state-dir", str(tmp_path))
    assert code == 0, output


# -- exit codes --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["plan", "--tennant", "demo"], "No such option: --tennant"),
        (["plann"], "No such command 'plann'"),
        (["--emulator", "up", "--json", "yes"], "Got unexpected extra argument(s) (yes)"),
        (["emulator", "serve", "--port"], "Option '--port' requires an argument"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_1(args: list[str], message: str) -> None:
    """Not click's 2: `plan` exits 2 only for changes pending."""
    code, output = cli(*args)
    assert code == 1
    line = one_line(output)
    assert line.startswith("error: ") and message in line and "-h` shows the options" in line


@pytest.mark.parametrize(
    ("stop", "exit_code", "word"),
    [("KeyboardInterrupt", 130, "interrupted"), ("Terminated", 143, "terminated")],
)
def test_interrupted_is_130_terminated_143(
    monkeypatch: pytest.MonkeyPatch, stop: str, exit_code: int, word: str
) -> None:
    """Ctrl-C is 130; SIGTERM (cli.Terminated, what its handler raises) stops the same way,
    143."""
    import deployer.api
    import deployer.cli

    error = getattr(deployer.cli, stop, KeyboardInterrupt)

    def interrupted(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(deployer.api, "snapshot", interrupted)
    # an endpoint nothing answers at: snapshot, replaced, never reaches it
    code, output = cli(
        "--endpoint", "http://127.0.0.1:9", "plan", "--tenant", "demo", "--project", "p-1234"
    )
    assert code == exit_code
    assert one_line(output).startswith(f"{word}: nothing is lost")


def test_manage_interrupted_before_it_started_says_how_to_tell_whether_it_ran(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stopped while the execution was being started (its request maybe sent, no answer yet):
    never the usual "run the same command again", which could run a command twice."""
    import deployer.api

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(deployer.api, "manage", interrupted)
    args = ("--tenant", "demo", "--project", "p-1234", "--", "clearsessions")
    code, output = cli("--endpoint", "http://127.0.0.1:9", "manage", *args)
    assert code == 130
    assert one_line(output) == (
        "interrupted before the command was seen to start: `djdeploy logs --tenant demo --job "
        "manage --since 10m` shows whether it ran; run it again only if it did not"
    )


@pytest.mark.parametrize("args", [["-h"], ["plan", "-h"], ["emulator", "reset", "-h"], []])
def test_h_is_help_and_flags_show_as_flags(args: list[str]) -> None:
    code, output = cli(*args)
    assert code == 0
    assert "Usage: " in output and "-h, --help" in output
    assert "<bool>" not in output


def test_piped_plan_is_never_cut(tmp_path: Path) -> None:
    """Not a terminal: whole lines (the API list runs past 80 columns), no trailing padding."""
    code, output = cli("--emulator", "plan", "--tenant", "demo", "--state-dir", str(tmp_path))
    assert code == 2
    apis = next(line for line in output.splitlines() if line.startswith("apis "))
    assert len(apis) > 80
    assert apis.endswith("secretmanager.googleapis.com, sqladmin.googleapis.com")
    assert all(line == line.rstrip() for line in output.splitlines())


# -- hints that name a command -------------------------------------------------------------------


def test_an_emulator_errors_hint_runs_against_the_same_emulator(tmp_path: Path) -> None:
    """Copied as printed, `djdeploy status` would go to Google Cloud (no project there)."""
    state = str(tmp_path)
    code, output = cli(
        "--no-execute", "status", "--emulator", "--tenant", "nosuch", "--state-dir", state
    )
    assert code == 1
    assert output.splitlines()[-1].endswith(  # after "started the local emulator"
        f"`djdeploy status --emulator --state-dir {state}` lists the tenants"
    )


def test_hints_keep_manage_arguments_last_and_emulator_commands_alone() -> None:
    from deployer.cli import Globals, _on_same_emulator

    message = (
        "unapply them first (`djdeploy manage --tenant t -- migrate app 0003`), or "
        "`djdeploy emulator stop`, `djdeploy init`, `djdeploy up --emulator`, "
        "`djdeploy ci github-actions --tenant t`"
    )
    assert _on_same_emulator(message, Globals(emulator=True)) == (
        "unapply them first (`djdeploy manage --tenant t --emulator -- migrate app 0003`), or "
        "`djdeploy emulator stop`, `djdeploy init`, `djdeploy up --emulator`, "
        "`djdeploy ci github-actions --tenant t`"
    )
    assert _on_same_emulator(message, Globals(endpoint="http://127.0.0.1:1")) == message
