"""The context every step receives: one project, one region, one client factory, one clock.

Each API has a thin typed wrapper (gcp/<api>.py) built on first use. Wrappers speak plain
JSON-shaped dicts, turn 404 into None on reads, and send every call through retry.call(). They
know a Cloud only as a gcp/context.py Context, so imports run one way: cloud.py -> wrappers.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, TypeVar

from deployer.clock import Clock, RealClock
from deployer.errors import CloudError, means_absent
from deployer.gcp import retry
from deployer.gcp.build import BuildApi
from deployer.gcp.clients import ClientFactory
from deployer.gcp.domains import DomainsApi
from deployer.gcp.iam import IamApi
from deployer.gcp.logging import LoggingApi
from deployer.gcp.monitoring import MonitoringApi
from deployer.gcp.projects import ProjectsApi
from deployer.gcp.reads import ReadCache
from deployer.gcp.redis import RedisApi
from deployer.gcp.registry import RegistryApi
from deployer.gcp.run import RunApi
from deployer.gcp.scheduler import SchedulerApi
from deployer.gcp.secrets import SecretsApi
from deployer.gcp.services import ServiceUsageApi
from deployer.gcp.sql import SqlApi
from deployer.gcp.storage import StorageApi

T = TypeVar("T")


@dataclass
class Cloud:
    project: str
    region: str
    clients: ClientFactory
    # retries sleep on it and the engine waits on it: tests pass the emulator's VirtualClock
    clock: Clock = field(default_factory=RealClock)
    reads: ReadCache = field(default_factory=ReadCache)  # this command's shared reads

    def call(self, fn: Callable[[], T], *, key: Hashable | None = None, **kwargs: Any) -> T:
        """One API call through the one retry policy (see gcp/retry.py). With ``key`` it is a
        read the steps' first observations share (gcp/reads.py); without, it counts as a write
        and drops every shared read."""
        if key is not None:
            return self.reads.read(key, lambda: retry.call(fn, sleep=self.clock.sleep, **kwargs))
        try:
            return retry.call(fn, sleep=self.clock.sleep, **kwargs)
        finally:
            self.reads.invalidate()

    def read(self, fn: Callable[[], T], *, key: Hashable | None = None) -> T | None:
        """A read where 404 means absent, and so does 403 SERVICE_DISABLED: nothing can exist
        behind an API that is not enabled yet (`plan` on a fresh project). ``key`` as in
        call()."""

        def absent_as_none() -> T | None:
            try:
                return retry.call(fn, sleep=self.clock.sleep)
            except CloudError as exc:
                if means_absent(exc):
                    return None
                raise

        if key is not None:
            return self.reads.read(key, absent_as_none)
        try:
            return absent_as_none()
        finally:
            self.reads.invalidate()

    @cached_property
    def run(self) -> RunApi:
        return RunApi(self)

    @cached_property
    def domains(self) -> DomainsApi:
        return DomainsApi(self)

    @cached_property
    def sql(self) -> SqlApi:
        return SqlApi(self)

    @cached_property
    def secrets(self) -> SecretsApi:
        return SecretsApi(self)

    @cached_property
    def storage(self) -> StorageApi:
        return StorageApi(self)

    @cached_property
    def build(self) -> BuildApi:
        return BuildApi(self)

    @cached_property
    def registry(self) -> RegistryApi:
        return RegistryApi(self)

    @cached_property
    def iam(self) -> IamApi:
        return IamApi(self)

    @cached_property
    def projects(self) -> ProjectsApi:
        return ProjectsApi(self)

    @cached_property
    def services(self) -> ServiceUsageApi:
        return ServiceUsageApi(self)

    @cached_property
    def monitoring(self) -> MonitoringApi:
        return MonitoringApi(self)

    @cached_property
    def scheduler(self) -> SchedulerApi:
        return SchedulerApi(self)

    @cached_property
    def redis(self) -> RedisApi:
        return RedisApi(self)

    @cached_property
    def logging(self) -> LoggingApi:
        return LoggingApi(self)
