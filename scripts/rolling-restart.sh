#!/usr/bin/env bash
# Restarts chatd cluster nodes one after another (docs/deploy.md, "Rolling restarts").
#
#   scripts/rolling-restart.sh a b c
#
# Each node is the systemd unit chatd@<id> with its config in /etc/chatd/<id>.toml; its
# listen address is read from there. `systemctl restart` sends SIGTERM: the node drains (its
# clients move to the other nodes and recover there) and exits; systemd starts it again. The
# script then waits until the node's /healthz is 200 and it counts as many nodes as before.
# Knobs: CONFIG_DIR (/etc/chatd), WAIT_S (120).
set -euo pipefail

CONFIG_DIR=${CONFIG_DIR:-/etc/chatd}
WAIT_S=${WAIT_S:-120}

[ "$#" -ge 1 ] || { echo "usage: $0 NODE_ID..." >&2; exit 2; }

health() { # health ADDR -> prints the /healthz body, fails unless 200
    curl -fsS --max-time 3 "http://$1/healthz"
}

for id in "$@"; do
    conf="$CONFIG_DIR/$id.toml"
    addr=$(sed -n 's/^listen *= *"\(.*\)".*/\1/p' "$conf")
    [ -n "$addr" ] || { echo "no listen address in $conf" >&2; exit 1; }
    nodes=$(health "$addr" | sed -n 's/.*"nodes":\([0-9]*\).*/\1/p')
    echo "restarting chatd@$id ($addr; the cluster has ${nodes:-?} nodes)"
    systemctl restart "chatd@$id"
    deadline=$((SECONDS + WAIT_S))
    until body=$(health "$addr" 2>/dev/null) &&
        { [ -z "$nodes" ] || [ "$(sed -n 's/.*"nodes":\([0-9]*\).*/\1/p' <<<"$body")" = "$nodes" ]; }; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "chatd@$id is not back after ${WAIT_S}s: stopping here" >&2
            exit 1
        fi
        sleep 1
    done
    echo "chatd@$id is back: $body"
done
