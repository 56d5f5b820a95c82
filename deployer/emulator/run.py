"""Placeholder: replaced by the run API module."""

from deployer.emulator.routing import Router

router = Router()
