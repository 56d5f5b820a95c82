"""The steps, one module per resource, and the graph they form."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from deployer.config import Config
    from deployer.steps.base import Step


def build_steps(config: Config) -> list[Step]:
    """Every step for `config`, in dependency order (the engine checks the graph)."""
    from deployer.steps.apis import Apis, required_apis
    from deployer.steps.bucket import MediaBucket, SourcesBucket
    from deployer.steps.ci import CiTrigger
    from deployer.steps.cron import CronJob, CronSchedules
    from deployer.steps.domains import DomainMappings
    from deployer.steps.iam import IamBuild, IamDeployer, IamRuntime, IamScheduler
    from deployer.steps.image import Image
    from deployer.steps.invoker import Invoker
    from deployer.steps.jobs import DbInitJob, MigrateJob
    from deployer.steps.manage import ManageJob
    from deployer.steps.monitoring import AlertChannel, AlertPolicy, UptimeCheck
    from deployer.steps.redis import RedisInstance
    from deployer.steps.redis_url import RedisUrl
    from deployer.steps.registry import Registry
    from deployer.steps.retired import (
        RetiredCi,
        RetiredCron,
        RetiredMonitoring,
        RetiredRedis,
        RetiredWorker,
    )
    from deployer.steps.rotation import Rotation
    from deployer.steps.secrets import Secrets
    from deployer.steps.service import Service
    from deployer.steps.service_accounts import ServiceAccounts
    from deployer.steps.sql import SqlDatabase, SqlInstance, SqlUser
    from deployer.steps.worker import Worker

    image = Image(config)
    db_init = DbInitJob(config, image=image.image)
    migrate = MigrateJob(config, image=image.image)
    iam_runtime = IamRuntime(config)
    if config.redis_broker:  # its URL secret is in every container's env (and readable by the
        # runtime account): the jobs, and all after, wait for it
        db_init = DbInitJob(config, image=image.image, needs=(*db_init.needs, "redis-url"))
        migrate = MigrateJob(config, image=image.image, needs=(*migrate.needs, "redis-url"))
        iam_runtime = IamRuntime(config, needs=(*iam_runtime.needs, "redis-url"))
    steps: list[Step] = [
        Apis(config, services=required_apis(config)),
        ServiceAccounts(config),
        Secrets(config),
        SqlInstance(config),
        SqlDatabase(config),
        SqlUser(config),
        MediaBucket(config),
        SourcesBucket(config),
        Registry(config),
        IamBuild(config),
        image,
        iam_runtime,
        db_init,
        migrate,
        Service(config, image=image.image),
        Invoker(config),
        ManageJob(config),
    ]
    if config.domains:  # none: no step, no call (see docs/configuration.md, custom domains)
        steps.append(DomainMappings(config))
    # without [ci], what an earlier [ci] left is deleted (with it: iam-deployer, below)
    if config.ci is None:
        steps.append(RetiredCi(config))
    # a feature gone from the config: its retiring step deletes what it left (steps/retired.py)
    worker: Step = Worker(config, image=image.image) if config.worker else RetiredWorker(config)
    steps.append(worker)
    cron_jobs = [CronJob(config, image=image.image, entry=e) for e in config.cron]
    if config.redis_broker:  # [worker] broker = "redis": the Memorystore instance (docs/worker.md)
        steps += [RedisInstance(config), RedisUrl(config)]
    else:  # once every container that had its URL has moved off it
        users = [s for s in steps if isinstance(s, (DbInitJob, MigrateJob, Service, ManageJob))]
        needs = ("apis", *(s.name for s in [*users, worker, *cron_jobs]))
        steps.append(RetiredRedis(config, needs=needs))
    if config.monitoring.enabled:
        steps += [AlertChannel(config), UptimeCheck(config), AlertPolicy(config)]
    else:
        steps.append(RetiredMonitoring(config))
    if not cron_jobs:
        steps.append(RetiredCron(config))
    else:
        after_jobs = tuple(j.name for j in cron_jobs)
        steps += [
            *cron_jobs,
            IamScheduler(config, needs=("service-accounts", *after_jobs)),
            CronSchedules(config, needs=("iam-scheduler", *after_jobs)),
        ]
    # [ci]: the deployer account's roles; a feature's role is revoked once its retiring step,
    # which uses it when up runs on push, is done (the trigger, below, needs only the account)
    if config.ci is not None:
        retiring = (RetiredWorker, RetiredRedis, RetiredMonitoring, RetiredCron)
        after = tuple(s.name for s in steps if isinstance(s, retiring))
        steps.append(IamDeployer(config, needs=("service-accounts", *after)))
    # last: a rotation finishes once everything reading the secrets has moved (docs/rotate.md)
    readers = [s for s in steps if isinstance(s, (DbInitJob, MigrateJob, CronJob))]
    workers = [s for s in steps if isinstance(s, Worker)]
    steps.append(
        Rotation(
            config,
            jobs=tuple(j.job_id for j in readers),
            worker_pools=tuple(w.pool for w in workers),
            needs=("sql-user", "service", *(s.name for s in [*readers, *workers])),
        )
    )
    # deploy on push (steps/ci.py): up makes the trigger right after its account (an unconnected
    # repository fails in the first seconds); destroy deletes it before every other step
    if config.ci is not None:
        steps.append(CiTrigger(config, deleted_before=tuple(s.name for s in steps)))
    return steps
