"""Cloud Monitoring v3: uptime checks, alert policies, notification channels.

    POST   /v3/projects/{p}/uptimeCheckConfigs               create (server-assigned id)
    GET    /v3/projects/{p}/uptimeCheckConfigs[?pageSize&pageToken]
    GET    /v3/projects/{p}/uptimeCheckConfigs/{id}
    PATCH  /v3/projects/{p}/uptimeCheckConfigs/{id}?updateMask=
    DELETE /v3/projects/{p}/uptimeCheckConfigs/{id}
    (the same five for alertPolicies and notificationChannels; DELETE of a channel takes force)
    GET    /v3/projects/{p}/timeSeries?filter&interval.startTime&interval.endTime&view
           [&pageSize&pageToken]     the uptime checks' check_passed and request_latency
    GET    /v3/projects/{p}/alerts[?filter&pageSize&pageToken]       incidents of alert policies
    GET    /v3/projects/{p}/alerts/{id}

Behaviour copied from Google's reference: the API must be enabled (403 SERVICE_DISABLED); ids
are assigned by the server (an uptime check's from its display name plus a random suffix, alert
policies' and channels' numbers); an uptime check needs a displayName, a timeout of 1-60 s and
an httpCheck or tcpCheck, its period is one of 60s/300s/600s/900s (default 60s), and a patch may
set only displayName, httpCheck, tcpCheck, timeout, contentMatchers and selectedRegions; an
uptime check an alert policy's filter names (``metric.label.check_id="<id>"``) cannot be deleted;
an alert policy needs a displayName and 1-6 conditions, a threshold condition a filter, a
comparison and a duration that is a whole number of minutes, its notificationChannels must exist,
its conditions get names; an email channel needs ``labels.email_address``; a channel named by a
policy is deleted only with ``force``, which removes it from those policies; userLabels follow
the label rules (64 entries, lowercase keys and values). An empty updateMask replaces the whole
resource (name and server fields kept).

With local execution on, uptime checks run (:mod:`.uptime`): each period a real request through
the front door, its result as the points of ``uptime_check/check_passed`` and
``uptime_check/request_latency`` per checker location, which ``timeSeries.list`` serves (a
filter of ``metric.type``, ``resource.type`` and label equalities joined by AND; raw points,
newest first; no aggregation), and the alert policies on them open and close incidents,
which ``alerts.list`` and ``alerts.get`` serve.

Backend (no HTTP): :mod:`.resources`, :mod:`.uptime`. :mod:`.handlers` parses, calls them and
renders.
"""

from .handlers import router
from .uptime import realize

__all__ = ["realize", "router"]
