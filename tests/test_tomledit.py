"""[tool.djdeploy] cut from a pyproject.toml's text: every other byte kept, the rest reads as the
same data, and a document the cut cannot follow comes back unchanged."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from deployer.tomledit import without_table

TABLE = ("tool", "djdeploy")


def _minus_djdeploy(text: str) -> dict[str, Any]:
    data = tomllib.loads(text)
    tool = data.get("tool", {})
    tool.pop("djdeploy", None)
    if "tool" in data and not tool:
        del data["tool"]
    return data


CUTS = {
    "tables, subtables, comments, a table after": (
        """\
[project]
name = "mysite"
dependencies = ["django>=5"]

# where and how djdeploy deploys it
[tool.djdeploy]
tenant = "acme"  # the shop
source = "."

[tool.djdeploy.service]
memory = "1Gi"
# a comment at the end of the table

# ruff's settings
[tool.ruff]
line-length = 100
""",
        """\
[project]
name = "mysite"
dependencies = ["django>=5"]

# ruff's settings
[tool.ruff]
line-length = 100
""",
    ),
    "arrays of tables, multi-line arrays, a header-like string": (
        """\
[tool.djdeploy]
source = "."

[[tool.djdeploy.cron]]
name = "nightly"
schedule = "0 3 * * *"
command = [
  "clearsessions",
  # a comment in an array
  "[tool.ruff]",
]

[[tool.djdeploy.cron]]
name = "[not.a.header]"
schedule = "*/5 * * * *"
command = ["send_queued_mail"]

[tool.pytest.ini_options]
markers = [
  ["slow", "takes long"],
]
""",
        """\
[tool.pytest.ini_options]
markers = [
  ["slow", "takes long"],
]
""",
    ),
    "multi-line strings that hold table headers": (
        """\
[project]
name = "mysite"
description = \"\"\"
[tool.djdeploy]
tenant = "not this one\\\"\"\"\"
readme = '''
[[tool.djdeploy.cron]]
'''
dependencies = ["django"]

[tool.djdeploy]
tenant = \"\"\"acme
\"\"\"
""",
        """\
[project]
name = "mysite"
description = \"\"\"
[tool.djdeploy]
tenant = "not this one\\\"\"\"\"
readme = '''
[[tool.djdeploy.cron]]
'''
dependencies = ["django"]
""",
    ),
    "dotted keys at the root": (
        """\
tool.djdeploy.project = "acme-prod"
tool.ruff.line-length = 100

[project]
name = "mysite"
""",
        """\
tool.ruff.line-length = 100

[project]
name = "mysite"
""",
    ),
    "dotted keys under [tool], a multi-line value": (
        """\
[tool]
djdeploy.tenant = "acme"
djdeploy.cron = [
  { name = "a", schedule = "0 3 * * *", command = ["x"] },
]
black.line-length = 100
""",
        "[tool]\nblack.line-length = 100\n",
    ),
    "an inline table under [tool], names that only start alike": (
        """\
[project]
name = "mysite"

[tool]
# the deployment
djdeploy = { tenant = "acme", service = { memory = "1Gi", cpu = "1" } }
other = { djdeploy = true }

[tool.djdeploy-extra]
kept = 1

[tool.djdeployment]
kept = 2
""",
        """\
[project]
name = "mysite"

[tool]
other = { djdeploy = true }

[tool.djdeploy-extra]
kept = 1

[tool.djdeployment]
kept = 2
""",
    ),
    "quoted and spaced headers, CRLF line ends, the table at the end": (
        '[project]\r\nname = "mysite"\r\n\r\n[ tool . "djdeploy" ]\r\ntenant = "acme"\r\n'
        '\r\n[tool.\'djdeploy\'."service"]\r\nmemory = "1Gi"\r\n\r\n',
        '[project]\r\nname = "mysite"\r\n',
    ),
    "nothing but the table": ('[tool.djdeploy]\ntenant = "acme"\n', ""),
}


@pytest.mark.parametrize(("text", "expected"), CUTS.values(), ids=list(CUTS))
def test_the_table_is_cut_and_the_rest_is_the_same(text: str, expected: str) -> None:
    assert tomllib.loads(text)["tool"]["djdeploy"]  # there is something to cut
    cut = without_table(text, TABLE)
    assert cut == expected
    assert tomllib.loads(cut) == _minus_djdeploy(text)


UNCHANGED = {
    "no such table": '[project]\nname = "djdeploy"\n[tool.ruff]\nline-length = 100\n',
    "not TOML": "[tool.djdeploy\ntenant = 1\n",
    # the table is a value of a kept key: no line of its own to cut
    "inside an inline table": 'tool = { djdeploy = { tenant = "acme" }, ruff = {} }\n',
}


@pytest.mark.parametrize("text", UNCHANGED.values(), ids=list(UNCHANGED))
def test_what_cannot_be_cut_exactly_is_left_as_it_is(text: str) -> None:
    assert without_table(text, TABLE) == text
