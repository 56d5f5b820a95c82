"""Placeholder: replaced by the artifactregistry API module."""

from deployer.emulator.routing import Router

router = Router()
