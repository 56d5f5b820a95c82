"""`python -m deployer` runs the CLI."""

from deployer.cli import app

app(prog_name="djdeploy")
