"""Custom domains end to end through the CLI against the emulator: plan shows the domains step,
up maps each domain to the service (labelled), status shows the DNS records to create and the
certificate's state, destroy removes the mappings; an unverified domain ends up in one line with
the fix; a region without domain mappings makes no call and names the load balancer route."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from deployer.cli import app
from deployer.emulator.testing import EmulatorHandle
from tests.contract import check_transcript
from tests.test_scenarios import GOLDEN, PROJECT, TENANT, assert_golden, normalise

pytestmark = pytest.mark.slow  # CLI scenarios: each runs whole deployments

DOMAINS_PATH = "/apis/domains.cloudrun.com/v1/"


def djdeploy(
    emulator: EmulatorHandle, *args: str, domains: str, region: str = "europe-west1"
) -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        ["--endpoint", emulator.url, "--time-scale", "0.001", *args],
        env={
            "GOOGLE_CLOUD_PROJECT": PROJECT,
            "DJDEPLOY_TENANT": TENANT,
            "DJDEPLOY_DOMAINS": domains,
            "DJDEPLOY_REGION": region,
        },
        catch_exceptions=False,
    )
    return result.exit_code, result.output


def mappings(emulator: EmulatorHandle) -> dict[str, Any]:
    api = emulator.discovery("run", "v1").namespaces().domainmappings()
    items = api.list(parent=f"namespaces/{PROJECT}").execute().get("items", [])
    return {m["metadata"]["name"]: m for m in items}


def test_plan_up_status_destroy(emulator: EmulatorHandle) -> None:
    domains = "www.example.com,example.com"
    code, output = djdeploy(emulator, "plan", "--tenant", TENANT, domains=domains)
    assert code == 2 and "domains" in output, output

    code, output = djdeploy(emulator, "up", "--tenant", TENANT, domains=domains)
    assert code == 0, output
    found = mappings(emulator)
    assert sorted(found) == ["example.com", "www.example.com"]
    www = found["www.example.com"]
    assert www["spec"]["routeName"] == f"{TENANT}-django"
    assert www["metadata"]["labels"]["djdeploy-tenant"] == TENANT

    code, output = djdeploy(emulator, "status", "--tenant", TENANT, domains=domains)
    assert code == 0, output
    assert "dns www.example.com: CNAME www ghs.googlehosted.com." in output, output
    assert "dns example.com: A @ 216.239.32.21" in output, output
    assert "certificate www.example.com:" in output, output
    code, output = djdeploy(emulator, "status", "--tenant", TENANT, "--json", domains=domains)
    info = {s["step"]: s for s in json.loads(output)["steps"]}["domains"]["info"]
    assert info["dns www.example.com"] == "CNAME www ghs.googlehosted.com."

    # a domain removed from the config is unmapped; destroy removes the rest
    code, output = djdeploy(emulator, "up", "--tenant", TENANT, domains="www.example.com")
    assert code == 0, output
    assert sorted(mappings(emulator)) == ["www.example.com"]
    code, output = djdeploy(emulator, "destroy", "--tenant", TENANT, domains="www.example.com")
    assert code == 0, output
    assert mappings(emulator) == {}
    assert check_transcript(emulator.emu.transcript.entries()) == []


def test_an_unverified_domain_fails_in_one_line_with_the_fix(emulator: EmulatorHandle) -> None:
    code, output = djdeploy(emulator, "up", "--tenant", TENANT, domains="www.unverified.example")
    assert code == 1, output
    assert "Traceback" not in output
    [line] = [ln for ln in output.splitlines() if ln.startswith("failed domains:")]
    assert "www.unverified.example is not verified" in line, output
    assert "Google Search Console" in line
    code, output = djdeploy(
        emulator, "status", "--tenant", TENANT, domains="www.unverified.example"
    )
    assert "Search Console" in output, output


def test_a_region_without_domain_mappings_names_the_load_balancer_route(
    emulator: EmulatorHandle,
) -> None:
    code, output = djdeploy(
        emulator, "up", "--tenant", TENANT, domains="www.example.com", region="europe-west2"
    )
    assert code == 0, output
    assert "offers no Cloud Run domain mappings" in output, output
    assert "serverless NEG" in output
    paths = [e["path"] for e in emulator.emu.transcript.entries()]
    assert not any(p.startswith(DOMAINS_PATH) for p in paths)


@pytest.mark.parametrize("scenario", ["up-domains", "destroy-domains"])
def test_golden_transcripts(emulator: EmulatorHandle, scenario: str) -> None:
    """Only the domain mappings' traffic: the rest is the other goldens' (no domains there)."""
    domains = "www.example.com"
    assert djdeploy(emulator, "up", "--tenant", TENANT, domains=domains)[0] == 0
    if scenario == "destroy-domains":
        emulator.control.clear_transcript()
        assert djdeploy(emulator, "destroy", "--tenant", TENANT, domains=domains)[0] == 0
    entries = [e for e in emulator.control.transcript() if e["path"].startswith(DOMAINS_PATH)]
    assert_golden(GOLDEN / f"{scenario}.json", normalise(entries))
