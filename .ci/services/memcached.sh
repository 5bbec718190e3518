#!/usr/bin/env bash
# Two memcached servers for the test suite, on 127.0.0.1:11211 and :11212.
#
# Idempotent: installs memcached only when it is missing, starts only the
# instances that do not answer yet, and returns once both answer `version`.
set -euo pipefail

PORTS=(11211 11212)

answers() {
    # True when a memcached on 127.0.0.1:$1 replies to `version`.
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1 && printf 'version\r\n' >&3 && head -c 8 <&3" \
        2>/dev/null | grep -q '^VERSION'
}

if [[ ! -x /usr/bin/memcached ]]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends memcached \
        || { apt-get update && apt-get install -y --no-install-recommends memcached; }
fi

run_as=()
if [[ $(id -u) -eq 0 ]]; then
    run_as=(-u root)  # memcached refuses to run as root without it
fi

for port in "${PORTS[@]}"; do
    if ! answers "$port"; then
        /usr/bin/memcached -d -p "$port" -U 0 -l 127.0.0.1 -m 64 "${run_as[@]}"
    fi
done

for port in "${PORTS[@]}"; do
    for _ in $(seq 50); do
        answers "$port" && break
        sleep 0.1
    done
    answers "$port" || { echo "memcached on 127.0.0.1:$port did not start" >&2; exit 1; }
    echo "memcached answers on 127.0.0.1:$port"
done
