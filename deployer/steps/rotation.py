"""Secret rotation: what finishes one, after the service and the jobs (docs/rotate.md).

A rotation is recorded in the cloud, on the secret, before anything changes: the label
ROTATING names the version being replaced (`djdeploy secrets rotate` sets it). From then on each
state is one the next `up` or `rotate` recognises from the live cloud, whatever point a run was
killed at:

1. label set, no newer version: the secrets step adds one (a version newer than the label's,
   in any state, counts: a generated value is never added twice);
2. a newer version enabled: the sql-user step sets the database password from it, the jobs, the
   worker pool and the service pin it (their steps, as for any new version), and the service
   rolls out;
3. once every Cloud Run resource pins the new version, the service's newest revision is ready
   and (db-password) the SQL user's password is recorded as set from it, this step disables the
   older enabled versions, then removes the label. Never before: a version a serving revision
   reads stays enabled. A revision a rollback pinned, which serves whatever the template says,
   and reads an older version stops it (refused: no deploy would change what it reads).

Which versions stay enabled: the new one; for the SECRET_KEY also the one before it, which the
service and jobs read as SECRET_KEY_FALLBACKS (so sessions and password-reset links signed with
it stay valid until the next rotation); for the superuser password also the one before it, which
the migrate job reads as DJANGO_SUPERUSER_PASSWORD_PREVIOUS (the pinned pair is in its marker,
so the rotation runs it once: a superuser whose password is still the previous generated one
gets the new one; steps/jobs.py, container superuser.py).

A rotation whose newer versions were all disabled by hand is abandoned: the label is removed and
nothing else changes (the way back before the old version is disabled, docs/rotate.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from deployer.gcp.secrets import version_number
from deployer.steps import container_env as ce
from deployer.steps.base import Broken, Change, FieldChange, Operation
from deployer.steps.service import pinned_revision, rolled_out
from deployer.steps.sql import PASSWORD_LABEL

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud

#: On a generated secret: the version a rotation replaces (set before the new one is added).
ROTATING = "djdeploy-rotating-from"
#: `secrets rotate --secret`: the three generated secrets
KINDS = ("db-password", "secret-key", "admin-password")
#: enabled versions a finished rotation keeps: the SECRET_KEY's previous one is its fallback;
#: the superuser password's previous one is what the migrate job checks the superuser's password
#: against before moving it to the new one (a password a human set is never overwritten)
KEEP = {"db-password": 1, "secret-key": 2, "admin-password": 2}


@dataclass(frozen=True)
class Rotated:
    """One secret's rotation, as `api.rotate_secrets` left it: from ``old`` to ``new`` (None: not
    added yet), ``done`` when its old versions are disabled and its label removed; ``resumed``
    when an earlier, interrupted rotation was finished rather than a new one started."""

    kind: str
    secret: str
    old: str
    new: str | None
    done: bool
    resumed: bool
    kept: tuple[str, ...] = ()  # left enabled besides the new one: the previous key or password


def secret_ids(config: Config) -> dict[str, str]:
    """kind ("db-password") -> the generated secret's id."""
    n = config.names
    return {
        "db-password": n.secret_db_password,
        "secret-key": n.secret_key,
        "admin-password": n.secret_superuser_password,
    }


def newer_versions(versions: list[dict[str, Any]], start: str) -> list[dict[str, Any]]:
    """The versions (any state) added after version ``start``."""
    return [v for v in versions if version_number(v) > int(start)]


@dataclass(frozen=True)
class Rotation(Operation):
    """Finishes a rotation once what reads the secret has moved to its new version."""

    config: Config
    jobs: tuple[str, ...] = ()  # the Cloud Run jobs (their ids) that read the secrets
    worker_pools: tuple[str, ...] = ()  # the Cloud Run worker pools that read them ([worker])
    needs: tuple[str, ...] = ("service",)
    name: str = "rotation"

    @property
    def resource(self) -> str:
        return "secret rotation"

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        rotations: dict[str, Any] = {}
        for kind, sid in secret_ids(self.config).items():
            secret = cloud.secrets.get_secret(sid)
            labels = (secret or {}).get("labels") or {}
            if ROTATING not in labels:
                continue
            rotations[sid] = {
                "kind": kind,
                "from": labels[ROTATING],
                "password": labels.get(PASSWORD_LABEL),
                "versions": cloud.secrets.list_versions(sid) or [],
            }
        if not rotations:
            return None  # no rotation: nothing more to read
        service = cloud.run.get_service(self.config.names.service)
        readers = {
            f"service {self.config.names.service}": ce.template_pins(
                (service or {}).get("template")
            )
        }
        for jid in self.jobs:
            job = cloud.run.get_job(jid)
            task = ((job or {}).get("template") or {}).get("template")
            readers[f"job {jid}"] = ce.template_pins(task)
        for pool_id in self.worker_pools:
            pool = cloud.run.get_worker_pool(pool_id)
            readers[f"worker pool {pool_id}"] = ce.template_pins((pool or {}).get("template"))
        pinned = pinned_revision(service or {})
        revision = cloud.run.get_revision(self.config.names.service, pinned) if pinned else None
        return {
            "rotations": rotations,
            "service_ready": service is not None and rolled_out(service),
            "readers": readers,
            # a rollback's pin: the revision with all the traffic, whatever the template says
            "pinned": (pinned, ce.template_pins(revision)) if pinned else None,
        }

    def diff(self, observed: dict[str, Any] | None) -> Change:
        if observed is None:
            return self.noop("no secret rotation in progress")
        fields: list[FieldChange] = []
        waits: list[str] = []
        info: dict[str, str] = {}
        for sid, r in sorted(observed["rotations"].items()):
            start = r["from"]
            if not str(start).isdigit():  # edited by hand: which version to keep is unknown
                return self.refuse(
                    Broken(
                        f"secret {sid} has the label {ROTATING}={start}, which names no "
                        "version: remove it (gcloud secrets update "
                        f"{sid} --remove-labels={ROTATING}) and rotate again"
                    ),
                    f"label {ROTATING} of {sid} names no version",
                )
            label = FieldChange(f"{sid}.labels.{ROTATING}", start, None)
            newer = newer_versions(r["versions"], start)
            if not newer:
                waits.append(f"{sid}: its new version is not added yet (the secrets step adds it)")
                continue
            enabled = sorted(
                (version_number(v) for v in r["versions"] if v.get("state") == "ENABLED"),
                reverse=True,
            )
            if not any(v.get("state") == "ENABLED" for v in newer):
                fields.append(label)  # every newer version disabled by hand: abandoned
                info[f"rotation {sid}"] = f"abandoned (version {start} kept)"
                continue
            new = str(enabled[0])
            info[f"rotation {sid}"] = f"version {start} -> {new}"
            retire = [str(n) for n in enabled[KEEP[r["kind"]] :]]
            pinned = self._pinned_reads(observed, sid, new=new, retire=retire)
            if pinned:
                return self.refuse(Broken(pinned), f"{sid}: the serving revision is pinned")
            blockers = self._blockers(observed, sid, r, new=new, retire=retire)
            if blockers:
                kept = f"; version(s) {', '.join(retire)} stay enabled until then" if retire else ""
                waits.append(f"{sid} to version {new}: " + "; ".join(blockers) + kept)
                continue
            fields.extend(FieldChange(f"{sid}.versions.{v}", "ENABLED", "DISABLED") for v in retire)
            fields.append(label)
        if fields:
            return self.update(
                "finish the rotation: " + ", ".join(f.path for f in fields), fields, info=info
            )
        return self.wait("rotating " + "; ".join(waits), info=info)

    def _pinned_reads(
        self, observed: dict[str, Any], sid: str, *, new: str, retire: list[str]
    ) -> str:
        """Why the rotation cannot finish while a rollback pins the service ("" when it can):
        the pinned revision serves, and no deploy makes it read the new version, so waiting
        would never end."""
        pinned = observed.get("pinned")
        if not pinned:
            return ""
        revision, pins = pinned
        versions = {v for s, v in pins if s == sid}
        old = sorted((versions - {new}) if new not in versions else versions & set(retire))
        if not old:
            return ""
        return (
            f"the service is pinned to {revision} by `djdeploy rollback`, and it reads version "
            f"{', '.join(old)} of secret {sid}, which finishing the rotation disables: run "
            f"`djdeploy rollback --tenant {self.config.tenant} --undo`, then this command again"
        )

    def _blockers(
        self,
        observed: dict[str, Any],
        sid: str,
        rotation: dict[str, Any],
        *,
        new: str,
        retire: list[str],
    ) -> list[str]:
        """Why the old versions of ``sid`` cannot be disabled yet (empty: they can)."""
        out = []
        if rotation["kind"] == "db-password" and rotation["password"] != new:
            out.append(f"the database password is not yet set from version {new}")
        reads_it = False
        for reader, pins in sorted(observed["readers"].items()):
            versions = {v for s, v in pins if s == sid}
            reads_it = reads_it or (reader.startswith("service ") and bool(versions))
            old = sorted((versions - {new}) if new not in versions else versions & set(retire))
            if versions and old:
                out.append(f"{reader} still reads version {', '.join(old)}")
        if reads_it and not observed["service_ready"]:
            out.append("the service's new revision is not ready")
        return out

    def apply(self, cloud: Cloud, change: Change) -> None:
        """Disable the retired versions, then remove the label (a run killed between the two
        finds them disabled and removes the label)."""
        done: list[str] = []
        for f in change.fields:
            sid, _, rest = f.path.partition(".")
            if rest.startswith("versions."):
                cloud.secrets.disable_version(sid, rest.removeprefix("versions."))
            else:
                done.append(sid)
        for sid in done:
            cloud.secrets.remove_label(sid, ROTATING)

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        return self.noop("nothing to delete: a rotation lives on the secrets' labels")
