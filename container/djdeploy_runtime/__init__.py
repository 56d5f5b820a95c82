"""djdeploy's container runtime: adapts any standard Django project to Cloud Run.

Importing this package must stay cheap and must not import Django: the entrypoint runs its
helpers (``python -m djdeploy_runtime.discover`` etc.) before Django is configured.
"""
