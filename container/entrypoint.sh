#!/bin/sh
# djdeploy container entrypoint. One image, three uses (docs/container.md):
#   serve          (default) gunicorn on 0.0.0.0:$PORT: the Cloud Run service
#   migrate        migrate, collectstatic (no --clear), superuser if missing: the migrate job
#   db-init        extensions and schema grants, idempotent: the db-init job
#   manage ARGS    any manage.py command
# Works outside a container too: APP_HOME (default /app) is the project root, and the runtime
# package is found beside this file.
set -eu

DJDEPLOY_HOME=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
APP_HOME=${APP_HOME:-/app}
DJANGO_SETTINGS_MODULE=${DJANGO_SETTINGS_MODULE:-djdeploy_runtime.settings}
PYTHONPATH="$DJDEPLOY_HOME:$APP_HOME${PYTHONPATH:+:$PYTHONPATH}"
export APP_HOME DJANGO_SETTINGS_MODULE PYTHONPATH

# One JSON line on stderr, in the shape Cloud Logging reads (severity, message).
log() {
    level=$1
    shift
    message=$(printf '%s' "$*" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' | tr '\n\t' '  ')
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

# Find the project's settings module (exported for djdeploy_runtime.settings) or fail clearly.
find_project() {
    [ -d "$APP_HOME" ] || die "APP_HOME $APP_HOME is not a directory"
    # discover logs its own one-line reason on failure.
    DJANGO_PROJECT_SETTINGS=$(python3 -m djdeploy_runtime.discover) || exit 2
    export DJANGO_PROJECT_SETTINGS
    cd "$APP_HOME"
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
    python3 -m djdeploy_runtime.dbwait || exit 1
    python3 manage.py migrate --noinput || die "migrate: manage.py migrate failed (exit $?)"
    # Never --clear: STATIC_ROOT may share storage with uploads (the old module lost media so).
    python3 manage.py collectstatic --noinput ||
        die "migrate: manage.py collectstatic failed (exit $?)"
    python3 -m djdeploy_runtime.superuser || die "migrate: superuser step failed (exit $?)"
    log INFO "migrate: done"
    ;;
db-init)
    require_env DB_NAME DB_USER DB_HOST
    exec python3 -m djdeploy_runtime.dbinit
    ;;
manage)
    find_project
    exec python3 manage.py "$@"
    ;;
-h | --help | help)
    sed -n '2,8s/^# \{0,1\}//p' "$0"
    ;;
*)
    die "unknown command '$command': expected serve, migrate, db-init or manage ARGS"
    ;;
esac
