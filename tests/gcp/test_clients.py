"""The client factory: discovery collections are built once per thread and still work."""

import subprocess
import sys

from deployer.emulator.testing import EmulatorHandle
from deployer.gcp.clients import ClientFactory


def test_discovery_collections_are_built_once_and_answer(emulator: EmulatorHandle) -> None:
    clients = ClientFactory(endpoint=emulator.url, project="acme-prod")
    sql = clients.discovery("sqladmin", "v1")
    assert sql.instances() is sql.instances()
    locations = clients.discovery("artifactregistry", "v1").projects().locations()
    assert locations is clients.discovery("artifactregistry", "v1").projects().locations()
    crm = clients.discovery("cloudresourcemanager", "v3")
    project = crm.projects().get(name="projects/acme-prod").execute(num_retries=0)
    assert project["projectId"] == "acme-prod"


def test_google_is_imported_once_up_front_by_the_factory() -> None:
    """Importing the factory imports no google.*; building one imports every module the
    clients need in its own thread, so the step threads never import them."""
    code = (
        "import sys\n"
        "from deployer.gcp.clients import GOOGLE_MODULES, ClientFactory\n"
        "assert not [m for m in sys.modules if m.startswith('google')], 'imported early'\n"
        "factory = ClientFactory(endpoint='http://127.0.0.1:1')\n"
        "factory.imports.join()\n"
        "print(sorted(set(GOOGLE_MODULES) - set(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
