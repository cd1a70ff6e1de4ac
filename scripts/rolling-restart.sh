#!/usr/bin/env bash
# Restarts chatd cluster nodes one after another (docs/deploy.md, "Rolling restarts").
#
#   scripts/rolling-restart.sh a b c
#
# Each node is the systemd unit chatd@<id> with its config in /etc/chatd/<id>.toml; its
# listen address is read from there. `systemctl restart` sends SIGTERM: the node drains (its
# clients move to the other nodes and recover there) and exits; systemd starts it again. The
# script then waits until the node's /healthz is 200 and it counts as many nodes as before,
# and SETTLE_S more seconds, so that nginx (fail_timeout=2s in docs/deploy/nginx-cluster.conf)
# sends new sessions to it again before the next node moves its clients.
# Knobs: CONFIG_DIR (/etc/chatd), WAIT_S (120), SETTLE_S (5), RESTART_CMD (how to restart a
# node; `{id}` and `{addr}` are replaced; default `systemctl restart chatd@{id}`; e.g.
# `curl -fsS -X POST http://{addr}/admin/drain` where a supervisor starts the node again).
set -euo pipefail

CONFIG_DIR=${CONFIG_DIR:-/etc/chatd}
WAIT_S=${WAIT_S:-120}
SETTLE_S=${SETTLE_S:-5}
RESTART_CMD=${RESTART_CMD:-'systemctl restart chatd@{id}'}

[ "$#" -ge 1 ] || { echo "usage: $0 NODE_ID..." >&2; exit 2; }

health() { # health ADDR -> prints the /healthz body, fails unless 200
    curl -fsS --max-time 3 "http://$1/healthz"
}
field() { # field NAME JSON -> the value of a top-level string or number field
    sed -n "s/.*\"$1\":\"\{0,1\}\([^,\"}]*\).*/\1/p" <<<"$2"
}

for id in "$@"; do
    conf="$CONFIG_DIR/$id.toml"
    addr=$(sed -n 's/^listen *= *"\(.*\)".*/\1/p' "$conf")
    [ -n "$addr" ] || { echo "no listen address in $conf" >&2; exit 1; }
    before=$(health "$addr" || true)
    nodes=$(field nodes "$before")
    echo "restarting chatd@$id ($addr; the cluster has ${nodes:-?} nodes)"
    cmd=${RESTART_CMD//\{id\}/$id}
    cmd=${cmd//\{addr\}/$addr}
    bash -c "$cmd" >/dev/null
    deadline=$((SECONDS + WAIT_S))
    # Back means: healthy, not the draining process, and seeing every node again.
    until body=$(health "$addr" 2>/dev/null) &&
        [ "$(field draining "$body")" != "true" ] &&
        { [ -z "$nodes" ] || [ "$(field nodes "$body")" = "$nodes" ]; }; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "chatd@$id is not back after ${WAIT_S}s: stopping here" >&2
            exit 1
        fi
        sleep 1
    done
    echo "chatd@$id is back: $body"
    [ "$id" = "${!#}" ] || sleep "$SETTLE_S"
done
