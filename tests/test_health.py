"""health.probe: one GET of a URL, answered in a word (ok, the HTTP status, unreachable); a
.localhost host is this machine; probe_all probes in parallel, in order."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from deployer import health

#: /together/ answers 200 only once TOGETHER requests wait on it at the same time
TOGETHER = 4


class _Handler(BaseHTTPRequestHandler):
    together = threading.Barrier(TOGETHER, timeout=20)

    def do_GET(self) -> None:
        code = {"/health/": 200, "/moved/": 302}.get(self.path, 503)
        if self.path == "/together/":
            try:
                self.together.wait()
                code = 200
            except threading.BrokenBarrierError:
                code = 504
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://demo.localhost:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_probe_answers_in_a_word(site: str) -> None:
    assert health.probe(site + "/health/") == "ok"
    assert health.probe(site + "/moved/") == "ok"
    assert health.probe(site + "/down/") == "503"
    assert health.probe(f"http://127.0.0.1:{_closed_port()}/health/") == health.UNREACHABLE


def test_probe_all_keeps_the_order_and_runs_at_once(site: str) -> None:
    urls = [site + "/together/"] * TOGETHER + [site + "/down/"]
    # one after the other, the first would wait alone until the barrier's timeout (504)
    answers = health.probe_all(urls, timeout=30)
    assert answers == ["ok"] * TOGETHER + ["503"]
    assert health.probe_all([]) == []
