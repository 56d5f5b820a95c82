"""What the steps say about a labelled resource found under one of our names (``Names.owns``
decides whose it is): refused when a step would change it, kept when one would delete it."""

from __future__ import annotations


def not_ours_message(what: str) -> str:
    """Why ``what`` ("secret x", "Memorystore for Redis instance y") is refused: it is not ours."""
    return (
        f"{what} exists but was not created by djdeploy for this tenant (no "
        "managed-by=djdeploy / djdeploy-tenant labels): delete it or choose another tenant or "
        "app name"
    )


def not_managed(what: str) -> str:
    """The one-line reason beside a refusal of ``what``."""
    return f"{what} is not managed by djdeploy"


def kept(what: str) -> str:
    """Why a delete leaves ``what`` in place."""
    return f"kept: {not_managed(what)}"
