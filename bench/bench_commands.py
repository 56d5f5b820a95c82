"""Commands as a user runs them, whole processes from start to exit (a script, not a test):
``.venv/bin/python bench/bench_commands.py [--runs 5] [--fresh-runs 3] [--only NAME ...]
[--scales 0.01 0.1] [--base DIR]``.

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
from dataclasses import dataclass, field
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


@dataclass
class Fresh:
    """The figures of fresh ups: wall and CPU of the process, the critical path, and where
    the wall goes outside the operations, from the emulator's records (epoch seconds on both
    sides): the lead-in (process start to its first operation: imports, the background
    emulator's start, the first observations) and the span of the operations (first created to
    last seen done: the chain and the requests between its stages)."""

    walls: list[float] = field(default_factory=list)
    cpus: list[float] = field(default_factory=list)
    chains: list[float] = field(default_factory=list)
    leads: list[float] = field(default_factory=list)
    spans: list[float] = field(default_factory=list)

    def add(self, scale: float, code: str | None) -> None:
        """One fresh up at ``scale``, of this checkout or (``code``) another's."""
        with tempfile.TemporaryDirectory() as home:
            env = env_with(Path(home))
            if code is not None:
                env["PYTHONPATH"] = code
            started = time.time()
            wall, cpu = run(up_cmd("--time-scale", str(scale)), env)
            daemon.stop(state_of(Path(home)))
            ops = Emulator(state_dir=state_of(Path(home))).ops.list()
        self.walls.append(wall)
        self.cpus.append(cpu)
        self.chains.append(model_chain(ops))
        first = min(float(o["created"]) for o in ops)
        self.leads.append(first - started)
        self.spans.append(max(float(o.get("completed") or o["done_at"]) for o in ops) - first)

    def row(self, name: str) -> str:
        ratios = [w / c for w, c in zip(self.walls, self.chains, strict=True)]
        return (
            f"| {name} | {spread(self.walls)} | {spread(self.cpus)} "
            f"| critical path {statistics.median(self.chains):.2f} s: wall/path "
            f"{spread(ratios, 'x')}; lead-in {spread(self.leads)}, operations' span "
            f"{spread(self.spans)} |"
        )


def fresh_up(scale: float, runs: int, base: str | None) -> list[str]:
    """Fresh ups at ``scale``; with ``base`` (another checkout of djdeploy, e.g. `git worktree
    add /tmp/base main`), its fresh ups in turn with this one's, and their ratios pair by
    pair."""
    this, other = Fresh(), Fresh()
    for i in range(runs):
        if base is None:
            this.add(scale, None)
            continue
        for fresh, code in [(this, None), (other, base)][:: 1 if i % 2 else -1]:
            fresh.add(scale, code)
    name = f"fresh `up --emulator --time-scale {scale}`"
    if base is None:
        return [this.row(name)]
    walls = [a / b for a, b in zip(this.walls, other.walls, strict=True)]
    cpus = [a / b for a, b in zip(this.cpus, other.cpus, strict=True)]
    return [
        this.row(name),
        other.row(f"the same, {base}"),
        f"| this / {base}, pair by pair | {spread(walls, 'x')} | {spread(cpus, 'x')} | |",
    ]


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
    parser.add_argument("--base", help="another checkout: its fresh ups paired with these")
    args = parser.parse_args()
    typer = [sys.executable, "-c", "import typer"]
    benches: list[Callable[[], list[str]]] = []
    if "fresh" in args.only:
        benches.append(
            lambda: [row for s in args.scales for row in fresh_up(s, args.fresh_runs, args.base)]
        )
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
