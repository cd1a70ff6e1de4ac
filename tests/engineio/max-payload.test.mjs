// maxPayload (notes A.9): advertised in the handshake; engine.io-client 6.6.8 uses it to split
// its *polling* write buffer over several POSTs (Socket#_getWritablePackets), but it cannot split
// one packet: a single packet over the limit is POSTed whole, the server answers 413 and the
// client closes with 'transport error'. On WebSocket the client never checks the size; the server
// closes the connection with code 1009.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEioEcho } from '../helpers/server.mjs';
import { MODES, connect, echo, collectMessages, once, toBuffer, isBinary, patternBuffer } from '../helpers/eio.mjs';

const MAX = 1000;

/** Record the byte size of every POST body the polling transport writes. */
function recordPosts(socket) {
  const posts = [];
  const transport = socket.transport;
  assert.equal(transport.name, 'polling');
  const orig = transport.doWrite.bind(transport);
  transport.doWrite = (data, fn) => {
    posts.push(Buffer.byteLength(data));
    return orig(data, fn);
  };
  return posts;
}

for (const mode of MODES) {
  const onWs = mode.expectUpgrade || mode.transports[0] === 'websocket';

  describe(`eio maxPayload=${MAX} [${mode.name}]`, () => {
    let server;
    before(async () => { server = await startEioEcho(['--max-payload', String(MAX)]); });
    after(async () => { await server?.stop(); });

    it(`handshake advertises maxPayload ${MAX}`, { timeout: 15000 }, async (t) => {
      const { socket, handshake } = await connect(t, server, mode);
      assert.equal(handshake.maxPayload, MAX);
      assert.equal(socket._maxPayload, MAX, 'client picked up maxPayload');
    });

    it(`a message of exactly ${MAX} encoded bytes is accepted and echoed`, { timeout: 15000 }, async (t) => {
      const { socket } = await connect(t, server, mode);
      const text = 'a'.repeat(MAX - 1); // "4" + 999 chars = 1000 bytes (POST body or WS text frame)
      assert.equal(await echo(socket, text), text);
      if (onWs) {
        const bin = patternBuffer(MAX, 3); // WS binary frame = raw bytes, exactly MAX
        const reply = await echo(socket, bin);
        assert.ok(isBinary(reply) && toBuffer(reply).equals(bin), 'binary of exactly maxPayload bytes');
      } else {
        const bin = patternBuffer(747, 3); // "b" + base64(747 bytes) = 997 bytes
        const reply = await echo(socket, bin);
        assert.ok(isBinary(reply) && toBuffer(reply).equals(bin), 'binary just under maxPayload');
      }
    });

    if (mode.name === 'polling') {
      it(`a burst larger than ${MAX} bytes in total is split over several POSTs and all of it echoes`, { timeout: 20000 }, async (t) => {
        const { socket } = await connect(t, server, mode);
        const posts = recordPosts(socket);
        const N = 20;
        const sent = Array.from({ length: N }, (_, i) => `${i}:` + (i % 2 ? 'é'.repeat(200) : 'z'.repeat(440)));
        const totalBytes = sent.reduce((n, s) => n + 1 + Buffer.byteLength(s), 0);
        assert.ok(totalBytes > 4 * MAX);
        const p = collectMessages(socket, N, 15000);
        for (const m of sent) socket.send(m);
        const got = await p;
        assert.deepEqual(got, sent);
        const msgPosts = posts.filter((n) => n > 10); // ignore pong-only POSTs
        assert.ok(msgPosts.length >= Math.ceil(totalBytes / MAX),
          `expected the client to split ${totalBytes} bytes over several POSTs, saw ${JSON.stringify(posts)}`);
        assert.ok(posts.every((n) => n <= MAX), `every POST <= ${MAX} bytes: ${JSON.stringify(posts)}`);
        assert.equal(socket.readyState, 'open');
      });

      it(`a single packet over ${MAX} bytes: POST gets 413, client closes with 'transport error'`, { timeout: 15000 }, async (t) => {
        const { socket } = await connect(t, server, mode);
        const posts = recordPosts(socket);
        const errors = [];
        socket.on('error', (e) => errors.push(e));
        const closed = once(socket, 'close', 5000);
        socket.send('y'.repeat(MAX + 500)); // cannot be split: one packet
        const [reason, err] = await closed;
        // (a `1` close POST may follow: the client closes its transport after the error)
        assert.equal(posts[0], MAX + 501, `the client POSTs the oversized packet whole: ${JSON.stringify(posts)}`);
        assert.equal(reason, 'transport error');
        assert.equal(err?.message, 'xhr post error');
        assert.equal(err?.description, 413, `POST status: expected 413, got ${err?.description}`);
        assert.equal(errors.length, 1);
      });
    } else {
      it(`a message over ${MAX} bytes closes the WebSocket with code 1009`, { timeout: 15000 }, async (t) => {
        const { socket } = await connect(t, server, mode);
        assert.equal(socket.transport.name, 'websocket');
        const closed = once(socket, 'close', 5000);
        const messages = [];
        socket.on('message', (m) => messages.push(m));
        socket.send('y'.repeat(MAX + 500));
        const [reason, details] = await closed;
        assert.equal(reason, 'transport close');
        assert.equal(details?.context?.code, 1009, `ws close code: ${details?.context?.code}`);
        assert.deepEqual(messages, [], 'the oversized message must not be echoed');
      });

      it(`a binary message of ${MAX + 1} bytes closes the WebSocket with code 1009`, { timeout: 15000 }, async (t) => {
        const { socket } = await connect(t, server, mode);
        const closed = once(socket, 'close', 5000);
        socket.send(patternBuffer(MAX + 1, 5));
        const [reason, details] = await closed;
        assert.equal(reason, 'transport close');
        assert.equal(details?.context?.code, 1009, `ws close code: ${details?.context?.code}`);
      });
    }
  });
}
