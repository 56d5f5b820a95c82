"""Commands as a user runs them, whole processes from start to exit (a script, not a test):
``.venv/bin/python bench/bench_commands.py [--runs 5] [--fresh-runs 3] [--only NAME ...]
[--scales 0.01 0.1]``.

Each figure is the median of --runs (min and max beside it); a ratio is taken run by run
(A and B started in turn, so a machine whose speed drifts moves both) and its median reported.

- fresh ``up --emulator`` at time scales 0.01 and 0.1 (a new emulator state each run, so each
  starts its background emulator) against the
  critical path: the longest dependency chain of operations, from the emulator's own operation
  records in that state (apis -> SQL instance -> database -> user -> db-init -> migrate ->
  service deploy, as bench_up.py computes it);
- a no-op ``up --emulator`` and ``status --emulator`` over all tenants, after a fresh up;
- ``djdeploy --help`` and ``djdeploy up --help`` against ``python -c "import typer"``.

CPU is the children's user + system time (resource.getrusage), wall a monotonic clock around
each process. On a machine others are using, quote CPU beside wall.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_up import model_chain  # bench/ is the script's own directory

from deployer.emulator import Emulator, daemon

PROJECT = "bench-proj"
DJDEPLOY = [sys.executable, "-m", "deployer"]


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall, cpu) seconds of one whole process; fails on a non-zero exit."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def spread(values: list[float], unit: str = " s") -> str:
    return f"{statistics.median(values):.2f}{unit} ({min(values):.2f}-{max(values):.2f})"


def user_env() -> dict[str, str]:
    """The environment as a user's: Python writes and reads its bytecode caches (a machine
    that sets PYTHONDONTWRITEBYTECODE would compile djdeploy's modules on every run)."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def env_with(data_home: Path) -> dict[str, str]:
    """The built-in emulator keeps its state in the user's data directory: one per state."""
    return {**user_env(), "XDG_DATA_HOME": str(data_home)}


def state_of(data_home: Path) -> Path:
    """The default state dir under `data_home`: where `--emulator` keeps its background one,
    which each bench stops (`djdeploy emulator stop`) before removing its directory."""
    return data_home / "djdeploy" / "emulator"


def up_cmd(*extra: str) -> list[str]:
    """API-only (--no-execute): the emulator's latency model is the critical path, with no
    real build, database or server beside it (bench_local.py measures those)."""
    up = ["up", "--tenant", "demo", "--project", PROJECT]
    return [*DJDEPLOY, "--emulator", "--no-execute", *extra, *up]


def fresh_up(scale: float, runs: int) -> str:
    """Besides wall and CPU: where the wall goes outside the operations, from the emulator's
    records (epoch seconds on both sides): the lead-in (process start to its first operation:
    imports, the background emulator's start, the first observations) and the span of the
    operations (first created to last seen done: the chain, the requests between its stages)."""
    walls, chains, ratios, cpus, leads, spans = [], [], [], [], [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as home:
            started = time.time()
            wall, cpu = run(up_cmd("--time-scale", str(scale)), env_with(Path(home)))
            daemon.stop(state_of(Path(home)))
            ops = Emulator(state_dir=state_of(Path(home))).ops.list()
        first = min(float(o["created"]) for o in ops)
        last = max(float(o.get("completed") or o["done_at"]) for o in ops)
        chain = model_chain(ops)
        walls.append(wall)
        cpus.append(cpu)
        chains.append(chain)
        ratios.append(wall / chain)
        leads.append(first - started)
        spans.append(last - first)
    return (
        f"| fresh `up --emulator --time-scale {scale}` | {spread(walls)} | {spread(cpus)} "
        f"| critical path {statistics.median(chains):.2f} s: wall/path "
        f"{spread(ratios, 'x')}; lead-in {spread(leads)}, operations' span {spread(spans)} |"
    )


def repeated(name: str, cmd: list[str], env: dict[str, str], runs: int) -> str:
    walls, cpus = [], []
    for _ in range(runs):
        wall, cpu = run(cmd, env)
        walls.append(wall)
        cpus.append(cpu)
    return f"| {name} | {spread(walls)} | {spread(cpus)} | |"


def paired(name: str, cmd: list[str], base: list[str], runs: int) -> str:
    env = user_env()
    walls, cpus, ratios = [], [], []
    for _ in range(runs):
        wall, cpu = run(cmd, env)
        base_wall, _ = run(base, env)
        walls.append(wall)
        cpus.append(cpu)
        ratios.append(wall / base_wall)
    return (
        f"| {name} | {spread(walls)} | {spread(cpus)} | vs `import typer`: {spread(ratios, 'x')} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--fresh-runs", type=int, default=3, help="fresh ups at each scale")
    parser.add_argument("--only", nargs="*", default=["fresh", "noop", "help"])
    parser.add_argument("--scales", nargs="*", type=float, default=[0.01, 0.1])
    args = parser.parse_args()
    typer = [sys.executable, "-c", "import typer"]
    benches: list[Callable[[], list[str]]] = []
    if "fresh" in args.only:
        benches.append(lambda: [fresh_up(s, args.fresh_runs) for s in args.scales])
    if "noop" in args.only:

        def noop() -> list[str]:
            with tempfile.TemporaryDirectory() as home:
                env = env_with(Path(home))
                run(up_cmd(), env)  # the fresh up the no-op follows
                status = [*DJDEPLOY, "--emulator", "--no-execute", "status", "--project", PROJECT]
                try:
                    return [
                        repeated("no-op `up --emulator`", up_cmd(), env, args.runs),
                        repeated("`status --emulator` (all tenants)", status, env, args.runs),
                    ]
                finally:
                    daemon.stop(state_of(Path(home)))

        benches.append(noop)
    if "help" in args.only:
        benches.append(
            lambda: [
                paired("`djdeploy --help`", [*DJDEPLOY, "--help"], typer, args.runs),
                paired("`djdeploy up --help`", [*DJDEPLOY, "up", "--help"], typer, args.runs),
                repeated('`python -c "import typer"`', typer, user_env(), args.runs),
            ]
        )
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load {os.getloadavg()[0]:.1f}")
    print("| command | wall (median, min-max) | cpu | |")
    print("|---|---|---|---|")
    for bench in benches:
        for line in bench():
            print(line, flush=True)


if __name__ == "__main__":
    main()
