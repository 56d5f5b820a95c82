"""Credentials checked once, before the first API call: a user without a login (or with an
expired one) reads one line naming the command that fixes it, not a traceback from the
middle of a run."""

from __future__ import annotations

import os

from deployer.errors import CredentialsError, Unreachable
from deployer.gcp.clients import ClientFactory

LOGIN = "gcloud auth application-default login"
KEY_VAR = "GOOGLE_APPLICATION_CREDENTIALS"


def _reason(exc: BaseException) -> str:
    """google-auth's own first line, without the payload it may append."""
    first = exc.args[0] if exc.args else exc
    return str(first).strip().rstrip(".")


def _fix() -> str:
    key = os.environ.get(KEY_VAR)
    if key:
        return f"check the key file {KEY_VAR} names ({key}), or unset it and run `{LOGIN}`"
    return f"run `{LOGIN}` (or set {KEY_VAR} to a service account key file)"


def refused(exc: BaseException) -> CredentialsError:
    """A RefreshError (expired or revoked login), as the error the user reads; also what
    gcp/errors.py makes of one raised mid-run."""
    return CredentialsError(f"Google refused your credentials ({_reason(exc)}): {_fix()}")


def ready(clients: ClientFactory) -> None:
    """Find the Application Default Credentials and fetch their first access token now (the
    first call would; the token is kept and reused), so a missing, unreadable, expired or
    revoked login is one CredentialsError saying how to log in."""
    clients.imports.wait("storage")  # google.auth's requests transport: imported there
    from google.auth import exceptions
    from google.auth.transport.requests import Request

    try:
        credentials = clients.credentials
    except exceptions.DefaultCredentialsError as exc:
        # google-auth's "not found" is a paragraph with a link; a named key file's problem
        # (not found, not a key) is worth its own words
        why = f" ({_reason(exc)})" if os.environ.get(KEY_VAR) else ""
        raise CredentialsError(
            f"no usable Google credentials{why}: {_fix()}; "
            "to try djdeploy without Google, add --emulator"
        ) from None
    try:
        credentials.refresh(Request())
    except exceptions.RefreshError as exc:
        raise refused(exc) from None
    except exceptions.TransportError:
        raise Unreachable(
            "cannot reach Google to sign in (no answer from its token endpoint): check the "
            "network connection, or add --emulator to work offline"
        ) from None
