"""`python -m deployer` and the `djdeploy` script run the CLI."""

import atexit
import contextlib
import os
import sys
import threading

from deployer.cli import for_args


def main() -> None:
    """The CLI, then what a normal exit does (join the threads, run the exit hooks, flush)
    but without freeing every module object: with the Google client libraries loaded that
    teardown takes 0.1 to 0.7 s of a command's wall time, for nothing (bench/README.md)."""
    try:
        for_args(sys.argv[1:])(prog_name="djdeploy")
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)  # what SystemExit("message") does
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]  # what the interpreter does first
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):  # a closed pipe (| head): nothing to say
            stream.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    main()
