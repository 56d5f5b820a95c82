"""Middleware the runtime adds in front of the project's own.

RequestContextMiddleware (first): answers the health checks without touching the project's URLs,
ALLOWED_HOSTS or the HTTPS redirect (Cloud Run probes come over plain HTTP with the instance's
address as Host), and binds the request's trace to the log records written while handling it:
from request_started to request_finished, so Django's own "Not Found"/"Internal Server Error"
records, written after the middleware chain returns, carry it too.

MediaMiddleware (after whitenoise): serves MEDIA_URL from MEDIA_ROOT (the GCS FUSE mount) when
the default storage is the local file system, since nothing else would on Cloud Run. Uploads are
untrusted and served from the site's own origin, so every media response carries
``Content-Security-Policy: sandbox`` and ``X-Content-Type-Options: nosniff``, and anything but a
raster image is sent as an attachment (an uploaded .html or .svg must not run as the site).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from urllib.parse import urlparse

from django.conf import settings
from django.core.exceptions import MiddlewareNotUsed
from django.core.signals import request_finished, request_started
from django.db import connections
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.static import serve

from djdeploy_runtime.dbwait import first_line
from djdeploy_runtime.jsonlog import TRACE_HEADER, current_trace, parse_trace_header

logger = logging.getLogger("djdeploy.health")


def health_paths(path: str) -> tuple[frozenset[str], frozenset[str]]:
    """(liveness, readiness) paths for HEALTH_PATH, with or without the trailing slash."""
    base = "/" + path.strip("/")
    return frozenset({base, base + "/"}), frozenset({base + "/ready", base + "/ready/"})


# Media types a browser only ever displays as a picture; everything else (html, svg, xml, js,
# pdf, unknown) is sent as an attachment.
INLINE_MEDIA_TYPES = frozenset(
    {"image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp"}
)


def database_ready() -> tuple[bool, str]:
    """Open (or reuse) the default connection and run SELECT 1."""
    try:
        connection = connections["default"]
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:
        return False, f"{type(exc).__name__}: {first_line(exc)}"
    return True, "ok"


def bind_trace(sender: object, environ: dict[str, str] | None = None, **kwargs: object) -> None:
    current_trace.set(parse_trace_header((environ or {}).get(TRACE_HEADER)))


def unbind_trace(sender: object, **kwargs: object) -> None:
    current_trace.set(None)


class RequestContextMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.liveness, self.readiness = health_paths(os.environ.get("HEALTH_PATH") or "/health/")
        request_started.connect(bind_trace, dispatch_uid="djdeploy_bind_trace")
        request_finished.connect(unbind_trace, dispatch_uid="djdeploy_unbind_trace")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        path = request.path_info
        if path in self.liveness or path in self.readiness:
            ready = path in self.readiness or request.GET.get("ready", "") not in ("", "0")
            return self.health(ready)
        return self.get_response(request)

    @staticmethod
    def health(ready: bool) -> HttpResponse:
        if not ready:  # liveness: the process answers; no database, no I/O
            return JsonResponse({"status": "ok"})
        ok, detail = database_ready()
        if not ok:
            logger.error("readiness check failed: database unavailable: %s", detail)
            return JsonResponse({"status": "unavailable", "database": "error"}, status=503)
        return JsonResponse({"status": "ok", "database": "ok"})


class MediaMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        backend = settings.STORAGES.get("default", {}).get("BACKEND", "")
        url = urlparse(settings.MEDIA_URL or "")
        prefix = url.path if not url.netloc else ""
        if backend != "django.core.files.storage.FileSystemStorage" or prefix in ("", "/"):
            raise MiddlewareNotUsed
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method in ("GET", "HEAD") and request.path_info.startswith(self.prefix):
            try:
                response = serve(
                    request,
                    request.path_info[len(self.prefix) :],
                    document_root=settings.MEDIA_ROOT,
                )
            except Http404:
                pass  # not a stored file: let the project answer
            else:
                return self.harden(response)
        return self.get_response(request)

    @staticmethod
    def harden(response: HttpResponse) -> HttpResponse:
        response["Content-Security-Policy"] = "sandbox"
        response["X-Content-Type-Options"] = "nosniff"
        media_type = response.get("Content-Type", "").split(";")[0].strip().lower()
        if media_type not in INLINE_MEDIA_TYPES:
            # FileResponse says 'inline; filename="x.html"': keep the name, never inline.
            disposition = response.get("Content-Disposition", "")
            _, _, params = disposition.partition(";")
            response["Content-Disposition"] = "attachment" + (f";{params}" if params else "")
        return response
