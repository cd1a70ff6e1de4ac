// Server-driven heartbeat (Engine.IO v4: the server pings, the client pongs), notes A.8.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEioEcho } from '../helpers/server.mjs';
import { MODES, connect, echo } from '../helpers/eio.mjs';

const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;
const PINGS = 4;

for (const mode of MODES) {
  describe(`eio heartbeat [${mode.name}]`, () => {
    let server;
    before(async () => {
      server = await startEioEcho(['--ping-interval', String(PING_INTERVAL), '--ping-timeout', String(PING_TIMEOUT)]);
    });
    after(async () => { await server?.stop(); });

    it('handshake advertises the configured pingInterval / pingTimeout', { timeout: 15000 }, async (t) => {
      const { handshake } = await connect(t, server, mode);
      assert.equal(handshake.pingInterval, PING_INTERVAL);
      assert.equal(handshake.pingTimeout, PING_TIMEOUT);
    });

    it(`client receives >= ${PINGS} pings and stays open (no close) meanwhile`, { timeout: 20000 }, async (t) => {
      // listen for pings from the very start (also while connect() awaits the upgrade)
      const pingTimes = [];
      const closes = [];
      const { socket, openedAt } = await connect(t, server, mode, {
        onSocket: (s) => {
          s.on('close', (...args) => closes.push(args));
          s.on('ping', () => pingTimes.push(Date.now()));
        },
      });

      // Await PINGS pings, failing on close or after a generous deadline.
      const deadlineMs = (PINGS + 2) * (PING_INTERVAL + PING_TIMEOUT) + 3000;
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`only ${pingTimes.length} pings within ${deadlineMs} ms`));
        }, deadlineMs);
        const onPing = () => { if (pingTimes.length >= PINGS) { cleanup(); resolve(); } };
        const onClose = (reason, details) => {
          cleanup();
          reject(new Error(`closed after ${pingTimes.length} pings: ${reason} ${details?.description ?? details?.message ?? ''}`));
        };
        const cleanup = () => { clearTimeout(timer); socket.off('ping', onPing); socket.off('close', onClose); };
        socket.on('ping', onPing);
        socket.on('close', onClose);
        onPing();
      });

      assert.equal(closes.length, 0, 'no close event while pinging');
      assert.equal(socket.readyState, 'open');
      // Not a premature ping at open time (A.8): the first ping comes about one pingInterval
      // after the handshake, and pings are spaced about one pingInterval apart (the client
      // itself enforces the upper bound: no ping within interval+timeout => 'ping timeout').
      const slack = 120; // handshake round trip / timer granularity
      assert.ok(pingTimes[0] - openedAt >= PING_INTERVAL - slack,
        `first ping ${pingTimes[0] - openedAt} ms after open; expected ~${PING_INTERVAL} ms`);
      for (let i = 1; i < pingTimes.length; i++) {
        const gap = pingTimes[i] - pingTimes[i - 1];
        assert.ok(gap >= PING_INTERVAL - slack, `ping gap ${i}: ${gap} ms < ~${PING_INTERVAL} ms`);
        assert.ok(gap <= PING_INTERVAL + PING_TIMEOUT + 500, `ping gap ${i}: ${gap} ms is far over interval+timeout`);
      }
      // still fully functional afterwards
      assert.equal(await echo(socket, 'still alive'), 'still alive');
    });
  });
}
