"""Placeholder: replaced by the sqladmin API module."""

from deployer.emulator.routing import Router

router = Router()
