// The official Socket.IO Admin UI (@socket.io/admin-ui 0.5.1) against our server: sio-echo
// with --admin (SocketIo::instrument), driven with socket.io-client exactly as the UI's
// App.vue connects and listens, checked against the contract of the package's server code
// (dist/index.js): the auth flow and session id, config, server_stats, the development-mode
// socket and room events, the control events and their effect on real clients, read-only
// mode, and CORS for the hosted UI.
//
// A client that must NOT have been affected is checked with fences: the admin socket that
// sent a control event disconnects, and a second admin socket sees its `socket_disconnected`
// (the server handles one connection's packets in order, so the control event was handled
// before); then the client does an ack round trip (anything the server sent it before the
// ack would have arrived first).
//
// `cargo build -p socketio --example sio-echo` first.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import os from 'node:os';
import { startServer } from '../helpers/server.mjs';
import { once } from '../helpers/eio.mjs';
import {
  adminClient, adminFlags, appClient, ask, totals, PASSWORD, README_HASH, WAIT_MS,
} from '../helpers/admin.mjs';

const T = { timeout: 30000 };
const CREDENTIALS = { username: 'admin', password: PASSWORD };
const ALL_FEATURES = ['EMIT', 'JOIN', 'LEAVE', 'DISCONNECT', 'MJOIN', 'MLEAVE', 'MDISCONNECT',
  'AGGREGATED_EVENTS', 'ALL_EVENTS'];
const ISO_RE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** An admin client, connected; closed after the test. */
async function admin(t, server, opts = {}) {
  const a = adminClient(server, { auth: CREDENTIALS, ...opts });
  t.after(() => a.close());
  await a.connected();
  return a;
}

/** Fences: `sender` (an admin client) leaves, `watcher` sees it, then each client answers. */
async function fence(sender, watcher, clients) {
  const id = sender.socket.id;
  sender.close();
  await watcher.until('socket_disconnected', (nsp, sid) => nsp === '/admin' && sid === id);
  for (const c of clients) await ask(c, 'rooms');
}

describe('admin UI: authentication', () => {
  let server;
  before(async () => { server = await startServer('sio-echo', adminFlags()); });
  after(async () => { await server?.stop(); });

  test('wrong, missing or malformed credentials: "invalid credentials"', T, async () => {
    for (const auth of [
      { username: 'admin', password: 'wrong' },
      { username: 'root', password: PASSWORD },
      {},
      { username: 'admin', password: 42 },
      { sessionId: '0123456789abcdef' },
    ]) {
      const a = adminClient(server, { auth });
      const err = await a.refusal();
      a.close();
      assert.equal(err.message, 'invalid credentials', JSON.stringify(auth));
    }
  });

  test('good credentials: session then config; the session id lets the UI back in', T, async (t) => {
    const a = await admin(t, server);
    const [[sessionId]] = [await a.until('session')];
    assert.match(sessionId, /^[0-9a-f]{16}$/);
    const [config] = await a.until('config');
    assert.deepEqual(config, { supportedFeatures: ALL_FEATURES });
    assert.equal(a.events.session.length, 1);
    a.close();

    // As App.vue's created(): reconnect with the stored session id only.
    const again = await admin(t, server, { auth: { sessionId } });
    await again.until('config');
    // `session` comes before `config` when there is one: none for a session id.
    assert.equal(again.events.session.length, 0);
  });

  test('a hash from the package README ($2b$, cost 10) works too', T, async (t) => {
    const other = await startServer('sio-echo', adminFlags({ hash: README_HASH }));
    t.after(() => other.stop());
    const a = await admin(t, other);
    await a.until('session');
  });

  test('an invalid hash stops the server at start-up', T, async () => {
    await assert.rejects(
      startServer('sio-echo', adminFlags({ hash: 'not-a-hash' })),
      /exited before listening[\s\S]*InvalidPasswordHash/,
    );
  });

  test('without authentication anyone gets in, with no session', T, async (t) => {
    const open = await startServer('sio-echo', ['--admin']);
    t.after(() => open.stop());
    const a = await admin(t, open, { auth: {} });
    await a.until('config');
    assert.equal(a.events.session.length, 0);
  });
});

describe('admin UI: server_stats (production mode, exact counts)', () => {
  let server;
  before(async () => {
    server = await startServer('sio-echo', adminFlags({ extra: ['--admin-production'] }));
  });
  after(async () => { await server?.stop(); });

  test('config without ALL_EVENTS; no development events', T, async (t) => {
    const a = await admin(t, server, { wsOnly: true });
    const [config] = await a.until('config');
    assert.deepEqual(config.supportedFeatures, ALL_FEATURES.slice(0, -1));
    await appClient(t, server);
    await a.until('server_stats', (s) => s.clientsCount === 2);
    assert.equal(a.events.all_sockets.length, 0);
    assert.equal(a.events.socket_connected.length, 0);
  });

  test('every 2 s: identity, clients, polling clients, namespaces, aggregated events', T, async (t) => {
    const a = await admin(t, server, { wsOnly: true });
    await a.until('config');
    const ws = await appClient(t, server);
    const polling = await appClient(t, server, { transports: ['polling'] });
    const custom = await appClient(t, server, { nsp: '/custom' });
    const [stats] = await a.until('server_stats', (s) => s.clientsCount === 4);
    const pid = server.proc.pid;
    assert.equal(stats.serverId, `${os.hostname()}#${pid}`);
    assert.equal(stats.hostname, os.hostname());
    assert.equal(stats.pid, pid);
    assert.equal(typeof stats.uptime, 'number');
    assert.equal(stats.pollingClientsCount, 1);
    const ns = Object.fromEntries(stats.namespaces.map((n) => [n.name, n.socketsCount]));
    assert.deepEqual(ns, { '/': 2, '/admin': 1, '/custom': 1 });
    for (const e of stats.aggregatedEvents) {
      assert.equal(e.timestamp % 1000, 0, 'timestamps truncated to the second');
    }

    // Consecutive stats are 2 s apart.
    const [s1] = await a.next('server_stats');
    const [s2] = await a.next('server_stats');
    assert.ok(Math.abs(s2.uptime - s1.uptime - 2) < 0.5, `${s1.uptime} -> ${s2.uptime}`);

    polling.disconnect();
    custom.disconnect();
    ws.disconnect();
    await a.until('server_stats', (s) => s.clientsCount === 1 && s.pollingClientsCount === 0);
  });

  test('aggregated events count connections, disconnections by reason, packets and bytes', T, async () => {
    // A server of its own, so that the counts are exactly those of this test.
    const own = await startServer('sio-echo', adminFlags({ extra: ['--admin-production'] }));
    try {
      const a = adminClient(own, { auth: CREDENTIALS, wsOnly: true });
      await a.connected();
      // Each report holds what happened since the one before, as Node's: the admin's own
      // connection may be in a report sent before it joined. Counted: the reports after one
      // it got, all after the client below came.
      await a.until('server_stats');
      const from = a.events.server_stats.length;
      const after = () => a.events.server_stats.slice(from);
      const c = await appClient(null, own, { auth: {} });
      const text = 'é'.repeat(5000);
      assert.deepEqual(await ask(c, 'message-with-ack', text), text);
      c.disconnect();
      const seen = (k, n) => () => (totals(after())[k] ?? 0) >= n;
      await a.until('server_stats', seen('rawDisconnection:transport close', 1));
      // In: the client's CONNECT `0` with its auth `{}`, its EVENT, and its DISCONNECT `1`;
      // bytes as UTF-8 without the type digit.
      const event = `20${JSON.stringify(['message-with-ack', text])}`;
      const inBytes = ['0{}', event, '1'].reduce((n, s) => n + Buffer.byteLength(s), 0);
      await a.until('server_stats', seen('bytesIn', inBytes));
      const sum = totals(after());
      assert.equal(sum.rawConnection, 1);
      assert.equal(sum['rawDisconnection:transport close'], 1);
      assert.equal(sum.packetsIn, 3);
      assert.equal(sum.bytesIn, inBytes);
      // Out: at least the ack carrying the text back, the CONNECT reply and `auth`.
      assert.ok(sum.packetsOut >= 3, JSON.stringify(sum));
      assert.ok(sum.bytesOut >= Buffer.byteLength(text), JSON.stringify(sum));
      a.close();
    } finally {
      await own.stop();
    }
  });
});

describe('admin UI: development mode', () => {
  let server;
  before(async () => { server = await startServer('sio-echo', adminFlags()); });
  after(async () => { await server?.stop(); });

  test('all_sockets describes every socket as the UI expects', T, async (t) => {
    const c = await appClient(t, server, { transports: ['polling'] });
    await ask(c, 'join', 'lobby');
    await ask(c, 'set-data', { user: 'alice' });
    const a = await admin(t, server);
    const [all] = await a.until('all_sockets');
    const s = all.find((x) => x.id === c.id);
    assert.ok(s, JSON.stringify(all));
    assert.deepEqual(Object.keys(s), ['id', 'clientId', 'transport', 'nsp', 'data', 'handshake', 'rooms']);
    assert.equal(s.clientId, c.io.engine.id.slice(0, 12));
    assert.equal(s.transport, 'polling');
    assert.equal(s.nsp, '/');
    assert.deepEqual(s.data, { user: 'alice' });
    assert.deepEqual([...s.rooms].sort(), [c.id, 'lobby'].sort());
    const hs = s.handshake;
    assert.deepEqual(Object.keys(hs).sort(),
      ['address', 'headers', 'issued', 'query', 'secure', 'time', 'url', 'xdomain']);
    assert.equal(hs.address, '127.0.0.1');
    assert.equal(hs.headers.host, `127.0.0.1:${server.port}`);
    assert.equal(hs.query.EIO, '4');
    assert.equal(hs.query.transport, 'polling');
    assert.ok(Math.abs(hs.issued - Date.now()) < 60000);
    assert.equal(hs.secure, false);
    assert.equal(hs.xdomain, false);
    assert.match(hs.url, /^\/socket\.io\/\?EIO=4&transport=polling/);
    assert.equal(new Date(hs.time).getTime() - (hs.issued - (hs.issued % 1000)), 0);
    // The admin socket itself is listed too, as in Node.
    assert.ok(all.some((x) => x.id === a.socket.id && x.nsp === '/admin'));
  });

  test('socket and room events as they happen, each with its date', T, async (t) => {
    const a = await admin(t, server);
    await a.until('all_sockets');
    const c = await appClient(t, server, { transports: ['polling', 'websocket'] });
    const id = c.id;
    const [joinedOwn] = [await a.until('room_joined', (nsp, room, sid) => sid === id && room === id)];
    assert.equal(joinedOwn[0], '/');
    assert.match(joinedOwn[3], ISO_RE);
    const [sock, date] = await a.until('socket_connected', (s) => s.id === id);
    assert.equal(sock.nsp, '/');
    assert.equal(sock.clientId, c.io.engine.id.slice(0, 12));
    assert.match(date, ISO_RE);
    // Node's order: the own-id room is joined before the socket is announced.
    const at = (name) => a.order.findIndex(([n, args]) => n === name &&
      (name === 'socket_connected' ? args[0].id === id : args[2] === id));
    assert.ok(at('room_joined') < at('socket_connected'), JSON.stringify(a.order.map(([n]) => n)));

    await a.until('socket_updated', (u) => u.id === id && u.transport === 'websocket');

    await ask(c, 'join', 'kitchen');
    await a.until('room_joined', (nsp, room, sid) => nsp === '/' && room === 'kitchen' && sid === id);
    await ask(c, 'leave', 'kitchen');
    const left = await a.until('room_left', (nsp, room, sid) => room === 'kitchen' && sid === id);
    assert.match(left[3], ISO_RE);

    await ask(c, 'set-data', { mood: 'fine' });
    const [upd] = await a.until('socket_updated', (u) => u.id === id && u.data);
    assert.deepEqual(upd, { id, nsp: '/', data: { mood: 'fine' } });

    c.emit('message', 'hi', { n: 1 });
    const rec = await a.until('event_received', (nsp, sid, args) => sid === id && args[0] === 'message');
    assert.deepEqual(rec.slice(0, 3), ['/', id, ['message', 'hi', { n: 1 }]]);
    const sent = await a.until('event_sent', (nsp, sid, args) => sid === id && args[0] === 'message-back');
    assert.deepEqual(sent.slice(0, 3), ['/', id, ['message-back', 'hi', { n: 1 }]]);
    assert.match(sent[3], ISO_RE);

    // An acknowledged event: the ack callback is not part of the arguments.
    await ask(c, 'rooms');
    await a.until('event_received', (nsp, sid, args) => sid === id && args.length === 1 && args[0] === 'rooms');

    c.disconnect();
    const gone = await a.until('socket_disconnected', (nsp, sid) => sid === id);
    assert.deepEqual(gone.slice(0, 3), ['/', id, 'client namespace disconnect']);
    assert.match(gone[3], ISO_RE);
    await a.until('room_left', (nsp, room, sid) => room === id && sid === id);
  });
});

describe('admin UI: control events', () => {
  let server;
  before(async () => { server = await startServer('sio-echo', adminFlags()); });
  after(async () => { await server?.stop(); });

  test('emit: to a whole namespace, and to a room only', T, async (t) => {
    const a = await admin(t, server);
    await a.until('config');
    const [c1, c2] = await Promise.all([appClient(t, server), appClient(t, server)]);
    await ask(c2, 'join', 'vip');
    const both = Promise.all([once(c1, 'notice', WAIT_MS), once(c2, 'notice', WAIT_MS)]);
    a.socket.emit('emit', '/', null, 'notice', 'hello', { n: 1 });
    assert.deepEqual(await both, [['hello', { n: 1 }], ['hello', { n: 1 }]]);

    const got1 = [];
    c1.on('vip-only', (...args) => got1.push(args));
    const vip = once(c2, 'vip-only', WAIT_MS);
    a.socket.emit('emit', '/', 'vip', 'vip-only', 42);
    assert.deepEqual(await vip, [42]);
    await ask(c1, 'rooms');
    assert.deepEqual(got1, []);
  });

  test('join and leave: every socket, or those in a room (a socket id for one)', T, async (t) => {
    const a = await admin(t, server);
    await a.until('config');
    const [c1, c2] = await Promise.all([appClient(t, server), appClient(t, server)]);
    a.socket.emit('join', '/', 'everyone');
    await a.until('room_joined', (nsp, room, sid) => room === 'everyone' && sid === c1.id);
    await a.until('room_joined', (nsp, room, sid) => room === 'everyone' && sid === c2.id);
    assert.ok((await ask(c1, 'rooms')).includes('everyone'));

    a.socket.emit('join', '/', 'solo', c2.id);
    await a.until('room_joined', (nsp, room, sid) => room === 'solo' && sid === c2.id);
    assert.deepEqual(await ask(c2, 'rooms'), [c2.id, 'everyone', 'solo'].sort());
    assert.deepEqual(await ask(c1, 'rooms'), [c1.id, 'everyone'].sort());

    a.socket.emit('leave', '/', 'everyone', c1.id);
    await a.until('room_left', (nsp, room, sid) => room === 'everyone' && sid === c1.id);
    assert.deepEqual(await ask(c1, 'rooms'), [c1.id]);
    a.socket.emit('leave', '/', 'everyone');
    await a.until('room_left', (nsp, room, sid) => room === 'everyone' && sid === c2.id);
    assert.deepEqual(await ask(c2, 'rooms'), [c2.id, 'solo'].sort());
  });

  test('_disconnect: one socket, then with close the whole client', T, async (t) => {
    const a = await admin(t, server);
    await a.until('config');
    const [c1, c2] = await Promise.all([appClient(t, server), appClient(t, server)]);
    // The client forgets its id once disconnected.
    const [id1, id2] = [c1.id, c2.id];
    const gone1 = once(c1, 'disconnect', WAIT_MS, { failOn: [] });
    a.socket.emit('_disconnect', '/', false, id1);
    assert.equal((await gone1)[0], 'io server disconnect');
    await a.until('socket_disconnected', (nsp, sid, reason) =>
      sid === id1 && reason === 'server namespace disconnect');
    assert.equal(c2.connected, true);

    const closed = once(c2.io.engine, 'close', WAIT_MS, { failOn: [] });
    a.socket.emit('_disconnect', '/', true, id2);
    await closed;
    await a.until('socket_disconnected', (nsp, sid) => sid === id2);
  });

  test('malformed control events are dropped; the admin socket stays', T, async (t) => {
    const a = await admin(t, server);
    await a.until('config');
    const c = await appClient(t, server);
    const got = [];
    c.onAny((...args) => got.push(args));
    a.socket.emit('emit', 42, null, 'x');
    a.socket.emit('emit', '/', 5, 'x');
    a.socket.emit('emit', '/', null, 'disconnect');
    a.socket.emit('join', '/');
    a.socket.emit('emit', '/nowhere', null, 'x');
    a.socket.emit('emit', '/', null, 'after', 1);
    assert.deepEqual(await once(c, 'after', WAIT_MS), [1]);
    assert.deepEqual(got, [['after', 1]]);
    assert.equal(a.socket.connected, true);
  });
});

describe('admin UI: read-only', () => {
  let server;
  before(async () => {
    server = await startServer('sio-echo', adminFlags({ extra: ['--admin-read-only'] }));
  });
  after(async () => { await server?.stop(); });

  test('config lists no control feature', T, async (t) => {
    const a = await admin(t, server);
    const [config] = await a.until('config');
    assert.deepEqual(config.supportedFeatures, ['AGGREGATED_EVENTS', 'ALL_EVENTS']);
  });

  test('control events are refused: no client is touched', T, async (t) => {
    const watcher = await admin(t, server);
    await watcher.until('config');
    const c = await appClient(t, server);
    const got = [];
    c.onAny((...args) => got.push(args));
    const sender = await admin(t, server);
    await sender.until('config');
    sender.socket.emit('emit', '/', null, 'notice', 'hello');
    sender.socket.emit('join', '/', 'forbidden');
    sender.socket.emit('_disconnect', '/', true);
    await fence(sender, watcher, [c]);
    assert.deepEqual(got, []);
    assert.deepEqual(await ask(c, 'rooms'), [c.id]);
    assert.equal(c.connected, true);
  });
});

describe('admin UI: CORS for the hosted UI', () => {
  let server;
  let plain;
  before(async () => {
    server = await startServer('sio-echo', [...adminFlags(), '--cors-origin', 'https://admin.socket.io']);
    plain = await startServer('sio-echo', adminFlags());
  });
  after(async () => { await Promise.all([server?.stop(), plain?.stop()]); });

  const handshake = (srv, method = 'GET', headers = {}) => fetch(
    `http://127.0.0.1:${srv.port}/socket.io/?EIO=4&transport=polling`,
    { method, headers: { origin: 'https://admin.socket.io', ...headers } },
  );

  test('the hosted origin gets credentials; others and servers without CORS get nothing', T, async () => {
    const res = await handshake(server);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('access-control-allow-origin'), 'https://admin.socket.io');
    assert.equal(res.headers.get('access-control-allow-credentials'), 'true');
    await res.text();

    const pre = await handshake(server, 'OPTIONS', {
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type',
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), 'https://admin.socket.io');
    assert.equal(pre.headers.get('access-control-allow-credentials'), 'true');
    assert.match(pre.headers.get('access-control-allow-methods'), /POST/);

    const other = await fetch(`http://127.0.0.1:${server.port}/socket.io/?EIO=4&transport=polling`,
      { headers: { origin: 'https://evil.example' } });
    assert.equal(other.headers.get('access-control-allow-origin'), null);
    await other.text();
    const none = await handshake(plain);
    assert.equal(none.headers.get('access-control-allow-origin'), null);
    await none.text();
  });
});
