// Rooms and broadcasts: join/leave, io.to / socket.to / except / socket.broadcast / volatile,
// and the bulk operations fetch_sockets, sockets_join, sockets_leave, disconnect_sockets.
//
// A socket that must NOT get an event is checked with a fence: after the broadcast, something
// is sent to that same socket (an ack, or an event to its own room); events on one connection
// arrive in order, so anything the broadcast sent it would have arrived before the fence.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  MODES, startFixture, connectClient, next, nextDisconnect, ask, record, serverReason,
} from '../helpers/sio.mjs';

const T = { timeout: 20000 };


/** Sends `fence` to `socket` alone (through `via`) and waits for it. */
async function fence(via, socket) {
  const got = next(socket, 'fence');
  await ask(via, 'io-emit', { to: socket.id, event: 'fence' });
  await got;
}

for (const mode of MODES) {
  describe(`sio rooms [${mode.name}]`, () => {
    let server;
    before(async () => { server = await startFixture(); });
    after(async () => { await server?.stop(); });

    /** `n` connected clients. */
    const clients = (t, n) => Promise.all(Array.from({ length: n }, () => connectClient(t, server, mode)));

    it('join and leave rooms; the own-id room is always there', T, async (t) => {
      const [a] = await clients(t, 1);
      assert.deepEqual(await ask(a, 'join', 'room-1'), [a.id, 'room-1'].sort());
      assert.deepEqual(await ask(a, 'join', ['room-2', 'room-3']), [a.id, 'room-1', 'room-2', 'room-3'].sort());
      assert.deepEqual(await ask(a, 'leave', 'room-2'), [a.id, 'room-1', 'room-3'].sort());
      assert.deepEqual(await ask(a, 'leave', 'not-joined'), [a.id, 'room-1', 'room-3'].sort());
    });

    it('io.to(room) reaches every member, the sender included, and nobody else', T, async (t) => {
      const [a, b, c] = await clients(t, 3);
      await Promise.all([ask(a, 'join', 'r'), ask(b, 'join', 'r')]);
      const ra = record(a, 'news'); const rb = record(b, 'news'); const rc = record(c, 'news');
      await ask(a, 'io-emit', { to: 'r', event: 'news' }, 'hello', { n: 1 });
      assert.deepEqual(await ra.until(1), [['hello', { n: 1 }]]);
      assert.deepEqual(await rb.until(1), [['hello', { n: 1 }]]);
      await fence(a, c);
      assert.equal(rc.all.length, 0);
    });

    it('socket.to(room) reaches the other members, not the sender', T, async (t) => {
      const [a, b, c] = await clients(t, 3);
      await Promise.all([ask(a, 'join', 'r'), ask(b, 'join', 'r')]);
      const ra = record(a, 'news'); const rb = record(b, 'news'); const rc = record(c, 'news');
      await ask(a, 'socket-emit', { to: 'r', event: 'news' }, 'from a');
      assert.deepEqual(await rb.until(1), [['from a']]);
      await fence(a, c);
      // the ack of socket-emit came after the broadcast on a's connection
      assert.equal(ra.all.length, 0);
      assert.equal(rc.all.length, 0);
    });

    it('socket.broadcast reaches everybody but the sender', T, async (t) => {
      const [a, b, c] = await clients(t, 3);
      const ra = record(a, 'all'); const rb = record(b, 'all'); const rc = record(c, 'all');
      await ask(a, 'socket-emit', { event: 'all' }, 42);
      await Promise.all([rb.until(1), rc.until(1)]);
      assert.deepEqual(rb.all, [[42]]);
      assert.deepEqual(rc.all, [[42]]);
      assert.equal(ra.all.length, 0);
    });

    it('except excludes the members of a room', T, async (t) => {
      const [a, b, c, d] = await clients(t, 4);
      await Promise.all([ask(a, 'join', 'r'), ask(b, 'join', 'r'), ask(c, 'join', 'r'), ask(c, 'join', 'muted')]);
      const rs = [a, b, c, d].map((s) => record(s, 'x'));
      await ask(d, 'io-emit', { to: 'r', except: 'muted', event: 'x' }, 'r-but-muted');
      await Promise.all([rs[0].until(1), rs[1].until(1)]);
      await fence(d, c);
      await fence(d, d);
      assert.equal(rs[2].all.length, 0, 'c is in the excluded room');
      assert.equal(rs[3].all.length, 0, 'd is not in r');
      // except without to: everybody but the excluded room
      await ask(d, 'io-emit', { except: ['r'], event: 'x' }, 'not-r');
      await rs[3].until(1);
      await fence(d, a);
      assert.deepEqual(rs[0].all, [['r-but-muted']]);
    });

    it('a broadcast to two rooms reaches a socket in both exactly once', T, async (t) => {
      const [a, b, c] = await clients(t, 3);
      await Promise.all([ask(a, 'join', ['r1', 'r2']), ask(b, 'join', 'r2')]);
      const ra = record(a, 'twice'); const rb = record(b, 'twice');
      await ask(c, 'io-emit', { to: ['r1', 'r2'], event: 'twice' }, 1);
      await ask(c, 'io-emit', { to: 'r1', event: 'twice' }, 2);
      await ra.until(2);
      await rb.until(1);
      await fence(c, a);
      await fence(c, b);
      assert.deepEqual(ra.all, [[1], [2]]);
      assert.deepEqual(rb.all, [[1]]);
    });

    it('after leaving a room a socket no longer gets its broadcasts', T, async (t) => {
      const [a, b] = await clients(t, 2);
      await ask(a, 'join', 'r');
      await ask(a, 'leave', 'r');
      const ra = record(a, 'x');
      await ask(b, 'io-emit', { to: 'r', event: 'x' }, 1);
      await fence(b, a);
      assert.equal(ra.all.length, 0);
    });

    it('a broadcast to a socket id reaches just that socket; binary broadcasts work', T, async (t) => {
      const [a, b] = await clients(t, 2);
      const got = next(b, 'direct');
      await ask(a, 'io-emit', { to: b.id, event: 'direct' }, { file: Buffer.from([1, 2]) }, Buffer.from([3]));
      const [obj, buf] = await got;
      assert.deepEqual(Buffer.from(obj.file), Buffer.from([1, 2]));
      assert.deepEqual(Buffer.from(buf), Buffer.from([3]));
    });

    it('volatile broadcast', T, async (t) => {
      const [a, b] = await clients(t, 2);
      // The client reports 'upgrade' right after sending `5`; a round trip over the new transport
      // makes sure the server has switched too (during the switch a volatile packet may drop).
      await ask(b, 'echo', 'settled');
      const rb = record(b, 'v');
      await ask(a, 'io-emit', { to: b.id, volatile: true, event: 'v' }, 'volatile');
      await ask(a, 'io-emit', { to: b.id, event: 'v' }, 'normal');
      await rb.until(mode.transports.at(-1) === 'websocket' ? 2 : 1);
      await fence(a, b);
      if (mode.transports.at(-1) === 'websocket') {
        // an idle connected WebSocket can take it at once: it is delivered
        assert.deepEqual(rb.all, [['volatile'], ['normal']]);
      } else {
        // over polling it may be dropped when no GET is waiting, but never duplicated or reordered
        const all = rb.all.map(([v]) => v);
        assert.ok(
          JSON.stringify(all) === '["volatile","normal"]' || JSON.stringify(all) === '["normal"]',
          `got ${JSON.stringify(all)}`,
        );
      }
    });

    it('volatile emit to the socket itself', T, async (t) => {
      const [a] = await clients(t, 1);
      const ra = record(a, 'v');
      await ask(a, 'self-emit', { event: 'v', volatile: true }, 1);
      await ask(a, 'self-emit', { event: 'v' }, 2);
      await ra.until(mode.transports.at(-1) === 'websocket' ? 2 : 1);
      if (mode.transports.at(-1) === 'websocket') assert.deepEqual(ra.all, [[1], [2]]);
      else assert.ok(ra.all.length <= 2 && ra.all.at(-1)[0] === 2);
    });

    it('fetch_sockets lists the sockets of a room with their rooms', T, async (t) => {
      const [a, b, c] = await clients(t, 3);
      await Promise.all([ask(a, 'join', 'fetch-r'), ask(b, 'join', ['fetch-r', 'other'])]);
      await ask(b, 'set-data', { name: 'bee' });
      const found = await ask(c, 'fetch-sockets', { room: 'fetch-r' });
      const expected = [
        { id: a.id, rooms: [a.id, 'fetch-r'].sort(), data: null },
        { id: b.id, rooms: [b.id, 'fetch-r', 'other'].sort(), data: { name: 'bee' } },
      ].sort((x, y) => (x.id < y.id ? -1 : 1));
      assert.deepEqual(found, expected);
      assert.deepEqual(await ask(c, 'fetch-sockets', { room: 'nobody-here' }), []);
    });

    it('sockets_join / sockets_leave act on every socket of a room', T, async (t) => {
      const [a, b, c] = await clients(t, 3);
      await Promise.all([ask(a, 'join', 'sj'), ask(b, 'join', 'sj')]);
      await ask(c, 'sockets-join', { room: 'sj', rooms: ['sj-extra'] });
      const ids = (await ask(c, 'fetch-sockets', { room: 'sj-extra' })).map((s) => s.id);
      assert.deepEqual(ids, [a.id, b.id].sort());
      const ra = record(a, 'y'); const rb = record(b, 'y');
      await ask(c, 'io-emit', { to: 'sj-extra', event: 'y' }, 1);
      await Promise.all([ra.until(1), rb.until(1)]);
      await ask(c, 'sockets-leave', { room: 'sj', rooms: ['sj-extra'] });
      assert.deepEqual(await ask(c, 'fetch-sockets', { room: 'sj-extra' }), []);
      assert.deepEqual((await ask(a, 'whoami')).rooms, [a.id, 'sj'].sort());
    });

    it('disconnect_sockets disconnects every socket of a room (io server disconnect)', T, async (t) => {
      const [a, b, c] = await clients(t, 3);
      const aid = a.id;
      await Promise.all([ask(a, 'join', 'ds'), ask(b, 'join', 'ds')]);
      const da = nextDisconnect(a); const db = nextDisconnect(b);
      await ask(c, 'disconnect-sockets', { room: 'ds' });
      assert.equal((await da).reason, 'io server disconnect');
      assert.equal((await db).reason, 'io server disconnect');
      assert.equal(c.connected, true);
      assert.deepEqual(await ask(c, 'fetch-sockets', { room: 'ds' }), []);
      assert.equal((await serverReason(t, server, aid)).reason, 'server namespace disconnect');
    });

    it('disconnect_sockets with close: io server disconnect, connection closed', T, async (t) => {
      const [a, b] = await clients(t, 2);
      const aid = a.id;
      await ask(a, 'join', 'dsc');
      const reasons = [];
      a.on('disconnect', (reason) => reasons.push(reason));
      const closed = new Promise((resolve) => a.io.once('close', (reason) => resolve(reason)));
      await ask(b, 'disconnect-sockets', { room: 'dsc', close: true });
      await closed; // the manager's connection is gone
      assert.deepEqual(reasons, ['io server disconnect']);
      assert.equal((await serverReason(t, server, aid)).reason, 'server namespace disconnect');
      assert.equal(b.connected, true);
    });

    it('rooms are left on disconnect', T, async (t) => {
      const [a, b] = await clients(t, 2);
      const aid = a.id;
      await ask(a, 'join', 'gone');
      a.disconnect();
      await serverReason(t, server, aid);
      assert.deepEqual(await ask(b, 'fetch-sockets', { room: 'gone' }), []);
      assert.deepEqual(await ask(b, 'fetch-sockets', { room: aid }), []);
    });
  });
}
