"""The one factory for every Google client: endpoint, credentials and timeouts are decided here.

No environment variable redirects the GAPIC clients, so pointing djdeploy at the emulator means
passing `endpoint` here; with an endpoint the credentials are anonymous.

google.* is imported only once a command builds a ClientFactory (`--help` and config errors never
pay for it), and then in one thread started by the factory, stage by stage (``STAGES``: about a
second of CPU in all), in the order a command's first requests need them: a discovery client
is built once the first stage is in (a seventh of the whole), so `up`'s first requests (Service
Usage, Resource Manager) go out while Cloud Storage's and the GAPIC clients' modules are still
importing; each client is built only once its own stage is in, so no step thread imports
google.* (they used to, lazily, the first ones importing while the others queued on the import
lock). The imports hold the GIL, so this saves no CPU; it overlaps them with the requests.
What is imported is cut to what the requests use: each GAPIC client from its own module, not
its library's package of every client (``HOLLOW``), and the modules read only on rare paths
on first use (``ON_USE``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

#: what a GAPIC kind is built from: its client's own module (the packages above it load hollow,
#: ``HOLLOW``) and the class in it
GAPIC = {
    "run.services": ("google.cloud.run_v2.services.services.client", "ServicesClient"),
    "run.jobs": ("google.cloud.run_v2.services.jobs.client", "JobsClient"),
    "run.executions": ("google.cloud.run_v2.services.executions.client", "ExecutionsClient"),
    "run.revisions": ("google.cloud.run_v2.services.revisions.client", "RevisionsClient"),
    "run.workerpools": ("google.cloud.run_v2.services.worker_pools.client", "WorkerPoolsClient"),
    "secretmanager": (
        "google.cloud.secretmanager_v1.services.secret_manager_service.client",
        "SecretManagerServiceClient",
    ),
    "cloudbuild": (
        "google.cloud.devtools.cloudbuild_v1.services.cloud_build.client",
        "CloudBuildClient",
    ),
}

#: the GAPIC kinds whose modules a command imports up front unless it names its own
#: (``ClientFactory.kinds``): all but the image build's
EVERY_KIND = tuple(kind for kind in GAPIC if kind != "cloudbuild")

#: the Google modules every command uses, stage by stage in the order its first requests need
#: them (``start_imports``): the discovery clients' (Service Usage, Resource Manager, SQL Admin,
#: IAM...; no grpc, protobuf nor requests), then Cloud Storage's (the bootstrap's bucket and the
#: tenant's lease; google.api_core's errors, requests), then the GAPIC clients' (protobuf and
#: run_v2's message types, with the command's GAPIC kinds' modules). The image build's and a new
#: secret version's modules are imported when they are needed: a no-op never pays for them.
STAGES: dict[str, tuple[str, ...]] = {
    "discovery": (
        "_strptime",  # datetime.strptime's (the steps read timestamps), imported then
        "encodings.idna",  # httplib2 encodes each request's host with it, imported then
        "google.auth",
        "google.auth.credentials",
        "httplib2",
        "google_auth_httplib2",
        "googleapiclient.discovery",
        "googleapiclient.discovery_cache",  # read by discovery.build, imported there
        "googleapiclient.errors",
    ),
    "storage": (
        "netrc",  # requests reads ~/.netrc on a session's first request, imported then
        "google.api_core.exceptions",
        "google.auth.transport.requests",
        "google.cloud.storage",
    ),
    "gapic": (
        "google.protobuf.json_format",
        "google.iam.v1.policy_pb2",
        "google.cloud.run_v2.types",
    ),
}
GOOGLE_MODULES = tuple(module for stage in STAGES.values() for module in stage)


#: modules the Google libraries import but djdeploy's requests do not use, loaded on first
#: use instead: httplib2's parser of WWW-Authenticate challenges (and pyparsing, its
#: grammar), read only on a 401; google.auth's signers (``crypt``, and ``jwt`` and ``iam``,
#: which read them at import), used only with a service account's key, and with them all of
#: cryptography (OpenSSL's bindings load at import: about 200 M instructions in all).
#: google.oauth2.service_account itself stays: every GAPIC transport asks whether its
#: credentials are a service account's when it is built.
ON_USE = ("httplib2.auth", "google.auth.crypt", "google.auth.jwt", "google.auth.iam")
#: packages whose ``__init__`` imports every service's client, async client and transports,
#: and every message type: they load hollow, so that a client module (``GAPIC``) loads with
#: only what it imports itself; any other name read from one (``run_v2.ServicesClient``) runs
#: its ``__init__`` then, as ON_USE does. A library whose layout moves its clients makes
#: GAPIC's imports fail (tests/gcp/test_clients.py).
HOLLOW = (
    "google.cloud.run_v2",
    *(GAPIC[kind][0].rsplit(".", 1)[0] for kind in EVERY_KIND),
    "google.cloud.secretmanager_v1",
)
_ON_USE_LOCK = threading.RLock()  # a package's __init__ loads the hollow packages below it


class _OnUse(types.ModuleType):
    """A module whose code runs on its first missing attribute, once, under a lock; another
    thread sees either none of its names or all of them. A hollow package's submodules import
    without it."""

    __spec__: importlib.machinery.ModuleSpec

    def __getattr__(self, name: str) -> Any:
        if name in ("__path__", "__file__", "__cached__"):  # the import system's probes
            raise AttributeError(name)
        if "__path__" in self.__dict__ and importlib.util.find_spec(f"{self.__name__}.{name}"):
            return importlib.import_module(f"{self.__name__}.{name}")
        with _ON_USE_LOCK:
            if type(self) is _OnUse:
                real: importlib.machinery.ModuleSpec = self.__spec__.loader_state
                module = importlib.util.module_from_spec(real)
                assert real.loader is not None
                real.loader.exec_module(module)
                self.__dict__.update(module.__dict__)
                self.__class__ = types.ModuleType  # type: ignore[assignment]
        return object.__getattribute__(self, name)


class _OnUseLoader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return _OnUse(spec.name)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing yet: _OnUse runs the module's code when it is first used."""


class _OnUseFinder(importlib.abc.MetaPathFinder):
    def find_spec(
        self, fullname: str, path: Any, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in ON_USE and fullname not in HOLLOW:
            return None
        real = importlib.machinery.PathFinder.find_spec(fullname, path)
        if real is None or real.loader is None:
            return None
        spec = importlib.machinery.ModuleSpec(
            fullname, _OnUseLoader(), origin=real.origin, loader_state=real
        )
        spec.submodule_search_locations = real.submodule_search_locations
        return spec


class Imports:
    """The import thread: ``stages`` in turn, each one's end an event; a stage that fails to
    import ends the waits too, and the client built then raises the ImportError."""

    def __init__(self, stages: dict[str, tuple[str, ...]]) -> None:
        self._done = {stage: threading.Event() for stage in stages}
        self._thread = threading.Thread(
            target=self._run, args=(stages,), name="google-imports", daemon=True
        )
        self._thread.start()

    def _run(self, stages: dict[str, tuple[str, ...]]) -> None:
        try:
            for stage, modules in stages.items():
                for name in modules:
                    importlib.import_module(name)
                self._done[stage].set()
        finally:
            for done in self._done.values():
                done.set()

    def wait(self, stage: str) -> None:
        """Until ``stage`` and the ones before it are imported."""
        self._done[stage].wait()

    def join(self) -> None:
        """Until every stage is imported."""
        self._thread.join()


def start_imports(kinds: tuple[str, ...] = EVERY_KIND) -> Imports:
    """Import the STAGES, the last with the clients of the GAPIC ``kinds``, in a background
    thread; wait for a client's stage before building it. The ON_USE modules and HOLLOW
    packages, unless imported already, are loaded when first used."""
    if not any(isinstance(finder, _OnUseFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _OnUseFinder())
    return Imports({**STAGES, "gapic": (*STAGES["gapic"], *(GAPIC[kind][0] for kind in kinds))})


@dataclass
class ClientFactory:
    """Builds each client once, on first use, and shares it across threads: GAPIC clients
    (requests sessions are thread-safe) and discovery clients (each thread sending over its
    own httplib2 connection)."""

    endpoint: str | None = None
    project: str | None = None
    #: seconds per HTTP request, for every client; a write that is not safe to repeat also
    #: sends it as its server deadline (``deadline``)
    request_timeout: float = 60.0
    #: the GAPIC kinds the command builds, their modules imported up front (``start_imports``);
    #: another kind's are imported when it is first built
    kinds: tuple[str, ...] = EVERY_KIND
    imports: Imports = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _gapic: dict[str, Any] = field(default_factory=dict, repr=False)
    _discovery: dict[tuple[str, str, str], Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.imports = start_imports(self.kinds)

    @cached_property
    def credentials(self) -> Any:
        self.imports.wait("discovery")
        if self.endpoint:
            from google.auth.credentials import AnonymousCredentials

            return AnonymousCredentials()
        import google.auth

        creds, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        return creds

    def gapic_options(self) -> dict[str, Any]:
        """Keyword arguments for any GAPIC client: REST transport, our endpoint."""
        opts: dict[str, Any] = {"credentials": self.credentials, "transport": "rest"}
        if self.endpoint:
            opts["client_options"] = {"api_endpoint": self.endpoint}
        return opts

    def deadline(self) -> tuple[tuple[str, str], ...]:
        """GAPIC ``metadata`` (HTTP headers) giving the server our request timeout as its
        deadline (Google's ``X-Server-Timeout`` system parameter): a request the client gave up
        on is abandoned by the server within one more timeout, never applied later."""
        return (("x-server-timeout", f"{self.request_timeout:g}"),)

    def gapic(self, kind: str) -> Any:
        """A cached GAPIC client: "run.services", "run.jobs", "run.executions",
        "run.revisions", "run.workerpools", "secretmanager", "cloudbuild"."""
        self.imports.wait("gapic")
        with self._lock:
            if kind not in self._gapic:
                self._gapic[kind] = self._make_gapic(kind)
            return self._gapic[kind]

    def _make_gapic(self, kind: str) -> Any:
        module, name = GAPIC[kind]
        if kind == "secretmanager":
            # With GOOGLE_SDK_PYTHON_LOGGING_SCOPE set, Google's clients log request and
            # response bodies at DEBUG: for this client they hold secret payloads.
            logging.getLogger("google.cloud.secretmanager_v1").setLevel(logging.INFO)
        cls = getattr(importlib.import_module(module), name)
        return cls(**self.gapic_options())

    @cached_property
    def storage(self) -> Any:
        self.imports.wait("storage")
        from google.cloud import storage  # type: ignore[attr-defined]

        opts: dict[str, Any] = {"project": self.project, "credentials": self.credentials}
        if self.endpoint:
            opts["client_options"] = {"api_endpoint": self.endpoint}
        return storage.Client(**opts)

    def discovery(self, api: str, version: str, *, region: str = "") -> Any:
        """The discovery client for an API, built once and shared by every thread: its requests
        go out over the calling thread's own connection (``ThreadHttp``). With ``region``, on
        Google, the API's regional endpoint (``https://{region}-run.googleapis.com/``: Cloud
        Run v1's namespaces are served only there)."""
        self.imports.wait("discovery")
        with self._lock:
            if (api, version, region) not in self._discovery:
                from googleapiclient import discovery

                opts: dict[str, Any] = {}
                if self.endpoint:  # every discovery API we use has servicePath ""
                    opts["api_endpoint"] = self.endpoint
                elif region:
                    opts["api_endpoint"] = f"https://{region}-{api}.googleapis.com/"
                self._discovery[(api, version, region)] = Collections(
                    discovery.build(
                        api,
                        version,
                        http=ThreadHttp(self._authorized_http),
                        static_discovery=True,
                        cache_discovery=False,
                        client_options=opts or None,
                    )
                )
            return self._discovery[(api, version, region)]

    def _authorized_http(self) -> Any:
        import google_auth_httplib2
        import httplib2

        return google_auth_httplib2.AuthorizedHttp(
            self.credentials, http=httplib2.Http(timeout=self.request_timeout)
        )


class ThreadHttp:
    """Stands in for an httplib2.Http (which is not thread-safe) in a discovery client shared
    by every thread: each thread's requests go over a connection of its own, made on its first
    request by ``make``."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._local = threading.local()

    def _http(self) -> Any:
        http = getattr(self._local, "http", None)
        if http is None:
            http = self._local.http = self._make()
        return http

    def request(self, *args: Any, **kwargs: Any) -> Any:
        return self._http().request(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # credentials, timeout, close...
        return getattr(self._http(), name)


class Collections:
    """A discovery resource whose collections (``.instances()``, ``.projects().locations()``)
    and methods are built once each, on first use. googleapiclient builds a collection from the
    discovery document on every call, with every one of its methods and their docstrings
    (rendered from the document's schemas): 10 to 60 ms for SQL Admin's instances, where a
    command calls one or two of its thirty methods. Here a method is built alone, as
    googleapiclient builds a collection (``Resource``) but from a description holding only
    that method. Shared by every thread, like the client: two threads building the same method
    at once both get a working one."""

    def __init__(self, service: Any, desc: dict[str, Any] | None = None) -> None:
        self._resource = service  # what discovery.build made: its http, model and schemas
        self._desc: dict[str, Any] = service._resourceDesc if desc is None else desc
        from googleapiclient.discovery import fix_method_name

        self._methods = {fix_method_name(n): n for n in self._desc.get("methods", {})}
        self._collections = {fix_method_name(n): n for n in self._desc.get("resources", {})}
        self._built: dict[str, Any] = {}

    def __getattr__(self, name: str) -> Any:
        if name in self._collections:
            return lambda: self._built_once(name, self._collection)
        method = name.removesuffix("_next").removesuffix("_media")  # list_next, get_media
        if method in self._methods:
            return getattr(self._built_once(method, self._method), name)
        if self._desc is not self._resource._resourceDesc:  # the service's own: _http, close
            raise AttributeError(f"{name} is no method nor collection here")
        return getattr(self._resource, name)

    def _built_once(self, name: str, build: Callable[[str], Any]) -> Any:
        if name not in self._built:
            self._built[name] = build(name)
        return self._built[name]

    def _collection(self, name: str) -> Collections:
        return Collections(self._resource, self._desc["resources"][self._collections[name]])

    def _method(self, name: str) -> Any:
        """A collection holding only the method ``name`` (and its _next, _media)."""
        from googleapiclient.discovery import Resource

        key = self._methods[name]
        service = self._resource
        return Resource(
            http=service._http,
            baseUrl=service._baseUrl,
            model=service._model,
            developerKey=service._developerKey,
            requestBuilder=service._requestBuilder,
            resourceDesc={"methods": {key: self._desc["methods"][key]}},
            rootDesc=service._rootDesc,
            schema=service._schema,
            universe_domain=service._universe_domain,
        )
