"""Placeholder: replaced by the iam API module."""

from deployer.emulator.routing import Router

router = Router()
