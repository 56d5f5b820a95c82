"""Cloud Scheduler's routes: parse the request, call the backend, render its answer."""

from __future__ import annotations

from typing import Any

from ..pagination import Paging, paginate
from ..routing import Request, Router
from .jobs import Jobs

router = Router()
_PAGING = Paging(default_size=500, max_size=500)
_BASE = "/v1/projects/{project}/locations/{location}/jobs"
_JOB = _BASE + "/{job}"


def _name(jobs: Jobs, project: str, location: str, job: str) -> str:
    return f"{jobs.parent(project, location)}/jobs/{job}"


@router.route("POST", _BASE)
def create(req: Request, project: str, location: str) -> dict[str, Any]:
    jobs = Jobs(req.emu)
    return jobs.create(jobs.parent(project, location), req.json())


@router.route("GET", _BASE)
def list_(req: Request, project: str, location: str) -> dict[str, Any]:
    jobs = Jobs(req.emu)
    return paginate(req, jobs.in_location(jobs.parent(project, location)), _PAGING, key="jobs")


@router.route("GET", _JOB)
def get(req: Request, project: str, location: str, job: str) -> dict[str, Any]:
    jobs = Jobs(req.emu)
    return jobs.get(_name(jobs, project, location, job))


@router.route("PATCH", _JOB)
def patch(req: Request, project: str, location: str, job: str) -> dict[str, Any]:
    jobs = Jobs(req.emu)
    fields = [f for f in (req.arg("updateMask") or "").split(",") if f]
    return jobs.patch(_name(jobs, project, location, job), req.json(), fields)


@router.route("DELETE", _JOB)
def delete(req: Request, project: str, location: str, job: str) -> dict[str, Any]:
    jobs = Jobs(req.emu)
    jobs.delete(_name(jobs, project, location, job))
    return {}


@router.route("POST", _JOB + ":pause")
def pause(req: Request, project: str, location: str, job: str) -> dict[str, Any]:
    jobs = Jobs(req.emu)
    return jobs.set_state(_name(jobs, project, location, job), "PAUSED")


@router.route("POST", _JOB + ":resume")
def resume(req: Request, project: str, location: str, job: str) -> dict[str, Any]:
    jobs = Jobs(req.emu)
    return jobs.set_state(_name(jobs, project, location, job), "ENABLED")


@router.route("POST", _JOB + ":run")
def run(req: Request, project: str, location: str, job: str) -> dict[str, Any]:
    jobs = Jobs(req.emu)
    return jobs.run(_name(jobs, project, location, job))
