"""Emulator overhead per request (a script, not a test): run
``.venv/bin/python bench/bench_emulator.py [--n 2000]``.

Measures, against an in-process emulator on a free port:
1. emu.handle() directly (no HTTP): the emulator's own work per request;
2. raw http.client on one keep-alive connection: + HTTP;
3. a real discovery client (google-api-python-client, httplib2): what a test pays per call;
4. a real GAPIC client (google-cloud-run, transport="rest"), answered 404;
5. 50 concurrent clients (threads, one discovery client each): latency and errors.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

from deployer.emulator import Emulator, serve
from deployer.emulator.routing import Headers
from deployer.emulator.testing import discovery_client, gapic_options

PATH = "/v3/projects/bench-proj"


def measure(fn: Callable[[], object], n: int, warmup: int = 50) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))]


def report(label: str, xs: list[float]) -> None:
    print(
        f"{label:<44} n={len(xs):<5} median {statistics.median(xs) * 1000:7.3f} ms"
        f"   p95 {pct(xs, 0.95) * 1000:7.3f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--state-dir", default=None, help="use a SQLite file instead of memory")
    args = ap.parse_args()
    n = args.n

    emu = Emulator(time_scale=0.001, state_dir=args.state_dir)
    running = serve(emu)
    print(f"emulator at {running.url} ({'state dir' if args.state_dir else 'in-memory'})")
    try:
        h = Headers({})
        report("emu.handle (no HTTP)", measure(lambda: emu.handle("GET", PATH, "", h, b""), n))
        emu.transcript.clear()

        host, port = running.url.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port))

        def raw() -> None:
            conn.request("GET", PATH)
            r = conn.getresponse()
            r.read()
            assert r.status == 200

        report("http.client keep-alive GET", measure(raw, n))
        emu.transcript.clear()

        crm = discovery_client(running.url, "cloudresourcemanager", "v3")
        report(
            "discovery client projects.get",
            measure(lambda: crm.projects().get(name="projects/bench-proj").execute(), n // 2),
        )
        req = crm.projects().get(name="projects/bench-proj")
        report("discovery client, prebuilt request", measure(req.execute, n // 2))
        emu.transcript.clear()

        from google.api_core import exceptions
        from google.cloud import run_v2

        from deployer.emulator.serviceusage import set_enabled

        set_enabled(emu, "bench-proj", "run.googleapis.com")
        client = run_v2.ServicesClient(**gapic_options(running.url))

        def gapic() -> None:
            with contextlib.suppress(exceptions.GoogleAPICallError):
                client.get_service(name="projects/bench-proj/locations/us-central1/services/x")

        report("GAPIC run_v2 get_service (404)", measure(gapic, n // 4))
        emu.transcript.clear()

        # 50 concurrent clients
        threads_n, per = 50, max(10, n // 100)
        lat: list[float] = []
        errors: list[BaseException] = []
        lock = threading.Lock()
        barrier = threading.Barrier(threads_n)

        def worker() -> None:
            try:
                c = discovery_client(running.url, "cloudresourcemanager", "v3")
                barrier.wait()
                mine = []
                for _ in range(per):
                    t0 = time.perf_counter()
                    c.projects().get(name="projects/bench-proj").execute()
                    mine.append(time.perf_counter() - t0)
                with lock:
                    lat.extend(mine)
            except BaseException as exc:
                with lock:
                    errors.append(exc)

        ts = [threading.Thread(target=worker) for _ in range(threads_n)]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        wall = time.perf_counter() - t0
        report(f"{threads_n} concurrent discovery clients", lat)
        print(
            f"{'':<44} {len(lat)} requests in {wall:.2f} s = {len(lat) / wall:.0f} req/s, "
            f"errors: {len(errors)}"
        )
        if errors:
            print("first error:", repr(errors[0]))
    finally:
        running.stop()


if __name__ == "__main__":
    main()
