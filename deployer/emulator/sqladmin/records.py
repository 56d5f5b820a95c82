"""Cloud SQL's stored documents: their kinds, keys and shapes (state only)."""

from __future__ import annotations

from typing import Any

SERVICE = "sqladmin.googleapis.com"
BASE = "https://sqladmin.googleapis.com/v1"
INSTANCE_KIND = "sql.instance"
DELETED_KIND = "sql.instance.deleted"
DATABASE_KIND = "sql.database"
USER_KIND = "sql.user"
BACKUP_KIND = "sql.backup"
RETAINED_KIND = "sql.backup.retained"  # backups kept after delete (retainBackupsOnDelete)


def instance_key(project_id: str, instance: str) -> str:
    return f"{project_id}/{instance}"


def child_key(project_id: str, instance: str, name: str) -> str:
    """The store key of a database, user or backup run of the instance."""
    return f"{project_id}/{instance}/{name}"


def child_of(args: dict[str, Any]) -> str:
    """The store key of the database or user an operation's ``args`` name."""
    return child_key(args["project"], args["instance"], args["name"])


def children(project_id: str, instance: str) -> str:
    """The key prefix of the instance's databases, users and backup runs."""
    return f"{project_id}/{instance}/"


def database(project_id: str, instance: str, name: str) -> dict[str, Any]:
    return {
        "kind": "sql#database",
        "charset": "UTF8",
        "collation": "en_US.UTF8",
        "name": name,
        "instance": instance,
        "selfLink": f"{BASE}/projects/{project_id}/instances/{instance}/databases/{name}",
        "project": project_id,
    }


def user(project_id: str, instance: str, name: str, utype: str = "BUILT_IN") -> dict[str, Any]:
    return {
        "kind": "sql#user",
        "name": name,
        "host": "",
        "instance": instance,
        "project": project_id,
        "type": utype,
    }
