"""Smoke: the emulator fixture serves, and a discovery client completes an operation."""

import time

from deployer.emulator.testing import discovery_client


def test_fixture_serves_and_enables(emulator):
    su = discovery_client(emulator.url, "serviceusage", "v1")
    op = su.services().enable(name="projects/smoke-proj/services/run.googleapis.com").execute()
    deadline = time.time() + 5
    while not op.get("done"):
        assert time.time() < deadline
        time.sleep(0.01)
        op = su.operations().get(name=op["name"]).execute()
    assert op["response"]["service"]["state"] == "ENABLED"
    assert emulator.control.health()["status"] == "ok"
