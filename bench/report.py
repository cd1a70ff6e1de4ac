#!/usr/bin/env python3
"""Turns bench/results/<stamp>.jsonl (one loadgen JSON object per run) into <stamp>.json (medians
over repetitions, ratios, targets), <stamp>.md (the tables) and <stamp>.png (memory, CPU and
latency per peer). With --docs DIR, copies them to DIR/benchmarks.{json,png} and replaces the
part of DIR/benchmarks.md between the results markers.

Usage: report.py RESULTS.jsonl [--env JSON] [--docs DIR]
"""
import argparse
import json
import os
import shutil
import statistics
from collections import defaultdict

PEER_ORDER = ["ours", "raw", "socketioxide", "node", "python"]
PEER_NAME = {
    "ours": "ours (socketio crate)",
    "raw": "raw WebSocket floor",
    "socketioxide": "socketioxide",
    "node": "Node socket.io 4.8",
    "python": "python-socketio + uvicorn",
}
BEGIN = "<!-- results:begin (written by bench/report.py) -->"
END = "<!-- results:end -->"


def get(d, path):
    for k in path.split("."):
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def median(xs):
    xs = [x for x in xs if isinstance(x, (int, float))]
    return statistics.median(xs) if xs else None


def fmt(x, digits=1):
    if x is None:
        return "–"
    if isinstance(x, float):
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        return f"{x:.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def ratio(a, b):
    if a is None or b in (None, 0):
        return None
    return a / b


IDLE_TITLE = {
    "idle": "**1. Idle** — N WebSocket clients connected and in room `all`; server RSS. A fleet "
            "larger than one process's descriptor limit is spread over several server processes "
            "(one port and one child loadgen each, all held at once); their RSS is summed, each "
            "process's own baseline included.",
    "idle_browser": "**1b. Idle, browser headers** — the same, every WebSocket handshake "
                    "carrying the 16 request headers (≈ 700 bytes) of Chromium behind nginx "
                    "instead of the generator's 5.",
}

METRICS = {
    "idle": {
        "rss_per_conn_bytes": "results.rss_per_conn_bytes",
        "server_rss_kib": "results.server_rss_kib",
        "connected": "results.connected",
        "failed": "results.failed",
        "verify_delivered": "results.verify_delivered",
        "verify_expected": "results.verify_expected",
        "connects_per_s": "results.connects_per_s",
        "loadgen_cpu_share": "results.connect.loadgen_cpu_share",
        # server processes the fleet was spread over (absent: one)
        "shards": "params.shards",
    },
    "fanout": {
        "server_cpu_per_msg_us": "results.server_cpu_per_msg_us",
        # user-space only (utime); absent (None) in result files from before the split
        "server_user_cpu_per_msg_us": "results.server_user_cpu_per_msg_us",
        "server_cpu_s": "results.cpu.server_cpu_s",
        "server_user_cpu_s": "results.cpu.server_user_cpu_s",
        "server_sys_cpu_s": "results.cpu.server_sys_cpu_s",
        "delivered": "results.delivered",
        "expected": "results.expected",
        "delivered_per_s": "results.delivered_per_s",
        "p50_ms": "results.latency.p50_ms",
        "p99_ms": "results.latency.p99_ms",
        "max_ms": "results.latency.max_ms",
        "loadgen_cpu_share": "results.cpu.loadgen_cpu_share",
    },
    "storm": {
        "time_to_all_s": "results.time_to_all_s",
        "connected": "results.connected",
        "failures": "results.failures",
        "p50_ms": "results.connect_time.p50_ms",
        "p99_ms": "results.connect_time.p99_ms",
        "server_cpu_s": "results.cpu.server_cpu_s",
        "loadgen_cpu_share": "results.cpu.loadgen_cpu_share",
    },
    "churn": {
        "delivered_share": "results.delivered_share",
        "delivered_unique": "results.delivered_unique",
        "expected": "results.expected",
        "drops": "results.drops",
        "recovered": "results.recovered",
        "not_recovered": "results.not_recovered",
        "server_cpu_s": "results.cpu.server_cpu_s",
        "p99_ms": "results.latency.p99_ms",
        "loadgen_cpu_share": "results.cpu.loadgen_cpu_share",
    },
    "cluster": {
        "nodes_cpu_per_msg_us": "results.nodes_cpu_per_msg_us",
        "redis_cpu_per_msg_us": "results.redis_cpu_per_msg_us",
        "nodes_cpu_s": "results.nodes_cpu_s",
        "redis_cpu_s": "results.redis_cpu_s",
        "delivered": "results.delivered",
        "expected": "results.expected",
        "local_p99_ms": "results.latency_local.p99_ms",
        "cross_p50_ms": "results.latency_cross.p50_ms",
        "cross_p99_ms": "results.latency_cross.p99_ms",
        "loadgen_cpu_share": "results.cpu_a.loadgen_cpu_share",
    },
    "chat": {
        "stored_per_s": "results.stored_per_s",
        "stored": "results.stored",
        "delivered": "results.delivered",
        "expected": "results.expected",
        "e2e_p50_ms": "results.e2e_latency.p50_ms",
        "e2e_p99_ms": "results.e2e_latency.p99_ms",
        "ack_p99_ms": "results.ack_latency.p99_ms",
        "server_cpu_s": "results.cpu.server_cpu_s",
        "server_cpu_per_stored_msg_us": "results.server_cpu_per_stored_msg_us",
        "loadgen_cpu_share": "results.cpu.loadgen_cpu_share",
    },
    "cycles": {
        "rss_kib_before": "results.server_rss_kib_before",
        "rss_kib_first": "results.rss_kib_first",
        "rss_kib_final": "results.rss_kib_final",
        "ratio_final_to_first": "results.ratio_final_to_first",
        "growth_bytes_per_cycle": "results.growth_bytes_per_cycle",
        "first": "params.first",
        "ok": "results.ok",
        "failed": "results.failed",
        "cycles_per_s": "results.cycles_per_s",
        "server_cpu_s": "results.cpu.server_cpu_s",
        "loadgen_cpu_share": "results.cpu.loadgen_cpu_share",
    },
}


METRICS["idle_browser"] = METRICS["idle"]
METRICS["chat_cluster"] = dict(METRICS["chat"], **{
    "nodes": "params.nodes",
    "ack_p50_ms": "results.ack_latency.p50_ms",
    "db_cpu_s": "results.db_cpu_s",
    "redis_cpu_s": "results.redis_cpu_s",
    "server_side_cpu_s": "results.server_side_cpu_s",
    "server_side_cpu_per_stored_msg_us": "results.server_side_cpu_per_stored_msg_us",
})


def scenario_of(run):
    """Idle runs with a browser's request headers are their own table, and so are chat runs on
    PostgreSQL (one node or a cluster)."""
    if run["scenario"] == "idle" and get(run, "params.browser_headers"):
        return "idle_browser"
    if run["scenario"] == "chat" and get(run, "params.store") == "postgres":
        return "chat_cluster"
    return run["scenario"]


def size_of(run):
    p = run.get("params", {})
    if run["scenario"] == "chat":
        size = f'{p.get("rooms")}x{p.get("users")}@{p.get("rate")}/s'
        if p.get("store") == "postgres":
            n = p.get("nodes") or 1
            size += f', {n} node' + ("s" if n != 1 else "")
        return size
    if run["scenario"] == "cycles":
        return p.get("cycles")
    return p.get("clients")


def aggregate(runs):
    groups = defaultdict(list)
    errors = []
    machine = None
    for r in runs:
        if "error" in r:
            errors.append(r)
            continue
        machine = machine or r.get("machine")
        groups[(scenario_of(r), r["peer"], size_of(r))].append(r)
    agg = {}
    for (scen, peer, size), rs in groups.items():
        m = {name: median([get(r, path) for r in rs]) for name, path in METRICS[scen].items()}
        m["reps"] = len(rs)
        if scen == "cycles":
            # the RSS series of the first repetition, and whether the server was quiet (no
            # session, socket or room; its sockets back to the baseline) at every sample
            samples = get(rs[0], "results.samples") or []
            m["series"] = [[x.get("cycles"), x.get("rss_kib")] for x in samples]
            m["quiet_every_sample"] = all(
                get(x, "quiet.stats_zero") is not False
                and get(x, "quiet.socket_fds_back") is not False
                for r in rs for x in (get(r, "results.samples") or []))
            m["stats_checked"] = any(get(r, "params.stats_path") for r in rs)
        agg.setdefault(scen, {}).setdefault(str(size), {})[peer] = m
    return agg, errors, machine


def peers_in(d):
    return sorted(d, key=lambda p: PEER_ORDER.index(p) if p in PEER_ORDER else 99)


def targets(agg):
    out = []

    def add(name, ok, detail):
        out.append({"target": name, "met": ok, "detail": detail})

    for kind, tag in (("idle", ""), ("idle_browser", ", browser headers")):
        for size, d in sorted(agg.get(kind, {}).items(), key=lambda kv: int(kv[0])):
            o = get(d, "ours.rss_per_conn_bytes")
            n = get(d, "node.rss_per_conn_bytes")
            if o is None:
                continue
            add(f"idle RSS/conn ≤ 8 KB ({size}{tag})", o <= 8192, f"{o/1024:.1f} KiB")
            if n:
                add(f"idle RSS/conn ≤ ½ Node ({size}{tag})", o <= n / 2,
                    f"{o/1024:.1f} vs {n/1024:.1f} KiB ({o/n:.2f}×)")
    for size, d in sorted(agg.get("idle", {}).items(), key=lambda kv: int(kv[0])):
        o = get(d, "ours.rss_per_conn_bytes")
        if o is not None:
            rss = get(d, "ours.server_rss_kib")
            if str(size) == "100000" and rss:
                shards = int(get(d, "ours.shards") or 1)
                add("100k idle ≤ 1 GB RSS", rss * 1024 <= 1e9,
                    f"{rss * 1024 / 1e9:.2f} GB measured"
                    + (f" over {shards} processes" if shards > 1 else ""))
            elif rss and "100000" not in agg["idle"]:
                # not measurable here when RLIMIT_NOFILE caps a process below 100k sockets
                est = rss * 1024 + o * (100_000 - int(size))
                add(f"100k idle ≤ 1 GB RSS (extrapolated from N={int(size):,})", est <= 1e9,
                    f"≈{est / 1e9:.2f} GB at {o / 1024:.1f} KiB/conn")
    f = agg.get("fanout", {})
    for size, d in f.items():
        o = get(d, "ours.server_cpu_per_msg_us")
        sx = get(d, "socketioxide.server_cpu_per_msg_us")
        raw = get(d, "raw.server_cpu_per_msg_us")
        if o is not None and sx:
            add("fan-out CPU/msg ≤ 0.35× socketioxide", o <= 0.35 * sx,
                f"{o:.2f} vs {sx:.2f} µs ({o/sx:.2f}×)")
        ou = get(d, "ours.server_user_cpu_per_msg_us")
        sxu = get(d, "socketioxide.server_user_cpu_per_msg_us")
        if ou is not None and sxu:
            add("fan-out user-space CPU/msg ≤ 0.35× socketioxide (re-based: kernel TCP cost "
                "excluded)", ou <= 0.35 * sxu,
                f"{ou:.2f} vs {sxu:.2f} µs user ({ou/sxu:.2f}×)")
        if o is not None and raw:
            add("fan-out CPU/msg ≤ 1.5× raw floor", o <= 1.5 * raw,
                f"{o:.2f} vs {raw:.2f} µs ({o/raw:.2f}×)")
        op99 = get(d, "ours.p99_ms")
        peers = {p: v["p99_ms"] for p, v in d.items()
                 if p != "ours" and v.get("p99_ms") is not None}
        # the raw WebSocket floor is a peer too, but not a Socket.IO server: both verdicts
        sio = {p: v for p, v in peers.items() if p != "raw"}
        for name, group in (("every peer", peers), ("every Socket.IO peer", sio)):
            if op99 is not None and group:
                best = min(group.items(), key=lambda kv: kv[1])
                add(f"fan-out p99 below {name}", all(op99 < v for v in group.values()),
                    f"{op99:.1f} ms; best {best[0]} {best[1]:.1f} ms ({op99 / best[1]:.2f}×)")
    for size, d in agg.get("storm", {}).items():
        o = d.get("ours")
        if o:
            add(f"0 failures in a {size} connect storm",
                o["failures"] == 0 and o["connected"] == int(size),
                f'{fmt(o["connected"])} connected, {fmt(o["failures"])} failures, '
                f'{fmt(o["time_to_all_s"], 2)} s')
    for size, d in agg.get("cycles", {}).items():
        o = d.get("ours")
        if o and o["ratio_final_to_first"] is not None:
            add(f"RSS after {int(size):,} open/close cycles within 10 % of the RSS after the "
                f"first {fmt(o['first'])}", o["ratio_final_to_first"] <= 1.10,
                f'{o["ratio_final_to_first"]:.3f}× ({fmt(o["rss_kib_final"] / 1024)} vs '
                f'{fmt(o["rss_kib_first"] / 1024)} MiB)')
    for size, d in agg.get("churn", {}).items():
        o = d.get("ours")
        if o and o["delivered_share"] is not None:
            add("≥ 99.9 % delivered under churn (recovery)", o["delivered_share"] >= 0.999,
                f'{100 * o["delivered_share"]:.4f} % ({fmt(o["delivered_unique"])} of '
                f'{fmt(o["expected"])})')
    return out


def markdown(agg, errors, machine, env, stamp):
    L = []
    if machine:
        L.append(
            f'Machine: {machine.get("nproc")} CPUs ({machine.get("cpu_model")}), '
            f'{machine.get("mem_total_kib", 0) / 2**20:.1f} GiB RAM, Linux {machine.get("kernel")}; '
            f'RLIMIT_NOFILE {env.get("nofile", "?")}; server pinned to CPU 0 and load generator '
            f'to CPU 1: {"yes" if env.get("pinned") else "no"}; medians of '
            f'{env.get("reps", "?")} repetitions; run {stamp}.')
        L.append("")

    def table(header, rows):
        L.append("| " + " | ".join(header) + " |")
        L.append("|" + "|".join(" --- " for _ in header) + "|")
        for r in rows:
            L.append("| " + " | ".join(r) + " |")
        L.append("")

    for kind in ("idle", "idle_browser"):
        if kind not in agg:
            continue
        L.append(IDLE_TITLE[kind])
        L.append("")
        rows = []
        for size, d in sorted(agg[kind].items(), key=lambda kv: int(kv[0])):
            o = get(d, "ours.rss_per_conn_bytes")
            for p in peers_in(d):
                m = d[p]
                rows.append([fmt(int(size)), PEER_NAME.get(p, p), fmt(int(m.get("shards") or 1)),
                             fmt(m["rss_per_conn_bytes"] / 1024 if m["rss_per_conn_bytes"] else None, 2),
                             fmt(m["server_rss_kib"] / 1024 if m["server_rss_kib"] else None),
                             f'{fmt(m["connected"])} / {fmt(m["failed"])}',
                             f'{fmt(m["verify_delivered"])}/{fmt(m["verify_expected"])}',
                             fmt(m["connects_per_s"], 0),
                             fmt(ratio(o, m["rss_per_conn_bytes"]), 2) if p != "ours" else "1",
                             fmt(m["loadgen_cpu_share"], 2)])
        table(["N", "peer", "server processes", "RSS/conn KiB", "RSS MiB", "connected / failed", "broadcast check",
               "connects/s", "ours ÷ peer", "loadgen CPU share"], rows)
    if "fanout" in agg:
        L.append("**2. Fan-out** — N clients in one room, bursts of K broadcasts `{ts, i}`; server "
                 "CPU per delivered message (user + kernel, and user-space only), latency from the "
                 "payload timestamp.")
        L.append("")
        rows = []
        for size, d in agg["fanout"].items():
            o = get(d, "ours.server_cpu_per_msg_us")
            ou = get(d, "ours.server_user_cpu_per_msg_us")
            op99 = get(d, "ours.p99_ms")
            for p in peers_in(d):
                m = d[p]
                # .get: medians from before the user/system split have no user figure
                mu = m.get("server_user_cpu_per_msg_us")
                rows.append([fmt(int(size)), PEER_NAME.get(p, p),
                             fmt(m["server_cpu_per_msg_us"], 2),
                             fmt(mu, 2),
                             f'{fmt(m["delivered"])} / {fmt(m["expected"])}',
                             fmt(m["delivered_per_s"], 0),
                             fmt(m["p50_ms"]), fmt(m["p99_ms"]), fmt(m["max_ms"]),
                             fmt(ratio(o, m["server_cpu_per_msg_us"]), 2) if p != "ours" else "1",
                             (fmt(ratio(ou, mu), 2) if p != "ours"
                              else ("1" if ou is not None else "–")),
                             fmt(ratio(op99, m["p99_ms"]), 2) if p != "ours" else "1",
                             fmt(m["loadgen_cpu_share"], 2)])
        table(["N", "peer", "CPU µs/msg", "user µs/msg", "delivered / expected", "msgs/s",
               "p50 ms", "p99 ms", "max ms", "ours ÷ peer (CPU)", "ours ÷ peer (user CPU)",
               "ours ÷ peer (p99)", "loadgen CPU share"], rows)
    if "storm" in agg:
        L.append("**4. Connect storm** — N clients at once over polling, then upgrade to "
                 "WebSocket, then an echo round trip.")
        L.append("")
        rows = []
        for size, d in agg["storm"].items():
            o = get(d, "ours.time_to_all_s")
            for p in peers_in(d):
                m = d[p]
                rows.append([fmt(int(size)), PEER_NAME.get(p, p), fmt(m["time_to_all_s"], 2),
                             f'{fmt(m["connected"])} / {fmt(m["failures"])}',
                             fmt(m["p50_ms"]), fmt(m["p99_ms"]), fmt(m["server_cpu_s"], 2),
                             fmt(ratio(o, m["time_to_all_s"]), 2) if p != "ours" else "1",
                             fmt(m["loadgen_cpu_share"], 2)])
        table(["N", "peer", "time to all s", "connected / failures", "p50 ms", "p99 ms",
               "server CPU s", "ours ÷ peer (time)", "loadgen CPU share"], rows)
    if "churn" in agg:
        L.append("**5. Churn** — clients drop their TCP connection every 10–20 s and reconnect "
                 "with the recovery CONNECT `{pid, offset}` while one broadcast goes out every "
                 "100 ms. (socketioxide, python-socketio and the raw floor have no connection "
                 "state recovery.)")
        L.append("")
        rows = []
        for size, d in agg["churn"].items():
            for p in peers_in(d):
                m = d[p]
                share = m["delivered_share"]
                rows.append([fmt(int(size)), PEER_NAME.get(p, p),
                             f"{100 * share:.4f} %" if share is not None else "–",
                             f'{fmt(m["delivered_unique"])} / {fmt(m["expected"])}',
                             f'{fmt(m["recovered"])} / {fmt(m["drops"])}',
                             fmt(m["server_cpu_s"], 2), fmt(m["p99_ms"]),
                             fmt(m["loadgen_cpu_share"], 2)])
        table(["N", "peer", "delivered", "unique / expected", "recovered / drops",
               "server CPU s", "p99 ms (incl. replays)", "loadgen CPU share"], rows)
    if "cluster" in agg:
        L.append("**6. Cluster over Redis** — two nodes of the peer on the classic Redis adapter "
                 "(`@socket.io/redis-adapter` protocol) and one redis-server, all on CPU 0; N "
                 "clients spread evenly over both nodes; bursts of K broadcasts to `all` from "
                 "node A (B's clients get them through Redis). CPU of both nodes per delivered "
                 "message; latency on A (local) and on B (cross-node).")
        L.append("")
        rows = []
        for size, d in agg["cluster"].items():
            o = get(d, "ours.nodes_cpu_per_msg_us")
            op99 = get(d, "ours.cross_p99_ms")
            for p in peers_in(d):
                m = d[p]
                rows.append([fmt(int(size)), PEER_NAME.get(p, p),
                             fmt(m["nodes_cpu_per_msg_us"], 2), fmt(m["redis_cpu_per_msg_us"], 2),
                             f'{fmt(m["delivered"])} / {fmt(m["expected"])}',
                             fmt(m["local_p99_ms"]), fmt(m["cross_p50_ms"]), fmt(m["cross_p99_ms"]),
                             fmt(ratio(o, m["nodes_cpu_per_msg_us"]), 2) if p != "ours" else "1",
                             fmt(ratio(op99, m["cross_p99_ms"]), 2) if p != "ours" else "1",
                             fmt(m["loadgen_cpu_share"], 2)])
        table(["N", "peer", "nodes CPU µs/msg", "Redis CPU µs/msg", "delivered / expected",
               "local p99 ms", "cross-node p50 ms", "cross-node p99 ms",
               "ours ÷ peer (CPU)", "ours ÷ peer (cross p99)", "loadgen CPU share"], rows)
    if "chat" in agg:
        L.append("**3. Chat** — chatd's own `/chat` protocol, SQLite (durable, WAL) storage: R "
                 "rooms × U users each sending M messages/s; latency from send to every other "
                 "member's `message` event.")
        L.append("")
        rows = []
        for size, d in agg["chat"].items():
            for p in peers_in(d):
                m = d[p]
                rows.append([size, "chatd", fmt(m["stored_per_s"]),
                             f'{fmt(m["delivered"])} / {fmt(m["expected"])}',
                             fmt(m["e2e_p50_ms"]), fmt(m["e2e_p99_ms"]), fmt(m["ack_p99_ms"]),
                             fmt(m["server_cpu_s"], 2), fmt(m["server_cpu_per_stored_msg_us"], 0),
                             fmt(m["loadgen_cpu_share"], 2)])
        table(["R×U@M", "server", "stored msgs/s", "delivered / expected", "e2e p50 ms",
               "e2e p99 ms", "ack p99 ms", "server CPU s", "CPU µs/stored msg",
               "loadgen CPU share"], rows)
    if "chat_cluster" in agg:
        L.append("**3b. Chat on PostgreSQL, one node and a cluster** — the chat workload against "
                 "one chatd node on PostgreSQL, then against several nodes on the same "
                 "PostgreSQL and a Redis, users dealt round-robin over the nodes (every room has "
                 "members on every node, so every message crosses nodes). Every node, "
                 "PostgreSQL and Redis share CPU 0; the generator has CPU 1. CPU s: over the "
                 "measured phase; server-side CPU = nodes + PostgreSQL (postmaster and backends) "
                 "+ Redis.")
        L.append("")
        rows = []
        one = {}
        for size, d in agg["chat_cluster"].items():
            workload = size.split(",")[0]
            for p in peers_in(d):
                m = d[p]
                n = int(m["nodes"] or 1)
                if n == 1:
                    one[workload] = m
                base = one.get(workload)
                setup = ("1 node, PostgreSQL" if n == 1
                         else f"{n} nodes, PostgreSQL + Redis")
                if n == 1:
                    rel = "1"
                else:
                    rel = fmt(ratio(m["e2e_p99_ms"], get(base, "e2e_p99_ms")), 2) if base else "–"
                rows.append([workload, setup, fmt(m["stored_per_s"]),
                             f'{fmt(m["delivered"])} / {fmt(m["expected"])}',
                             fmt(m["e2e_p50_ms"]), fmt(m["e2e_p99_ms"]),
                             fmt(m["ack_p50_ms"]), fmt(m["ack_p99_ms"]),
                             fmt(m["server_cpu_s"], 2), fmt(m["db_cpu_s"], 2),
                             fmt(m["redis_cpu_s"], 2),
                             fmt(m["server_side_cpu_per_stored_msg_us"], 0),
                             rel,
                             fmt(m["loadgen_cpu_share"], 2)])
        table(["R×U@M", "setup", "stored msgs/s", "delivered / expected", "e2e p50 ms",
               "e2e p99 ms", "ack p50 ms", "ack p99 ms", "nodes CPU s", "PostgreSQL CPU s",
               "Redis CPU s", "server-side CPU µs/stored msg", "e2e p99 ÷ 1 node",
               "loadgen CPU share"], rows)
    if "cycles" in agg:
        L.append("**6. Open/close cycles** — sessions open, are put in room `all`, exchange one "
                 "`echo` and close, many at a time, over WebSocket, polling and polling upgraded "
                 "to WebSocket in turn; server RSS read with no session open (ours: its "
                 "`/bench/stats` at zero sessions, sockets and rooms; every peer: its sockets "
                 "back to the count before the first cycle; then 1 s).")
        L.append("")
        rows = []
        series = []
        for size, d in sorted(agg["cycles"].items(), key=lambda kv: int(kv[0])):
            for p in peers_in(d):
                m = d[p]
                mib = lambda k: fmt(m[k] / 1024, 1) if m[k] else "–"
                rows.append([fmt(int(size)), PEER_NAME.get(p, p), mib("rss_kib_before"),
                             f'{mib("rss_kib_first")} (after {fmt(m["first"])})',
                             mib("rss_kib_final"), fmt(m["ratio_final_to_first"], 3),
                             fmt(m["growth_bytes_per_cycle"], 2),
                             f'{fmt(m["ok"])} / {fmt(m["failed"])}',
                             ("yes" if m["quiet_every_sample"] else "no")
                             + (" (stats)" if m["stats_checked"] else " (sockets)"),
                             fmt(m["cycles_per_s"], 0), fmt(m["loadgen_cpu_share"], 2)])
                series.append(f'{PEER_NAME.get(p, p)}: ' + ", ".join(
                    f"{fmt(c)} → {fmt(r / 1024, 1)}" for c, r in m["series"] if r))
        table(["cycles", "peer", "RSS before MiB", "RSS first MiB", "RSS final MiB",
               "final ÷ first", "growth B/cycle", "ok / failed", "quiet at every sample",
               "cycles/s", "loadgen CPU share"], rows)
        L.append("RSS MiB after N cycles:")
        L.append("")
        for line in series:
            L.append(f"- {line}")
        L.append("")
    t = targets(agg)
    if t:
        L.append("**Targets**")
        L.append("")
        table(["target", "met", "measured"],
              [[x["target"], "✅" if x["met"] else "❌", x["detail"]] for x in t])
    if errors:
        L.append("Runs that failed: " + "; ".join(f'{e["peer"]} {e["scenario"]}: {e["error"]}'
                                                  for e in errors))
        L.append("")
    return "\n".join(L), t


def plot(agg, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not available: no plot")
        return False
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    colors = {"ours": "#d9480f", "raw": "#868e96", "socketioxide": "#1c7ed6",
              "node": "#2b8a3e", "python": "#7048e8"}

    def bars(ax, title, ylabel, series, log=False):
        names = [p for p in PEER_ORDER if p in series and series[p] is not None]
        vals = [series[p] for p in names]
        ax.bar([PEER_NAME[p].split(" (")[0] for p in names], vals,
               color=[colors[p] for p in names])
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:.3g}", ha="center", va="bottom", fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(ylabel)
        if log:
            ax.set_yscale("log")
        ax.tick_params(axis="x", labelrotation=25, labelsize=8)

    idle = agg.get("idle", {})
    if idle:
        # one group of bars per peer, one bar per fleet size (10k, 50k, 100k, ...)
        sizes = sorted(idle, key=int)
        names = [p for p in PEER_ORDER if any(p in idle[s] for s in sizes)]
        ax = axes[0]
        w = 0.8 / len(sizes)
        for k, size in enumerate(sizes):
            xs, vals, cols = [], [], []
            for i, p in enumerate(names):
                m = idle[size].get(p)
                if m and m["rss_per_conn_bytes"]:
                    xs.append(i - 0.4 + w * (k + 0.5))
                    vals.append(m["rss_per_conn_bytes"] / 1024)
                    cols.append(colors[p])
            ax.bar(xs, vals, w * 0.92, color=cols, alpha=0.45 + 0.55 * (k + 1) / len(sizes))
            for x, v in zip(xs, vals):
                ax.text(x, v, f"{v:.3g}", ha="center", va="bottom", fontsize=6.5)
        ax.set_xticks(list(range(len(names))))
        ax.set_xticklabels([PEER_NAME[p].split(" (")[0] for p in names], rotation=25, fontsize=8)
        ax.set_ylabel("server RSS per connection (KiB)")
        label = ", ".join(f"{int(s) // 1000}k" for s in sizes)
        ax.set_title(f"Idle memory, N = {label} (light to dark)", fontsize=10)
    fan = agg.get("fanout", {})
    if fan:
        size = next(iter(fan))
        bars(axes[1], f"Fan-out CPU, N={int(size):,}", "server CPU µs per delivered message",
             {p: m["server_cpu_per_msg_us"] for p, m in fan[size].items()}, log=True)
        d = fan[size]
        names = [p for p in PEER_ORDER if p in d]
        x = range(len(names))
        w = 0.38
        ax = axes[2]
        ax.bar([i - w / 2 for i in x], [d[p]["p50_ms"] or 0 for p in names], w, label="p50",
               color=[colors[p] for p in names], alpha=0.55)
        ax.bar([i + w / 2 for i in x], [d[p]["p99_ms"] or 0 for p in names], w, label="p99",
               color=[colors[p] for p in names])
        ax.set_xticks(list(x))
        ax.set_xticklabels([PEER_NAME[p].split(" (")[0] for p in names], rotation=25, fontsize=8)
        ax.set_yscale("log")
        ax.set_ylabel("latency ms (light: p50, dark: p99)")
        ax.set_title(f"Fan-out latency, N={int(size):,}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("jsonl")
    ap.add_argument("--env", default="{}")
    ap.add_argument("--docs")
    a = ap.parse_args()
    runs = [json.loads(l) for l in open(a.jsonl) if l.strip()]
    env = json.loads(a.env)
    agg, errors, machine = aggregate(runs)
    base = os.path.splitext(a.jsonl)[0]
    stamp = os.path.basename(base)
    md, t = markdown(agg, errors, machine, env, stamp)
    out = {"stamp": stamp, "machine": machine, "env": env, "medians": agg, "targets": t,
           "errors": errors}
    with open(base + ".json", "w") as f:
        json.dump(out, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(md + "\n")
    has_png = plot(agg, base + ".png")
    print(md)
    if a.docs:
        shutil.copy(base + ".json", os.path.join(a.docs, "benchmarks.json"))
        if has_png:
            shutil.copy(base + ".png", os.path.join(a.docs, "benchmarks.png"))
        doc = os.path.join(a.docs, "benchmarks.md")
        text = open(doc).read() if os.path.exists(doc) else f"{BEGIN}\n{END}\n"
        if BEGIN in text and END in text:
            head, rest = text.split(BEGIN, 1)
            _, tail = rest.split(END, 1)
            text = f"{head}{BEGIN}\n\n{md}\n{END}{tail}"
            with open(doc, "w") as f:
                f.write(text)


if __name__ == "__main__":
    main()
