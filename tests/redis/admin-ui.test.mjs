// The Socket.IO Admin UI across a cluster: two of our nodes (sio-echo --redis --admin) on a
// private redis-server, the UI's socket on node A and an application client on node B. As
// Node's instrument does, each node sends its server_stats and development-mode notices
// through the admin namespace's adapter, all_sockets asks every node (fetch_sockets), and the
// control events act through the target namespace's adapter, so on every node.
//
// `cargo build -p socketio --example sio-echo` first.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer } from '../helpers/server.mjs';
import { startRedis } from '../helpers/redis.mjs';
import { once } from '../helpers/eio.mjs';
import {
  adminClient, adminFlags, appClient, ask, PASSWORD, WAIT_MS,
} from '../helpers/admin.mjs';

const T = { timeout: 30000 };

describe('admin UI on a two-node Redis cluster', () => {
  let redis;
  let A;
  let B;
  let a;
  let cb;
  let idB;

  before(async () => {
    redis = await startRedis();
    const node = (id) => startServer('sio-echo',
      ['--redis', redis.url, ...adminFlags({ extra: ['--admin-server-id', id] })]);
    [A, B] = await Promise.all([node('node-a'), node('node-b')]);
    cb = await appClient(null, B, { transports: ['polling'] });
    idB = cb.id;
    a = adminClient(A, { auth: { username: 'admin', password: PASSWORD } });
    await a.connected();
  });

  after(async () => {
    a?.close();
    cb?.disconnect();
    await Promise.all([A?.stop(), B?.stop()]);
    await redis?.stop();
  });

  test('server_stats from both nodes, each with its own counts', T, async () => {
    const [sa] = await a.until('server_stats', (s) => s.serverId === 'node-a');
    const [sb] = await a.until('server_stats', (s) => s.serverId === 'node-b');
    assert.equal(sa.pid, A.proc.pid);
    assert.equal(sb.pid, B.proc.pid);
    // node-b: the application client only (on polling); node-a: the admin socket.
    await a.until('server_stats', (s) => s.serverId === 'node-b' && s.clientsCount === 1 &&
      s.pollingClientsCount === 1 &&
      s.namespaces.some((n) => n.name === '/' && n.socketsCount === 1));
    await a.until('server_stats', (s) => s.serverId === 'node-a' &&
      s.namespaces.some((n) => n.name === '/admin' && n.socketsCount === 1));
  });

  test('all_sockets covers the other node, clientId and transport included', T, async () => {
    const [all] = await a.until('all_sockets');
    const s = all.find((x) => x.id === idB);
    assert.ok(s, JSON.stringify(all.map((x) => x.id)));
    assert.equal(s.nsp, '/');
    assert.equal(s.clientId, cb.io.engine.id.slice(0, 12));
    assert.equal(s.transport, 'polling');
    assert.deepEqual(s.data, {});
    assert.deepEqual(s.rooms, [idB]);
    assert.equal(s.handshake.query.transport, 'polling');
    assert.ok(all.some((x) => x.id === a.socket.id && x.nsp === '/admin'));
  });

  test('a control event on node A reaches the client on node B', T, async () => {
    await a.until('config');
    const notice = once(cb, 'notice', WAIT_MS);
    a.socket.emit('emit', '/', null, 'notice', 'from the UI');
    assert.deepEqual(await notice, ['from the UI']);

    // join with the socket id as filter: applied on node B, whose room_joined comes back here.
    a.socket.emit('join', '/', 'ops', idB);
    await a.until('room_joined', (nsp, room, sid) => nsp === '/' && room === 'ops' && sid === idB);
    assert.deepEqual(await ask(cb, 'rooms'), [idB, 'ops'].sort());
    const inRoom = once(cb, 'ops-notice', WAIT_MS);
    a.socket.emit('emit', '/', 'ops', 'ops-notice', 1);
    assert.deepEqual(await inRoom, [1]);
  });

  test('development notices from node B reach the UI on node A', T, async (t) => {
    const c = await appClient(t, B);
    const [sock] = await a.until('socket_connected', (x) => x.id === c.id);
    assert.equal(sock.transport, 'websocket');
    c.emit('message', 'hello');
    await a.until('event_received', (nsp, sid, args) => sid === sock.id && args[0] === 'message');
    const id = c.id;
    const gone = once(c, 'disconnect', WAIT_MS, { failOn: [] });
    a.socket.emit('_disconnect', '/', false, id);
    assert.equal((await gone)[0], 'io server disconnect');
    await a.until('socket_disconnected', (nsp, sid, reason) =>
      sid === id && reason === 'server namespace disconnect');
  });
});
