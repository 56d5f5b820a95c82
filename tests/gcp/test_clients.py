"""The client factory: google.* imported up front; one discovery client (and its collections)
shared by every thread, each thread sending over its own connection."""

import subprocess
import sys
import threading

import pytest

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


def test_a_regional_discovery_client_talks_to_the_regions_endpoint_on_google() -> None:
    """Cloud Run v1 namespaces (domain mappings) are served on ``{region}-run.googleapis.com``
    only; with an emulator every client talks to it. Built offline: no request is sent."""
    from google.auth.credentials import AnonymousCredentials

    google = ClientFactory(project="acme-prod")
    google.__dict__["credentials"] = AnonymousCredentials()  # no login needed to build one
    run = google.discovery("run", "v1", region="europe-west1")
    request = run.namespaces().domainmappings().list(parent="namespaces/acme-prod")
    assert request.uri.startswith(
        "https://europe-west1-run.googleapis.com/apis/domains.cloudrun.com/v1/namespaces/"
    )
    assert google.discovery("run", "v1") is not run  # the global endpoint is another client
    local = ClientFactory(endpoint="http://127.0.0.1:1", project="acme-prod")
    request = local.discovery("run", "v1", region="europe-west1").namespaces().domainmappings()
    assert request.list(parent="namespaces/p").uri.startswith("http://127.0.0.1:1/apis/")


def test_google_is_imported_once_up_front_by_the_factory() -> None:
    """Importing the factory imports no google.*; building one imports every module the
    clients need in its own thread, stage by stage, so the step threads never import them."""
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


def test_one_discovery_client_serves_every_thread_each_over_its_own_connection(
    emulator: EmulatorHandle,
) -> None:
    clients = ClientFactory(endpoint=emulator.url, project="acme-prod")
    crm = clients.discovery("cloudresourcemanager", "v3")
    seen: list[tuple[object, object, str]] = []

    def work() -> None:
        mine = clients.discovery("cloudresourcemanager", "v3")
        for _ in range(10):
            project = mine.projects().get(name="projects/acme-prod").execute(num_retries=0)
            assert project["projectId"] == "acme-prod"
        http = mine._resource._http
        seen.append((mine, http._http(), project["projectId"]))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [name for _, _, name in seen] == ["acme-prod"] * 4
    assert {id(client) for client, _, _ in seen} == {id(crm)}
    assert len({id(conn) for _, conn, _ in seen}) == 4  # a connection of its own each


#: what loads on first use (gcp/clients.py ON_USE and HOLLOW), each case: a probe's setup,
#: which prints what is loaded before; the body of ``use``, run by eight threads at once, each
#: appending what it saw to ``seen``; the setup's line and the set of what they saw
FIRST_USE = {
    # httplib2's WWW-Authenticate parser (and pyparsing) is imported but not loaded
    "a module used on a rare path": (
        "from deployer.gcp.clients import start_imports\n"
        "start_imports().join()\n"
        "print('pyparsing' in sys.modules)\n"
        "import httplib2\n"
        "header = {'www-authenticate': 'Digest realm=\"r\", nonce=\"n\"'}\n",
        "realm = httplib2.auth._parse_www_authenticate(header)['digest']['realm']\n"
        "seen.append((realm, type(sys.modules['httplib2.auth']).__name__))\n",
        ["False", "{('r', 'module')}"],
    ),
    # each GAPIC client from its own module: the packages above it load hollow (no other
    # service, no async client), google.auth's signers and cryptography on first use; any
    # other name read from a hollow package loads it whole
    "a hollow package, read whole": (
        "from deployer.gcp.clients import GAPIC, ClientFactory\n"
        "factory = ClientFactory(endpoint='http://127.0.0.1:1', project='p')\n"
        "built = {k: type(factory.gapic(k)) for k in GAPIC if k != 'cloudbuild'}\n"
        "factory.storage\n"
        "unwanted = ('.async_client', 'run_v2.services.builds', 'run_v2.services.tasks',\n"
        "            'cryptography')\n"
        "print(sorted(m for m in sys.modules if any(u in m for u in unwanted)))\n",
        "from google.cloud import run_v2, secretmanager\n"
        "from google.auth import jwt\n"
        "seen.append((run_v2.ServicesClient is built['run.services'],\n"
        "             secretmanager.SecretManagerServiceClient is built['secretmanager'],\n"
        "             callable(jwt.encode)))\n",
        ["[]", "{(True, True, True)}"],
    ),
    # google.auth.crypt (and cryptography) load when a service account's key first signs
    "a service account key's signers": (
        "from deployer.gcp.clients import ClientFactory\n"
        "ClientFactory(endpoint='http://127.0.0.1:1').imports.join()\n"
        "print('cryptography' in sys.modules)\n"
        "from google.oauth2 import service_account\n"
        "from cryptography.hazmat.primitives import serialization\n"
        "from cryptography.hazmat.primitives.asymmetric import rsa\n"
        "key = rsa.generate_private_key(public_exponent=65537, key_size=2048)\n"
        "pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,\n"
        "                        serialization.NoEncryption()).decode()\n"
        "info = {'type': 'service_account', 'client_email': 'sa@p.iam.gserviceaccount.com',\n"
        "        'private_key': pem, 'private_key_id': 'k', 'token_uri': 'https://t'}\n",
        "creds = service_account.Credentials.from_service_account_info(info)\n"
        "seen.append(len(creds.sign_bytes(b'x')))\n",
        ["False", "{256}"],
    ),
}


@pytest.mark.slow  # a Python process each
@pytest.mark.parametrize(("setup", "use", "expected"), FIRST_USE.values(), ids=list(FIRST_USE))
def test_what_loads_on_first_use_is_whole_in_every_thread(
    setup: str, use: str, expected: list[str]
) -> None:
    """Not loaded up front; then used from eight threads at once, each sees all of it. These
    depend on the libraries' layout: a client moved or a module imported again up front fails
    here."""
    probe = (
        "import sys, threading\n"
        f"{setup}"
        "seen = []\n"
        "def use():\n"
        + "".join(f"    {line}\n" for line in use.splitlines())
        + "threads = [threading.Thread(target=use) for _ in range(8)]\n"
        "for t in threads: t.start()\n"
        "for t in threads: t.join()\n"
        "print(set(seen))\n"
        "print(len(seen))\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:3] == [*expected, "8"]


@pytest.mark.slow  # a Python process
def test_discovery_requests_go_out_while_the_later_stages_import(
    emulator: EmulatorHandle,
) -> None:
    """A discovery client needs only the first import stage: a step thread's requests, and
    mapping their errors, are done while the next stage's first module is held back (by a
    loader that waits to be released), and the step thread imports nothing. A lazy import on
    the discovery path fails here: of a later stage's module, it would wait for the release;
    of any other, it would import in the step thread (behind the import thread's locks)."""
    probe = (
        "import importlib.machinery, sys, threading\n"
        "from deployer.gcp.clients import STAGES, ClientFactory\n"
        "from deployer.gcp.context import execute\n"
        "from deployer.gcp.errors import map_error\n"
        "held, released = threading.Event(), []\n"
        "class Held(importlib.machinery.SourceFileLoader):\n"
        "    def exec_module(self, module):\n"
        "        released.append(held.wait(60))  # False: the step waited for it\n"
        "        super().exec_module(module)\n"
        "class Hold:\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name != STAGES['storage'][0]:\n"
        "            return None\n"
        "        spec = importlib.machinery.PathFinder.find_spec(name, path)\n"
        "        spec.loader = Held(spec.loader.name, spec.loader.path)\n"
        "        return spec\n"
        "sys.meta_path.insert(0, Hold())\n"
        f"factory = ClientFactory(endpoint={emulator.url!r}, project='acme-prod')\n"
        "imported = []\n"
        "def audit(event, args):\n"
        "    if event == 'import' and threading.current_thread().name == 'step':\n"
        "        imported.append(args[0])\n"
        "sys.addaudithook(audit)\n"
        "seen = []\n"
        "def step():\n"
        "    projects = factory.discovery('cloudresourcemanager', 'v3').projects()\n"
        "    seen.append(execute(projects.get(name='projects/acme-prod'))()['projectId'])\n"
        "    sql = factory.discovery('sqladmin', 'v1').instances()\n"
        "    try:\n"
        "        execute(sql.get(project='acme-prod', instance='nowhere'))()\n"
        "    except Exception as exc:  # an HttpError\n"
        "        seen.append(type(map_error(exc)).__name__)\n"
        "    seen.append(type(map_error(ConnectionRefusedError())).__name__)\n"
        "thread = threading.Thread(target=step, name='step')\n"
        "thread.start()\n"
        "thread.join()\n"
        "held.set()\n"
        "factory.imports.join()\n"
        "print(seen, released, imported)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['acme-prod', 'PermissionDenied', 'Transient'] [True] []"


def test_a_method_built_alone_makes_the_request_googleapiclients_collection_makes() -> None:
    """Collections builds each method alone with googleapiclient's Resource (its constructor
    and a service's attributes: googleapiclient's layout). Each request must be the one the
    library's own collection makes; a changed layout fails here. Built offline."""
    from googleapiclient import discovery

    clients = ClientFactory(endpoint="http://127.0.0.1:1", project="p")
    sql = clients.discovery("sqladmin", "v1")
    plain = discovery.build(
        "sqladmin",
        "v1",
        http=sql._resource._http,
        static_discovery=True,
        client_options={"api_endpoint": "http://127.0.0.1:1"},
    )
    pairs = [
        (
            sql.instances().get(project="p", instance="i"),
            plain.instances().get(project="p", instance="i"),
        ),
        (
            sql.instances().list(project="p", filter="f"),
            plain.instances().list(project="p", filter="f"),
        ),
        (
            sql.users().update(project="p", instance="i", name="u", body={"password": "x"}),
            plain.users().update(project="p", instance="i", name="u", body={"password": "x"}),
        ),
    ]
    for mine, theirs in pairs:
        assert (mine.uri, mine.method, mine.body, mine.methodId) == (
            theirs.uri,
            theirs.method,
            theirs.body,
            theirs.methodId,
        )
    request = sql.instances().list(project="p")
    following = sql.instances().list_next(request, {"items": [], "nextPageToken": "t"})
    assert "pageToken=t" in following.uri
    repos = clients.discovery("artifactregistry", "v1").projects().locations().repositories()
    uri = repos.list(parent="projects/p/locations/l").uri
    assert uri.startswith("http://127.0.0.1:1/v1/projects/p/locations/l/repositories")
    media = clients.discovery("storage", "v1").objects().get_media(bucket="b", object="o")
    assert "alt=media" in media.uri
    with pytest.raises(AttributeError):
        getattr(sql.instances(), "projects")  # noqa: B009 (the service's, not the instances')
