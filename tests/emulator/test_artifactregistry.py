"""Artifact Registry v1 in the emulator, driven through the discovery client."""

from __future__ import annotations

import time
from typing import Any

import pytest
from googleapiclient.errors import HttpError

from deployer.emulator import artifactregistry, serviceusage
from deployer.emulator.policies import SA_KIND
from tests.contract import check_transcript

PROJECT = "ar-proj"
REGION = "europe-west1"
PARENT = f"projects/{PROJECT}/locations/{REGION}"
REPO = f"{PARENT}/repositories/web"
WRITER = "roles/artifactregistry.writer"
SA = f"builder@{PROJECT}.iam.gserviceaccount.com"


@pytest.fixture
def ar(emulator: Any) -> Any:
    serviceusage.set_enabled(emulator.emu, PROJECT, "artifactregistry.googleapis.com")
    return emulator.discovery("artifactregistry", "v1").projects().locations()


def _wait(ar: Any, op: dict[str, Any]) -> dict[str, Any]:
    deadline = time.time() + 5
    while not op.get("done"):
        assert time.time() < deadline
        time.sleep(0.005)
        op = ar.operations().get(name=op["name"]).execute()
    return op


def _create(ar: Any, repo_id: str = "web", **body: Any) -> dict[str, Any]:
    return (
        ar.repositories()
        .create(parent=PARENT, repositoryId=repo_id, body={"format": "DOCKER", **body})
        .execute()
    )


def _status(call: Any) -> int:
    with pytest.raises(HttpError) as err:
        call.execute()
    return int(err.value.status_code)


def test_repository_lifecycle(emulator: Any, ar: Any) -> None:
    op = _create(ar, labels={"managed-by": "djdeploy"}, description="images")
    assert op["name"].startswith(f"{PARENT}/operations/")
    assert op["metadata"]["@type"].endswith("artifactregistry.v1.OperationMetadata")
    done = _wait(ar, op)
    assert done["response"]["@type"].endswith("artifactregistry.v1.Repository")
    assert done["response"]["name"] == REPO

    repo = ar.repositories().get(name=REPO).execute()
    assert repo["format"] == "DOCKER" and repo["labels"] == {"managed-by": "djdeploy"}
    assert repo["registryUri"] == f"{REGION}-docker.pkg.dev/{PROJECT}/web"
    assert repo["description"] == "images"

    assert _status(ar.repositories().create(parent=PARENT, repositoryId="web",
                                            body={"format": "DOCKER"})) == 409  # fmt: skip
    assert _status(ar.repositories().create(parent=PARENT, repositoryId="Bad_Id",
                                            body={"format": "DOCKER"})) == 400  # fmt: skip

    patched = (
        ar.repositories()
        .patch(name=REPO, updateMask="labels", body={"labels": {"managed-by": "djdeploy",
                                                                  "team": "web"}})
        .execute()
    )  # fmt: skip
    assert patched["labels"] == {"managed-by": "djdeploy", "team": "web"}
    assert _status(ar.repositories().patch(name=REPO, updateMask="format",
                                           body={"format": "NPM"})) == 400  # fmt: skip

    _wait(ar, _create(ar, "other"))
    listed = ar.repositories().list(parent=PARENT).execute()
    assert [r["name"].rsplit("/", 1)[1] for r in listed["repositories"]] == ["other", "web"]
    filtered = ar.repositories().list(parent=PARENT, filter=f'name="{PARENT}/repositories/w*"')
    assert [r["name"] for r in filtered.execute()["repositories"]] == [REPO]
    page = ar.repositories().list(parent=PARENT, pageSize=1).execute()
    assert len(page["repositories"]) == 1 and page["nextPageToken"]
    page2 = ar.repositories().list(parent=PARENT, pageSize=1, pageToken=page["nextPageToken"])
    assert page2.execute()["repositories"][0]["name"] == REPO
    assert _status(ar.repositories().list(parent=PARENT, filter="labels.x=y")) == 400

    deleted = _wait(ar, ar.repositories().delete(name=REPO).execute())
    assert deleted["response"] == {"@type": "type.googleapis.com/google.protobuf.Empty"}
    assert _status(ar.repositories().get(name=REPO)) == 404
    assert _status(ar.repositories().delete(name=REPO)) == 404
    assert _status(ar.operations().get(name=f"{PARENT}/operations/nope")) == 404
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_a_delete_outcome_fails_the_operation_and_keeps_the_repository(
    emulator: Any, ar: Any
) -> None:
    emulator.emu.ops.complete_now(_create(ar)["name"].rsplit("/", 1)[-1])
    emulator.control.fail("delete", "/repositories/web", "the repository is in use")
    op = ar.repositories().delete(name=REPO).execute()
    emulator.emu.ops.complete_now(op["name"].rsplit("/", 1)[-1])
    done = ar.operations().get(name=op["name"]).execute()
    assert done["done"] and done["error"] == {"code": 9, "message": "the repository is in use"}
    assert ar.repositories().get(name=REPO).execute()["name"] == REPO  # kept
    op = ar.repositories().delete(name=REPO).execute()  # the rule is used up
    assert _status(ar.repositories().get(name=REPO)) == 404
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_unknown_location_and_disabled_api(emulator: Any, ar: Any) -> None:
    bad = ar.repositories().list(parent=f"projects/{PROJECT}/locations/mars-1")
    assert _status(bad) == 400
    other = emulator.discovery("artifactregistry", "v1").projects().locations()
    with pytest.raises(HttpError) as err:
        other.repositories().list(parent="projects/ar-other/locations/europe-west1").execute()
    assert err.value.status_code == 403 and b"SERVICE_DISABLED" in err.value.content
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_iam_policy_with_etags(emulator: Any, ar: Any) -> None:
    _wait(ar, _create(ar))
    emulator.emu.store.put(SA_KIND, SA, {"email": SA, "_visibleAt": 0.0})
    policy = ar.repositories().getIamPolicy(resource=REPO, options_requestedPolicyVersion=3)
    policy = policy.execute()
    assert "bindings" not in policy and policy["etag"]
    policy["bindings"] = [{"role": WRITER, "members": [f"serviceAccount:{SA}"]}]
    new = ar.repositories().setIamPolicy(resource=REPO, body={"policy": policy}).execute()
    assert new["bindings"] == policy["bindings"] and new["etag"] != policy["etag"]
    # a stale etag is a concurrent change: 409 ABORTED
    with pytest.raises(HttpError) as err:
        ar.repositories().setIamPolicy(resource=REPO, body={"policy": policy}).execute()
    assert err.value.status_code == 409 and b"ABORTED" in err.value.content
    # a service account that does not exist yet is refused
    ghost = {"bindings": [{"role": WRITER, "members": [f"serviceAccount:x@{PROJECT}.iam."
                                                      "gserviceaccount.com"]}]}  # fmt: skip
    assert _status(ar.repositories().setIamPolicy(resource=REPO, body={"policy": ghost})) == 400
    missing = f"{PARENT}/repositories/missing"
    assert _status(ar.repositories().getIamPolicy(resource=missing)) == 404
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_images_packages_tags(emulator: Any, ar: Any) -> None:
    _wait(ar, _create(ar))
    ref1 = f"{REGION}-docker.pkg.dev/{PROJECT}/web/app:src-1"
    ref2 = f"{REGION}-docker.pkg.dev/{PROJECT}/web/app:src-2"
    now = time.time()
    artifactregistry.push_image(emulator.emu, ref1, "sha256:" + "a" * 64, build_time=now)
    artifactregistry.push_image(emulator.emu, ref2, "sha256:" + "b" * 64, build_time=now)
    # moving a tag: latest moves from the first digest to the second
    artifactregistry.push_image(
        emulator.emu, ref1.replace("src-1", "latest"), "sha256:" + "a" * 64, build_time=now
    )
    artifactregistry.push_image(
        emulator.emu, ref1.replace("src-1", "latest"), "sha256:" + "b" * 64, build_time=now
    )
    assert artifactregistry.image_exists(emulator.emu, ref1)

    images = ar.repositories().dockerImages().list(parent=REPO).execute()["dockerImages"]
    by_digest = {i["uri"].rsplit("@", 1)[1][-1]: i for i in images}
    assert by_digest["a"]["tags"] == ["src-1"]
    assert sorted(by_digest["b"]["tags"]) == ["latest", "src-2"]
    assert by_digest["a"]["uri"] == f"{REGION}-docker.pkg.dev/{PROJECT}/web/app@sha256:{'a' * 64}"
    ordered = ar.repositories().dockerImages().list(parent=REPO, orderBy="update_time desc")
    assert len(ordered.execute()["dockerImages"]) == 2
    one = ar.repositories().dockerImages().get(name=by_digest["a"]["name"]).execute()
    assert one["tags"] == ["src-1"]
    assert (
        _status(ar.repositories().dockerImages().get(name=f"{REPO}/dockerImages/app@sha256:0"))
        == 404
    )

    packages = ar.repositories().packages().list(parent=REPO).execute()["packages"]
    assert [p["name"] for p in packages] == [f"{REPO}/packages/app"]
    assert (
        ar.repositories().packages().get(name=f"{REPO}/packages/app").execute()["displayName"]
        == "app"
    )
    assert _status(ar.repositories().packages().get(name=f"{REPO}/packages/nope")) == 404

    tags = ar.repositories().packages().tags()
    listed = tags.list(parent=f"{REPO}/packages/app").execute()["tags"]
    assert [t["name"].rsplit("/", 1)[1] for t in listed] == ["latest", "src-1", "src-2"]
    tag = tags.get(name=f"{REPO}/packages/app/tags/src-1").execute()
    assert tag["version"] == f"{REPO}/packages/app/versions/sha256:{'a' * 64}"
    assert _status(tags.get(name=f"{REPO}/packages/app/tags/src-9")) == 404

    # pushing into a repository that does not exist fails; deleting a repo removes its images
    with pytest.raises(artifactregistry.ApiError):
        artifactregistry.push_image(
            emulator.emu, ref1.replace("/web/", "/nope/"), "sha256:0", build_time=now
        )
    _wait(ar, ar.repositories().delete(name=REPO).execute())
    assert not artifactregistry.image_exists(emulator.emu, ref1)
    assert emulator.emu.store.list("artifactregistry.image") == []
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_parse_image_ref() -> None:
    assert artifactregistry.parse_image_ref("us-docker.pkg.dev/p/r/a/b:v1") == (
        "us", "p", "r", "a/b", "v1",
    )  # fmt: skip
    assert artifactregistry.parse_image_ref("gcr.io/p/a:v1") is None
