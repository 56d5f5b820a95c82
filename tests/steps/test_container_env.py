"""container_env.spec_changes: the fields we set are compared, server-filled ones are not, and a
field djdeploy manages that config dropped (vpcAccess) is a change that removes it."""

from __future__ import annotations

import copy
from typing import Any

from deployer.config import VpcConfig, WorkerConfig
from deployer.steps import container_env as ce
from deployer.steps.base import Action
from deployer.steps.cron import CronJob
from deployer.steps.jobs import MigrateJob
from deployer.steps.service import Service
from deployer.steps.worker import Worker
from tests.steps.test_cron import NIGHTLY
from tests.steps.test_jobs import DB, INPUTS_ALL, MIG, execution, job
from tests.steps.test_service import CFG, IMAGE, INPUTS, config, live

DIRECT = {
    "egress": "PRIVATE_RANGES_ONLY",
    "networkInterfaces": [{"network": "n", "subnetwork": "s"}],
}
VPC_CFG = config(vpc=VpcConfig("n", subnetwork="s"))


def test_a_server_filled_field_is_not_drift() -> None:
    desired = {"template": {"timeout": "300s", "containers": [{"image": "i"}]}}
    actual = {
        "template": {"timeout": "300s", "containers": [{"image": "i", "args": []}], "etag": "x"},
        "uid": "u",
    }
    assert ce.spec_changes(desired, actual) == []


def test_a_dropped_managed_field_is_a_removal() -> None:
    desired = {"template": {"timeout": "300s"}}
    actual = {"template": {"timeout": "300s", "vpcAccess": DIRECT}}
    [change] = ce.spec_changes(desired, actual)
    assert (change.path, change.old, change.new) == ("template.vpcAccess", DIRECT, None)


def test_an_unset_managed_field_is_no_change() -> None:
    desired = {"template": {"timeout": "300s"}}
    for unset in (None, {}, ""):
        assert ce.spec_changes(desired, {"template": {"timeout": "300s", "vpcAccess": unset}}) == []


def test_a_switch_from_connector_to_network_drops_the_connector() -> None:
    desired = {"template": {"vpcAccess": DIRECT}}
    connector = {"egress": "PRIVATE_RANGES_ONLY", "connector": "projects/p/connectors/c"}
    paths = {
        c.path: c.new for c in ce.spec_changes(desired, {"template": {"vpcAccess": connector}})
    }
    assert paths == {
        "template.vpcAccess.networkInterfaces": DIRECT["networkInterfaces"],
        "template.vpcAccess.connector": None,
    }


def test_spec_changes_leaves_desired_alone() -> None:
    desired = {"template": {"timeout": "300s"}}
    before = copy.deepcopy(desired)
    ce.spec_changes(desired, {"template": {"vpcAccess": DIRECT}})
    assert desired == before


def test_the_service_diff_shows_the_vpc_it_no_longer_wants() -> None:
    observed = live(VPC_CFG, template__vpcAccess=ce.vpc_access(VPC_CFG))
    assert not Service(VPC_CFG, IMAGE).diff(observed).fields
    change = Service(CFG, IMAGE).diff(observed)
    assert [(f.path, f.new) for f in change.fields] == [("template.vpcAccess", None)]


def test_the_job_diff_shows_the_vpc_it_no_longer_wants() -> None:
    body: dict[str, Any] = job(DB)
    body["template"]["template"]["vpcAccess"] = DIRECT
    change = DB.diff({"job": body, "executions": [], "inputs": INPUTS})
    assert [(f.path, f.new) for f in change.fields] == [("template.template.vpcAccess", None)]


def test_a_job_that_ran_drops_the_vpc_when_it_next_runs() -> None:
    body: dict[str, Any] = job(MIG)
    body["template"]["template"]["vpcAccess"] = DIRECT
    ran = [execution(MIG, "succeeded")]
    assert MIG.diff({"job": body, "executions": ran, "inputs": INPUTS_ALL}).action is Action.NOOP
    new_image = MigrateJob(CFG, image=IMAGE + "-next")
    change = new_image.diff({"job": body, "executions": ran, "inputs": INPUTS_ALL})
    assert change.action is Action.UPDATE
    assert ("template.template.vpcAccess", None) in [(f.path, f.new) for f in change.fields]


def test_the_cron_job_diff_shows_the_vpc_it_no_longer_wants() -> None:
    step = CronJob(config(cron=(NIGHTLY,)), image=IMAGE, entry=NIGHTLY)
    body = {**step.desired(INPUTS), "generation": "1", "observedGeneration": "1"}
    body["template"]["template"]["vpcAccess"] = DIRECT
    change = step.diff({"job": body, "executions": [], "inputs": INPUTS})
    assert [(f.path, f.new) for f in change.fields] == [("template.template.vpcAccess", None)]


def test_the_worker_pool_diff_shows_the_vpc_it_no_longer_wants() -> None:
    cfg = config(worker=WorkerConfig(("celery", "-A", "proj", "worker")))
    pool = Worker(cfg, IMAGE)
    body = pool.desired(INPUTS)
    body["template"]["vpcAccess"] = DIRECT
    body.update(generation="1", observedGeneration="1", reconciling=False)
    change = pool.diff({"pool": body, "inputs": INPUTS})
    assert [(f.path, f.new) for f in change.fields] == [("template.vpcAccess", None)]
