"""Local execution as a user meets it, whole processes (a script, not a test):
``.venv/bin/python bench/bench_local.py [--runs 1] [--quick-runs 3]``.

Each run takes a fresh temporary state directory and, in order:

1. a fresh ``djdeploy --emulator up --tenant demo --json`` of the bundled sample with execution
   on (the default of ``--emulator``): the process's wall and CPU time, the ``elapsed`` of the
   steps (from ``--json``), the longest chain of steps by those times (along the step graph's
   ``needs`` and ``run_needs``, as the engine runs them: ``longest_chain``), and the build's
   own phases from its log in the emulator's Cloud Logging (resource type ``build``: each line
   at the time the step printed it): the virtualenv and pip, the byte-compile, collectstatic,
   the rest;
2. the no-op ``up`` and ``status`` (``--quick-runs`` each);
3. a code change: the sample copied, a template edited, ``up --source COPY`` (the requirements
   unchanged, so the build reuses the virtualenv): the whole up and the build;
4. two more tenants (``up --tenant t2`` and ``t3``, the bundled sample: its image is built
   already), then every process of the emulator's tree (the daemon, PostgreSQL servers and
   backends, gunicorn masters and workers) counted from /proc, with RSS (counts shared pages in
   each process) and PSS (shares them out) summed; and, for reference, ``python -m venv`` timed
   alone (the build's first command);

then ``djdeploy emulator stop --state-dir D``. The figures are medians over runs (min-max
beside them when there are several). Read wall times with the load average printed first.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import itertools

from deployer.archive import default_source
from deployer.config import Config
from deployer.config.load import load_config
from deployer.engine import run_needs
from deployer.steps import build_steps

DJDEPLOY = [sys.executable, "-m", "deployer"]
TEMPLATE = Path("uploads/templates/uploads/index.html")  # in the sample project

#: build phases: (name, the line it starts at); each ends where the next begins
PHASES = (
    ("venv + pip start", "Step 1/"),
    ("pip resolve + download", "Looking in indexes"),
    ("pip install", "Installing collected packages"),
    ("import django check", "Successfully installed"),
    ("venv reused", " ---> Using cache"),
    ("compileall + mv", "Step 2/"),
    ("collectstatic", "Step 4/"),
    ("op seen done (poll)", "Successfully built"),
    ("end", "PUSH"),
)


@dataclass
class Figures:
    """One run's figures, by row name (seconds, or a count / MB)."""

    values: dict[str, float] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.values[name] = round(value, 3)


def run(cmd: list[str]) -> tuple[float, float, str, str]:
    """(wall, cpu, stdout, stderr) of one whole process; exits on a non-zero status."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, done.stdout, done.stderr


def up(state: Path, tenant: str, *extra: str) -> tuple[float, float, dict[str, Any]]:
    cmd = [*DJDEPLOY, "up", "--tenant", tenant, "--emulator", "--state-dir", str(state)]
    wall, cpu, out, _ = run([*cmd, *extra, "--json"])
    return wall, cpu, json.loads(out)


@dataclass(frozen=True)
class Graph:
    """Each step's ``needs`` (it starts once they are done) and ``run_needs`` (it is done only
    once they are: engine.run_needs)."""

    needs: dict[str, tuple[str, ...]]
    run_needs: dict[str, tuple[str, ...]]

    @classmethod
    def of(cls, config: Config) -> Graph:
        steps = build_steps(config)
        return cls(
            needs={step.name: tuple(step.needs) for step in steps},
            run_needs={step.name: tuple(run_needs(step)) for step in steps},
        )


def step_graph() -> tuple[str, Graph]:
    """The project `up` deploys to and its step graph, from the config the commands below
    read (this directory, this environment, the bundled sample)."""
    config = load_config(tenant="demo", cwd=Path.cwd(), environ=os.environ, flags={}, emulator=True)
    return config.project, Graph.of(config)


def longest_chain(elapsed: dict[str, float], graph: Graph) -> list[tuple[str, float]]:
    """The chain of steps that ends last, each with the seconds it adds (their sum: when the
    chain's last step ended). As the engine runs them: a step starts when its needs end and
    ends ``elapsed`` later, but not before its run_needs end (it waits for them before its
    job runs, and is done only once they are). Its chain goes through whichever of these
    ended last: a run_need that ended after the step started is taken as what it waited for
    (``--json`` does not say whether it did), and the step adds only the time after it."""
    ends: dict[str, tuple[float, list[tuple[str, float]]]] = {}

    def latest(names: tuple[str, ...]) -> tuple[float, list[tuple[str, float]]]:
        return max((end(n) for n in names if n in elapsed), default=(0.0, []), key=itemgetter(0))

    def end(name: str) -> tuple[float, list[tuple[str, float]]]:
        if name not in ends:
            start, path = latest(graph.needs.get(name, ()))
            finish = start + elapsed[name]
            waited, through = latest(graph.run_needs.get(name, ()))
            if waited > start:
                start, path, finish = waited, through, max(finish, waited)
            ends[name] = (finish, [*path, (name, finish - start)])
        return ends[name]

    return max((end(n) for n in elapsed), default=(0.0, []), key=itemgetter(0))[1]


def build_log(state: Path, project: str) -> list[tuple[float, str]]:
    """The last build's log lines (time, text) from the emulator's Cloud Logging."""
    url = json.loads((state / "daemon.json").read_text())["url"]
    body = {
        "resourceNames": [f"projects/{project}"],
        "filter": 'resource.type="build"',
        "orderBy": "timestamp asc",
        "pageSize": 1000,
    }
    request = urllib.request.Request(
        f"{url}/v2/entries:list",
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request) as answer:
        entries = json.load(answer).get("entries", [])
    last = entries[-1]["resource"]["labels"]["build_id"] if entries else None
    return [
        (
            datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp(),
            e["textPayload"],
        )
        for e in entries
        if e["resource"]["labels"]["build_id"] == last and "textPayload" in e
    ]


def phases(log: list[tuple[float, str]]) -> dict[str, float]:
    """Seconds between the first lines that start each phase (PHASES), in log order."""
    starts: list[tuple[float, str]] = []
    for name, prefix in PHASES:
        at = next((t for t, text in log if text.startswith(prefix)), None)
        if at is not None:
            starts.append((at, name))
    starts.sort()
    out = {name: end - at for (at, name), (end, _) in itertools.pairwise(starts)}
    if starts:
        out["whole build (log)"] = starts[-1][0] - starts[0][0]
    return out


def step_rows(
    fig: Figures, prefix: str, doc: dict[str, Any], graph: Graph, *, top: int = 8
) -> None:
    steps = {str(s["step"]): float(s["elapsed"]) for s in doc["steps"]}
    fig.add(f"{prefix}: elapsed (--json)", float(doc["elapsed"]))
    chain = longest_chain(steps, graph)
    names = " > ".join(name for name, _ in chain)
    fig.add(f"{prefix}: longest chain {names}", sum(seconds for _, seconds in chain))
    fig.add(f"{prefix}: sum of step times", sum(steps.values()))
    for name, seconds in sorted(steps.items(), key=lambda kv: -kv[1])[:top]:
        fig.add(f"{prefix}: step {name}", seconds)


def build_rows(fig: Figures, prefix: str, state: Path, project: str) -> None:
    split = phases(build_log(state, project))
    for name, seconds in split.items():
        fig.add(f"{prefix}: build {name}", seconds)
    pip = sum(split.get(k, 0.0) for k in ("venv + pip start", "pip resolve + download"))
    pip += split.get("pip install", 0.0) + split.get("import django check", 0.0)
    whole = split.get("whole build (log)", 0.0)
    static = split.get("collectstatic", 0.0)
    fig.add(f"{prefix}: build = virtualenv/pip", pip)
    fig.add(f"{prefix}: build = collectstatic", static)
    fig.add(f"{prefix}: build = the rest", whole - pip - static)


def venv_alone(tmp: Path) -> float:
    """What the build's first command costs outside it: a virtualenv with pip (ensurepip)."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(tmp / "venv")], check=True)
    return time.perf_counter() - t0


def tree(root: int) -> list[int]:
    """`root` and every descendant, from /proc's parent pids."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in kB of one process; (0, 0) when it is gone."""
    try:
        rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
    except OSError:
        return 0, 0
    fields = {line.split(":")[0]: line.split()[1] for line in rollup[1:] if ":" in line}
    return int(fields.get("Rss", 0)), int(fields.get("Pss", 0))


def kind(pid: int) -> str:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "gone"
    text = b" ".join(argv).decode(errors="replace")
    if "postgres" in comm or "postgres" in text:
        return "postgres"
    if "gunicorn" in text:
        return "gunicorn"
    if "deployer" in text:
        return "emulator"
    return comm


def processes(fig: Figures, state: Path) -> None:
    daemon = json.loads((state / "daemon.json").read_text())["pid"]
    pids = set(tree(daemon))
    # a PostgreSQL server not under the daemon (should not happen): counted too
    for pidfile in (state / "postgres").glob("*/*/data/postmaster.pid"):
        pids |= set(tree(int(pidfile.read_text().split()[0])))
    totals: dict[str, list[int]] = {}
    for pid in pids:
        rss, pss = memory_kb(pid)
        row = totals.setdefault(kind(pid), [0, 0, 0])
        row[0] += 1
        row[1] += rss
        row[2] += pss
    for name, (count, rss, pss) in sorted(totals.items()):
        fig.add(f"3 tenants: {name} processes", count)
        fig.add(f"3 tenants: {name} RSS MB", rss / 1024)
        fig.add(f"3 tenants: {name} PSS MB", pss / 1024)
    fig.add("3 tenants: all processes", sum(r[0] for r in totals.values()))
    fig.add("3 tenants: all RSS MB", sum(r[1] for r in totals.values()) / 1024)
    fig.add("3 tenants: all PSS MB", sum(r[2] for r in totals.values()) / 1024)


def one_run(quick_runs: int, project: str, graph: Graph) -> Figures:
    fig = Figures()
    with tempfile.TemporaryDirectory(prefix="bench-local-") as tmp:
        state = Path(tmp) / "state"
        try:
            wall, cpu, doc = up(state, "demo")
            fig.add("fresh up: process wall", wall)
            fig.add("fresh up: process cpu (up only)", cpu)
            step_rows(fig, "fresh up", doc, graph)
            build_rows(fig, "fresh up", state, project)
            fig.add(
                "fresh up: wall - elapsed (start, imports, emulator start)",
                wall - float(doc["elapsed"]),
            )
            status = [*DJDEPLOY, "status", "--emulator", "--state-dir", str(state)]
            noop = [*DJDEPLOY, "up", "--tenant", "demo", "--emulator", "--state-dir", str(state)]
            for name, cmd in (("no-op up", noop), ("status (all tenants)", status)):
                walls, cpus = [], []
                for _ in range(quick_runs):
                    w, c, _, _ = run(cmd)
                    walls.append(w)
                    cpus.append(c)
                fig.add(f"{name}: wall", statistics.median(walls))
                fig.add(f"{name}: cpu", statistics.median(cpus))
            copy = Path(tmp) / "src"
            shutil.copytree(default_source(), copy)
            page = copy / TEMPLATE
            page.write_text(page.read_text() + "\n<!-- edited by bench_local -->\n")
            wall, cpu, doc = up(state, "demo", "--source", str(copy))
            fig.add("code change: process wall", wall)
            step_rows(fig, "code change", doc, graph)
            build_rows(fig, "code change", state, project)
            for tenant in ("t2", "t3"):
                wall, _, doc = up(state, tenant)
                fig.add(f"tenant {tenant} (image built already): process wall", wall)
                step_rows(fig, f"tenant {tenant}", doc, graph, top=3)
            processes(fig, state)
            fig.add("reference: `python -m venv` (ensurepip) alone", venv_alone(Path(tmp)))
        finally:
            subprocess.run(
                [*DJDEPLOY, "emulator", "stop", "--state-dir", str(state)], capture_output=True
            )
    return fig


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1, help="fresh state dirs, whole sequence")
    parser.add_argument("--quick-runs", type=int, default=3, help="no-op up / status, per run")
    args = parser.parse_args()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cpus; {uptime}")
    project, graph = step_graph()
    runs = []
    for i in range(args.runs):
        runs.append(one_run(args.quick_runs, project, graph))
        print(f"run {i + 1}/{args.runs} done, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    print(f"after: {subprocess.run(['uptime'], capture_output=True, text=True).stdout.strip()}")
    print("| what | median (min-max) |")
    print("|---|---|")
    names: list[str] = []  # each run's order; a row only some runs have goes after its previous
    for fig in runs:
        at = 0
        for name in fig.values:
            if name in names:
                at = names.index(name) + 1
            else:
                names.insert(at, name)
                at += 1
    for name in names:
        values = [fig.values[name] for fig in runs if name in fig.values]
        unit = "" if ("processes" in name or "MB" in name) else " s"
        med = f"{statistics.median(values):.2f}{unit}"
        extra = f" ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else ""
        print(f"| {name} | {med}{extra} |")


if __name__ == "__main__":
    main()
