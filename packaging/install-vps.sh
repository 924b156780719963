#!/usr/bin/env bash
# Install eve-horizon on one Debian/Ubuntu VPS with systemd. Idempotent: run it again to
# upgrade. `--dry-run` prints every step instead of doing it.
#
#   sudo packaging/install-vps.sh [--dry-run] [--source DIR|PACKAGE] [--workers "general code-review"]
#
# It creates the `eve` system user for workers (home /var/lib/eve) and `eve-api` for the
# API, a venv in /opt/eve/venv with eve-horizon, Node.js' Claude Code and cc-mirror's
# `mclaude` variant for `eve`, one env file per kind of process in /etc/eve (api.env for
# eve-api, worker.env for eve, migrate.env for root; each 0600, kept if it exists), and
# the systemd units.
set -euo pipefail

DRY_RUN=0
SOURCE="$(cd "$(dirname "$0")/.." && pwd)"
WORKERS="general"
PREFIX=/opt/eve
ETC=/etc/eve
STATE=/var/lib/eve
UNIT_DIR=/etc/systemd/system

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --source) SOURCE="$2"; shift ;;
        --workers) WORKERS="$2"; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "unknown option: $1 (try --help)" >&2; exit 2 ;;
    esac
    shift
done

run() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '+ %s\n' "$*"
    else
        "$@"
    fi
}

as_eve() {
    run runuser -u eve -- env HOME="$STATE" "$@"
}

if [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
    echo "run as root (sudo), or with --dry-run to see the steps" >&2
    exit 1
fi

echo "== packages"
run apt-get update -qq
run apt-get install -y -qq python3 python3-venv python3-pip nodejs npm git ca-certificates

echo "== user and directories"
if ! id eve >/dev/null 2>&1; then
    run useradd --system --home-dir "$STATE" --create-home --shell /usr/sbin/nologin eve
fi
if ! id eve-api >/dev/null 2>&1; then
    run useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin eve-api
fi
if ! id eve-slack >/dev/null 2>&1; then  # the Slack daemon (eve-slack.service, enabled by hand)
    run useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin eve-slack
fi
run install -d -o eve -g eve -m 0750 "$STATE" "$STATE/workspaces"
run install -d -o root -g root -m 0755 "$ETC"
run install -d -m 0755 "$PREFIX"

echo "== eve-horizon in $PREFIX/venv"
if [ ! -x "$PREFIX/venv/bin/python" ]; then
    run python3 -m venv "$PREFIX/venv"
fi
run "$PREFIX/venv/bin/pip" install -q --upgrade pip
run "$PREFIX/venv/bin/pip" install -q --upgrade "$SOURCE"

echo "== Claude Code and the mclaude variant (for the eve user)"
run npm install -g --silent @anthropic-ai/claude-code
as_eve npx --yes cc-mirror quick --provider mirror --name mclaude

echo "== configuration"
# least privilege: each file readable by its own unit's user only; the owner's DSN stays with root
for spec in api:eve-api worker:eve migrate:root slack:eve-slack; do
    name="${spec%%:*}" owner="${spec##*:}"
    if [ ! -f "$ETC/$name.env" ]; then
        run install -o "$owner" -g "$owner" -m 0600 "$SOURCE/packaging/systemd/$name.env.example" "$ETC/$name.env"
        echo "   wrote $ETC/$name.env (owner $owner, 0600): fill it in"
    else
        echo "   keeping existing $ETC/$name.env"
    fi
done

echo "== systemd units"
for unit in eve-api.service eve-worker@.service eve-slack.service eve-backup.service eve-backup.timer eve.target; do
    run install -m 0644 "$SOURCE/packaging/systemd/$unit" "$UNIT_DIR/$unit"
done
run systemctl daemon-reload
run systemctl enable eve.target eve-api.service eve-backup.timer
for type in $WORKERS; do
    run systemctl enable "eve-worker@$type.service"
done

cat <<NEXT
== done. Next:
   1. fill in $ETC/migrate.env, $ETC/api.env and $ETC/worker.env (packaging/README.md)
   2. sudo sh -c 'set -a; . $ETC/migrate.env; $PREFIX/venv/bin/eve db migrate && $PREFIX/venv/bin/eve db roles'
   3. bootstrap a tenant and key (packaging/README.md), then: systemctl start eve.target
NEXT
