"""The djdeploy command: parse -> Config -> engine -> render; exit codes.

Exit codes: 0 success (plan: nothing to change), 1 any error (one line, no traceback: bad
input, a usage error such as an unknown option, a failed step, another run holding the
tenant's lease with --no-wait), 2 plan found changes pending, 130 interrupted (Ctrl-C), 143
terminated (SIGTERM: `timeout`, a cancelled CI job, `kill`; it stops as Ctrl-C does).
`Djdeploy` (the command group) decides them in one place. Unexpected errors (bugs) show their
traceback. google.* is imported only once a command really talks to an API.

`djdeploy --help` stays near `import typer` (tests/test_cli_help.py): rich, pydantic and the
deployer's own modules are imported inside the commands that use them, and annotations are
objects, not strings (no `from __future__ import annotations`): typer reads every command's
signature on every run, and would evaluate each string twice.
"""

import copy
import errno
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, cast

import typer
from typer.core import TyperGroup

from deployer import __version__
from deployer.errors import ConfigError, DeployError

if TYPE_CHECKING:
    from rich.console import Console

    from deployer import render
    from deployer.config import Config
    from deployer.target import Target

WIDE = 100_000  # columns when not a terminal: piped output is never cut


class _LazyConsole:
    """rich's Console, made on first use: `--help` and usage errors need no rich (a third of
    the help's imports). A terminal's own width; elsewhere (a pipe, a CI log) lines as long as
    they are. Text is printed as it is: no ``:emoji:`` codes (djdeploy prints none; a reason's
    ``:name:`` stays, and a step thread's first progress line imports no emoji table)."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def _made(self) -> "Console":
        if self._console is None:
            from rich.console import Console

            console = Console(stderr=self._stderr, emoji=False)
            self._console = (
                console
                if console.is_terminal
                else Console(stderr=self._stderr, width=WIDE, emoji=False)
            )
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self._made(), name)

    # rich's Live (up's and destroy's progress on a terminal) enters its console: a special
    # method, looked up on the class, not through __getattr__
    def __enter__(self) -> "Console":
        return self._made().__enter__()

    def __exit__(self, *exc: Any) -> None:
        self._made().__exit__(*exc)


out = cast("Console", _LazyConsole(stderr=False))
err = cast("Console", _LazyConsole(stderr=True))


def _say_error(message: str) -> None:
    """The one error line; `message` is printed as is (user text is never markup)."""
    from rich.text import Text

    err.print(Text.assemble(("error:", "red"), " ", message), soft_wrap=True)


def _emulator_flags(g: "Globals | None") -> str:
    """What a hint needs to run against the same built-in emulator as this command ("" when it
    is not one): copied as printed, it would go to Google Cloud (`no Google Cloud project`) or
    to another emulator."""
    if g is None or not g.emulator:
        return ""
    return " --emulator" + (f" --state-dir {g.state_dir}" if g.state_dir else "")


def _progress(ctx: typer.Context, *, quiet: bool) -> "render.Progress":
    """The command's progress on stderr (quiet under --json: only lease notices), its hints
    aimed at the same emulator."""
    from deployer import render

    return render.Progress(
        console=err, quiet=quiet, verbose=ctx.obj.verbose, flags=_emulator_flags(ctx.obj)
    )


def _on_same_emulator(message: str, g: "Globals | None") -> str:
    """An --emulator command's error line, with --emulator (and its --state-dir) added to each
    command it tells to run (render.same_target)."""
    from deployer import render

    return render.same_target(message, _emulator_flags(g))


class Terminated(KeyboardInterrupt):
    """SIGTERM (`timeout`, a cancelled CI job, a plain `kill`): a KeyboardInterrupt, so that it
    stops a command the way Ctrl-C does (no new work, the tenant's lease released on the way
    out), but exit 143 (128 + SIGTERM) and its own word."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def stop_code(exc: BaseException | None) -> int:
    """The exit code of a command stopped by ``exc``: 143 for SIGTERM, else 130 (Ctrl-C)."""
    return 128 + signal.SIGTERM if isinstance(exc, Terminated) else 130


def stop_word(exc: BaseException | None) -> str:
    return "terminated" if isinstance(exc, Terminated) else "interrupted"


def _interrupted(exc: BaseException | None) -> typer.Exit:
    err.print(
        f"{stop_word(exc)}: nothing is lost; run the same command again to finish", soft_wrap=True
    )
    return typer.Exit(stop_code(exc))


def _usage_error(exc: typer.TyperException) -> int:
    """An unknown option, a bad value, a missing command: one line, exit 1. With no command
    at all: the help, exit 0."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # its message is the help
        out.print(exc.format_message(), markup=False, highlight=False)  # type: ignore[attr-defined]
        return 0
    ctx = getattr(exc, "ctx", None)
    hint = f" (`{ctx.command_path if ctx is not None else 'djdeploy'} -h` shows the options)"
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    _say_error(" ".join(message.split()) + hint)
    return 1


class _Light:
    """An option's coercion that builds typer's own (a pydantic TypeAdapter: pydantic is a
    tenth of a second of imports, the adapters more) only for a value it cannot take as is:
    an absent value is None, a string stays itself, a path is typer's own path check (the
    Path made here, as pydantic would); anything else (a number, a list) gets typer's own."""

    def coerce(self, value: Any, *, param: Any, ctx: Any) -> Any:
        if not (param.multiple or param.nargs == -1):
            kind = param.type_descriptor
            info = kind.parameter_info
            if value is None:
                return None
            if kind.annotation is str and info.parser is None and isinstance(value, str):
                return value
            if kind.annotation is Path and info.path_type is None and isinstance(value, str):
                from typer._param_types import coerce_cli_path

                return coerce_cli_path(Path(value), info, path_type=Path, param=param, ctx=ctx)
        param._runtime_param = None  # typer builds its own on this call
        return param.get_runtime_param().coerce(value, param=param, ctx=ctx)


def _lighten(params: list[Any]) -> list[Any]:
    for param in params:
        if getattr(param, "_runtime_param", False) is None:  # typer's, not yet built
            param._runtime_param = _Light()
    return params


class Group(TyperGroup):
    """A command group whose options, and its commands', cost no pydantic when absent, a
    string or a path (`_Light`): a group's options are coerced before its subcommand's help
    prints (`djdeploy up --help`), and there they are all absent."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _lighten(super().get_params(ctx))

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            _lighten(command.get_params(ctx))  # its options and its -h
        return command


class Djdeploy(Group):
    """djdeploy's exit codes and error lines, for every command: a DeployError or a usage
    error (click would exit 2, which `plan` uses for changes pending) is one line and exit 1;
    Ctrl-C is 130, also at a question; no answer to a question (stdin closed) is exit 1."""

    def invoke(self, ctx: Any) -> Any:  # typer.Context is not the base class's type
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt as exc:
            raise _interrupted(exc) from None
        except DeployError as exc:
            _say_error(_on_same_emulator(str(exc), ctx.obj))
            raise typer.Exit(1) from None

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
        try:
            code = super().main(*args, **kwargs)
        except typer.Abort as exc:
            if isinstance(exc.__context__, KeyboardInterrupt):
                code = _interrupted(exc.__context__).exit_code
            else:
                _say_error("no answer (stdin closed): nothing was done; --yes skips the question")
                code = 1
        except typer.TyperException as exc:  # click's usage errors (typer's own copy of click)
            code = _usage_error(exc)
        finally:
            if main_thread:  # the exit that follows (__main__) is the default action's again
                signal.signal(signal.SIGTERM, previous or signal.SIG_DFL)
        raise SystemExit(code or 0)


# rich_markup_mode=None: click's plain help (typer's rich help labels every flag "<bool>")
app = typer.Typer(
    cls=Djdeploy,
    rich_markup_mode=None,
    help="Deploy a Django application to Google Cloud Run, Cloud SQL and Cloud Storage.",
    epilog=(
        "Start here: `djdeploy up --tenant demo --emulator` deploys a sample on your machine"
        " (no Google account) and prints its local URL. For your own project: `djdeploy init`"
        " in its directory, then the same `up`; without --emulator, on Google Cloud."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
emulator_app = typer.Typer(
    cls=Group,
    help="The built-in local Google Cloud emulator.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(emulator_app, name="emulator")
secrets_app = typer.Typer(
    cls=Group,
    help="The tenant's generated secrets (docs/rotate.md).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(secrets_app, name="secrets")


Execute = typer.Option(
    "--execute/--no-execute",
    envvar="DJDEPLOY_EMULATOR_EXECUTE",
    help="Emulator: run what it deploys (PostgreSQL for Cloud SQL); --no-execute: APIs only.",
)


@dataclass
class Globals:
    emulator: bool = False
    endpoint: str | None = None
    time_scale: float | None = None
    state_dir: Path | None = None
    verbose: bool = False
    request_timeout: float | None = None
    execute: bool | None = None  # None: the background emulator's own mode (on when it starts)


def _version(value: bool) -> None:
    if value:
        out.print(f"djdeploy {__version__}", markup=False, highlight=False)
        raise typer.Exit()


STATE_DIR_HELP = "The built-in emulator's state directory (default: the user's data directory)."


@app.callback()
def main(
    ctx: typer.Context,
    emulator: Annotated[
        bool,
        typer.Option(
            "--emulator",
            envvar="DJDEPLOY_EMULATOR",
            help="Run every API call against the built-in local emulator.",
        ),
    ] = False,
    endpoint: Annotated[
        str | None,
        typer.Option(
            envvar="DJDEPLOY_ENDPOINT",
            help="Send every API call to this HTTP endpoint (djdeploy emulator serve).",
        ),
    ] = None,
    time_scale: Annotated[
        float | None, typer.Option(help="Emulator clock speed for waits (built-in default 0.01).")
    ] = None,
    state_dir: Annotated[
        Path | None, typer.Option(envvar="DJDEPLOY_STATE_DIR", help=STATE_DIR_HELP)
    ] = None,
    verbose: Annotated[
        bool, typer.Option("-v", "--verbose", help="Show every read and wait.")
    ] = False,
    request_timeout: Annotated[
        float | None, typer.Option(help="Seconds each API request may take (default 60).")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    execute: Annotated[bool | None, Execute] = None,
) -> None:
    ctx.obj = Globals(
        emulator=emulator,
        endpoint=endpoint,
        time_scale=time_scale,
        state_dir=state_dir,
        verbose=verbose,
        request_timeout=request_timeout,
        execute=execute,
    )


Tenant = Annotated[str | None, typer.Option(help="Tenant name, e.g. demo.")]
Project = Annotated[str | None, typer.Option(help="Google Cloud project id.")]
Region = Annotated[str | None, typer.Option(help="Cloud Run region, e.g. europe-west1.")]
Source = Annotated[Path | None, typer.Option(help="Your Django project's directory.")]
AppName = Annotated[str | None, typer.Option("--app", help="App name (default django).")]
ConfigFile = Annotated[Path | None, typer.Option("--config", help="Config file to read.")]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
Yes = Annotated[bool, typer.Option("--yes", help="Do not ask to confirm.")]
# The global options again, so that `djdeploy up --tenant demo --emulator` works as well.
UseEmulator = Annotated[bool, typer.Option("--emulator", help="Use the built-in emulator.")]
Endpoint = Annotated[str | None, typer.Option(help="Send every API call to this endpoint.")]
TimeScale = Annotated[float | None, typer.Option(help="Emulator clock speed for waits.")]
StateDir = Annotated[Path | None, typer.Option(help=STATE_DIR_HELP)]
Verbose = Annotated[bool, typer.Option("-v", "--verbose", help="Show every read and wait.")]
NoWait = Annotated[
    bool,
    typer.Option(
        "--no-wait", help="Fail at once when another run holds the tenant's lease (default: wait)."
    ),
]


def _merge(
    ctx: typer.Context,
    emulator: bool,
    endpoint: str | None,
    time_scale: float | None,
    state_dir: Path | None,
    verbose: bool,
) -> None:
    """Fold a command's own --emulator/--endpoint/--time-scale/--state-dir/-v into the global
    ones."""
    g: Globals = ctx.obj
    g.emulator = g.emulator or emulator
    g.endpoint = endpoint or g.endpoint
    g.time_scale = time_scale if time_scale is not None else g.time_scale
    g.state_dir = state_dir or g.state_dir
    g.verbose = g.verbose or verbose


def _load(ctx: typer.Context, tenant: str | None, flags: dict[str, Any]) -> "Config":
    from deployer.config import load_config

    g: Globals = ctx.obj
    return load_config(
        tenant=tenant, cwd=Path.cwd(), environ=os.environ, flags=flags, emulator=g.emulator
    )


def _target(ctx: typer.Context) -> "Target":
    """Where the command's API calls go; --emulator: the background emulator's endpoint."""
    from deployer.target import Target

    g: Globals = ctx.obj
    target = Target(
        endpoint=g.endpoint,
        emulator=g.emulator,
        time_scale=g.time_scale,
        request_timeout=g.request_timeout,
        state_dir=g.state_dir,
    )
    return _background(target, execute=g.execute) if target.emulator else target


def _preflight(cfg: "Config") -> None:
    """plan, up and secrets rotate: a project the build would refuse is refused before
    `_target` starts the background emulator (api.up, api.snapshot and api.rotate_secrets
    check it again, for Python callers)."""
    from deployer import preflight

    preflight.check(cfg)


def _warn_misspelt() -> None:
    """plan, up and status: one stderr line per DJDEPLOY_ variable that looks like a typo of a
    setting (config ignores it; docs/configuration.md)."""
    from deployer.config import misspelt_variables

    for line in misspelt_variables(os.environ):
        err.print(line, markup=False, highlight=False, soft_wrap=True)


def _stop_command(folder: Path) -> str:
    from deployer.target import default_state_dir

    return "djdeploy emulator stop" + (
        "" if folder == default_state_dir() else f" --state-dir {folder}"
    )


def _check_postgres_url(url: str, *, source: str) -> None:
    """A PostgreSQL URL the emulator cannot use stops the command: one line, before any call."""
    from deployer.emulator.local.pgwire import PostgresUrlError, parse_url

    try:
        parse_url(url, source=source)
    except PostgresUrlError as exc:
        raise ConfigError(str(exc)) from None


def _prepare() -> None:
    """What every emulator command imports next, done while a new background emulator starts
    (the emulator's checks need neither): the API layer, then, in their own thread, the Google
    modules every command uses (the clients' are the factory's, for its kinds); in turn, so
    that the two never import at once."""
    import deployer.api  # noqa: F401
    from deployer.gcp.clients import start_imports

    start_imports(kinds=())


def _background(target: "Target", *, execute: bool | None) -> "Target":
    """The background emulator of the target's state dir (started on first use, said once on
    stderr), as an endpoint: the deployer talks to it as to any `--endpoint`. It inherits the
    environment, DJDEPLOY_EMULATOR_POSTGRES_URL included (checked here first)."""
    from deployer.emulator import daemon
    from deployer.emulator.local.pgwire import URL_ENV
    from deployer.target import BUILTIN_TIME_SCALE, Target, default_state_dir, state_problem

    if execute is not False and os.environ.get(URL_ENV):
        _check_postgres_url(os.environ[URL_ENV], source=URL_ENV)

    folder = target.state_dir or default_state_dir()
    try:
        found, started = daemon.ensure(
            folder,
            time_scale=target.time_scale,
            execute=execute,
            default_time_scale=BUILTIN_TIME_SCALE,
            stop_command=_stop_command(folder),
            version=__version__,
            meanwhile=_prepare,
        )
    except daemon.StateUnusable as exc:
        raise state_problem(exc, folder) from None
    except daemon.DaemonError as exc:
        raise DeployError(str(exc)) from None
    if started:
        err.print(
            f"started the local emulator (pid {found.pid}, {found.url}, state {folder})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    return Target(
        endpoint=found.url, time_scale=found.time_scale, request_timeout=target.request_timeout
    )


def _state_dir(ctx: typer.Context) -> Path | None:
    """Where the built-in emulator keeps its state (status says it), None for any other."""
    from deployer.target import default_state_dir

    g: Globals = ctx.obj
    return (g.state_dir or default_state_dir()) if g.emulator else None


def _local_note(ctx: typer.Context) -> str:
    """How long the local URL answers: the background emulator serves it until stopped."""
    g: Globals = ctx.obj
    if not g.emulator:
        return ""
    option = f" --state-dir {g.state_dir}" if g.state_dir else ""
    return f"served until `djdeploy emulator stop{option}`"


def _flags(
    project: str | None,
    region: str | None,
    source: Path | None,
    app_name: str | None,
    config: Path | None,
) -> dict[str, Any]:
    return {
        "project": project,
        "region": region,
        "source": source,
        "app": app_name,
        "config": config,
    }


@app.command()
def init(
    tenant: Tenant = None,
    project: Project = None,
    region: Region = None,
) -> None:
    """Write a djdeploy.toml for the Django project here. It sets source = "." and the values
    given; it never overwrites a file and makes no API call."""
    from deployer import preflight
    from deployer.config.starter import write_starter

    cwd = Path.cwd()
    path = write_starter(cwd, tenant=tenant, project=project, region=region)
    _say(f"wrote {path}: djdeploy now deploys the Django project in {cwd}")
    for problem in preflight.problems(cwd):
        _say(f"before up: {problem}")
    # a runnable example, not a placeholder: "NAME" copied as is is an invalid tenant
    command = "djdeploy up" if tenant else "djdeploy up --tenant demo"
    later = "" if tenant else ' (any tenant name; tenant = "demo" in djdeploy.toml saves the flag)'
    _say(f"next: `{command} --emulator` to try it locally, `{command}` on Google Cloud{later}")


#: what `up` says last when it deployed the sample: run by mistake outside the user's project,
#: its output would otherwise show only the sample's name among the resources
SAMPLE_NOTE = (
    "this is djdeploy's bundled sample project (no djdeploy.toml here): to deploy yours, "
    "run `djdeploy init` in its directory, then `djdeploy up` there"
)


@app.command()
def up(
    ctx: typer.Context,
    tenant: Tenant = None,
    project: Project = None,
    region: Region = None,
    source: Source = None,
    app_name: AppName = None,
    config: ConfigFile = None,
    json: Json = False,
    emulator: UseEmulator = False,
    endpoint: Endpoint = None,
    time_scale: TimeScale = None,
    state_dir: StateDir = None,
    verbose: Verbose = False,
    no_wait: NoWait = False,
) -> None:
    """Create or update everything the tenant needs; safe to run again after any failure."""
    _merge(ctx, emulator, endpoint, time_scale, state_dir, verbose)
    _warn_misspelt()
    cfg = _load(ctx, tenant, _flags(project, region, source, app_name, config))
    _preflight(cfg)
    target = _target(ctx)
    from deployer import api, render

    with _progress(ctx, quiet=json) as progress:
        result = api.up(
            cfg,
            target=target,
            on_event=progress,
            wait=not no_wait,
            on_lease=progress.lease,
            on_steps=progress.steps,
        )
    local = api.local_url(result.info("url"), target)
    render.up_result(
        result,
        as_json=json,
        out=out,
        local_url=local,
        local_note=_local_note(ctx),
        flags=_emulator_flags(ctx.obj),
    )
    url = result.info("url")
    if result.ok and url and not json:
        render.admin_login(
            api.resolve(cfg, target), url=local or url, endpoint=target.endpoint, out=out
        )
        if cfg.source is None:
            _say(SAMPLE_NOTE)
    raise typer.Exit(0 if result.ok else 1)


@app.command()
def plan(
    ctx: typer.Context,
    tenant: Tenant = None,
    project: Project = None,
    region: Region = None,
    source: Source = None,
    app_name: AppName = None,
    config: ConfigFile = None,
    json: Json = False,
    emulator: UseEmulator = False,
    endpoint: Endpoint = None,
    time_scale: TimeScale = None,
    state_dir: StateDir = None,
    verbose: Verbose = False,
) -> None:
    """Show what `up` would change, field by field. Exit 0: nothing; 2: changes pending."""
    _merge(ctx, emulator, endpoint, time_scale, state_dir, verbose)
    _warn_misspelt()
    cfg = _load(ctx, tenant, _flags(project, region, source, app_name, config))
    _preflight(cfg)
    target = _target(ctx)
    from deployer import api, render
    from deployer.steps.base import Action

    seen = api.snapshot(cfg, target=target, preflight=True)
    render.plan(seen.changes, holder=seen.holder, as_json=json, out=out)
    raise typer.Exit(2 if any(c.action is not Action.NOOP for c in seen.changes) else 0)


@app.command()
def status(
    ctx: typer.Context,
    tenant: Tenant = None,
    project: Project = None,
    region: Region = None,
    source: Source = None,
    app_name: AppName = None,
    config: ConfigFile = None,
    json: Json = False,
    emulator: UseEmulator = False,
    endpoint: Endpoint = None,
    time_scale: TimeScale = None,
    state_dir: StateDir = None,
    verbose: Verbose = False,
) -> None:
    """Live state, step by step. Without --tenant: every tenant found by its labels, each
    service's URL and health."""
    _merge(ctx, emulator, endpoint, time_scale, state_dir, verbose)
    _warn_misspelt()
    flags = _flags(project, region, source, app_name, config)
    if tenant is None and not os.environ.get("DJDEPLOY_TENANT"):
        from deployer.config import load_project_and_region

        proj, reg = load_project_and_region(
            cwd=Path.cwd(), environ=os.environ, flags=flags, emulator=ctx.obj.emulator
        )
        target = _target(ctx)
        from deployer import api, render

        found = api.tenants(proj, reg, target=target)
        render.tenants(found, state_dir=_state_dir(ctx), as_json=json, out=out)
        return
    cfg = _load(ctx, tenant, flags)
    target = _target(ctx)
    from deployer import api, render

    seen = api.snapshot(cfg, target=target, uptime=True)
    if not api.deployed(cfg, seen):
        raise DeployError(api.not_deployed(cfg))
    render.status(
        seen.changes,
        tenant=cfg.tenant,
        holder=seen.holder,
        state_dir=_state_dir(ctx),
        as_json=json,
        out=out,
        local_url=api.local_url(render.summary(seen.changes)["url"], target),
        local_note=_local_note(ctx),
        uptime=seen.uptime,
    )


@app.command()
def destroy(
    ctx: typer.Context,
    tenant: Tenant = None,
    project: Project = None,
    region: Region = None,
    source: Source = None,
    app_name: AppName = None,
    config: ConfigFile = None,
    delete_data: Annotated[
        bool, typer.Option("--delete-data", help="Also delete the database, media and secrets.")
    ] = False,
    yes: Yes = False,
    json: Json = False,
    emulator: UseEmulator = False,
    endpoint: Endpoint = None,
    time_scale: TimeScale = None,
    state_dir: StateDir = None,
    verbose: Verbose = False,
    no_wait: NoWait = False,
) -> None:
    """Delete the tenant's resources in reverse order; data is kept unless --delete-data."""
    _merge(ctx, emulator, endpoint, time_scale, state_dir, verbose)
    cfg = _load(ctx, tenant, _flags(project, region, source, app_name, config))
    question = (
        f"Delete tenant {cfg.tenant}'s database, media and secrets "
        f"in project {cfg.project}? This cannot be undone."
    )
    if delete_data and not yes and not typer.confirm(question):
        raise ConfigError("not confirmed: nothing was deleted")
    target = _target(ctx)
    from deployer import api, render

    with _progress(ctx, quiet=json) as progress:
        changes = api.destroy(
            cfg,
            delete_data=delete_data,
            target=target,
            on_event=progress,
            wait=not no_wait,
            on_lease=progress.lease,
            on_steps=progress.steps,
        )
    found = api.destroyed_anything(cfg, changes)
    render.destroyed(changes, as_json=json, out=out, nothing="" if found else api.not_deployed(cfg))


@app.command()
def unlock(
    ctx: typer.Context,
    tenant: Tenant = None,
    project: Project = None,
    region: Region = None,
    source: Source = None,
    app_name: AppName = None,
    config: ConfigFile = None,
    yes: Yes = False,
    emulator: UseEmulator = False,
    endpoint: Endpoint = None,
    time_scale: TimeScale = None,
    state_dir: StateDir = None,
    verbose: Verbose = False,
) -> None:
    """Remove the tenant's lease when its holder cannot (killed, machine lost). A run still
    holding it stops at its next heartbeat."""
    _merge(ctx, emulator, endpoint, time_scale, state_dir, verbose)
    cfg = _load(ctx, tenant, _flags(project, region, source, app_name, config))
    target = _target(ctx)
    from deployer import api, render
    from deployer.lease import Holder

    def confirm(holder: Holder) -> bool:
        question = (
            f"Remove the lease on tenant {cfg.tenant} held by {holder.describe()}? "
            "If that run is still going, it stops at its next heartbeat."
        )
        return yes or typer.confirm(question)

    holder = api.unlock(cfg, target=target, confirm=confirm)
    render.unlocked(holder, tenant=cfg.tenant, out=out)


@app.command()
def logs(
    ctx: typer.Context,
    tenant: Tenant = None,
    project: Project = None,
    region: Region = None,
    source: Source = None,
    app_name: AppName = None,
    config: ConfigFile = None,
    job: Annotated[
        str | None,
        typer.Option(
            help="A job's executions instead of the service: migrate, db-init, manage, "
            "or cron-NAME (the [[cron]] entry NAME)."
        ),
    ] = None,
    worker: Annotated[
        bool, typer.Option("--worker", help="The [worker]'s pool instead of the service.")
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="Only entries this recent: 30s, 10m, 2h, 1d.")
    ] = None,
    severity: Annotated[
        str | None, typer.Option(help="Only entries at this severity or worse, e.g. WARNING.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Show at most the newest N entries.")] = 100,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new entries until Ctrl-C.")
    ] = False,
    json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    emulator: UseEmulator = False,
    endpoint: Endpoint = None,
    time_scale: TimeScale = None,
    state_dir: StateDir = None,
    verbose: Verbose = False,
) -> None:
    """Cloud Logging entries of the service's revisions, of a job's executions or of the
    worker pool, newest last."""
    _merge(ctx, emulator, endpoint, time_scale, state_dir, verbose)
    from deployer import api, render

    query = api.LogQuery(job=job, since=since, severity=severity, limit=limit, worker=worker)
    cfg = _load(ctx, tenant, _flags(project, region, source, app_name, config))
    shown = 0
    try:
        for entry in api.logs(cfg, query=query, target=_target(ctx), follow=follow):
            render.log_entry(entry, as_json=json, out=out)
            shown += 1
    except KeyboardInterrupt as exc:
        raise typer.Exit(stop_code(exc)) from None  # the way to stop --follow: nothing to finish
    if not shown:
        render.no_log_entries(api.log_source(cfg, query), since=since, severity=severity, err=err)


@app.command(context_settings={"allow_interspersed_args": False})
def manage(
    ctx: typer.Context,
    args: Annotated[
        list[str] | None,
        typer.Argument(help="The management command and its arguments, after --."),
    ] = None,
    tenant: Tenant = None,
    project: Project = None,
    region: Region = None,
    source: Source = None,
    app_name: AppName = None,
    config: ConfigFile = None,
    no_wait: Annotated[
        bool,
        typer.Option("--no-wait", help="Print the execution's name once it starts, and return."),
    ] = False,
    json: Json = False,
    emulator: UseEmulator = False,
    endpoint: Endpoint = None,
    time_scale: TimeScale = None,
    state_dir: StateDir = None,
    verbose: Verbose = False,
) -> None:
    """Run a Django management command as a Cloud Run job execution with the service's image
    and settings; print its logs; exit with its status. E.g. `manage --tenant demo --
    showmigrations`."""
    _merge(ctx, emulator, endpoint, time_scale, state_dir, verbose)
    from deployer import api, render
    from deployer.management import check_args

    cfg = _load(ctx, tenant, _flags(project, region, source, app_name, config))
    check_args(list(args or []), tenant=cfg.tenant)  # before `_target` starts an emulator
    # only its lease notices: no live table under the command's log lines
    progress = _progress(ctx, quiet=json)
    started: list[api.ManageRun] = []

    def on_start(run: api.ManageRun) -> None:
        started.append(run)
        if not (json or no_wait):
            render.manage_started(run, err=err)

    target = _target(ctx)
    try:
        run = api.manage(
            cfg,
            list(args or []),
            target=target,
            wait=not no_wait,
            on_entry=None if json else lambda e: render.log_entry(e, as_json=False, out=out),
            on_start=on_start,
            on_lease=progress.lease,
        )
    except KeyboardInterrupt as exc:
        if not started:  # maybe while the request that starts it was sent: it may have started
            err.print(
                render.same_target(
                    f"{stop_word(exc)} before the command was seen to start: `djdeploy logs "
                    f"--tenant {cfg.tenant} --job manage --since 10m` shows whether it ran; run "
                    "it again only if it did not",
                    _emulator_flags(ctx.obj),
                ),
                soft_wrap=True,
            )
            raise typer.Exit(stop_code(exc)) from None
        render.manage_interrupted(
            started[0],
            tenant=cfg.tenant,
            err=err,
            word=stop_word(exc),
            flags=_emulator_flags(ctx.obj),
        )
        raise typer.Exit(stop_code(exc)) from None
    render.manage_run(
        run, tenant=cfg.tenant, as_json=json, out=out, err=err, flags=_emulator_flags(ctx.obj)
    )
    if run.state == "failed":
        raise DeployError(f"execution {run.execution} failed: {run.message}")


@app.command()
def rollback(
    ctx: typer.Context,
    tenant: Tenant = None,
    project: Project = None,
    region: Region = None,
    source: Source = None,
    app_name: AppName = None,
    config: ConfigFile = None,
    to: Annotated[
        str | None,
        typer.Option(
            "--to", help="The revision to roll back to (default: the one before the latest)."
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Roll back even to a revision that does not know applied migrations."
        ),
    ] = False,
    undo: Annotated[
        bool,
        typer.Option("--undo", help="Unpin: all traffic to the latest ready revision again."),
    ] = False,
    json: Json = False,
    emulator: UseEmulator = False,
    endpoint: Endpoint = None,
    time_scale: TimeScale = None,
    state_dir: StateDir = None,
    verbose: Verbose = False,
) -> None:
    """Move all traffic to the previous ready revision (or --to) and pin it; `up` keeps the
    pin until `rollback --undo`. Refused when the database has migrations it does not know."""
    _merge(ctx, emulator, endpoint, time_scale, state_dir, verbose)
    from deployer import api, render

    api.check_rollback(to=to, undo=undo)
    cfg = _load(ctx, tenant, _flags(project, region, source, app_name, config))
    target = _target(ctx)
    progress = _progress(ctx, quiet=json)  # lease notices
    done = api.rollback(cfg, to=to, force=force, undo=undo, target=target, on_lease=progress.lease)
    render.rolled_back(done, tenant=cfg.tenant, as_json=json, out=out)


@secrets_app.command("rotate")
def secrets_rotate(
    ctx: typer.Context,
    tenant: Tenant = None,
    project: Project = None,
    region: Region = None,
    source: Source = None,
    app_name: AppName = None,
    config: ConfigFile = None,
    secret: Annotated[
        list[str] | None,
        typer.Option(
            "--secret",
            metavar="KIND",
            help="db-password, secret-key or admin-password (repeatable; default: all three).",
        ),
    ] = None,
    json: Json = False,
    emulator: UseEmulator = False,
    endpoint: Endpoint = None,
    time_scale: TimeScale = None,
    state_dir: StateDir = None,
    verbose: Verbose = False,
    no_wait: NoWait = False,
) -> None:
    """A new value for generated secrets, deployed, then the old one disabled; finishes an
    interrupted rotation instead of starting another."""
    _merge(ctx, emulator, endpoint, time_scale, state_dir, verbose)
    from deployer import api, render

    kinds = api.check_kinds(secret or [])
    cfg = _load(ctx, tenant, _flags(project, region, source, app_name, config))
    _preflight(cfg)  # it runs up
    target = _target(ctx)
    with _progress(ctx, quiet=json) as progress:
        result = api.rotate_secrets(
            cfg,
            kinds=kinds,
            target=target,
            on_event=progress,
            wait=not no_wait,
            on_lease=progress.lease,
            on_steps=progress.steps,
        )
    render.rotated(
        result.rotations, result.run, as_json=json, out=out, flags=_emulator_flags(ctx.obj)
    )
    raise typer.Exit(0 if result.ok else 1)


ci_app = typer.Typer(
    cls=Group, help="Deploy on push (docs/ci.md).", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(ci_app, name="ci")


@ci_app.command("github-actions")
def ci_github_actions(
    ctx: typer.Context,
    tenant: Tenant = None,
    project: Project = None,
    region: Region = None,
    config: ConfigFile = None,
    github: Annotated[
        str | None,
        typer.Option(metavar="OWNER/REPO", help="The repository (default: the origin remote's)."),
    ] = None,
    branch: Annotated[str, typer.Option(help="Deploy on pushes to this branch.")] = "main",
    path: Annotated[Path, typer.Option(help="The workflow file to write.")] = Path(
        ".github/workflows/djdeploy.yml"
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite a different file.")] = False,
) -> None:
    """Write a GitHub Actions workflow that runs `djdeploy up` on every push, keyless (Workload
    Identity Federation), and print the gcloud commands that create its identity. No API call."""
    from deployer import ci

    cfg = _load(ctx, tenant, _flags(project, region, None, None, config))
    repository = github or ci.github_repository(Path.cwd())
    if repository is None:
        raise ConfigError("--github OWNER/REPO: no GitHub origin remote here to take it from")
    pipeline = ci.Pipeline(
        tenant=cfg.tenant,
        project=cfg.project,
        region=cfg.region,
        repository=repository,
        branch=branch,
        extra_roles=ci.config_roles(cfg),
        config=ci.config_in_checkout(cfg.config_file),
    )
    written = ci.write_workflow(pipeline, path, version=__version__, force=force)
    _say(f"{'wrote' if written.changed else 'unchanged:'} {path}")
    _say("\nOnce per project, create the identity it deploys as (docs/ci.md):\n")
    for command in ci.setup_commands(pipeline):
        _say(command)
    _say(f"\nThen commit {path} and push to {branch}.")


@ci_app.command("setup")
def ci_setup(
    ctx: typer.Context,
    tenant: Tenant = None,
    project: Project = None,
    region: Region = None,
    config: ConfigFile = None,
    github: Annotated[
        str | None,
        typer.Option(metavar="OWNER/REPO", help="Check that [ci] deploys from this repository."),
    ] = None,
    branch: Annotated[
        str | None, typer.Option(help="Check that [ci] deploys on pushes to this branch.")
    ] = None,
    json: Json = False,
    emulator: UseEmulator = False,
    endpoint: Endpoint = None,
    time_scale: TimeScale = None,
    state_dir: StateDir = None,
    verbose: Verbose = False,
    no_wait: NoWait = False,
) -> None:
    """Make [ci]'s Cloud Build trigger and its deployer account now, as `up` does, without
    deploying the app. The repository must be connected to Cloud Build once, in the console:
    this says so when it is not."""
    _merge(ctx, emulator, endpoint, time_scale, state_dir, verbose)
    from deployer import api, ci, render

    if github is not None or branch is not None:
        ci.check_source(github or "OWNER/REPO", branch or "main")
    cfg = _load(ctx, tenant, _flags(project, region, None, None, config))
    _check_ci(cfg, github, branch)
    with _progress(ctx, quiet=json) as progress:
        result = api.ci_setup(
            cfg,
            target=_target(ctx),
            on_event=progress,
            wait=not no_wait,
            on_lease=progress.lease,
            on_steps=progress.steps,
        )
    render.up_result(result, as_json=json, out=out, flags=_emulator_flags(ctx.obj))
    raise typer.Exit(0 if result.ok else 1)


def _check_ci(cfg: Any, github: str | None, branch: str | None) -> None:
    """[ci] is what a push's build reads (the repository's djdeploy.toml): the flags may only
    confirm it, never stand in for it (that build's up would delete the trigger)."""
    from deployer import api

    if cfg.ci is None:
        raise ConfigError(api.ci_missing(github or "OWNER/REPO", branch or "main"))
    for flag, value, configured in (
        ("--github", github, cfg.ci.github),
        ("--branch", branch, cfg.ci.branch),
    ):
        if value is not None and value != configured:
            raise ConfigError(
                f"{flag} {value}: [ci] says {configured!r}; change [ci] in djdeploy.toml (the "
                "trigger's build runs up with it), or leave the flag out"
            )


def _cannot_listen(host: str, port: int, code: int | None, reason: str) -> NoReturn:
    """`emulator serve`'s address refused, with the fix for each cause."""
    fix = {
        errno.EADDRINUSE: "another process (an emulator already serving?) has it: pass another "
        "--port, or --port 0 for any free one",
        errno.EACCES: "ports below 1024 need privileges: pass --port 8089",
        errno.EADDRNOTAVAIL: f"{host} is not an address of this machine: pass --host 127.0.0.1 "
        "(or 0.0.0.0 for every interface)",
    }.get(code or 0, "pass --host 127.0.0.1 (an address of this machine or a name it resolves)")
    raise ConfigError(f"cannot listen on {host}:{port} ({reason}): {fix}")


@emulator_app.command("serve")
def emulator_serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free port).")] = 8089,
    state_dir: Annotated[
        Path | None, typer.Option(help="Where state persists (default: the user's data directory).")
    ] = None,
    time_scale: Annotated[
        float,
        typer.Option(
            help="Latency model speed: 1.0 real durations, 0.001 a thousand times faster."
        ),
    ] = 1.0,
    execute: Annotated[bool, Execute] = True,
    postgres_url: Annotated[
        str | None,
        typer.Option(
            envvar="DJDEPLOY_EMULATOR_POSTGRES_URL",
            help="Cloud SQL instances as prefixed roles and databases on this existing "
            "PostgreSQL server (postgresql://USER[:PASSWORD]@HOST[:PORT][/DATABASE]).",
            show_envvar=False,
        ),
    ] = None,
) -> None:
    """Serve the emulator on one port until Ctrl-C."""
    from deployer.emulator.server import BindError, main_serve
    from deployer.emulator.store import StateError
    from deployer.target import check_time_scale, default_state_dir, state_problem

    check_time_scale(time_scale)
    if postgres_url:
        # typer's own click: its ParameterSource, compared by name
        from_env = getattr(ctx.get_parameter_source("postgres_url"), "name", "") == "ENVIRONMENT"
        name = "DJDEPLOY_EMULATOR_POSTGRES_URL" if from_env else "--postgres-url"
        _check_postgres_url(postgres_url, source=name)
    folder = state_dir or default_state_dir()
    try:
        main_serve(
            host=host,
            port=port,
            state_dir=folder,
            time_scale=time_scale,
            execute=execute,
            postgres_url=postgres_url or None,
        )
    except BindError as exc:
        _cannot_listen(host, port, exc.errno, str(exc))
    except StateError as exc:
        raise state_problem(exc, folder) from None


def _say(text: str) -> None:
    out.print(text, markup=False, highlight=False, soft_wrap=True)


@emulator_app.command("reset")
def emulator_reset(
    state_dir: Annotated[Path | None, typer.Option(help=STATE_DIR_HELP)] = None,
    yes: Yes = False,
) -> None:
    """Delete the emulator's state: every project, resource, operation and setting it holds.
    A background emulator running on it is reset through its admin API (it keeps running);
    stop any `emulator serve` on it first."""
    from deployer.emulator import daemon
    from deployer.emulator.control import EmulatorControl, EmulatorControlError
    from deployer.emulator.store import files
    from deployer.target import default_state_dir

    folder = state_dir or default_state_dir()
    question = f"Delete the emulator state in {folder} (every resource it holds)?"
    try:
        running = daemon.running(folder)
    except daemon.DaemonError as exc:
        raise DeployError(str(exc)) from None
    if running is not None:
        if not yes and not typer.confirm(question):
            raise ConfigError("not confirmed: the emulator state was kept")
        try:
            EmulatorControl(running.url).reset()
        except (OSError, EmulatorControlError) as exc:
            raise DeployError(
                f"the local emulator (pid {running.pid}) did not reset ({exc}): "
                f"run `{_stop_command(folder)}`, then this reset again"
            ) from None
        _say(f"reset the state of the local emulator (pid {running.pid}) in {folder}")
        return
    found = files(folder)
    if not found:
        out.print(f"no emulator state in {folder}: nothing to remove", markup=False, soft_wrap=True)
        return
    if not yes and not typer.confirm(question):
        raise ConfigError("not confirmed: the emulator state was kept")
    for path in found:
        try:
            path.unlink()
        except FileNotFoundError:
            pass  # an emulator closing meanwhile removed its WAL itself
        except OSError as exc:
            raise DeployError(
                f"cannot remove {path} ({exc.strerror}): remove it by hand, then run again"
            ) from None
    names = ", ".join(p.name for p in found)
    out.print(f"removed the emulator state in {folder}: {names}", markup=False, soft_wrap=True)


@emulator_app.command("stop")
def emulator_stop(
    state_dir: Annotated[Path | None, typer.Option(help=STATE_DIR_HELP)] = None,
) -> None:
    """Stop the background emulator that --emulator started (and what it runs), or what one
    that was killed left running."""
    from deployer.emulator import daemon
    from deployer.emulator.local.realizers import reap_leftovers
    from deployer.target import default_state_dir

    folder = state_dir or default_state_dir()
    try:
        stopped = daemon.stop(folder)
    except daemon.DaemonError as exc:
        raise DeployError(str(exc)) from None
    if stopped is None:
        _say(f"no local emulator was running for {folder}")
        left = reap_leftovers(folder) if folder.is_dir() else []
        if left:
            _say(f"stopped what a killed emulator left running: {', '.join(left)}")
    else:
        _say(f"stopped the local emulator (pid {stopped.pid}, {stopped.url}, state {folder})")


@emulator_app.command("status")
def emulator_status(
    state_dir: Annotated[Path | None, typer.Option(help=STATE_DIR_HELP)] = None,
    json: Json = False,
) -> None:
    """Whether the background emulator runs: its address, pid, state dir, uptime, mode."""
    from deployer import render
    from deployer.clock import RealClock
    from deployer.emulator import daemon
    from deployer.emulator.local.realizers import leftovers
    from deployer.target import default_state_dir

    folder = state_dir or default_state_dir()
    try:
        found = daemon.running(folder)
    except daemon.DaemonError as exc:
        raise DeployError(str(exc)) from None
    doc: dict[str, Any] = {"running": found is not None, "state_dir": str(folder)}
    left = leftovers(folder) if found is None and folder.is_dir() else []
    if left:
        doc["leftovers"] = left
    if found is not None:
        doc |= {
            "address": found.url,
            "pid": found.pid,
            "uptime_seconds": round(found.uptime(RealClock().now()), 1),
            "executing": found.execute,
            "time_scale": found.time_scale,
            "version": found.version,
            "log": str(found.log),
        }
    if json:
        render.dump_json(doc)
    elif found is None:
        _say(f"no local emulator is running for {folder} (--emulator starts one)")
        if left:
            _say(
                f"still running, left by a killed emulator: {', '.join(left)} "
                f"(`{_stop_command(folder)}` stops them)"
            )
    else:
        minutes, seconds = divmod(int(doc["uptime_seconds"]), 60)
        hours, minutes = divmod(minutes, 60)
        _say(f"the local emulator is running at {found.url}")
        _say(f"pid: {found.pid}\nstate dir: {folder}\nuptime: {hours}h{minutes:02}m{seconds:02}s")
        _say(f"executing: {'yes' if found.execute else 'no (API only)'}")
        _say(f"time scale: {found.time_scale:g}\nlog: {found.log}")


def for_args(args: list[str]) -> typer.Typer:
    """The app with only the commands and command groups named in ``args``, when it names
    one and asks for no help: typer builds every command's options from its signature on
    each run (60 M instructions for all of them, against 2,300 M for a no-op `up`), and a run
    uses one. Every command named is kept, so an option's value that is a command's name
    (`--tenant up`) parses as before; with none named (`--help`, `--version`, a typo), the
    whole app, its list of commands and its suggestions."""
    if "-h" in args or "--help" in args:
        return app
    named = set(args)
    commands = [
        info
        for info in app.registered_commands
        if info.callback is not None
        and (info.name or info.callback.__name__.lower().replace("_", "-")) in named
    ]
    groups = [info for info in app.registered_groups if info.name in named]
    if not commands and not groups:
        return app
    some = copy.copy(app)
    some.registered_commands = commands
    some.registered_groups = groups
    return some
