#!/usr/bin/env bash
# A Valkey server on 127.0.0.1:6390, for the Redis stores' contract suite run
# against Valkey (tests/stores/test_valkey.py).
#
# Debian 12 ships Valkey in bookworm-backports: this adds that suite when it is
# missing and installs valkey-tools, which holds the server binary. The
# valkey-server package is not installed: its scripts would start a second
# server on Redis's port 6379. The binary runs as a server under the name
# valkey-server, through a symlink. Idempotent: nothing happens when Valkey answers.
set -euo pipefail

HOST=127.0.0.1
PORT=6390
BASE=/tmp/satchel-valkey

answers() { valkey-cli -h "$HOST" -p "$PORT" ping 2>/dev/null | grep -q PONG; }

if ! command -v valkey-cli >/dev/null || [[ ! -x /usr/bin/valkey-check-rdb ]]; then
    export DEBIAN_FRONTEND=noninteractive
    codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
    if ! apt-cache show valkey-tools >/dev/null 2>&1; then
        if [[ $codename == bookworm ]]; then
            cat > /etc/apt/sources.list.d/satchel-bookworm-backports.sources <<SOURCES
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
        fi
        apt-get update -q
    fi
    apt-get install -y -q --no-install-recommends valkey-tools
fi

if ! answers; then
    mkdir -p "$BASE"
    ln -sf /usr/bin/valkey-check-rdb "$BASE/valkey-server"  # the binary is a server under this name
    "$BASE/valkey-server" --port "$PORT" --bind "$HOST" --save "" --appendonly no \
        --daemonize yes --dir "$BASE" --logfile "$BASE/valkey.log"
fi

for _ in $(seq 100); do answers && break; sleep 0.1; done
answers || { echo "valkey on $HOST:$PORT did not start" >&2; cat "$BASE/valkey.log" >&2 || true; exit 1; }
echo "valkey $(valkey-cli -h "$HOST" -p "$PORT" info server | tr -d '\r' | sed -n 's/^valkey_version://p') answers on $HOST:$PORT"
