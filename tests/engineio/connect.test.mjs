// Engine.IO handshake with the official engine.io-client, over every transport mode.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEioEcho } from '../helpers/server.mjs';
import { MODES, SID_RE, connect, echo } from '../helpers/eio.mjs';

for (const mode of MODES) {
  describe(`eio connect [${mode.name}]`, () => {
    let server;
    before(async () => { server = await startEioEcho(); });
    after(async () => { await server?.stop(); });

    it('open fires and socket.id is a 20-char URL-safe id', { timeout: 15000 }, async (t) => {
      const { socket, handshake } = await connect(t, server, mode);
      assert.equal(socket.readyState, 'open');
      assert.equal(typeof socket.id, 'string');
      assert.match(socket.id, SID_RE);
      assert.equal(handshake.sid, socket.id);
    });

    it('open packet has exactly sid, upgrades, pingInterval, pingTimeout, maxPayload (defaults)', { timeout: 15000 }, async (t) => {
      const { handshake } = await connect(t, server, mode);
      assert.deepEqual(Object.keys(handshake).sort(),
        ['maxPayload', 'pingInterval', 'pingTimeout', 'sid', 'upgrades']);
      // upgrades depends on the transport the handshake was made on
      const expectedUpgrades = mode.transports[0] === 'polling' ? ['websocket'] : [];
      assert.deepEqual(handshake.upgrades, expectedUpgrades);
      assert.equal(handshake.pingInterval, 25000);
      assert.equal(handshake.pingTimeout, 20000);
      assert.equal(handshake.maxPayload, 1000000);
    });

    it(`ends up on the ${mode.expectUpgrade ? 'websocket (after upgrade)' : mode.transports[0]} transport`, { timeout: 15000 }, async (t) => {
      // connect() awaits the 'upgrade' event in upgrade mode
      const { socket } = await connect(t, server, mode);
      assert.equal(socket.transport.name, mode.expectUpgrade ? 'websocket' : mode.transports[0]);
      // and the session is usable on it
      assert.equal(await echo(socket, 'after-connect'), 'after-connect');
    });

    it('two clients get two different ids', { timeout: 15000 }, async (t) => {
      const [a, b] = await Promise.all([connect(t, server, mode), connect(t, server, mode)]);
      assert.match(a.socket.id, SID_RE);
      assert.match(b.socket.id, SID_RE);
      assert.notEqual(a.socket.id, b.socket.id);
      assert.equal(await echo(a.socket, 'a'), 'a');
      assert.equal(await echo(b.socket, 'b'), 'b');
    });
  });
}
