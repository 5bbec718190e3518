#!/usr/bin/env bash
# Start the Redis servers the test suite needs, unless they already answer:
#   - the main Redis on 127.0.0.1:6379 (tests use db 15),
#   - a 3-node Redis Cluster (no replicas) on 127.0.0.1:7000-7002.
# Idempotent: running it again with everything up changes nothing.
set -euo pipefail

HOST=127.0.0.1
PORTS=(7000 7001 7002)
BASE=/tmp/satchel-cluster

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server redis-tools
fi

answers() { redis-cli -h "$HOST" -p "$1" ping 2>/dev/null | grep -q PONG; }

wait_for() {  # wait_for PORT: up to 10 s for the server to answer PING
    for _ in $(seq 100); do answers "$1" && return 0; sleep 0.1; done
    echo "redis on $HOST:$1 did not start" >&2
    return 1
}

if ! answers 6379; then
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for 6379
fi

cluster_ok() { redis-cli -h "$HOST" -p "${PORTS[0]}" cluster info 2>/dev/null | grep -q '^cluster_state:ok'; }

if ! cluster_ok; then
    for port in "${PORTS[@]}"; do
        if ! answers "$port"; then
            mkdir -p "$BASE/$port"
            redis-server --port "$port" --cluster-enabled yes \
                --cluster-config-file "$BASE/nodes-$port.conf" --dir "$BASE/$port" \
                --save "" --appendonly no --daemonize yes --bind "$HOST" \
                --logfile "$BASE/$port/redis.log"
        fi
        wait_for "$port"
    done
    # Create the cluster only when no node knows of any slot yet; otherwise the
    # nodes are already joined and only need time to agree (handled below).
    if redis-cli -h "$HOST" -p "${PORTS[0]}" cluster info | grep -q '^cluster_slots_assigned:0'; then
        nodes=()
        for port in "${PORTS[@]}"; do nodes+=("$HOST:$port"); done
        redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes
    fi
    for _ in $(seq 300); do cluster_ok && break; sleep 0.1; done
    if ! cluster_ok; then
        echo "the Redis Cluster on $HOST:${PORTS[0]}-${PORTS[-1]} did not reach cluster_state:ok" >&2
        redis-cli -h "$HOST" -p "${PORTS[0]}" cluster info >&2 || true
        exit 1
    fi
fi
echo "redis on $HOST:6379 and the Redis Cluster on $HOST:${PORTS[0]}-${PORTS[-1]} are up"
