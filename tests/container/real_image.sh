#!/usr/bin/env bash
# Build container/Dockerfile for real and run the image, without a Docker daemon or a registry
# (docs/container.md, "Building and running the image without Docker"):
#   1. buildah and debootstrap from Debian's packages, when missing;
#   2. the base: a stand-in for python:3.11-slim-bookworm (debootstrap bookworm minbase + Debian's
#      python3.11), made once and kept under $REAL_IMAGE_CACHE with buildah's storage;
#   3. the sample project's build context laid out by deployer/archive.py, built cold, then again
#      unchanged (buildah build --isolation chroot --network host --pull=never --layers), pip
#      trusting the host's CA bundle through the Dockerfile's PIP_CERT build arg;
#   4. the smoke, in the image (buildah run --isolation chroot) against the machine's PostgreSQL
#      (127.0.0.1:5432, trust for postgres): db-init twice, migrate, check --deploy, then serve:
#      /health/ 200, the admin login page, a static file, the superuser's login.
# Prints the figures (build times, size, layers, uid) and exits non-zero on any failure; skips
# (exit 0, one line saying why) on a machine without root or apt-get.
#   tests/container/real_image.sh
# Environment: REAL_IMAGE_CACHE (default /var/cache/djdeploy-real-image), REAL_IMAGE_CA (the CA
# bundle pip trusts in the build; default /etc/ssl/certs/ca-certificates.crt).
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD

say() { printf 'real image: %s\n' "$*"; }
fail() {
    printf 'real image: FAILED: %s\n' "$*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || { say "skipped: needs root (buildah --isolation chroot, debootstrap)"; exit 0; }
command -v apt-get >/dev/null || { say "skipped: needs apt-get to install buildah and debootstrap"; exit 0; }

cache=${REAL_IMAGE_CACHE:-/var/cache/djdeploy-real-image}
ca=${REAL_IMAGE_CA:-/etc/ssl/certs/ca-certificates.crt}
base=localhost/python:3.11-slim-bookworm
image=localhost/djdeploy-sample:real-image
mirror=http://deb.debian.org/debian
python=$repo/.venv/bin/python
[ -x "$python" ] || python=python3
[ -f "$ca" ] || fail "no CA bundle at $ca (set REAL_IMAGE_CA)"

if ! command -v buildah >/dev/null || ! command -v debootstrap >/dev/null; then
    say "installing buildah and debootstrap"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q buildah debootstrap; } \
        >"$cache.apt.log" 2>&1 || fail "apt-get install buildah debootstrap: see $cache.apt.log"
fi
for tool in psql curl; do
    command -v "$tool" >/dev/null || fail "$tool is not installed (PostgreSQL's client, curl)"
done
# Storage of its own (overlay: vfs copies every layer, 14 min instead of 2 or 3).
bh() { buildah --root "$cache/storage" --runroot "$cache/run" --storage-driver overlay "$@"; }
# One Python call to the deployer's modules, from the checkout.
py() { PYTHONPATH=$repo "$python" -c "$@"; }
now() { date +%s.%N; }
since() { py "print(f'{$(now) - $1:.0f}')"; }

work=$(mktemp -d /tmp/djdeploy-real-image.XXXXXX)
containers=()
tenant=""
server_pid=""
# Every process below $1, depth first: a parent before its children.
descendants() {
    local child
    for child in $(ps -o pid= --ppid "$1"); do
        echo "$child"
        descendants "$child"
    done
}
cleanup() {
    if [ -n "$server_pid" ]; then
        # shellcheck disable=SC2046 # one pid per word
        kill -KILL $(descendants "$server_pid") "$server_pid" 2>/dev/null || true
    fi
    for c in "${containers[@]}"; do bh rm "$c" >/dev/null 2>&1 || true; done
    if [ -n "$tenant" ]; then
        psql -q -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null 2>&1 <<SQL || true
DROP DATABASE IF EXISTS "$tenant" WITH (FORCE);
DROP ROLE IF EXISTS "$tenant";
DROP ROLE IF EXISTS "${tenant}_owner";
SQL
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# -- the base ------------------------------------------------------------------------------------
# python:3.11-slim-bookworm as far as the Dockerfile can tell: Debian bookworm with Python 3.11
# as /usr/local/bin/python3 and python, pip and venv. Without docker-clean: the Dockerfile must
# clean apt's caches itself.
if ! bh inspect --type image "$base" >/dev/null 2>&1; then
    started=$(now)
    rootfs=$cache/rootfs
    if [ ! -x "$rootfs/usr/local/bin/python3" ]; then
        say "making the base with debootstrap (bookworm minbase + python3.11)"
        rm -rf "$rootfs"
        mkdir -p "$cache"
        debootstrap --variant=minbase \
            --include=python3.11,python3.11-venv,python3-distutils,python3-lib2to3,python3-pip-whl,python3-setuptools-whl,ca-certificates,netbase,tzdata \
            bookworm "$rootfs" "$mirror" >"$cache/debootstrap.log" 2>&1 ||
            fail "debootstrap failed: see $cache/debootstrap.log"
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/python3"
        ln -sf /usr/bin/python3.11 "$rootfs/usr/local/bin/python"
    fi
    say "importing the base as $base"
    c=$(bh from scratch)
    containers+=("$c")
    mnt=$(bh mount "$c")
    cp -a "$rootfs/." "$mnt/"
    bh umount "$c" >/dev/null
    bh config --env LANG=C.UTF-8 \
        --env PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin \
        --cmd python3 "$c"
    bh commit --quiet "$c" "$base" >/dev/null
    say "base ready in $(since "$started") s"
fi

# -- the build -----------------------------------------------------------------------------------
context=$work/context
mkdir -p "$context"
py "
import io, sys, tarfile
from deployer.archive import build_archive, container_dir, default_source
archive = build_archive(default_source(), container_dir())
tarfile.open(fileobj=io.BytesIO(archive.data)).extractall(sys.argv[1], filter='tar')
" "$context"

build() {
    bh build --quiet --isolation chroot --network host --pull=never --layers --force-rm "$@" \
        --build-arg PYTHON_IMAGE="$base" \
        --build-arg PIP_CERT=/run/djdeploy/ca.crt --volume "$ca:/run/djdeploy/ca.crt:ro" \
        -f .djdeploy/Dockerfile -t "$image" "$context" >"$work/build.log" 2>&1 ||
        fail "buildah build: $(tail -n 30 "$work/build.log")"
}
# What an interrupted run left in this script's own storage: working containers, the last image
# and the layers only it used.
bh rm --all >/dev/null 2>&1 || true
bh rmi --force "$image" >/dev/null 2>&1 || true
bh rmi --prune >/dev/null 2>&1 || true
say "building the sample project (cold)"
started=$(now)
build --no-cache
cold=$(since "$started")
started=$(now)
build
rebuild=$(since "$started")

size=$(bh images --format '{{.Size}}' "$image")
layers=$(bh inspect --type image --format '{{len .OCIv1.RootFS.DiffIDs}}' "$image")
user=$(bh inspect --type image --format '{{.OCIv1.Config.User}}' "$image")
# The package index args are the builder's: the final image's history must not name them.
if bh inspect --type image --format '{{range .History}}{{.CreatedBy}}{{end}}' "$image" | grep -q PIP_; then
    fail "the final image's history carries the builder's PIP_* args"
fi

# -- the smoke -----------------------------------------------------------------------------------
tenant=djt_realimg_$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
db_password=dbpw-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
su_password=su-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')
psql -q -h 127.0.0.1 -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<SQL ||
CREATE ROLE "${tenant}_owner" NOLOGIN;
CREATE ROLE "$tenant" LOGIN PASSWORD '$db_password' IN ROLE "${tenant}_owner";
CREATE DATABASE "$tenant" OWNER "${tenant}_owner";
SQL
    fail "cannot create the tenant database on 127.0.0.1:5432 as postgres"

port=$(py "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
host=app-test.example.run.app
ctr=$(bh from --pull-never "$image")
containers+=("$ctr")
# The job's and the service's environment (docs/container.md, "The environment contract"),
# over TCP to the machine's server instead of the Cloud SQL socket.
envs=(
    --env SECRET_KEY="sk-$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
    --env DB_NAME="$tenant" --env DB_USER="$tenant" --env DB_PASSWORD="$db_password"
    --env DB_HOST=127.0.0.1 --env DB_PORT=5432 --env "DB_EXTENSIONS=citext,pg_trgm"
    --env ALLOWED_HOSTS="$host" --env CSRF_TRUSTED_ORIGINS="https://$host"
    --env DJANGO_SUPERUSER_USERNAME=admin --env DJANGO_SUPERUSER_EMAIL=admin@example.com
    --env DJANGO_SUPERUSER_PASSWORD="$su_password"
    --env PORT="$port" --env WEB_CONCURRENCY=1 --env GUNICORN_THREADS=4
)
run() { bh run --isolation chroot --network host "${envs[@]}" "$ctr" -- "$@"; }
entry() {
    run /opt/djdeploy/entrypoint.sh "$@" >"$work/$1.log" 2>&1 ||
        fail "entrypoint $*: $(tail -n 20 "$work/$1.log")"
}

uid=$(run id -u)
[ "$uid" = 2000 ] || fail "the image runs as uid $uid, not 2000"
leftovers=$(run sh -c 'ls /var/cache/apt/*.bin /var/lib/apt/lists 2>/dev/null | grep -v "^/var/lib/apt/lists:$\|^partial$\|^lock$\|^auxfiles$" || true')
[ -z "$leftovers" ] || fail "apt caches left in the image: $leftovers"
if run sh -c 'command -v gcc || command -v cc' >/dev/null 2>&1; then fail "a compiler in the final image"; fi

say "smoke: db-init twice, migrate, check --deploy"
entry db-init
entry db-init
grep -q "no changes" "$work/db-init.log" ||
    fail "second db-init changed something: $(cat "$work/db-init.log")"
entry migrate
entry manage check --deploy --fail-level WARNING
applied=$(psql -At -h 127.0.0.1 -U postgres -d "$tenant" -c "SELECT count(*) FROM django_migrations")
[ "$applied" -gt 0 ] || fail "no migration recorded in the tenant database"

say "smoke: serve on 127.0.0.1:$port"
run /opt/djdeploy/entrypoint.sh serve >"$work/serve.log" 2>&1 &
server_pid=$!
base_url=http://127.0.0.1:$port
fetch() { curl -sS -o "$work/body" -w '%{http_code}' -H "Host: $host" -H 'X-Forwarded-Proto: https' "$@"; }
for _ in $(seq 120); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$base_url/health/")" = 200 ] && break
    kill -0 "$server_pid" 2>/dev/null || fail "serve exited: $(tail -n 20 "$work/serve.log")"
    sleep 0.5
done
[ "$(curl -s -o /dev/null -w '%{http_code}' "$base_url/health/")" = 200 ] ||
    fail "/health/ did not answer 200: $(tail -n 20 "$work/serve.log")"
[ "$(fetch -D "$work/headers" "$base_url/admin/login/")" = 200 ] || fail "admin login page: not 200"
login_page=$work/login.html
cp "$work/body" "$login_page"
grep -q 'name="password"' "$login_page" || fail "admin login page without a password field"
css=$(grep -o '/static/admin/css/base\.[0-9a-f]*\.css' "$login_page" | head -n 1)
[ -n "$css" ] || fail "admin login page links no hashed static file"
[ "$(fetch "$base_url$css")" = 200 ] || fail "static file $css: not 200"
grep -q 'body' "$work/body" || fail "static file $css is not the stylesheet"
# The CSRF cookie is Secure (HTTPS ends at Cloud Run's front end), so curl would neither keep
# it from plain HTTP nor send it back: taken from the headers, sent by hand.
cookie=$(sed -n 's/^[Ss]et-[Cc]ookie: \(csrftoken=[^;]*\).*/\1/p' "$work/headers")
token=$(sed -n 's/.*name="csrfmiddlewaretoken" value="\([^"]*\)".*/\1/p' "$login_page" | head -n 1)
[ -n "$cookie" ] && [ -n "$token" ] || fail "admin login page without a CSRF cookie and token"
login=$(fetch -H "Cookie: $cookie" -H "Referer: https://$host/admin/login/" -H "Origin: https://$host" \
    --data-urlencode "csrfmiddlewaretoken=$token" --data-urlencode username=admin \
    --data-urlencode "password=$su_password" --data-urlencode next=/admin/ \
    "$base_url/admin/login/?next=/admin/")
[ "$login" = 302 ] || fail "superuser login answered $login, not 302"

# `buildah run` panics on SIGTERM: stop gunicorn's master as Cloud Run would (SIGTERM) and let
# buildah run return. The master is the first gunicorn below the job (its workers come after).
master=""
for pid in $(descendants "$server_pid"); do
    if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q gunicorn; then
        master=$pid
        break
    fi
done
[ -n "$master" ] || fail "gunicorn's master process not found"
started=$(now)
kill -TERM "$master"
wait "$server_pid" || true
server_pid=""
stopped=$(since "$started")

say "OK: cold build ${cold} s, unchanged rebuild ${rebuild} s, image ${size}, ${layers} layers," \
    "user ${user} (uid ${uid}), ${applied} migrations applied, stopped in ${stopped} s"
