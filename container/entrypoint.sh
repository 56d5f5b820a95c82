#!/bin/sh
# djdeploy container entrypoint. One image, three uses (docs/container.md):
#   serve          (default) gunicorn on 0.0.0.0:$PORT: the Cloud Run service
#   migrate        migrate, collectstatic (no --clear), superuser if missing: the migrate job
#   db-init        extensions and schema grants, idempotent: the db-init job
#   manage ARGS    any manage.py command (python -m django, with the runtime settings)
#   run CMD ARGS   any program in the project's directory with the runtime settings: the worker
# Works outside a container too: APP_HOME (default /app) is the project root, and the runtime
# package is found beside this file.
set -eu

DJDEPLOY_HOME=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
APP_HOME=${APP_HOME:-/app}
# Always the runtime's settings. A DJANGO_SETTINGS_MODULE the caller set to anything else names
# the project's own settings (unless DJANGO_PROJECT_SETTINGS does).
caller_settings=${DJANGO_SETTINGS_MODULE:-}
if [ -n "$caller_settings" ] && [ "$caller_settings" != djdeploy_runtime.settings ] &&
    [ -z "${DJANGO_PROJECT_SETTINGS:-}" ]; then
    DJANGO_PROJECT_SETTINGS=$caller_settings
    export DJANGO_PROJECT_SETTINGS
fi
DJANGO_SETTINGS_MODULE=djdeploy_runtime.settings
PYTHONPATH="$DJDEPLOY_HOME${PYTHONPATH:+:$PYTHONPATH}"
export APP_HOME DJANGO_SETTINGS_MODULE PYTHONPATH

# One JSON line on stderr, in the shape Cloud Logging reads (severity, message). Control
# characters become spaces; backslashes and quotes are escaped.
log() {
    level=$1
    shift
    message=$(printf '%s' "$*" | tr '\001-\037\177' ' ' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')
    printf '{"severity":"%s","message":"%s","logger":"djdeploy.entrypoint"}\n' \
        "$level" "$message" >&2
}

die() {
    log ERROR "$*"
    exit 1
}

# require_env NAME... : fail with one line naming every unset variable.
require_env() {
    missing=""
    for name in "$@"; do
        eval "value=\${$name:-}"
        # shellcheck disable=SC2154 # value is assigned by the eval above
        [ -n "$value" ] || missing="$missing $name"
    done
    [ -z "$missing" ] || die "$command: required environment variable(s) not set:$missing"
}

# Find the project (the directory holding manage.py: APP_HOME or APP_HOME/src) and its settings
# module, check that the settings import, and put the project on PYTHONPATH; or fail clearly.
find_project() {
    [ -d "$APP_HOME" ] || die "APP_HOME $APP_HOME is not a directory"
    # discover prints the settings module and the project directory, or logs its own reason.
    found=$(python3 -m djdeploy_runtime.discover) || exit 2
    DJANGO_PROJECT_SETTINGS=$(printf '%s\n' "$found" | sed -n 1p)
    project_dir=$(printf '%s\n' "$found" | sed -n 2p)
    PYTHONPATH="$DJDEPLOY_HOME:$project_dir${PYTHONPATH#"$DJDEPLOY_HOME"}"
    export DJANGO_PROJECT_SETTINGS PYTHONPATH
    cd "$project_dir"
}

command=${1:-serve}
[ "$#" -eq 0 ] || shift

case "$command" in
serve)
    require_env SECRET_KEY DB_NAME DB_USER DB_HOST ALLOWED_HOSTS
    find_project
    log INFO "serve: $DJANGO_PROJECT_SETTINGS on 0.0.0.0:${PORT:-8080}"
    exec python3 -m gunicorn -c python:djdeploy_runtime.gunicorn_conf \
        djdeploy_runtime.wsgi:application
    ;;
migrate)
    require_env SECRET_KEY DB_NAME DB_USER DB_HOST
    find_project
    # One process, exec'd so that it receives SIGTERM: wait for the database, migrate,
    # collectstatic (never --clear: STATIC_ROOT may share storage with uploads), superuser.
    exec python3 -m djdeploy_runtime.migrate
    ;;
db-init)
    require_env DB_NAME DB_USER DB_HOST
    exec python3 -m djdeploy_runtime.dbinit
    ;;
manage)
    find_project
    # Not manage.py: one that assigns DJANGO_SETTINGS_MODULE would bypass the runtime settings.
    exec python3 -m django "$@"
    ;;
run)
    [ "$#" -gt 0 ] || die "run: give the program to run (e.g. celery -A proj worker)"
    find_project
    exec "$@"
    ;;
-h | --help | help)
    sed -n '2,9s/^# \{0,1\}//p' "$0"
    ;;
*)
    die "unknown command '$command': expected serve, migrate, db-init, manage ARGS or run CMD ARGS"
    ;;
esac
