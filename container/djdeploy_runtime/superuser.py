"""Create the superuser named by DJANGO_SUPERUSER_* if it does not exist; never touch it if it does.

Run by the migrate command only (never at serve). The password is set once, at creation: a
second run, even with another DJANGO_SUPERUSER_PASSWORD, leaves the existing user alone.
"""

from __future__ import annotations

import os
import sys


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
        log.info("superuser %r exists: left unchanged", login)
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


if __name__ == "__main__":
    sys.exit(main())
