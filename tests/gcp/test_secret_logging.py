"""Google's clients log request and response bodies when GOOGLE_SDK_PYTHON_LOGGING_SCOPE is set:
the secret payloads djdeploy sends and reads must not be among them."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from deployer.emulator.testing import EmulatorHandle
from deployer.gcp.clients import ClientFactory
from deployer.gcp.cloud import Cloud

SCRIPT = """
import sys

import pytest
from deployer.gcp.clients import ClientFactory
from deployer.gcp.cloud import Cloud
from deployer.secret import Secret
cloud = Cloud("acme-prod", "europe-west1", ClientFactory(endpoint=sys.argv[1], project="acme-prod"))
cloud.secrets.create_secret("s1", {"managed-by": "djdeploy"})
cloud.secrets.add_version("s1", Secret("TOPSECRETVALUE"))
assert cloud.secrets.access("s1", "1").reveal() == "TOPSECRETVALUE"
"""


@pytest.mark.slow  # a Python process
@pytest.mark.virtual_clock
def test_secret_payloads_are_not_logged_by_google_clients(emulator: EmulatorHandle) -> None:
    clients = ClientFactory(endpoint=emulator.url, project="acme-prod")
    Cloud("acme-prod", "europe-west1", clients, clock=emulator.clock).services.enable(
        ["secretmanager.googleapis.com"]
    )
    emulator.clock.advance(60)  # the enable operation is done by the script's first request
    env = {**os.environ, "GOOGLE_SDK_PYTHON_LOGGING_SCOPE": "google"}
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, emulator.url],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    output = proc.stdout + proc.stderr
    assert "s1" in output  # the logging scope is live: the create request was logged
    assert "TOPSECRETVALUE" not in output
    assert "VE9QU0VDUkVUVkFMVUU" not in output  # the same, base64
