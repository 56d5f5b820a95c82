"""A Redis broker with local execution, as a user has it: `djdeploy up --emulator` on the sample
project with `[worker] broker = "redis"` runs a local redis-server that requires the instance's
AUTH string, and the worker, run as a process, reads CELERY_BROKER_URL from the URL secret: a
client without the AUTH string is refused, one with it writes a key the test then reads back.
Nothing djdeploy prints holds the AUTH string; destroy stops the server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from deployer.emulator.local.redis import find_server
from deployer.emulator.testing import discovery_client
from tests.test_local_e2e import (
    PROJECT,
    Djdeploy,
    eventually,
    media_objects,
    processes_under,
    sample_with_worker,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(find_server() is None, reason="no redis-server here"),
]

INSTANCE = f"projects/{PROJECT}/locations/europe-west1/instances/demo-django-redis"
#: the [worker]: PING without the AUTH string, then AUTH and SET with it (RESP), through the URL
#: it is handed; leaves a marker saying what the server answered, then waits for work
WORKER = """\
import os, pathlib, socket, time, urllib.parse
url = urllib.parse.urlsplit(os.environ['CELERY_BROKER_URL'])
assert os.environ['REDIS_URL'] == os.environ['CELERY_BROKER_URL']
def resp(*args):
    out = b'*%d\\r\\n' % len(args)
    for a in args:
        out += b'$%d\\r\\n%s\\r\\n' % (len(a.encode()), a.encode())
    return out
def ask(replies, *commands):
    with socket.create_connection((url.hostname, url.port), timeout=30) as s:
        s.sendall(b''.join(commands))
        got = b''
        while got.count(b'\\r\\n') < replies:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        return got
refused = ask(1, resp('PING')).startswith(b'-NOAUTH')
password = urllib.parse.unquote(url.password or '')
answer = ask(2, resp('AUTH', password), resp('SET', 'djdeploy-e2e', 'queued'))
accepted = answer == b'+OK\\r\\n+OK\\r\\n'
marker = 'redis-ok' if refused and accepted else 'redis-bad'
pathlib.Path(os.environ['MEDIA_ROOT'], marker).write_text('ran')
time.sleep(3600)
"""


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Djdeploy]:
    with sample_with_worker(tmp_path, WORKER, worker='broker = "redis"\n') as handle:
        yield handle


def get_key(port: int, password: str) -> bytes:
    """AUTH, then GET the worker's key, from this test (as redis-cli would)."""
    auth = f"*2\r\n$4\r\nAUTH\r\n${len(password)}\r\n{password}\r\n".encode()
    get = b"*2\r\n$3\r\nGET\r\n$12\r\ndjdeploy-e2e\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(auth + get)
        got = b""
        while got.count(b"\r\n") < 3:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    return got


def test_the_worker_reaches_redis_only_with_the_auth_string(cli: Djdeploy) -> None:
    result, done = cli.up()
    assert result["ok"], result
    redis = discovery_client(cli.endpoint(), "redis", "v1").projects().locations().instances()
    instance = redis.get(name=INSTANCE).execute()
    password = redis.getAuthString(name=INSTANCE).execute()["authString"]
    assert instance["authEnabled"] is True and instance["host"] == "127.0.0.1"
    assert password not in done.stdout + done.stderr

    assert eventually(lambda: {"redis-ok", "redis-bad"} & set(media_objects(cli)))
    assert "redis-ok" in media_objects(cli), media_objects(cli)
    assert get_key(instance["port"], password) == b"+OK\r\n$6\r\nqueued\r\n"
    running = processes_under(cli.state)  # command lines: the redis-server's among them
    assert any("redis-server" in p for p in running) and password not in "".join(running)

    status = cli(*cli._target("status"), "--json")
    assert password not in status.stdout + status.stderr
    cli(*cli._target("destroy"), "--yes")
    assert eventually(lambda: cli.local()["redis"] == [])
