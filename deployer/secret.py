"""Secret values: nothing prints them by accident."""

from __future__ import annotations

import hmac


class Secret:
    """A secret value. Its str/repr is *** so nothing prints it by accident; `.reveal()` is
    the one deliberate way to read it (only the gcp layer, when sending the payload)."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __str__(self) -> str:
        return "***"

    __repr__ = __str__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and hmac.compare_digest(
            other._value.encode(), self._value.encode()
        )

    __hash__ = None  # type: ignore[assignment]  # a secret is no dictionary key
