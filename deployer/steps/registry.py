"""The Artifact Registry docker repository the image is pushed to.

One repository per tenant and app (``names.registry``), format DOCKER, carrying our labels.
A repository under our name that is not ours (``config.names.owns``: the rule every step
shares) is never adopted nor deleted; one of our labels removed by hand is drift ``up`` repairs.

destroy deletes it: it holds only images, and every image is rebuilt from source by the next
``up`` (the image step tags images by the digest of their source). It is not user data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from deployer import errors
from deployer.errors import Conflict
from deployer.steps.base import Action, Broken, Change, NotOurs, Operation, field_changes

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud


@dataclass(frozen=True)
class Registry(Operation):
    config: Config
    name: str = "registry"
    needs: tuple[str, ...] = ("apis",)
    EXPECT: ClassVar[Mapping[Action, str]] = {Action.CREATE: "artifactregistry.repository.create"}

    @property
    def repo_id(self) -> str:
        return self.config.names.registry

    @property
    def resource(self) -> str:
        return f"repository {self.repo_id}"

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        return cloud.registry.get_repository(self.repo_id)

    def desired(self) -> dict[str, Any]:
        return {"format": "DOCKER", "labels": dict(self.config.names.labels)}

    def diff(self, observed: dict[str, Any] | None) -> Change:
        info = {"registry": self.config.names.image_repo.rsplit("/", 1)[0]}
        if observed is None:
            return self.create(
                f"{self.resource} does not exist", field_changes(self.desired(), None), info=info
            )
        if not self.config.names.owns(observed.get("labels")):
            return self.refuse(
                NotOurs(self._not_ours_message()),
                f"{self.resource} exists but is not labelled as ours",
                info=info,
            )
        if observed.get("format") != "DOCKER":
            return self.refuse(
                Broken(
                    f"{self.resource} exists with format {observed.get('format')}, not DOCKER: "
                    "delete it or choose another app name"
                ),
                f"{self.resource} has format {observed.get('format')}",
                info=info,
            )
        fields = field_changes({"labels": dict(self.config.names.labels)}, observed)
        if fields:
            return self.update(f"{self.resource} labels differ", fields, info=info)
        return self.noop(f"{self.resource} exists and matches", info=info)

    def _not_ours_message(self) -> str:
        return (
            f"{self.resource} in {self.config.project}/{self.config.region} exists but is not "
            f"labelled managed-by=djdeploy, djdeploy-tenant={self.config.tenant}: djdeploy "
            "never takes over a resource it did not create; delete it or choose another "
            "tenant or app name"
        )

    def apply(self, cloud: Cloud, change: Change) -> None:
        labels = dict(self.config.names.labels)
        if change.action is Action.CREATE:
            try:
                cloud.registry.create_repository(
                    self.repo_id,
                    labels,
                    description=f"djdeploy images of {self.config.tenant}/{self.config.app}",
                )
                return
            except Conflict:
                existing = cloud.registry.get_repository(self.repo_id)
                if existing is None:
                    raise  # gone again: the engine re-observes and retries
                if not self.config.names.owns(existing.get("labels")):
                    raise errors.NotOurs(self._not_ours_message()) from None
                observed = existing
        elif change.action is Action.UPDATE:
            observed = cloud.registry.get_repository(self.repo_id) or {}
            if observed and not self.config.names.owns(observed.get("labels")):
                raise errors.NotOurs(self._not_ours_message())
        else:
            return
        current = dict(observed.get("labels") or {})
        if any(current.get(k) != v for k, v in labels.items()):
            cloud.registry.patch_labels(self.repo_id, {**current, **labels})

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        observed = cloud.registry.get_repository(self.repo_id)
        if observed is None:
            return self.noop(f"{self.resource} is absent")
        if not self.config.names.owns(observed.get("labels")):
            return self.noop(f"kept: {self.resource} is not labelled as ours")
        cloud.registry.delete_repository(self.repo_id)
        return self.deleted(
            f"deleted {self.resource} (images are rebuilt from source on the next up)"
        )
