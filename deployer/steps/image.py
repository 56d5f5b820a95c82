"""The container image: source archive -> staging bucket -> Cloud Build -> Artifact Registry.

The image is tagged by the digest of its source archive (deployer/archive.py), so its URI is
known before any cloud call and the tag says exactly what is in it:

    <region>-docker.pkg.dev/<project>/<registry>/<app>:src-<16 hex of the archive's sha256>

Build args (``--build-arg`` of the Dockerfile: DJANGO_PROJECT_SETTINGS from settings_module,
BUILD_APT_PACKAGES and RUNTIME_APT_PACKAGES from [build]) are part of what the image is, so they
are folded into the tag: with any set, the hex is that of sha256(archive digest + the args), and
a changed arg is a new tag, hence a new build. With none set, the tag is the archive's own.

observe: does that tag exist? If so, nothing to do (no build). Otherwise the newest build of
*our* image: tagged with the source tag and our tenant (another tenant building the same source
is not waited on, nor its failure reported), and pushing our image URI (another app of the
tenant pushes elsewhere). WAIT while it is QUEUED/WORKING, failure (statusDetail + logs URL)
when it failed. When it says SUCCESS the tag is read again: a build pushes its image before it
says SUCCESS, so a build that finished between the first two reads is done, never built again
(only a tag gone since, with its repository, is). apply uploads the archive to the staging
bucket (``sources/<tag>.tar.gz``, skipped when it is already there) and starts the build with
the build service account; it never waits.

The archive is lazy (archive.LazyArchive): the image URI needs only the digest, so plan, status
and destroy read the source files but never compress them; the tar.gz is built when apply
uploads it.
delete: nothing (the images live in the registry, which the registry step deletes).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from deployer.archive import Archive, LazyArchive, container_dir, default_source, tag_for
from deployer.steps.base import Action, Broken, Change, FieldChange, Operation

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.gcp.cloud import Cloud

BUILDER = "gcr.io/cloud-builders/docker"
BUILD_TIMEOUT = "1800s"
RUNNING = frozenset({"STATUS_UNKNOWN", "PENDING", "QUEUED", "WORKING"})
#: builds of the source tag and tenant looked at (newest first) to find the one of our image
BUILDS_LOOKED_AT = 10
#: the default of container/Dockerfile's ``ARG RUNTIME_APT_PACKAGES``: kept when
#: build.runtime_apt_packages adds packages (a build arg replaces the default; a test checks
#: that the two agree)
RUNTIME_APT_DEFAULT: tuple[str, ...] = ("libpq5",)


def build_args(config: Config) -> dict[str, str]:
    """The Dockerfile build args config sets, by name (none: the Dockerfile's defaults)."""
    args: dict[str, str] = {}
    if config.settings_module:
        args["DJANGO_PROJECT_SETTINGS"] = config.settings_module
    if config.build.apt_packages:
        args["BUILD_APT_PACKAGES"] = " ".join(config.build.apt_packages)
    if config.build.runtime_apt_packages:
        packages = dict.fromkeys((*RUNTIME_APT_DEFAULT, *config.build.runtime_apt_packages))
        args["RUNTIME_APT_PACKAGES"] = " ".join(packages)
    return dict(sorted(args.items()))


def image_tag(digest: str, args: dict[str, str]) -> str:
    """The image tag: the archive's (``src-<16 hex of digest>``) without build args, else the
    same form over the digest and the args, so another arg value is another tag."""
    if not args:
        return tag_for(digest)
    folded = f"{digest}\n{json.dumps(args, sort_keys=True, separators=(',', ':'))}"
    return tag_for(hashlib.sha256(folded.encode()).hexdigest())


@dataclass(frozen=True)
class Image(Operation):
    """``Image(config)`` archives config.source (or the bundled sample; without
    config.config_file) lazily: the digest (so the tag and ``image``) when first asked for,
    which steps/__init__ does before any cloud call (an unreadable source is a ConfigError
    then); the tar.gz only when apply uploads it. ``Image(config, archive)`` uses the given
    one."""

    config: Config
    archive: Archive | LazyArchive = field(default=None, repr=False)  # type: ignore[assignment]
    name: str = "image"
    needs: tuple[str, ...] = ("iam-build",)
    EXPECT: ClassVar[Mapping[Action, str]] = {Action.CREATE: "build"}

    def __post_init__(self) -> None:
        if self.archive is None:
            source = self.config.source or default_source()
            archive = LazyArchive(source, container_dir(), config_file=self.config.config_file)
            object.__setattr__(self, "archive", archive)

    @property
    def build_args(self) -> dict[str, str]:
        return build_args(self.config)

    @property
    def tag(self) -> str:
        """The image tag: the source archive's, with the build args folded in (image_tag)."""
        return image_tag(self.archive.digest, self.build_args)

    @property
    def image(self) -> str:
        """The image URI the jobs and the service run."""
        return f"{self.config.names.image_repo}:{self.tag}"

    @property
    def resource(self) -> str:
        return f"image {self.tag}"

    # -- observe / diff ----------------------------------------------------------------------

    def observe(self, cloud: Cloud) -> dict[str, Any] | None:
        if cloud.registry.tag_exists(self.image):
            return {"exists": True}
        builds = cloud.build.list_builds(
            f'tags="{self.tag}" AND tags="{self.config.tenant}"', limit=BUILDS_LOOKED_AT
        )
        ours = next((b for b in builds if self.image in (b.get("images") or [])), None)
        if ours is None:
            return None
        # A build pushes its image before it says SUCCESS: one that finished after the tag
        # was read shows SUCCESS here with the tag read as absent. Read the tag again, after
        # the builds, so that build is done, not a reason to build again.
        exists = ours.get("status") == "SUCCESS" and cloud.registry.tag_exists(self.image)
        return {"exists": exists, "build": ours}

    def diff(self, observed: dict[str, Any] | None) -> Change:
        info = {"image": self.image}
        wanted = [FieldChange("image", None, self.image)]
        if observed is None:
            return self.create(f"no image {self.tag}: build it from source", wanted, info=info)
        if observed.get("exists"):
            return self.noop(f"image {self.tag} is built (in the registry)", info=info)
        build = observed.get("build") or {}
        build_id = build.get("id", "?")
        status = build.get("status", "STATUS_UNKNOWN")
        info = {**info, "build": build_id}
        if build.get("logUrl"):
            info["logs"] = build["logUrl"]
        if status in RUNNING:
            return self.wait(f"build {build_id} {status.lower()}", info=info)
        if status == "SUCCESS":
            # built, and the tag read after the build is gone (repository deleted since)
            return self.create(
                f"build {build_id} succeeded but image {self.tag} is not in the registry",
                wanted,
                info=info,
            )
        detail = build.get("statusDetail") or (build.get("failureInfo") or {}).get("detail", "")
        failure = f"build {build_id} {status}"
        if detail:
            failure += f": {detail}"
        if build.get("logUrl"):
            failure += f"; logs: {build['logUrl']}"
        return self.create(
            f"the last build of {self.tag} ended {status}: build again",
            wanted,
            failure=Broken(failure),
            info=info,
        )

    # -- apply -------------------------------------------------------------------------------

    def build_body(self) -> dict[str, Any]:
        names = self.config.names
        args = ["build", "-f", ".djdeploy/Dockerfile"]
        for name, value in self.build_args.items():
            # one argv element each: Cloud Build runs the step without a shell, so a
            # space-separated package list needs no quoting
            args += ["--build-arg", f"{name}={value}"]
        args += ["-t", self.image, "."]
        return {
            "steps": [{"name": BUILDER, "args": args}],
            "images": [self.image],
            "tags": [self.tag, "djdeploy", self.config.tenant],
            "serviceAccount": f"projects/{self.config.project}/serviceAccounts/"
            f"{names.build_sa_email}",
            "options": {"logging": "CLOUD_LOGGING_ONLY"},
            "source": {
                "storageSource": {
                    "bucket": names.staging_bucket,
                    "object": self.archive.object_name,
                }
            },
            "timeout": BUILD_TIMEOUT,
        }

    def apply(self, cloud: Cloud, change: Change) -> None:
        if change.action is not Action.CREATE:
            return
        bucket = self.config.names.staging_bucket
        if not cloud.storage.object_exists(bucket, self.archive.object_name):
            cloud.storage.upload(
                bucket, self.archive.object_name, self.archive.data, content_type="application/gzip"
            )
        cloud.build.create_build(self.build_body())

    def delete(self, cloud: Cloud, *, delete_data: bool) -> Change:
        return self.noop(
            "images live in the registry (deleted with it); source archives stay in the shared "
            "staging bucket"
        )
