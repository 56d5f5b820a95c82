"""Placeholder: replaced by the storage API module."""

from deployer.emulator.routing import Router

router = Router()
