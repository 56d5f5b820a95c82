"""Placeholder: replaced by the secretmanager API module."""

from deployer.emulator.routing import Router

router = Router()
