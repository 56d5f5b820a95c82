"""The one factory for every Google client: endpoint, credentials and timeouts are decided here.

No environment variable redirects the GAPIC clients, so pointing djdeploy at the emulator means
passing `endpoint` here; with an endpoint the credentials are anonymous. google.* is imported
lazily: `--help` and config errors never pay for it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any


@dataclass
class ClientFactory:
    """Builds clients lazily and caches them: GAPIC clients per process (requests sessions are
    shared), discovery clients per thread (httplib2 is not thread-safe)."""

    endpoint: str | None = None
    project: str | None = None
    #: seconds per HTTP request, for every client; a write that is not safe to repeat also
    #: sends it as its server deadline (``deadline``)
    request_timeout: float = 60.0
    _local: threading.local = field(default_factory=threading.local, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _gapic: dict[str, Any] = field(default_factory=dict, repr=False)

    @cached_property
    def credentials(self) -> Any:
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
        "run.revisions", "secretmanager", "cloudbuild"."""
        with self._lock:
            if kind not in self._gapic:
                self._gapic[kind] = self._make_gapic(kind)
            return self._gapic[kind]

    def _make_gapic(self, kind: str) -> Any:
        if kind.startswith("run."):
            from google.cloud import run_v2

            cls = {
                "run.services": run_v2.ServicesClient,
                "run.jobs": run_v2.JobsClient,
                "run.executions": run_v2.ExecutionsClient,
                "run.revisions": run_v2.RevisionsClient,
            }[kind]
            return cls(**self.gapic_options())
        if kind == "secretmanager":
            from google.cloud import secretmanager

            # With GOOGLE_SDK_PYTHON_LOGGING_SCOPE set, Google's clients log request and
            # response bodies at DEBUG: for this client they hold secret payloads.
            logging.getLogger("google.cloud.secretmanager_v1").setLevel(logging.INFO)
            return secretmanager.SecretManagerServiceClient(**self.gapic_options())
        if kind == "cloudbuild":
            from google.cloud.devtools import cloudbuild_v1

            return cloudbuild_v1.CloudBuildClient(**self.gapic_options())
        raise KeyError(kind)

    @cached_property
    def storage(self) -> Any:
        from google.cloud import storage  # type: ignore[attr-defined]

        opts: dict[str, Any] = {"project": self.project, "credentials": self.credentials}
        if self.endpoint:
            opts["client_options"] = {"api_endpoint": self.endpoint}
        return storage.Client(**opts)

    def discovery(self, api: str, version: str) -> Any:
        """A discovery client for this thread (one httplib2.Http each)."""
        cache: dict[tuple[str, str], Any] = getattr(self._local, "clients", None) or {}
        self._local.clients = cache
        if (api, version) not in cache:
            import google_auth_httplib2
            import httplib2
            from googleapiclient import discovery

            http = google_auth_httplib2.AuthorizedHttp(
                self.credentials, http=httplib2.Http(timeout=self.request_timeout)
            )
            opts: dict[str, Any] = {}
            if self.endpoint:
                opts["api_endpoint"] = (
                    self.endpoint
                )  # every discovery API we use has servicePath ""
            cache[(api, version)] = Collections(
                discovery.build(
                    api,
                    version,
                    http=http,
                    static_discovery=True,
                    cache_discovery=False,
                    client_options=opts or None,
                )
            )
        return cache[(api, version)]


class Collections:
    """A discovery resource whose collections (``.instances()``, ``.projects().locations()``)
    are built once. googleapiclient builds a collection from the discovery document on every
    call: 10 to 60 ms each for SQL Admin, on every request. Per thread, like the client."""

    def __init__(self, resource: Any) -> None:
        self._resource = resource
        self._names: set[str] = set(resource._resourceDesc.get("resources", {}))
        self._built: dict[str, Collections] = {}

    def __getattr__(self, name: str) -> Any:
        if name not in self._names:
            return getattr(self._resource, name)

        def collection() -> Collections:
            if name not in self._built:
                self._built[name] = Collections(getattr(self._resource, name)())
            return self._built[name]

        return collection
