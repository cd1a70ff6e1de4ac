// Draining a cluster node (POST /admin/drain, as SIGTERM): every chat connection is told
// `moving` before it is closed, including one whose namespace connection arrives after the
// drain began (an engine connection already open, its Socket.IO CONNECT, say a recovery, still
// on its way). `cargo build -p chatd` first.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Manager } from 'socket.io-client';
import { nextEvent } from '../helpers/chatd.mjs';
import { startCluster } from '../helpers/cluster.mjs';

describe('chatd cluster: drain', { timeout: 30000 }, () => {
  it('tells a connection that joined /chat during the drain that it is moving, then closes it', async (t) => {
    const cluster = await startCluster({ t, nodes: ['a'], store: 'sqlite', nginx: false, flags: { 'drain-window-ms': 1500 } });
    const node = cluster.nodes.a;
    const manager = new Manager(node.url, { transports: ['websocket'], reconnection: false, autoConnect: false });
    t.after(() => manager.engine?.close());
    await new Promise((resolve, reject) => manager.open((err) => (err ? reject(err) : resolve())));

    const exited = node.run.exited;
    const res = await node.get('/admin/drain', { method: 'POST' });
    assert.equal(res.status, 202);
    const socket = manager.socket('/chat', { auth: { username: 'late' } });
    const events = [];
    for (const e of ['connect', 'moving', 'disconnect', 'connect_error']) socket.on(e, () => events.push(e));
    socket.connect();
    await nextEvent(socket, 'connect', { failOn: ['connect_error', 'disconnect'] });
    await nextEvent(socket, 'disconnect', { ms: 5000 });
    assert.deepEqual(events, ['connect', 'moving', 'disconnect']);
    assert.equal((await exited).code, 0);
  });
});
