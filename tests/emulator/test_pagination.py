"""The one paginator: defaults, clamping, tokens, and 400 (never 500) for junk."""

import pytest

from deployer.emulator.errors import ApiError
from deployer.emulator.pagination import Paging, page

ITEMS = [{"n": i} for i in range(5)]
PAGING = Paging(default_size=2, max_size=3)


def test_pages_walk_every_item_once_with_the_default_size() -> None:
    first = page(ITEMS, PAGING, key="xs", size=None, token=None)
    second = page(ITEMS, PAGING, key="xs", size="", token=first["nextPageToken"])
    third = page(ITEMS, PAGING, key="xs", size=None, token=second["nextPageToken"])
    assert [x["n"] for p in (first, second, third) for x in p["xs"]] == [0, 1, 2, 3, 4]
    assert "nextPageToken" not in third


def test_a_size_above_the_maximum_is_clamped() -> None:
    assert len(page(ITEMS, PAGING, key="xs", size="100", token=None)["xs"]) == 3


def test_an_empty_page_has_no_items_key_but_keeps_kind_and_total() -> None:
    paging = Paging(default_size=2, max_size=3, total_size=True)
    assert page([], paging, key="xs", size=None, token=None, kind="k#list") == {
        "kind": "k#list",
        "totalSize": 0,
    }


@pytest.mark.parametrize(("size", "token"), [("abc", None), (None, "x"), ("-1", None)])
def test_junk_is_a_400_worded_by_the_api(size: str | None, token: str | None) -> None:
    paging = Paging(default_size=2, max_size=3, error=lambda m: ApiError(400, f"API: {m}"))
    with pytest.raises(ApiError) as exc:
        page(ITEMS, paging, key="xs", size=size, token=token)
    assert exc.value.code == 400 and exc.value.message.startswith("API: ")
