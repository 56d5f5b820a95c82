"""Cloud Logging v2: log entries.

    POST /v2/entries:write     entries, with a default logName, resource and labels
    POST /v2/entries:list      resourceNames, filter, orderBy, pageSize, pageToken

Behaviour copied from Google's reference: the API must be enabled (on by default in every
project); a written entry needs a logName ``projects/P/logs/ID`` and a resource (its own or the
request's default), gets a ``timestamp`` (when it has none), ``receiveTimestamp`` and
``insertId``; a list needs ``resourceNames`` (``projects/P``), orders by ``timestamp asc``
(or ``desc``), pages 50 entries by default and 1000 at most. ``entries.tail`` is a streaming
gRPC method and is not served over REST: clients poll ``entries.list``.

The filter subset (:mod:`.filters`): terms joined by ``AND`` (or a space) over ``resource.type``,
``resource.labels.K``, ``labels.K`` / ``labels."K"``, ``logName``, ``insertId``, ``severity``
(by level) and ``timestamp`` (by time) with ``= != > >= < <=``. Any other term is a 400 naming
it.

Backend (no HTTP): :mod:`.entries` stores and lists; :mod:`.simulated` writes what Cloud Run
and Cloud Build would have printed when an execution, revision or build completes (the run and
cloudbuild backends call it). :mod:`.handlers` parses, calls them and renders.
"""

from .handlers import router

__all__ = ["router"]
