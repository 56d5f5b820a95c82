"""Google's storage-testbench retry-test API, so the client libraries' cross-language retry
conformance tests run against this emulator.

    POST   /retry_test        {"instructions": {"storage.objects.get": ["return-503", ...]},
                               "transport": "HTTP"}  -> the retry test (with its "id")
    GET    /retry_test/{id}   {"id", "instructions", "completed", "transport"}
    GET    /retry_tests       {"retry_test": [...]}
    DELETE /retry_test/{id}

A request carrying ``x-retry-test-id: {id}`` to a storage method with instructions left uses
the first one:

- ``return-NNN``: answer that HTTP error instead of handling the request;
- ``return-reset-connection``: close the connection without answering, the request not
  applied (the emulator's ``drop`` fault applies it first: a lost response, not a reset);
- ``return-broken-stream``: handle the request, send the head and 4 bytes of the body, then
  close the connection; ``return-broken-stream-after-NK``: after N KiB.

``completed`` turns true once every instruction is used. Instructions are the testbench's
wording; ones this emulator cannot act on (stalls, upload-offset faults, redirections) and
methods it does not serve are refused (400) when the test is created. Retry tests live in the
store next to the fault rules (``deployer.emulator.faults``): those match any request by path,
these only requests that name their test.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import ApiError
from ..routing import Request, Response, Router

if TYPE_CHECKING:
    from ..context import Emulator

KIND = "_retry_test"
HEADER = "x-retry-test-id"

#: the storage methods the emulator serves, by discovery id (the handlers check theirs is here)
METHODS = frozenset(
    {
        "storage.buckets.insert",
        "storage.buckets.list",
        "storage.buckets.get",
        "storage.buckets.patch",
        "storage.buckets.delete",
        "storage.buckets.getIamPolicy",
        "storage.buckets.setIamPolicy",
        "storage.bucket_acl.list",
        "storage.default_object_acl.list",
        "storage.objects.insert",
        "storage.objects.list",
        "storage.objects.get",
        "storage.objects.patch",
        "storage.objects.delete",
        "storage.object_acl.list",
    }
)

_ERROR = re.compile(r"^return-([0-9]{3})$")
_BROKEN = re.compile(r"^return-broken-stream(?:-after-([0-9]+)K)?$")
_RESET = "return-reset-connection"
#: bytes of the body a plain return-broken-stream sends (the testbench's figure)
BROKEN_STREAM_BYTES = 4

router = Router()


def _invalid(message: str) -> ApiError:
    return ApiError(400, message)


def _check_instruction(instruction: Any) -> None:
    if not isinstance(instruction, str) or not (
        _ERROR.match(instruction) or _BROKEN.match(instruction) or instruction == _RESET
    ):
        raise _invalid(
            f"The fault injection request <{instruction}> is not supported by the djdeploy "
            "emulator (return-NNN, return-reset-connection, return-broken-stream[-after-NK])."
        )


class RetryTests:
    """The retry tests in the emulator's store."""

    def __init__(self, emu: Emulator) -> None:
        self.store = emu.store

    def create(self, instructions: Any, transport: str) -> dict[str, Any]:
        if not instructions or not isinstance(instructions, dict):
            raise _invalid("instructions is not defined")
        if transport.upper() != "HTTP":
            raise _invalid(f"The requested transport <{transport}> is not served (HTTP only).")
        for method, steps in instructions.items():
            if method not in METHODS:
                raise _invalid(f"The requested method <{method}> for fault injection")
            if not isinstance(steps, list):
                raise _invalid(f"The instructions for <{method}> must be a list.")
            for step in steps:
                _check_instruction(step)
        test_id = uuid.uuid4().hex
        test: dict[str, Any] = {
            "id": test_id,
            "instructions": {m: list(s) for m, s in instructions.items()},
            "completed": False,
            "transport": "HTTP",
        }
        self.store.put(KIND, test_id, test)
        return test

    def get(self, test_id: str) -> dict[str, Any]:
        test = self.store.get(KIND, test_id)
        if test is None:
            raise ApiError(404, f"Retry Test {test_id} not found.")
        return test

    def list(self) -> list[dict[str, Any]]:
        return [t for _, t in self.store.list(KIND)]

    def delete(self, test_id: str) -> None:
        if not self.store.delete(KIND, test_id):
            raise ApiError(404, f"Retry Test {test_id} not found.")

    def take(self, test_id: str, method: str) -> str | None:
        """The next instruction for ``method`` (used up), or None when none is left."""
        with self.store.transaction():
            test = self.get(test_id)
            steps = test["instructions"].get(method) or []
            if not steps:
                return None
            instruction = steps.pop(0)
            test["completed"] = not any(test["instructions"].values())
            self.store.put(KIND, test_id, test)
        return str(instruction)


def apply(req: Request, method: str, handle: Callable[[], Any]) -> Any:
    """Handle a storage request under its retry test's next instruction, if it names one."""
    test_id = req.headers.get(HEADER)
    instruction = RetryTests(req.emu).take(test_id, method) if test_id else None
    if instruction is None:
        return handle()
    error = _ERROR.match(instruction)
    if error:
        code = int(error.group(1))
        raise ApiError(code, f"Retry Test: Caused a {code}", legacy=True)
    if instruction == _RESET:
        return Response(dropped=True)
    broken = _BROKEN.match(instruction)
    assert broken is not None  # create() admits nothing else
    result = handle()
    resp = result if isinstance(result, Response) else Response(200, result)
    after = int(broken.group(1)) * 1024 if broken.group(1) else BROKEN_STREAM_BYTES
    resp.body_limit = after
    return resp


# -- the testbench's own routes (no discovery method describes them) ----------------------------


@router.route("POST", "/retry_test")
def create_retry_test(req: Request) -> dict[str, Any]:
    body = req.json()
    return RetryTests(req.emu).create(body.get("instructions"), str(body.get("transport", "HTTP")))


@router.route("GET", "/retry_test/{test_id}")
def get_retry_test(req: Request, test_id: str) -> dict[str, Any]:
    return RetryTests(req.emu).get(test_id)


@router.route("GET", "/retry_tests")
def list_retry_tests(req: Request) -> dict[str, Any]:
    return {"retry_test": RetryTests(req.emu).list()}


@router.route("DELETE", "/retry_test/{test_id}")
def delete_retry_test(req: Request, test_id: str) -> Response:
    RetryTests(req.emu).delete(test_id)
    return Response(200, f"Deleted {test_id}".encode(), content_type="text/plain")
