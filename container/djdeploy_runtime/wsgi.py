"""The WSGI application gunicorn serves: Django configured with the runtime settings."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "djdeploy_runtime.settings")

application = get_wsgi_application()
