"""The client factory: discovery collections are built once per thread and still work."""

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
