"""The secrets step: the three secrets djdeploy generates, and the user's secret env vars.

Generated (labelled, one version each, values from `secrets.token_urlsafe`): the database
password, Django's SECRET_KEY and the superuser password. A generated secret is NEVER
regenerated while it has any version: only an empty secret we own gets a first version. A
secret whose versions are all disabled or destroyed is a failure that tells the user what to
do (adding a new value silently would change a password the database still expects).

The user's secret env vars (config.secret_env, and the [worker] broker_secret) must name
existing secrets with an enabled version (or the pinned version enabled); djdeploy never
creates them.

destroy keeps every secret unless --delete-data; then it deletes only the three generated ones
(never the user's own secrets, never a secret that is not labelled as ours).
"""

from __future__ import annotations

import datetime as dt
import secrets as _random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from deployer import errors
from deployer.errors import Conflict, DeployError
from deployer.gcp.secrets import latest_enabled, version_number
from deployer.steps.base import (
    WRITES,
    Action,
    Broken,
    Change,
    FieldChange,
    NotOurs,
    Operation,
    Secret,
    field_changes,
)
from deployer.steps.rotation import ROTATING, newer_versions

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud

CREATED = "created with 1 version"


def version_info(sid: str, secret: dict[str, Any], *, now: float | None) -> dict[str, str]:
    """What status shows of a generated secret: its version, when it was created and how old
    it is, and the rotation in progress, if any."""
    out = {f"secret {sid}": f"version {secret['latest']}"}
    created = secret.get("created")
    if created:
        out[f"secret {sid} created"] = created
        if now is not None:
            when = dt.datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp()
            out[f"secret {sid} age"] = age(now - when)
    start = (secret.get("labels") or {}).get(ROTATING)
    if start is not None:
        out[f"secret {sid} rotating from"] = f"version {start}"
    return out


def age(seconds: float) -> str:
    """A duration as its two largest units: 3d 4h, 5h 12m, 7m 3s, 12s."""
    s = max(0, int(seconds))
    parts = [(s // 86400, "d"), (s // 3600 % 24, "h"), (s // 60 % 60, "m"), (s % 60, "s")]
    while len(parts) > 2 and parts[0][0] == 0:
        parts.pop(0)
    return " ".join(f"{n}{unit}" for n, unit in parts[:2] if n) or "0s"


@dataclass(frozen=True)
class Secrets(Operation):
    config: Config
    name: str = field(default="secrets", init=False)
    needs: Sequence[str] = field(default=("apis",), init=False)
    EXPECT: ClassVar[Mapping[Action, str]] = WRITES

    # -- what we manage --------------------------------------------------------------------

    @property
    def generated(self) -> dict[str, int]:
        """secret id -> bytes of randomness (token_urlsafe: 4/3 characters per byte)."""
        n = self.config.names
        return {
            n.secret_db_password: 32,  # 43 characters
            n.secret_key: 48,  # 64 characters (Django wants 50+)
            n.secret_superuser_password: 24,  # 32 characters
        }

    @property
    def resource(self) -> str:
        return ", ".join(self.generated)

    @property
    def labels(self) -> dict[str, str]:
        return dict(self.config.names.labels)

    def _new_value(self, secret_id: str) -> Secret:
        return Secret(_random.token_urlsafe(self.generated[secret_id]))

    # -- observe / diff --------------------------------------------------------------------

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        generated: dict[str, Any] = {}
        for sid in self.generated:
            s = cloud.secrets.get_secret(sid)
            if s is None:
                generated[sid] = None
                continue
            versions = cloud.secrets.list_versions(sid) or []
            labels = dict(s.get("labels") or {})
            latest = latest_enabled(versions)
            start = str(labels.get(ROTATING) or "")
            generated[sid] = {
                "labels": labels,
                "versions": len(versions),
                "latest": latest,
                "created": next(
                    (v.get("createTime") for v in versions if str(version_number(v)) == latest),
                    None,
                ),
                "rotation_pending": start.isdigit() and not newer_versions(versions, start),
            }
        if all(v is None for v in generated.values()):
            return None  # nothing of ours exists (destroy waits for this)
        return {
            "generated": generated,
            "user": self._observe_user(cloud),
            "now": cloud.clock.now(),
        }

    def _observe_user(self, cloud: Cloud) -> list[dict[str, str]]:
        """One entry per secret env var: {"env", "secret", "version", "state"} where state is
        ok / missing / no-enabled-version / version-not-enabled."""
        cache: dict[str, list[dict[str, Any]] | None] = {}
        out = []
        for env, ref in sorted(self.config.app_secret_env.items()):
            if ref.secret not in cache:
                cache[ref.secret] = cloud.secrets.list_versions(ref.secret)
            versions = cache[ref.secret]
            if versions is None:
                state = "missing"
            elif ref.version == "latest":
                ok = any(v.get("state") == "ENABLED" for v in versions)
                state = "ok" if ok else "no-enabled-version"
            else:
                ok = any(
                    version_number(v) == int(ref.version) and v.get("state") == "ENABLED"
                    for v in versions
                )
                state = "ok" if ok else "version-not-enabled"
            out.append({"env": env, "secret": ref.secret, "version": ref.version, "state": state})
        return out

    def user_problems(self, user: list[dict[str, str]]) -> list[str]:
        p = self.config.project
        out = []
        for u in user:
            env, sid, version = u["env"], u["secret"], u["version"]
            if u["state"] == "missing":
                out.append(
                    f"secret env {env}: secret {sid} does not exist in project {p}; create it "
                    f"with: printf %s VALUE | gcloud secrets create {sid} --project={p} "
                    "--data-file=-"
                )
            elif u["state"] == "no-enabled-version":
                out.append(
                    f"secret env {env}: secret {sid} has no enabled version; add one with: "
                    f"printf %s VALUE | gcloud secrets versions add {sid} --project={p} "
                    "--data-file=-"
                )
            elif u["state"] == "version-not-enabled":
                out.append(
                    f"secret env {env}: version {version} of secret {sid} does not exist or is "
                    f"not enabled; enable it (gcloud secrets versions enable {version} "
                    f'--secret={sid} --project={p}) or use version "latest"'
                )
        return out

    def diff(self, observed: dict[str, Any] | None) -> Change:
        ids = list(self.generated)
        if observed is None:
            return self.create(
                f"create secrets {self.resource} (generated values, one version each)",
                [FieldChange(sid, None, CREATED) for sid in ids],
            )
        fields: list[FieldChange] = []
        not_ours: list[str] = []
        problems: list[str] = []
        info: dict[str, str] = {}
        tenant = self.config.tenant
        p = self.config.project
        owns = self.config.names.owns
        for sid in ids:
            s = observed["generated"].get(sid)
            if s is None:
                fields.append(FieldChange(sid, None, CREATED))
                continue
            if not owns(s["labels"]):
                not_ours.append(
                    f"secret {sid} exists but is not labelled as djdeploy's for tenant {tenant} "
                    f"(labels {s['labels'] or 'none'}): it is not adopted; delete it "
                    f"(gcloud secrets delete {sid} --project={p}) or choose another tenant/app"
                )
                continue
            fields.extend(field_changes(self.labels, s["labels"], f"{sid}.labels"))
            if s["versions"] == 0:
                fields.append(FieldChange(f"{sid}.versions", 0, 1))
            elif s.get("rotation_pending"):
                fields.append(
                    FieldChange(f"{sid}.rotation", f"version {s['latest']}", "a new version")
                )
            elif s["latest"] is None:
                problems.append(
                    f"secret {sid} has {s['versions']} version(s) and none is enabled: djdeploy "
                    "never generates a new value while versions exist; enable one (gcloud "
                    f"secrets versions enable N --secret={sid} --project={p}), or add a value "
                    "yourself (gcloud secrets versions add)"
                )
            else:
                info.update(version_info(sid, s, now=observed.get("now")))
        problems.extend(self.user_problems(observed.get("user") or []))
        # nothing is written while any secret is wrong: the user fixes it first
        if not_ours:
            return self.refuse(NotOurs("; ".join(not_ours + problems)), info=info)
        if problems:
            return self.refuse(Broken("; ".join(problems)), info=info)
        if fields:
            return self.update(", ".join(f.path for f in fields), fields, info=info)
        user = observed.get("user") or []
        return self.noop(
            f"secrets {self.resource} exist with an enabled version (never regenerated)"
            + (f"; {len(user)} secret env var(s) found" if user else ""),
            info=info,
        )

    # -- apply -----------------------------------------------------------------------------

    def apply(self, cloud: Cloud, change: Change) -> None:
        if change.action is Action.CREATE:
            # check the user's secrets before creating anything (read-only)
            problems = self.user_problems(self._observe_user(cloud))
            if problems:
                raise DeployError("; ".join(problems))
        todo: dict[str, set[str]] = {}
        for f in change.fields:
            sid, _, rest = f.path.partition(".")
            if sid in self.generated:
                todo.setdefault(sid, set()).add(rest.split(".", 1)[0] or "create")
        for sid, what in todo.items():
            if "create" in what:
                self._create(cloud, sid)
                continue
            if "labels" in what:
                cloud.secrets.merge_labels(sid, self.labels)
            if "versions" in what:
                self._first_version(cloud, sid)
            if "rotation" in what:
                self._rotated_version(cloud, sid)

    def _create(self, cloud: Cloud, sid: str) -> None:
        try:
            cloud.secrets.create_secret(sid, self.labels)
        except Conflict:
            found = cloud.secrets.get_secret(sid)
            if found is None:
                raise
            if not self.config.names.owns(found.get("labels")):
                raise errors.NotOurs(
                    f"secret {sid} already exists in project {self.config.project} without "
                    "djdeploy's labels for this tenant: delete it or choose another tenant/app"
                ) from None
        self._first_version(cloud, sid)

    def _first_version(self, cloud: Cloud, sid: str) -> None:
        """Add a generated value only when the secret has no version at all."""
        if cloud.secrets.list_versions(sid):
            return
        cloud.secrets.add_version(sid, self._new_value(sid))

    def _rotated_version(self, cloud: Cloud, sid: str) -> None:
        """Add the new value of a rotation (docs/rotate.md) only when no version was added
        since the one it replaces, whatever the state of those versions."""
        found = cloud.secrets.get_secret(sid)
        start = ((found or {}).get("labels") or {}).get(ROTATING)
        if start is None or newer_versions(cloud.secrets.list_versions(sid) or [], start):
            return
        cloud.secrets.add_version(sid, self._new_value(sid))

    # -- delete ----------------------------------------------------------------------------

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        deleted, kept, held = [], [], []
        for sid in self.generated:
            found = cloud.secrets.get_secret(sid)
            if found is None:  # "kept" names only what exists
                continue
            if not self.config.names.owns(found.get("labels")):
                kept.append(sid)
            elif not delete_data:
                held.append(sid)
            elif cloud.secrets.delete_secret(sid):
                deleted.append(sid)
        if held:
            others = f"; {', '.join(kept)} not labelled as djdeploy's" if kept else ""
            return self.noop(
                f"kept: secrets {', '.join(held)} hold credentials; --delete-data to delete"
                + others
            )
        if kept:
            return self.noop(
                f"deleted {', '.join(deleted) or 'nothing'}; kept {', '.join(kept)}: "
                "not labelled as djdeploy's"
            )
        if not deleted:
            return self.noop("secrets already gone")
        return self.deleted(
            f"deleted secrets {', '.join(deleted)} (the user's own secrets are never deleted)"
        )
