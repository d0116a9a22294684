#!/usr/bin/env bash
# install.sh: install, upgrade and start a kameng shop from this checkout.
#
# Re-running it is safe: it reuses the virtualenv, reinstalls the code from
# the checkout, migrates the existing database in place (the data is kept)
# and restarts the shop. Run `./install.sh --help` for the options.
set -euo pipefail

usage() {
    cat <<'EOF'
Usage: ./install.sh [OPTIONS]

Install (or upgrade) kameng from this checkout and start a shop.

  --data DIR            data directory: config, key file, SQLite database, log
                        (default: ./data in the checkout)
  --venv DIR            virtualenv to create or reuse (default: ./.venv)
  --dev                 also install the test tools (pytest, WebTest, playwright…)
  --no-start            install and set up, but do not start the shop
  --admin-email EMAIL   first admin's email (new shop only; default admin@kameng.local)
  --admin-password PW   first admin's password (new shop only; default: generated
                        and printed once)
  --systemd             (root) run the shop as systemd services kameng-web and
                        kameng-worker under a dedicated system user `kameng`,
                        started at boot, instead of a background process
  --domain NAME         (root) public domain of the shop: the new shop's base URL
                        is https://NAME, and an nginx reverse proxy site for NAME
                        is written to /etc/nginx/sites-available/kameng
  -h, --help            show this help

A new shop (no DIR/kameng.ini yet) is created with `kameng init --demo`: a demo
catalog and the sandbox test gateway (it moves no money), and an admin account
whose password is printed once. An existing shop is upgraded in place with
`kameng migrate`.

Environment: PYTHON names the interpreter to use (default python3, >= 3.11).

Examples:
  ./install.sh                                   a demo shop on http://127.0.0.1:6543
  ./install.sh --dev --no-start && .venv/bin/pytest        run the tests
  sudo ./install.sh --data /srv/kameng --systemd --domain shop.example.com
EOF
}

say() { printf '==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
warn() { printf 'install.sh: warning: %s\n' "$*" >&2; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

DATA=""
VENV=""
DEV=0
START=1
SYSTEMD=0
DOMAIN=""
ADMIN_EMAIL=""
ADMIN_PASSWORD=""

need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }

while [ $# -gt 0 ]; do
    case "$1" in
        -h|--help) usage; exit 0 ;;
        --data) need_value "$@"; DATA=$2; shift 2 ;;
        --data=*) DATA=${1#*=}; shift ;;
        --venv) need_value "$@"; VENV=$2; shift 2 ;;
        --venv=*) VENV=${1#*=}; shift ;;
        --dev) DEV=1; shift ;;
        --no-start) START=0; shift ;;
        --systemd) SYSTEMD=1; shift ;;
        --domain) need_value "$@"; DOMAIN=$2; shift 2 ;;
        --domain=*) DOMAIN=${1#*=}; shift ;;
        --admin-email) need_value "$@"; ADMIN_EMAIL=$2; shift 2 ;;
        --admin-email=*) ADMIN_EMAIL=${1#*=}; shift ;;
        --admin-password) need_value "$@"; ADMIN_PASSWORD=$2; shift 2 ;;
        --admin-password=*) ADMIN_PASSWORD=${1#*=}; shift ;;
        *) die "unknown option: $1 (see ./install.sh --help)" ;;
    esac
done

# Relative --data/--venv paths are taken from the directory you ran this in;
# the defaults live in the checkout.
DATA=$(realpath -m -- "${DATA:-$ROOT/data}")
VENV=$(realpath -m -- "${VENV:-$ROOT/.venv}")
INI="$DATA/kameng.ini"
PIDFILE="$DATA/kameng.pid"
LOGFILE="$DATA/kameng.log"
KAMENG="$VENV/bin/kameng"
IS_ROOT=0
[ "$(id -u)" -eq 0 ] && IS_ROOT=1
cd "$ROOT"

if [ -n "$DOMAIN" ]; then
    [[ "$DOMAIN" =~ ^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$ ]] \
        || die "--domain $DOMAIN is not a host name like shop.example.com"
    [ "$IS_ROOT" -eq 1 ] || die "--domain writes the nginx site in /etc/nginx: run it as root (sudo ./install.sh …)"
fi
if [ "$SYSTEMD" -eq 1 ]; then
    [ "$IS_ROOT" -eq 1 ] || die "--systemd installs system services: run it as root (sudo ./install.sh …)"
    command -v systemctl >/dev/null && [ -d /run/systemd/system ] \
        || die "--systemd needs a machine booted with systemd (systemctl is missing or systemd is not running here); leave --systemd out to run the shop as a background process"
fi
[ -f "$ROOT/setup.cfg" ] && [ -d "$ROOT/kameng" ] || die "$ROOT is not a kameng checkout"

# -- the shop's address (from an existing kameng.ini, else kameng init's default) --

LISTEN="127.0.0.1:6543"
if [ -f "$INI" ]; then
    l=$(sed -n 's/^[[:space:]]*listen[[:space:]]*=[[:space:]]*\([^[:space:]]*\).*/\1/p' "$INI" | head -n 1)
    [ -n "$l" ] && LISTEN=$l
fi
PORT=${LISTEN##*:}
CHECK_HOST=${LISTEN%:*}
case "$CHECK_HOST" in ""|0.0.0.0|"*"|"[::]"|::) CHECK_HOST=127.0.0.1 ;; esac
HEALTH_URL="http://$CHECK_HOST:$PORT/healthz"

port_busy() { timeout 3 bash -c "exec 3<>/dev/tcp/$CHECK_HOST/$PORT" 2>/dev/null; }

# The pid of the background server this script started for DATA, if it runs.
running_pid() {
    [ -f "$PIDFILE" ] || return 1
    local pid
    pid=$(tr -dc '0-9' < "$PIDFILE")
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
    # a pid can be reused: only a kameng process serving this shop counts
    tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$INI" || return 1
    printf '%s' "$pid"
}

stop_background() {
    local pid i
    if pid=$(running_pid); then
        say "Stopping the running shop (pid $pid)"
        kill "$pid" 2>/dev/null || true
        for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then
            warn "pid $pid did not stop within 10 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
        fi
    fi
    rm -f "$PIDFILE"
}

# Is this shop (DIR/kameng.ini) set up as systemd services by an earlier --systemd run?
systemd_installed() {
    command -v systemctl >/dev/null && [ -d /run/systemd/system ] \
        && [ -f /etc/systemd/system/kameng-web.service ] \
        && grep -qF -- "$INI" /etc/systemd/system/kameng-web.service
}
systemd_active() { systemd_installed && systemctl is-active --quiet kameng-web.service; }

# Fail before the long steps if another program holds the shop's port.
if [ "$START" -eq 1 ] && port_busy && ! running_pid >/dev/null && ! systemd_active; then
    die "port $PORT on $CHECK_HOST is already in use by another program (see: ss -ltnp 'sport = :$PORT'); stop it first, or use --no-start"
fi

# -- Python ------------------------------------------------------------------------

PYTHON=${PYTHON:-python3}
apt_install() {
    say "Installing Debian packages: $*"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v "$PYTHON" >/dev/null; then
    if [ "$IS_ROOT" -eq 1 ] && command -v apt-get >/dev/null && [ "$PYTHON" = python3 ]; then
        apt_install python3 python3-venv
    else
        die "$PYTHON not found: install Python 3.11 or newer (Debian/Ubuntu: sudo apt-get install python3 python3-venv)"
    fi
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "kameng needs Python 3.11 or newer; $PYTHON is $("$PYTHON" -c 'import sys; print(sys.version.split()[0])') (Debian 12 and Ubuntu 24.04 ship a recent enough python3; PYTHON=/path/to/python3.11 picks another one)"
say "Using $("$PYTHON" -c 'import sys; print(f"Python {sys.version.split()[0]} ({sys.executable})")')"

# -- virtualenv --------------------------------------------------------------------

if [ -x "$VENV/bin/python" ]; then
    "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
        || die "$VENV exists but its Python is older than 3.11 or broken: remove it (rm -rf $VENV) and run ./install.sh again"
    say "Reusing the virtualenv $VENV"
else
    if [ -e "$VENV" ] && [ -n "$(ls -A "$VENV" 2>/dev/null)" ]; then
        die "$VENV exists but is not a virtualenv: remove it, or pick another one with --venv DIR"
    fi
    say "Creating the virtualenv $VENV"
    if ! "$PYTHON" -m venv "$VENV" >/dev/null 2>&1; then
        rm -rf "$VENV"
        if [ "$IS_ROOT" -eq 1 ] && command -v apt-get >/dev/null; then
            note "python3 -m venv is not available; installing Debian's python3-venv"
            apt_install python3-venv
            "$PYTHON" -m venv "$VENV" || { rm -rf "$VENV"; die "could not create the virtualenv $VENV even with python3-venv installed"; }
        else
            die "'$PYTHON -m venv' is not available: install it as root (sudo apt-get install python3-venv) and run ./install.sh again"
        fi
    fi
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)

say "Upgrading pip"
"${PIP[@]}" install --quiet --upgrade pip

# -- kameng and its bundled plugins (not editable: the checkout can change without
# -- touching the running shop; re-run this script to upgrade) ---------------------

EXTRAS="postgresql,mysql"
[ "$DEV" -eq 1 ] && EXTRAS="$EXTRAS,test"
PLUGINS=()
for cfg in plugins/*/setup.cfg; do
    [ -f "$cfg" ] && PLUGINS+=("${cfg%setup.cfg}")
done
# setuptools builds in the source tree; a stale build/ could ship files that
# were since deleted from the checkout.
rm -rf build plugins/*/build
say "Installing kameng[$EXTRAS] and ${#PLUGINS[@]} bundled plugin(s): ${PLUGINS[*]:-none}"
# One pip run, so the plugins resolve against this checkout's kameng.
"${PIP[@]}" install --quiet ".[$EXTRAS]" "${PLUGINS[@]}"
"$KAMENG" --help >/dev/null || die "the kameng command does not run after the install (see above)"
note "kameng $("$VENV/bin/python" -c 'import kameng; print(kameng.__version__)') installed in $VENV"

# -- the shop's data -----------------------------------------------------------------

if [ "$SYSTEMD" -eq 1 ] && ! id -u kameng >/dev/null 2>&1; then
    say "Creating the system user kameng"
    useradd --system --home-dir "$DATA" --no-create-home --shell /usr/sbin/nologin \
        --comment "kameng shop" kameng
fi

NEW_SHOP=0
if [ ! -f "$INI" ]; then
    NEW_SHOP=1
    say "Creating a new shop in $DATA (kameng init --demo)"
    INIT=("$KAMENG" init --data "$DATA" --demo)
    [ -n "$ADMIN_EMAIL" ] && INIT+=(--admin-email "$ADMIN_EMAIL")
    [ -n "$ADMIN_PASSWORD" ] && INIT+=(--admin-password "$ADMIN_PASSWORD")
    [ -n "$DOMAIN" ] && INIT+=(--base-url "https://$DOMAIN")
    "${INIT[@]}"
else
    say "Upgrading the existing shop in $DATA (its data is kept)"
    if [ -n "$ADMIN_EMAIL$ADMIN_PASSWORD" ]; then
        note "--admin-email/--admin-password only apply to a new shop; to change a password run:"
        note "  $KAMENG -c $INI admin reset-password --email EMAIL"
    fi
    # the code has just been replaced: stop the old processes before the schema changes
    stop_background
    if systemd_installed; then
        say "Stopping kameng-web and kameng-worker for the upgrade"
        systemctl stop kameng-web.service kameng-worker.service
    fi
    "$KAMENG" -c "$INI" migrate
    if [ -n "$DOMAIN" ] && ! grep -qE "^kameng\.base_url[[:space:]]*=[[:space:]]*https://$DOMAIN/?[[:space:]]*$" "$INI"; then
        sed -i -E "s#^kameng\.base_url[[:space:]]*=.*#kameng.base_url = https://$DOMAIN#; s#^kameng\.secure_cookies[[:space:]]*=.*#kameng.secure_cookies = true#" "$INI"
        note "set kameng.base_url = https://$DOMAIN and kameng.secure_cookies = true in $INI"
    fi
fi

# -- nginx (with --domain) -----------------------------------------------------------

NGINX_STATE=""
if [ -n "$DOMAIN" ]; then
    site=/etc/nginx/sites-available/kameng
    say "Writing the nginx site $site for $DOMAIN"
    mkdir -p /etc/nginx/sites-available /etc/nginx/sites-enabled
    cat > "$site" <<EOF
# kameng reverse proxy, written by kameng's install.sh.
# HTTPS: run \`certbot --nginx -d $DOMAIN\` once DNS points $DOMAIN at this server.
server {
    listen 80;
    listen [::]:80;
    server_name $DOMAIN;

    client_max_body_size 25m;

    location / {
        proxy_pass http://127.0.0.1:$PORT;
        proxy_set_header Host \$host;
        proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto \$scheme;
        proxy_set_header X-Forwarded-Host \$host;
        proxy_read_timeout 600s;
    }
}
EOF
    ln -sfn "$site" /etc/nginx/sites-enabled/kameng
    if command -v nginx >/dev/null; then
        nginx -t || die "nginx -t rejected the configuration (see above); $site is written and linked"
        if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
            systemctl reload-or-restart nginx
            NGINX_STATE="reloaded"
        elif pidof nginx >/dev/null 2>&1; then
            nginx -s reload
            NGINX_STATE="reloaded"
        else
            NGINX_STATE="written (nginx is not running: start it with 'nginx' or 'systemctl start nginx')"
        fi
        note "nginx: $NGINX_STATE"
    else
        NGINX_STATE="missing"
        warn "nginx is not installed; the site is written and linked. Install it with: apt-get install nginx"
    fi
fi

# -- systemd services (with --systemd) -----------------------------------------------

if [ "$SYSTEMD" -eq 1 ]; then
    chown -R kameng:kameng "$DATA"
    chmod 0700 "$DATA"
    # the service user must reach the virtualenv and the data (a checkout under
    # /root is not readable by other users)
    runuser -u kameng -- "$KAMENG" --help >/dev/null 2>&1 \
        || die "the user kameng cannot run $KAMENG: the virtualenv, or the Python it was made from ($(readlink -f "$VENV/bin/python")), is in a folder closed to other users such as /root; put the checkout in /opt/kameng (or pass --venv /opt/kameng-venv) and use a system Python (PYTHON=/usr/bin/python3)"
    runuser -u kameng -- test -r "$INI" || die "the user kameng cannot read $INI (a parent folder is closed to it); use --data under /srv or /var/lib"
    stop_background
    for unit in web worker; do
        if [ "$unit" = web ]; then desc="kameng shop (web)"; cmd="serve --no-worker"
        else desc="kameng shop (background jobs)"; cmd="worker"; fi
        cat > "/etc/systemd/system/kameng-$unit.service" <<EOF
# written by kameng's install.sh
[Unit]
Description=$desc
After=network.target postgresql.service mariadb.service

[Service]
Type=simple
User=kameng
Group=kameng
WorkingDirectory=$DATA
Environment=PYTHONUNBUFFERED=1
ExecStart=$KAMENG -c $INI $cmd
Restart=on-failure
RestartSec=3
UMask=0077
NoNewPrivileges=true
PrivateTmp=true
ProtectSystem=full

[Install]
WantedBy=multi-user.target
EOF
    done
    say "Installed /etc/systemd/system/kameng-web.service and kameng-worker.service"
    systemctl daemon-reload
    if [ "$START" -eq 1 ]; then
        # enable --now, and restart so a re-run serves the freshly installed code
        systemctl enable --now kameng-web.service kameng-worker.service
        systemctl restart kameng-web.service kameng-worker.service
        note "enabled and started (they also start at boot)"
    else
        systemctl enable kameng-web.service kameng-worker.service
        note "enabled (start them with: systemctl start kameng-web kameng-worker)"
    fi
elif [ "$IS_ROOT" -eq 1 ] && [ "$(stat -c %U "$DATA")" = kameng ]; then
    # a shop set up with --systemd, upgraded without it: keep its files the service user's
    chown -R kameng:kameng "$DATA"
fi

# -- start ---------------------------------------------------------------------------

wait_healthy() {  # wait_healthy SECONDS [PID]
    "$VENV/bin/python" - "$HEALTH_URL" "$1" "${2:-0}" <<'PY'
import json, os, sys, time, urllib.request
url, limit, pid = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
deadline = time.monotonic() + limit
while time.monotonic() < deadline:
    try:
        with opener.open(url, timeout=3) as r:
            if r.status == 200 and json.load(r).get("status") == "ok":
                sys.exit(0)
    except Exception:
        pass
    if pid:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            sys.exit(2)
    time.sleep(0.3)
sys.exit(1)
PY
}

STARTED=0
if [ "$SYSTEMD" -eq 0 ] && systemd_installed; then
    # set up with --systemd earlier: keep running it that way
    SYSTEMD=1
    if [ "$START" -eq 1 ]; then
        say "This shop runs as the systemd services kameng-web and kameng-worker: starting them"
        systemctl restart kameng-web.service kameng-worker.service
    fi
fi
if [ "$START" -eq 1 ] && [ "$SYSTEMD" -eq 0 ]; then
    stop_background
    port_busy && die "port $PORT on $CHECK_HOST is already in use by another program (see: ss -ltnp 'sport = :$PORT'); the shop is installed in $DATA but not started"
    say "Starting the shop in the background (log: $LOGFILE)"
    nohup "$KAMENG" -c "$INI" serve >> "$LOGFILE" 2>&1 < /dev/null &
    echo $! > "$PIDFILE"
    rc=0
    wait_healthy 30 "$(cat "$PIDFILE")" || rc=$?
    if [ "$rc" -ne 0 ]; then
        [ "$rc" -eq 2 ] && warn "the server exited; the end of its log:" || warn "$HEALTH_URL did not answer within 30 s; the end of the log:"
        tail -n 20 "$LOGFILE" >&2 || true
        [ "$rc" -eq 2 ] && rm -f "$PIDFILE"
        die "the shop did not start"
    fi
    STARTED=1
elif [ "$START" -eq 1 ]; then
    rc=0
    wait_healthy 30 || rc=$?
    [ "$rc" -eq 0 ] || { systemctl --no-pager status kameng-web.service >&2 || true
        die "$HEALTH_URL did not answer within 30 s (journalctl -u kameng-web)"; }
    STARTED=1
fi

# -- what was done, and what is left ----------------------------------------------------

BASE_URL=$(sed -n 's/^[[:space:]]*kameng\.base_url[[:space:]]*=[[:space:]]*\([^[:space:]]*\).*/\1/p' "$INI" | head -n 1)
BASE_URL=${BASE_URL:-http://$CHECK_HOST:$PORT}
BASE_URL=${BASE_URL%/}
LOCAL_URL="http://$CHECK_HOST:$PORT"

echo
if [ "$NEW_SHOP" -eq 1 ]; then
    say "Done: a new shop in $DATA (demo catalog, sandbox test gateway)"
else
    say "Done: the shop in $DATA is upgraded"
fi
if [ "$STARTED" -eq 1 ]; then
    note "shop:   $LOCAL_URL/"
    note "admin:  $LOCAL_URL/admin"
    [ "$BASE_URL" != "$LOCAL_URL" ] && note "public: $BASE_URL/ (once DNS and HTTPS are set up)"
    if [ "$SYSTEMD" -eq 1 ]; then
        note "it runs as systemd services; stop: systemctl stop kameng-web kameng-worker"
        note "logs: journalctl -u kameng-web -u kameng-worker"
    else
        note "running in the background as pid $(cat "$PIDFILE"); log: $LOGFILE"
        note "stop:  kill \$(cat $PIDFILE)"
        note "start again: ./install.sh --data $DATA  (or: $KAMENG -c $INI serve)"
    fi
elif [ "$SYSTEMD" -eq 1 ]; then
    note "not started (--no-start). Start it with: systemctl start kameng-web kameng-worker"
else
    note "not started (--no-start). Start it with: $KAMENG -c $INI serve"
fi

echo
say "Still to do"
if [ "$NEW_SHOP" -eq 1 ]; then
    if [ -n "$ADMIN_PASSWORD" ]; then
        note "- sign in at $BASE_URL/admin as ${ADMIN_EMAIL:-admin@kameng.local} with the password you gave"
    else
        note "- sign in at $BASE_URL/admin with the email and password printed above, and change the password"
    fi
fi
note "- the sandbox gateway moves no money: enable a real payment gateway plugin before selling"
note "  ($KAMENG -c $INI plugins list; see docs/plugins.md)"
if [ -n "$DOMAIN" ]; then
    note "- point the DNS A/AAAA records of $DOMAIN at this server, then get the HTTPS certificate:"
    note "    apt-get install certbot python3-certbot-nginx && certbot --nginx -d $DOMAIN"
    note "  (until then the shop's secure cookies make signing in over plain http fail)"
    [ "$NGINX_STATE" = missing ] && note "- install nginx (apt-get install nginx), then: nginx -t && systemctl reload nginx"
elif [ "$SYSTEMD" -eq 0 ]; then
    note "- for a public shop: sudo ./install.sh --data $DATA --systemd --domain YOUR.DOMAIN"
    note "  (services that start at boot, and an nginx reverse proxy with HTTPS via certbot)"
fi
if "$KAMENG" --help 2>/dev/null | grep -qw backup; then
    note "- back up regularly: $KAMENG -c $INI backup"
fi
