"""Placeholder: replaced by the cloudbuild API module."""

from deployer.emulator.routing import Router

router = Router()
