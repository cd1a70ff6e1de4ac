// Client-initiated and server-initiated close (notes A.5, A.10), over every transport mode.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEioEcho } from '../helpers/server.mjs';
import {
  MODES, SID_RE, SID_UNKNOWN, connect, echo, once, pollSidUntil, isSidUnknown,
} from '../helpers/eio.mjs';

/** While a WebSocket session is still being torn down a polling GET gets 400 code 3. */
const stillTearingDownWs = (r) => r.status === 400 && r.json?.code === 3;

function assertSidUnknown(r, label) {
  assert.ok(isSidUnknown(r),
    `${label}: expected 400 ${JSON.stringify(SID_UNKNOWN)}, got ${r.status} ${r.text} (history: ${r.history.join(' | ')})`);
  assert.deepEqual(r.json, SID_UNKNOWN);
  assert.match(r.contentType ?? '', /^application\/json/);
}

for (const mode of MODES) {
  const onWs = mode.expectUpgrade || mode.transports[0] === 'websocket';

  describe(`eio close [${mode.name}]`, () => {
    let server;
    before(async () => { server = await startEioEcho(); });
    after(async () => { await server?.stop(); });

    it("client close(): 'close' with reason 'forced close', then the old sid is unknown (400, code 1)", { timeout: 15000 }, async (t) => {
      const { socket } = await connect(t, server, mode);
      const sid = socket.id;
      assert.equal(await echo(socket, 'before close'), 'before close');

      const transport = socket.transport;
      assert.equal(transport.name, onWs ? 'websocket' : 'polling');
      // What tells us the server has seen the close:
      //  - polling: the POST carrying the `1` packet was answered (server dispatches before 'ok');
      //  - websocket: the WebSocket closing handshake completed.
      let serverSawClose;
      if (onWs) {
        serverSawClose = once(transport.ws, 'close', 5000, { failOn: [] });
      } else {
        serverSawClose = new Promise((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('close POST not answered within 5000 ms')), 5000);
          // socket.close() removes the transport listeners synchronously before emitting 'close',
          // and the POST `1` is in flight then: attach inside the 'close' handler.
          socket.once('close', () => {
            transport.once('drain', () => { clearTimeout(timer); resolve(); });
            transport.once('error', (e) => { clearTimeout(timer); reject(new Error(`close POST failed: ${e.message} ${e.description}`)); });
          });
        });
      }
      serverSawClose.catch(() => {});
      const closed = once(socket, 'close', 5000);
      socket.close();
      const [reason] = await closed;
      assert.equal(reason, 'forced close');
      assert.equal(socket.readyState, 'closed');
      await serverSawClose;

      const r = await pollSidUntil(server, sid, { retryWhile: onWs ? stillTearingDownWs : () => false });
      assertSidUnknown(r, 'GET with the closed sid');
    });

    it("server close (text 'close'): client gets 'close' ('transport close'), sid unknown, a new socket connects", { timeout: 20000 }, async (t) => {
      const { socket } = await connect(t, server, mode);
      const oldSid = socket.id;
      assert.match(oldSid, SID_RE);
      assert.equal(await echo(socket, 'hi'), 'hi');

      const closed = once(socket, 'close', 5000);
      const messages = [];
      socket.on('message', (m) => messages.push(m));
      socket.send('close');
      const [reason, details] = await closed;
      assert.equal(reason, 'transport close',
        `close reason: ${reason} (${details?.description ?? details?.message ?? ''} ${details?.context?.code ?? ''})`);
      assert.deepEqual(messages, [], "the text 'close' must not be echoed");
      if (onWs) {
        // A.10: the server closes the WebSocket with a close frame (1006 = no close frame)
        const code = details?.context?.code;
        assert.notEqual(code, 1006, 'server must close the WebSocket with a close frame, not drop TCP');
      } else {
        assert.equal(details?.description, 'transport closed by the server', 'polling: a `1` packet was received');
      }

      // The old session is gone.
      const r = await pollSidUntil(server, oldSid, { retryWhile: (x) => !isSidUnknown(x) });
      assertSidUnknown(r, 'GET with the server-closed sid');

      // "Reconnect": engine.io-client does not reconnect by itself; a new Socket must work.
      const { socket: again } = await connect(t, server, mode);
      assert.match(again.id, SID_RE);
      assert.notEqual(again.id, oldSid);
      assert.equal(await echo(again, 'welcome back ✓'), 'welcome back ✓');
      const bin = await echo(again, Buffer.from([1, 2, 3]));
      assert.ok(Buffer.from(bin).equals(Buffer.from([1, 2, 3])));
    });

    it('closing one client does not affect another', { timeout: 15000 }, async (t) => {
      const [a, b] = await Promise.all([connect(t, server, mode), connect(t, server, mode)]);
      const aClosed = once(a.socket, 'close', 5000);
      a.socket.send('close');
      await aClosed;
      assert.equal(await echo(b.socket, 'b still here'), 'b still here');
      b.socket.close();
    });
  });
}
