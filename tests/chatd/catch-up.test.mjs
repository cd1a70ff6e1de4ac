// chatd end-to-end: the tutorial's `auth.serverOffset` catch-up far behind. 50 000 messages
// behind, a stock tutorial client gets every one, in order, then live messages, whatever its
// transport: the catch-up goes at the pace the client reads, so it is never dropped as a slow
// consumer (docs/protocol.md, "Demo compatibility on /").
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  startChatd, TRANSPORTS, socketFor, connected, closeSocket, withTimeout,
} from '../helpers/chatd.mjs';

const BEHIND = 50000;
const T = { timeout: 180000 };

/** Posts `n` tutorial messages through one client, `batch` in flight at a time. */
async function seed(t, srv, n, batch = 500) {
  const socket = socketFor(t, srv, '/', TRANSPORTS.websocket, { auth: { serverOffset: 1e12 } });
  await connected(socket);
  const text = 'm'.repeat(60);
  for (let i = 0; i < n; i += batch) {
    const acks = [];
    for (let j = i; j < Math.min(n, i + batch); j++) {
      acks.push(socket.timeout(30000).emitWithAck('chat message', `${text} ${j}`, `seed-${j}`));
    }
    await Promise.all(acks);
  }
  closeSocket(socket);
}

describe('chatd tutorial catch-up far behind', () => {
  it(`${BEHIND} messages behind: all of them in order, then live ones`, T, async (t) => {
    const srv = await startChatd({ 'message-rate': 1e6, 'message-burst': 1e6 }, { t });
    await seed(t, srv, BEHIND);
    for (const transport of [TRANSPORTS.websocket, TRANSPORTS.polling]) {
      const socket = socketFor(t, srv, '/', transport, { auth: { serverOffset: 0 } });
      let count = 0;
      let last = 0;
      let ordered = true;
      let done;
      const all = new Promise((resolve) => { done = resolve; });
      socket.on('chat message', (text, offset) => {
        if (offset <= last) ordered = false;
        last = offset;
        count += 1;
        if (text === 'live') done();
      });
      await connected(socket);
      const live = socketFor(t, srv, '/', TRANSPORTS.websocket, { auth: { serverOffset: 1e12 } });
      await connected(live);
      // Sent once the catch-up is under way: it arrives after every earlier message.
      await withTimeout(live.timeout(30000).emitWithAck('chat message', 'live', `live-${transport.name}`), 60000, 'live ack');
      await withTimeout(all, 120000, `the catch-up over ${transport.name} and the live message`);
      assert.ok(ordered, 'offsets in increasing order');
      assert.equal(count, BEHIND + (transport === TRANSPORTS.polling ? 2 : 1), `every message once over ${transport.name}`);
      assert.equal(socket.connected, true);
      closeSocket(socket);
      closeSocket(live);
    }
    const metrics = await srv.metrics();
    assert.equal(metrics.get('chatd_slow_consumers_dropped_total'), 0);
  });
});
