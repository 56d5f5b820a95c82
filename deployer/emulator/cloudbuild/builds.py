"""Cloud Build builds: created (checked as Google checks them), run by an operation, cancelled.

A build is QUEUED, then WORKING (startTime) after a short queue, and finishes after latency
"build" (or at its ``timeout``, when shorter: TIMEOUT): SUCCESS, with each image of ``images``
pushed to Artifact Registry (``artifactregistry.push_image``, which is what makes Cloud Run
accept the image), or FAILURE (or the status a "build" outcome names):
- an outcome of kind "build" whose match is in the build's id, tags or images:
  USER_BUILD_STEP, statusDetail 'Build step failure: build step 0 "<step>" failed: <message>';
- the image's repository does not exist: PUSH_FAILED ('name unknown: Repository ... not found');
- the build's user-managed service account lacks artifactregistry.writer on the repository
  (or the project): PUSH_NOT_AUTHORIZED.
Refused at create, as Google refuses them (400): no steps; a user service account without
CLOUD_LOGGING_ONLY / NONE logging or a logs bucket; a service account that does not exist;
a storageSource object that does not exist ("could not resolve source: ... No such object").

When the emulator executes (``emu.local.builds``), a build of a storageSource runs for real
(execute.py): its operation stays pending until it ends, its result decides the status, and the
images are pushed with the digest that names the built image's directory.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from typing import TYPE_CHECKING, Any

from .. import policies
from ..artifactregistry.images import push_image
from ..artifactregistry.names import parse_image_ref, repo_name
from ..artifactregistry.repositories import get_repo
from ..errors import FailedPrecondition, InvalidArgument, NotFound
from ..formats import rfc3339
from ..local.build import BuildResult
from ..logging.simulated import build_completed
from ..operations import completer
from ..storage import OBJECT_KIND
from . import execute

if TYPE_CHECKING:
    from ..context import Emulator

KIND = "cloudbuild.build"
TYPE_PREFIX = "type.googleapis.com/google.devtools.cloudbuild.v1."
GLOBAL = "global"
TERMINAL = frozenset({"SUCCESS", "FAILURE", "INTERNAL_ERROR", "TIMEOUT", "CANCELLED", "EXPIRED"})
QUEUE_FRACTION = 0.05  # share of the build's duration spent QUEUED
WRITER_ROLES = frozenset(
    {
        "roles/artifactregistry.writer",
        "roles/artifactregistry.repoAdmin",
        "roles/artifactregistry.admin",
        "roles/owner",
        "roles/editor",
    }
)
SA_LOGGING_MESSAGE = (
    "generic::invalid_argument: if 'build.service_account' is specified, the build must either "
    "(a) specify 'build.logs_bucket', (b) use the REGIONAL_USER_OWNED_BUCKET "
    "build.options.default_logs_bucket_behavior option, or (c) use either CLOUD_LOGGING_ONLY / "
    "NONE logging options"
)
#: proto enum numbers of BuildOptions fields (GAPIC REST sends enums as integers)
_OPTION_ENUMS: dict[str, dict[int, str]] = {
    "logging": {
        0: "LOGGING_UNSPECIFIED",
        1: "LEGACY",
        2: "GCS_ONLY",
        3: "STACKDRIVER_ONLY",
        4: "NONE",
        5: "CLOUD_LOGGING_ONLY",
    },
    "defaultLogsBucketBehavior": {
        0: "DEFAULT_LOGS_BUCKET_BEHAVIOR_UNSPECIFIED",
        1: "REGIONAL_USER_OWNED_BUCKET",
        2: "LEGACY_BUCKET",
    },
    "machineType": {
        0: "UNSPECIFIED",
        1: "N1_HIGHCPU_8",
        2: "N1_HIGHCPU_32",
        5: "E2_HIGHCPU_8",
        6: "E2_HIGHCPU_32",
        7: "E2_MEDIUM",
        11: "E2_STANDARD_2",
    },
    "substitutionOption": {0: "MUST_MATCH", 1: "ALLOW_LOOSE"},
    "logStreamingOption": {0: "STREAM_DEFAULT", 1: "STREAM_ON", 2: "STREAM_OFF"},
    "requestedVerifyOption": {0: "NOT_VERIFIED", 1: "VERIFIED", 3: "BEST_EFFORT"},
}
_TAG_RE = re.compile(r"^[\w][\w.-]{0,127}$")
_DURATION_RE = re.compile(r"^(\d+)(\.\d+)?s$")
_FILTER_TERM = re.compile(r'^\s*(\w+)\s*=\s*(?:"([^"]*)"|(\S+))\s*$')
_FILTER_FIELDS = {"tags", "status", "images", "build_id", "id", "trigger_id"}


def shown(build: dict[str, Any], now: float) -> dict[str, Any]:
    """The Build as of ``now``: QUEUED turns WORKING once its queue time has passed."""
    out = {k: v for k, v in build.items() if not k.startswith("_")}
    if out["status"] == "QUEUED" and now >= build["_startAt"]:
        out["status"] = "WORKING"
        out["startTime"] = rfc3339(build["_startAt"])
    return out


def get_build(emu: Emulator, key: str) -> dict[str, Any]:
    """The stored build under ``<project>/<location>/<id>``."""
    build = emu.store.get(KIND, key)
    if build is None:
        raise NotFound("Requested entity was not found.")
    return build


class Builds:
    """A project's builds in one location ("global" or a region)."""

    def __init__(self, emu: Emulator, project_id: str, number: str, location: str) -> None:
        self.emu = emu
        self.store = emu.store
        self.project_id = project_id
        self.number = number
        self.location = location

    def _key(self, build_id: str) -> str:
        return f"{self.project_id}/{self.location}/{build_id}"

    def get(self, build_id: str) -> dict[str, Any]:
        return get_build(self.emu, self._key(build_id))

    def list(self, flt: str) -> list[dict[str, Any]]:
        """The builds (as of now) matching the filter, newest first."""
        terms = _parse_filter(flt)
        now = self.emu.clock()
        prefix = f"{self.project_id}/{self.location}/"
        builds = [shown(b, now) for _, b in self.store.list(KIND, prefix)]
        builds = [b for b in builds if _matches(b, terms)]
        builds.sort(key=lambda b: (b["createTime"], b["id"]), reverse=True)
        return builds

    def cancel(self, build_id: str) -> dict[str, Any]:
        """Cancel a build that has not ended; answers it as of now."""
        emu = self.emu
        key = self._key(build_id)
        with self.store.transaction():
            build = get_build(emu, key)
            if build["status"] in TERMINAL:
                raise FailedPrecondition(
                    f"build {build_id} is already in a terminal state: {build['status']}"
                )
            now = emu.clock()
            if now >= build["_startAt"]:
                build["startTime"] = rfc3339(build["_startAt"])
            build["status"] = "CANCELLED"
            build["finishTime"] = rfc3339(now)
            self.store.put(KIND, key, build)
        if emu.local.builds is not None:  # executed: its processes are killed
            emu.local.builds.cancel(build_id)
        emu.ops.complete_now(build["_opId"])
        return shown(build, emu.clock())

    def create(self, body: dict[str, Any], *, trigger_id: str | None = None) -> dict[str, Any]:
        """Check and store the build, QUEUED (``trigger_id``: the trigger that made it);
        answers the operation that runs it."""
        emu, location, project_id, number = self.emu, self.location, self.project_id, self.number
        if body.get("options"):
            body["options"] = enum_names(body["options"])
        if not body.get("steps"):
            raise InvalidArgument("invalid build: at least one build step is required")
        for i, s in enumerate(body["steps"]):
            if not s.get("name"):
                raise InvalidArgument(f"invalid build: build step {i} must specify a name")
        for t in body.get("tags") or []:
            if not _TAG_RE.match(t):
                raise InvalidArgument(
                    f"invalid build: invalid build tag {t!r}: must match {_TAG_RE.pattern}"
                )
        timeout = body.get("timeout") or "600s"
        timeout_seconds = _seconds(timeout, "build.timeout")
        if not 0 < timeout_seconds <= 86400:
            raise InvalidArgument("invalid build: timeout must be between 1s and 24h")
        check_service_account(emu, body)
        _check_source(emu, body.get("source") or {})

        build_id = str(uuid.uuid4())
        now = emu.clock()
        duration = emu.latency.duration("build")
        latency = emu.latency.get()
        # the build would run (unscaled) longer than its timeout: it stops at the timeout, TIMEOUT
        timed_out = latency["durations"]["build"] > timeout_seconds
        build: dict[str, Any] = {
            "name": f"projects/{number}/locations/{location}/builds/{build_id}",
            "id": build_id,
            "projectId": project_id,
            "status": "QUEUED",
            "createTime": rfc3339(now),
            "steps": [dict(s) for s in body["steps"]],
            "timeout": timeout,
            "queueTtl": body.get("queueTtl") or "3600s",
            "logUrl": (
                f"https://console.cloud.google.com/cloud-build/builds;region={location}/{build_id}"
                f"?project={number}"
            ),
            "serviceAccount": body.get("serviceAccount")
            or f"projects/{project_id}/serviceAccounts/{_default_account(number)}",
        }
        for field in ("source", "images", "tags", "substitutions", "options", "artifacts"):
            if body.get(field):
                build[field] = body[field]
        if trigger_id is not None:
            build["buildTriggerId"] = trigger_id
        options = body.get("options") or {}
        if body.get("logsBucket"):
            build["logsBucket"] = body["logsBucket"]
        elif options.get("logging") not in ("CLOUD_LOGGING_ONLY", "NONE"):
            build["logsBucket"] = f"gs://{number}.cloudbuild-logs.googleusercontent.com"
        ss = (body.get("source") or {}).get("storageSource")
        if ss:
            obj = self.store.get(OBJECT_KIND, f"{ss['bucket']}/{ss['object']}") or {}
            resolved = {"bucket": ss["bucket"], "object": ss["object"]}
            if obj.get("generation"):
                resolved["generation"] = str(obj["generation"])
            build["sourceProvenance"] = {"resolvedStorageSource": resolved}
        op_id = (
            base64.urlsafe_b64encode(build_id.encode()).decode()
            if location == GLOBAL
            else str(uuid.uuid4())
        )
        build["_location"] = location
        build["_opId"] = op_id
        build["_startAt"] = now + duration * QUEUE_FRACTION
        op_duration = duration
        if timed_out:
            build["_timedOut"] = True
            op_duration = min(
                duration, duration * QUEUE_FRACTION + timeout_seconds * latency["time_scale"]
            )
        key = self._key(build_id)
        with self.store.transaction():
            self.store.put(KIND, key, build)
            return emu.ops.start(
                completer="cloudbuild.build",
                duration_kind="build",
                target=key,
                args={"project": project_id, "location": location},
                op_id=op_id,
                duration=op_duration,
            )


def _default_account(number: str) -> str:
    """The account a build runs as when it names none (the Compute Engine default)."""
    return f"{number}-compute@developer.gserviceaccount.com"


def _seconds(value: str, field: str) -> float:
    m = _DURATION_RE.match(value)
    if not m:
        raise InvalidArgument(f"invalid value for {field!r}: {value!r} is not a duration")
    return float(m.group(1) + (m.group(2) or ""))


def enum_names(options: dict[str, Any]) -> dict[str, Any]:
    """BuildOptions with enum numbers turned into names (how Google answers)."""
    out = dict(options)
    for field, names in _OPTION_ENUMS.items():
        value = out.get(field)
        if isinstance(value, int) and not isinstance(value, bool):
            if value not in names:
                raise InvalidArgument(f"Invalid value at 'build.options.{field}' ({value})")
            out[field] = names[value]
    return out


def _check_source(emu: Emulator, source: dict[str, Any]) -> None:
    ss = source.get("storageSource")
    if not ss:
        return
    bucket, obj = ss.get("bucket", ""), ss.get("object", "")
    if not bucket or not obj:
        raise InvalidArgument("invalid build: storageSource needs a bucket and an object")
    if emu.store.get(OBJECT_KIND, f"{bucket}/{obj}") is None:
        raise InvalidArgument(
            f"could not resolve source: googleapi: Error 404: No such object: {bucket}/{obj}, "
            "notFound",
        )


def check_service_account(emu: Emulator, build: dict[str, Any]) -> None:
    sa_name = build.get("serviceAccount")
    if not sa_name:
        return
    m = re.match(r"^projects/[^/]+/serviceAccounts/([^/]+@[^/]+)$", sa_name)
    if not m:
        raise InvalidArgument(
            f"generic::invalid_argument: invalid value for 'build.service_account': {sa_name!r} "
            "must be of the form projects/{project}/serviceAccounts/{email}",
        )
    email = m.group(1)
    if policies._user_managed(email):
        sa = emu.store.get(policies.SA_KIND, email)
        if sa is None or float(sa.get("_visibleAt", 0.0)) > emu.clock():
            raise InvalidArgument(
                f"generic::invalid_argument: service account {email} does not exist",
            )
    options = build.get("options") or {}
    if options.get("logging") not in ("CLOUD_LOGGING_ONLY", "NONE") and not (
        build.get("logsBucket")
        or options.get("defaultLogsBucketBehavior") == "REGIONAL_USER_OWNED_BUCKET"
    ):
        raise InvalidArgument(SA_LOGGING_MESSAGE)


def _parse_filter(text: str) -> list[tuple[str, str]]:
    text = text.strip()
    if not text:
        return []
    out = []
    for term in re.split(r"\s+AND\s+", text):
        m = _FILTER_TERM.match(term)
        if not m or m.group(1) not in _FILTER_FIELDS:
            raise InvalidArgument(f"invalid filter: {text!r}")
        out.append((m.group(1), m.group(2) if m.group(2) is not None else m.group(3)))
    return out


def _matches(build: dict[str, Any], terms: list[tuple[str, str]]) -> bool:
    for field, value in terms:
        if field == "tags" and value not in build.get("tags", []):
            return False
        if field == "images" and value not in build.get("images", []):
            return False
        if field in ("id", "build_id") and build["id"] != value:
            return False
        if field == "status" and build["status"] != value:
            return False
        if field == "trigger_id" and build.get("buildTriggerId") != value:
            return False
    return True


# -- the operation that runs a build ---------------------------------------------------------


def _can_push(emu: Emulator, build: dict[str, Any], repo: str) -> bool:
    sa = (build.get("serviceAccount") or "").rsplit("/", 1)[-1]
    if not sa or not policies._user_managed(sa):
        return True  # Google's default build accounts can push in their own project
    member = f"serviceAccount:{sa}"
    for resource in (repo, f"projects/{build['projectId']}"):
        for b in policies.get_policy(emu, resource)["bindings"]:
            if b["role"] in WRITER_ROLES and member in b.get("members", []):
                return True
    return False


def _fail(build: dict[str, Any], kind: str, detail: str, status_detail: str) -> None:
    build["status"] = "FAILURE"
    build["statusDetail"] = status_detail
    build["failureInfo"] = {"type": kind, "detail": detail}


def _stop(build: dict[str, Any], status: str, detail: str | None, at: float) -> None:
    """End the build TIMEOUT / INTERNAL_ERROR (step 0 ends so, later steps never start) or
    EXPIRED (it never left the queue: no startTime, no step ran)."""
    build["status"] = status
    if detail:
        build["statusDetail"] = detail
    if status == "EXPIRED":
        build.pop("startTime", None)
        return
    build["finishTime"] = rfc3339(at)
    for i, step in enumerate(build.get("steps", [])):
        step["status"] = status if i == 0 else "QUEUED"
    build["timing"] = {"BUILD": {"startTime": build["startTime"], "endTime": build["finishTime"]}}


def _completed(
    emu: Emulator, build: dict[str, Any], local: BuildResult | None, *, project_id: str
) -> None:
    """The build's log: what it printed when it ran here, else the simulated one."""
    if local is not None:
        execute.write_log(emu, build, local, project_id=project_id)
    else:
        build_completed(emu, build, project_id=project_id)


@completer("cloudbuild.build")
def _finish(emu: Emulator, op: dict[str, Any]) -> dict[str, Any]:
    build = get_build(emu, op["target"])
    now = emu.clock()
    if build["status"] in TERMINAL:  # cancelled meanwhile
        return {"@type": TYPE_PREFIX + "Build", **shown(build, now)}
    build["startTime"] = rfc3339(build["_startAt"])
    build["finishTime"] = rfc3339(now)
    project_id = op["target"].split("/")[0]
    step = (build.get("steps") or [{}])[0].get("name", "")
    match = " ".join([build["id"], *build.get("tags", []), *build.get("images", [])])
    rule = emu.outcomes.take_rule("build", match)
    status = rule.get("status", "FAILURE") if rule is not None else None
    local = None
    if rule is None:  # a build the emulator executes runs now (NotYet until it ends)
        timeout = _seconds(build["timeout"], "build.timeout")
        local = execute.local_result(emu, build, timeout=timeout)
    if local is not None:
        status = None if local.status in ("SUCCESS", "FAILURE") else local.status
    elif status is None and build.get("_timedOut"):
        status = "TIMEOUT"
    if status is not None and status != "FAILURE":
        detail = rule["message"] if rule is not None else local.failure if local else None
        _stop(build, status, detail, now)
        _completed(emu, build, local, project_id=project_id)
        emu.store.put(KIND, op["target"], build)
        return {"@type": TYPE_PREFIX + "Build", **shown(build, now)}
    message = rule["message"] if rule is not None else None
    if local is not None and local.status == "FAILURE":
        message = execute.failure_message(local)
    pushed: list[dict[str, Any]] = []
    if message is not None:
        _fail(
            build,
            "USER_BUILD_STEP",
            message,
            f'Build step failure: build step 0 "{step}" failed: {message}',
        )
    else:
        for ref in build.get("images", []):
            parsed = parse_image_ref(ref)
            digest = (
                local.digest
                if local is not None
                else "sha256:" + hashlib.sha256(f"{build['id']}|{ref}".encode()).hexdigest()
            )
            if parsed is not None:
                location, project_id, repo, _, _ = parsed
                repository = repo_name(project_id, location, repo)
                if get_repo(emu, repository) is None:
                    detail = f'name unknown: Repository "{repo}" not found'
                    _fail(build, "PUSH_FAILED", detail, f"failed to push {ref}: {detail}")
                    break
                if not _can_push(emu, build, repository):
                    detail = (
                        'denied: Permission "artifactregistry.repositories.uploadArtifacts" '
                        f'denied on resource "{repository}" (or it may not exist)'
                    )
                    _fail(build, "PUSH_NOT_AUTHORIZED", detail, f"failed to push {ref}: {detail}")
                    break
                push_image(emu, ref, digest, build_time=now)
            pushed.append(
                {
                    "name": ref,
                    "digest": digest,
                    "pushTiming": {"startTime": rfc3339(now), "endTime": rfc3339(now)},
                }
            )
        else:
            build["status"] = "SUCCESS"
            build["results"] = {
                "images": pushed,
                "buildStepImages": [
                    "sha256:" + hashlib.sha256(s.get("name", "").encode()).hexdigest()
                    for s in build.get("steps", [])
                ],
                "buildStepOutputs": [],
            }
    for s in build.get("steps", []):
        s["status"] = "SUCCESS" if build["status"] == "SUCCESS" else "FAILURE"
    build["timing"] = {
        "BUILD": {"startTime": build["startTime"], "endTime": build["finishTime"]},
    }
    emu.store.put(KIND, op["target"], build)
    _completed(emu, build, local, project_id=project_id)
    # a failed build is still the operation's "response" here; the handlers render it as an error
    return {"@type": TYPE_PREFIX + "Build", **shown(build, now)}
