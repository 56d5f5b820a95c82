"""docs/emulator-coverage.md is generated from the route table; a stale page fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deployer.emulator import coverage
from deployer.emulator.routing import Router, RouteTable

PAGE = Path(__file__).resolve().parents[2] / "docs" / "emulator-coverage.md"


def test_the_committed_page_is_current() -> None:
    if not PAGE.exists() or PAGE.read_text() != coverage.current():
        pytest.fail(f"docs/emulator-coverage.md is stale: regenerate it with `{coverage.COMMAND}`")


def _page(*routes: tuple[str, str]) -> str:
    router = Router()
    for method, template in routes:
        router.route(method, template)(lambda req: None)
    return coverage.render(RouteTable([router]))


def _row(page: str, method_id: str) -> str:
    return next(line for line in page.splitlines() if line.startswith(f"| `{method_id}` |"))


def test_a_route_serves_the_method_whose_template_it_fills_in_its_own_api() -> None:
    page = _page(
        ("GET", "/v1/projects/{project}/secrets/{secret}"),
        ("POST", "/v1/projects/{project}/locations/{location}/operations/{op}:wait"),
    )
    assert "`/v1/projects/{project}/secrets/{secret}`" in _row(
        page, "secretmanager.projects.secrets.get"
    )
    # `v1/{+name}` methods of other APIs fill the same path, but the URL is Secret Manager's
    assert _row(page, "sql.Backups.GetBackup").endswith("| no |  |")
    assert _row(page, "secretmanager.projects.secrets.delete").endswith("| no |  |")
    # a route no discovery method describes is listed apart
    outside = page.split("## Routes outside the discovery documents")[1]
    assert "- `POST /v1/projects/{project}/locations/{location}/operations/{op}:wait`" in outside
    assert re.search(
        r"^\| \[secretmanager\]\(#secretmanager-v1\) \| v1 \| \d+ \| 1 \|$", page, re.M
    )


def test_every_note_names_a_real_method() -> None:
    ids = {m["id"] for api, version in coverage.APIS for m in coverage.methods(api, version)}
    assert set(coverage.NOTES) <= ids
