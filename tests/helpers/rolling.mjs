// A rolling restart of a chatd cluster (tests/helpers/cluster.mjs) while stock socket.io-client
// clients chat, and what every client saw: shared by tests/cluster/rolling.test.mjs (hundreds of
// clients, asserted) and bench/rolling.mjs (thousands, reported).
//
//   const report = await rollingRestart(cluster, { clients: 300, rooms: 30, window: 3000 });
//   report.lost, report.duplicated, report.unrecovered, report.peakReconnectsPerSecond, ...
//
// Each client joins one room (client i → room i % rooms) and sends a message every `sendEvery`
// ms, resending the same id until it is acked ok (a move may swallow an ack). The nodes are
// stopped with SIGTERM one after the other (each drains: refuses new connections, tells its
// clients `moving`, closes them spread over --drain-window-ms, exits 0) and started again.
import { chat, nextEvent, nextId, TRANSPORTS } from './chatd.mjs';

/** Largest number of timestamps within any `span` ms (a sliding window over sorted times). */
export function peakWithin(times, span = 1000) {
  const sorted = [...times].sort((a, b) => a - b);
  let peak = 0;
  for (let lo = 0, hi = 0; hi < sorted.length; hi++) {
    while (sorted[hi] - sorted[lo] >= span) lo++;
    peak = Math.max(peak, hi - lo + 1);
  }
  return peak;
}

/**
 * Resolves once nginx gives node `id` a new session (a polling handshake through it lands
 * there): nginx skips a node for fail_timeout after it refused a request. Fails after `ms`.
 */
export async function inRotation(cluster, id, ms = 15000) {
  const until = Date.now() + ms;
  for (;;) {
    try {
      const res = await fetch(`${cluster.nginx.url}socket.io/?EIO=4&transport=polling`);
      const body = await res.text();
      const sid = /"sid":"([^"]+)"/.exec(body)?.[1];
      if (sid) {
        // Closed at once (`1`), so that no node waits for it when it drains.
        await fetch(`${cluster.nginx.url}socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: 'POST', body: '1' });
      }
      if (sid?.startsWith(`${id}-`)) return;
    } catch { /* nginx or the node not ready: again */ }
    if (Date.now() > until) throw new Error(`nginx did not send a new session to node ${id} within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100)); // the probing pace
  }
}

/**
 * Connects `clients` chat clients through the cluster's nginx, `batch` at a time; every third
 * on WebSocket only, the others polling then upgrade. `scope.after(fn)` receives their cleanup.
 */
async function connectAll(cluster, scope, { clients, rooms, batch, prefix }) {
  const all = [];
  for (let start = 0; start < clients; start += batch) {
    const group = [];
    for (let i = start; i < Math.min(clients, start + batch); i++) {
      group.push((async () => {
        const name = `${prefix}${i}`;
        const c = await chat(scope, cluster.proxy, name, {
          transport: i % 3 === 0 ? TRANSPORTS.websocket : TRANSPORTS.default,
          reconnection: true,
          reconnectionDelay: 100,
          reconnectionDelayMax: 500,
          timeout: 10000,
        });
        // As a real client does: its token takes its name back if the session cannot be.
        c.socket.auth = { username: name, token: c.token };
        Object.assign(c, {
          name, room: `roll-${i % rooms}`, seqs: [], acks: new Set(), reconnects: [],
          unrecovered: 0, moving: 0, timeline: [],
        });
        return c;
      })());
    }
    all.push(...await Promise.all(group));
  }
  return all;
}

/**
 * Runs the scenario and returns what the clients saw (`restartAll`, if given, restarts the
 * nodes instead of the SIGTERM-and-start loop):
 * { clients, rooms, messages, lost, duplicated, outOfOrder, unrecovered, neverMoved,
 *   notTold, presenceLeaves, disconnected (at the end),
 *   nodes: { id: { had (clients on it before), moved, spanMs, peakPerSecond } },
 *   peakReconnectsPerSecond, problems: [first few descriptions] }.
 */
export async function rollingRestart(cluster, {
  clients = 300,
  rooms = 30,
  sendEvery = 3000,
  batch = 25,
  nodes = ['a', 'b', 'c'],
  settleMs = 15000,
  scope,
  restartAll,
  log = () => {},
} = {}) {
  const cleanups = [];
  const own = scope ?? { after: (f) => cleanups.push(f) };
  try {
    const prefix = `r${nextId('').replace(/\W/g, '')}x`;
    const all = await connectAll(cluster, own, { clients, rooms, batch, prefix });
    log(`${all.length} clients connected`);
    const byRoom = new Map();
    for (const c of all) {
      if (!byRoom.has(c.room)) byRoom.set(c.room, []);
      byRoom.get(c.room).push(c);
    }
    for (const [room, members] of byRoom) {
      await members[0].ok('room:create', { room });
      await Promise.all(members.map((c) => c.ok('room:join', { room })));
    }
    log(`${byRoom.size} rooms joined`);

    const presenceLeaves = [];
    const connectErrors = new Map(); // message -> count
    const disconnects = new Map(); // reason -> count
    const names = new Set(all.map((c) => c.name));
    for (const c of all) {
      c.socket.on('message', (m) => { if (m.room === c.room) c.seqs.push(m.seq); });
      c.socket.on('moving', () => { c.moving += 1; });
      // What reached each engine (the transport level): a message a client misses is then
      // known to have been on the wire or not.
      const tap = () => {
        const engine = c.socket.io.engine;
        engine.on('packet', (p) => {
          const seq = typeof p.data === 'string' && /"room":"[^"]*","seq":(\d+)|"seq":(\d+)/.exec(p.data);
          if (seq) c.timeline.push(`${Date.now()} ${engine.transport?.name} frame ${seq[1] ?? seq[2]}`);
        });
        engine.on('upgrade', (t) => c.timeline.push(`${Date.now()} upgraded to ${t.name}`));
      };
      tap();
      c.socket.io.on('open', tap);
      c.socket.on('connect_error', (e) => {
        const why = `${e.message}${e.data ? ` ${JSON.stringify(e.data)}` : ''}`;
        connectErrors.set(why, (connectErrors.get(why) ?? 0) + 1);
      });
      c.socket.on('disconnect', (why) => {
        disconnects.set(why, (disconnects.get(why) ?? 0) + 1);
        // eslint-disable-next-line no-underscore-dangle
        c.timeline.push(`${Date.now()} gone ${why} at ${c.socket._lastOffset} after seq ${c.seqs.at(-1)}`);
      });
      c.socket.on('connect', () => {
        c.timeline.push(`${Date.now()} back on ${c.socket.io.engine?.id} recovered ${c.socket.recovered}`);
        c.reconnects.push(Date.now());
        if (!c.socket.recovered) c.unrecovered += 1;
      });
      c.socket.on('presence', (p) => {
        if (p.room === c.room && !p.online && names.has(p.user)) presenceLeaves.push(`${c.name} saw ${p.user} leave`);
      });
    }

    // Everybody chats: a message every `sendEvery` ms, the same id again until acked ok.
    const acked = new Map([...byRoom.keys()].map((r) => [r, new Map()])); // room -> seq -> client
    const problems = [];
    let sending = true;
    let stoppedAt = 0;
    const senders = all.map(async (c, i) => {
      await new Promise((r) => setTimeout(r, (i * sendEvery) / all.length));
      while (sending) {
        const id = nextId(c.name);
        for (;;) {
          if (!sending && Date.now() - stoppedAt > settleMs) {
            problems.push(`${c.name}: a message never acked (connected: ${c.socket.connected})`);
            break;
          }
          let res;
          try {
            res = await c.socket.timeout(5000).emitWithAck('message:send', { room: c.room, id, text: `${c.name} ${id}` });
          } catch { /* no ack (moved meanwhile): the same id again */ }
          if (res?.ok) {
            acked.get(c.room).set(res.message.seq, c);
            c.timeline.push(`${Date.now()} sent ${res.message.seq} on ${c.socket.io.engine?.id}`);
            c.acks.add(res.message.seq);
            break;
          }
          if (res && !['unavailable', 'overloaded', 'rate_limited'].includes(res.error?.code ?? res.code)) {
            problems.push(`${c.name}: ${JSON.stringify(res)}`);
            break;
          }
          await new Promise((r) => setTimeout(r, 50));
        }
        await new Promise((r) => setTimeout(r, sendEvery));
      }
    });

    // One node after the other: SIGTERM, it exits 0 once drained, it starts again (or
    // whatever `restartAll` does instead, then nothing is measured per node).
    const perNode = {};
    if (restartAll) await restartAll();
    for (const id of restartAll ? [] : nodes) {
      const before = all.map((c) => c.reconnects.length);
      const told = all.map((c) => c.moving);
      const had = all.filter((c) => c.socket.io.engine?.id?.startsWith(`${id}-`)).length;
      const exit = await cluster.kill(id, 'SIGTERM');
      if (exit.code !== 0) problems.push(`node ${id} exit ${JSON.stringify(exit)}`);
      // Its clients, told they move, reconnect elsewhere (the last ones maybe after it exited).
      const away = (c, i) => c.moving > told[i] && c.reconnects.length === before[i];
      const until = Date.now() + 10000;
      while (all.some(away) && Date.now() < until) {
        const c = all.find(away);
        await nextEvent(c.socket, 'connect', { ms: Math.max(1, until - Date.now()) }).catch(() => {});
      }
      const moved = all.filter((c, i) => c.reconnects.length > before[i]);
      const times = all.flatMap((c, i) => (c.reconnects.length > before[i] ? [c.reconnects[before[i]]] : []));
      perNode[id] = {
        had,
        moved: moved.length,
        spanMs: times.length ? Math.max(...times) - Math.min(...times) : 0,
        peakPerSecond: peakWithin(times),
      };
      log(`node ${id}: ${JSON.stringify(perNode[id])}`);
      await cluster.restartNode(id);
      // As the documented procedure: the next node only once nginx sends new sessions here.
      await inRotation(cluster, id);
    }
    sending = false;
    stoppedAt = Date.now();
    await Promise.all(senders);
    log(`senders stopped; ${all.filter((c) => !c.socket.connected).length} clients not connected`);

    // Wait (on events) until every client has every acked message of its room, or settleMs.
    const complete = (c) => [...acked.get(c.room).keys()].every((s) => c.acks.has(s) || c.seqs.includes(s));
    const deadline = Date.now() + settleMs;
    while (!all.every(complete) && Date.now() < deadline) {
      await nextEvent(all.find((c) => !complete(c)).socket, 'message', { ms: Math.max(1, deadline - Date.now()) }).catch(() => {});
    }

    let lost = 0;
    let duplicated = 0;
    let outOfOrder = 0;
    for (const c of all) {
      const mine = new Set([...c.seqs, ...c.acks]);
      const missing = [...acked.get(c.room).keys()].filter((s) => !mine.has(s));
      lost += missing.length;
      if (missing.length && problems.length < 20) {
        problems.push(`${c.name} (${c.socket.id}) in ${c.room} misses ${missing.join(',')}; got ${c.seqs.join(',')}; ${c.timeline.join('; ')}`);
        for (const s of missing) {
          const by = acked.get(c.room).get(s);
          problems.push(`  ${s} was sent by ${by.name} (${by.socket.id}): ${by.timeline.join('; ')}`);
        }
      }
      const dups = c.seqs.length - new Set(c.seqs).size;
      duplicated += dups;
      if (dups && problems.length < 20) problems.push(`${c.name} got ${dups} message(s) twice`);
      for (let i = 1; i < c.seqs.length; i++) if (c.seqs[i] <= c.seqs[i - 1]) outOfOrder += 1;
    }
    const reconnectTimes = all.flatMap((c) => c.reconnects);
    return {
      clients: all.length,
      rooms: byRoom.size,
      messages: [...acked.values()].reduce((n, m) => n + m.size, 0),
      lost,
      duplicated,
      outOfOrder,
      unrecovered: all.filter((c) => c.unrecovered > 0).length,
      neverMoved: all.filter((c) => c.reconnects.length === 0).length,
      notTold: all.filter((c) => c.moving === 0).length,
      presenceLeaves: presenceLeaves.length,
      disconnected: all.filter((c) => !c.socket.connected).length,
      connectErrors: Object.fromEntries(connectErrors),
      disconnects: Object.fromEntries(disconnects),
      nodes: perNode,
      peakReconnectsPerSecond: peakWithin(reconnectTimes),
      problems: [...problems, ...presenceLeaves.slice(0, 5)],
    };
  } finally {
    for (const f of cleanups) await f();
  }
}
