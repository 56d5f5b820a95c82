"""Create the superuser named by DJANGO_SUPERUSER_* if it does not exist.

Run by the migrate command only (never at serve). The password is set at creation; a second
run, even with another DJANGO_SUPERUSER_PASSWORD, leaves the existing user alone, with one
exception: after a rotation of the password secret (docs/rotate.md), the deployer also sets
DJANGO_SUPERUSER_PASSWORD_PREVIOUS (the version before it), and a user whose password still
checks against that one (nobody changed it by hand) gets the new one. A password a human set
is never overwritten.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def main() -> int:
    import django

    from djdeploy_runtime.jsonlog import get_logger

    log = get_logger("djdeploy.superuser")
    username = os.environ.get("DJANGO_SUPERUSER_USERNAME", "").strip()
    email = os.environ.get("DJANGO_SUPERUSER_EMAIL", "").strip()
    password = os.environ.get("DJANGO_SUPERUSER_PASSWORD", "")
    if not username:
        log.info("DJANGO_SUPERUSER_USERNAME is not set: no superuser requested")
        return 0
    if not password:
        log.error("DJANGO_SUPERUSER_PASSWORD is not set: superuser %r not created", username)
        return 1

    django.setup()
    from django.apps import apps

    if not apps.is_installed("django.contrib.auth"):
        log.warning(
            "django.contrib.auth is not in INSTALLED_APPS: superuser %r not created", username
        )
        return 0
    from django.contrib.auth import get_user_model
    from django.core.management import CommandError, call_command

    user_model = get_user_model()
    field = user_model.USERNAME_FIELD
    # createsuperuser --noinput reads DJANGO_SUPERUSER_<FIELD>; for a model whose USERNAME_FIELD
    # is the email, the login is DJANGO_SUPERUSER_EMAIL.
    login = email if field == "email" else username
    if user_model._default_manager.filter(**{field: login}).exists():
        previous = os.environ.get("DJANGO_SUPERUSER_PASSWORD_PREVIOUS", "")
        log.info("%s", _follow_rotation(user_model, field, login, password, previous))
        return 0
    os.environ.setdefault(f"DJANGO_SUPERUSER_{field.upper()}", login)
    try:
        call_command("createsuperuser", interactive=False, verbosity=0)
    except CommandError as exc:
        if user_model._default_manager.filter(**{field: login}).exists():
            log.info("superuser %r exists (created concurrently): left unchanged", login)
            return 0
        log.error("superuser %r not created: %s", login, exc)
        return 1
    log.info("superuser %r created", login)
    return 0


def _follow_rotation(user_model: Any, field: str, login: str, password: str, previous: str) -> str:
    """Give the existing user ``password`` if its password is still ``previous`` (the generated
    one before the rotation); the line to log (never a value)."""
    from django.db import transaction

    if not previous or previous == password:
        return f"superuser {login!r} exists: left unchanged"
    with transaction.atomic():  # the row locked: a concurrent change by hand is not overwritten
        user = user_model._default_manager.select_for_update().get(**{field: login})
        if not user.check_password(previous):
            if user.check_password(password):  # moved by an earlier run
                return f"superuser {login!r} exists: left unchanged"
            return (
                f"superuser {login!r} exists and its password is not the previous generated "
                "one (changed by hand): left unchanged"
            )
        user.set_password(password)
        user.save(update_fields=["password"])
    return f"superuser {login!r}: password set from the rotated secret (it was the previous one)"


if __name__ == "__main__":
    sys.exit(main())
