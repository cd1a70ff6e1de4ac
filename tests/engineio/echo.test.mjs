// Text and binary echo through the official engine.io-client, over every transport mode.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEioEcho } from '../helpers/server.mjs';
import {
  MODES, connect, echo, collectMessages, toBuffer, isBinary, patternBuffer, once,
} from '../helpers/eio.mjs';

const TEXTS = {
  'ascii': 'hello world',
  'unicode (latin, cjk, rtl)': 'héllo wörld — ñ ß Ω 中文 日本語 한국어 עברית العربية',
  'emoji (astral plane, ZWJ, flags)': '😀🎉👍🏽 👩‍👩‍👧‍👦 🇫🇷🇯🇵 𝄞',
  'empty string': '',
  'json-looking text': '{"a":[1,2,3],"b":"c"}',
  'digits only (looks like a packet type)': '4242',
  'leading b (looks like base64 binary on polling)': 'bAQIDBA==',
  'control chars and newlines': 'line1\nline2\r\n\ttab\u0000nul\u0001',
  '100 KB ascii': 'x'.repeat(100 * 1024),
  '100 KB multi-byte (é€😀)': 'é€😀'.repeat(Math.ceil((100 * 1024) / 9)),
};

for (const mode of MODES) {
  describe(`eio echo [${mode.name}]`, () => {
    let server;
    before(async () => { server = await startEioEcho(); });
    after(async () => { await server?.stop(); });

    it('text echo both ways (unicode, emoji, empty, 100 KB)', { timeout: 30000 }, async (t) => {
      const { socket } = await connect(t, server, mode);
      for (const [label, text] of Object.entries(TEXTS)) {
        let reply = await echo(socket, text, 10000);
        // engine.io-client decodes a bare `4` (empty text message) as a message without data
        if (text === '' && reply === undefined) reply = '';
        assert.equal(typeof reply, 'string', `${label}: reply must be text, got ${typeof reply}`);
        assert.ok(reply === text,
          `${label}: echoed text differs (sent ${text.length} chars, got ${reply.length}: ${JSON.stringify(reply.slice(0, 60))})`);
      }
      assert.equal(socket.readyState, 'open');
    });

    it('binary echo: Uint8Array, ArrayBuffer, Buffer, all byte values, empty, 100 KB', { timeout: 30000 }, async (t) => {
      const { socket } = await connect(t, server, mode);
      const all256 = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const backing = new ArrayBuffer(32);
      new Uint8Array(backing).forEach((_, i, a) => { a[i] = 100 + i; });
      const cases = [
        ['Uint8Array', new Uint8Array([1, 2, 3, 4]), Buffer.from([1, 2, 3, 4])],
        ['ArrayBuffer', new Uint8Array([0xde, 0xad, 0xbe, 0xef]).buffer, Buffer.from([0xde, 0xad, 0xbe, 0xef])],
        ['Buffer', Buffer.from('hello binary'), Buffer.from('hello binary')],
        ['all 256 byte values', all256, all256],
        ['typed-array view with offset', new Uint8Array(backing, 10, 5), Buffer.from([110, 111, 112, 113, 114])],
        ['single zero byte', Buffer.from([0]), Buffer.from([0])],
        ['empty', Buffer.alloc(0), Buffer.alloc(0)],
        ['100 KB', patternBuffer(100 * 1024, 7), patternBuffer(100 * 1024, 7)],
      ];
      for (const [label, sent, expected] of cases) {
        const reply = await echo(socket, sent, 10000);
        assert.ok(isBinary(reply), `${label}: reply must be binary, got ${typeof reply} ${JSON.stringify(String(reply).slice(0, 40))}`);
        const got = toBuffer(reply);
        assert.equal(got.length, expected.length, `${label}: length`);
        assert.ok(got.equals(expected), `${label}: bytes differ`);
      }
    });

    it("binaryType 'arraybuffer' yields ArrayBuffer with the same bytes", { timeout: 15000 }, async (t) => {
      const { socket } = await connect(t, server, mode);
      socket.binaryType = 'arraybuffer';
      if (socket.transport.ws) socket.transport.ws.binaryType = 'arraybuffer';
      const sent = Buffer.from([9, 8, 7, 6, 5, 0, 255]);
      const reply = await echo(socket, sent);
      assert.ok(reply instanceof ArrayBuffer, `expected ArrayBuffer, got ${reply?.constructor?.name}`);
      assert.ok(Buffer.from(reply).equals(sent));
    });

    it('text stays text and binary stays binary', { timeout: 15000 }, async (t) => {
      const { socket } = await connect(t, server, mode);
      const text = await echo(socket, 'AQID'); // base64 of 01 02 03 as *text*
      assert.equal(text, 'AQID');
      const bin = await echo(socket, Buffer.from('AQID'));
      assert.ok(isBinary(bin), 'binary "AQID" must come back as binary');
      assert.equal(toBuffer(bin).toString('latin1'), 'AQID');
    });

    it('200 messages sent in a burst arrive back in order', { timeout: 30000 }, async (t) => {
      const { socket } = await connect(t, server, mode);
      const N = 200;
      const p = collectMessages(socket, N, 20000);
      for (let i = 0; i < N; i++) socket.send(`msg-${i}`);
      const got = await p;
      assert.deepEqual(got, Array.from({ length: N }, (_, i) => `msg-${i}`));
    });

    it('mixed text/binary burst arrives back in order with types preserved', { timeout: 30000 }, async (t) => {
      const { socket } = await connect(t, server, mode);
      const N = 100;
      const sent = Array.from({ length: N }, (_, i) => (i % 3 === 1 ? Buffer.from([i, i + 1, 255 - i]) : `m${i}-✓`));
      const p = collectMessages(socket, N, 20000);
      for (const m of sent) socket.send(m);
      const got = await p;
      for (let i = 0; i < N; i++) {
        if (typeof sent[i] === 'string') {
          assert.equal(got[i], sent[i], `message ${i}`);
        } else {
          assert.ok(isBinary(got[i]), `message ${i} must be binary, got ${JSON.stringify(got[i])}`);
          assert.ok(toBuffer(got[i]).equals(sent[i]), `message ${i} bytes`);
        }
      }
    });

    if (mode.expectUpgrade) {
      it('messages sent while the upgrade is in progress are delivered in order', { timeout: 30000 }, async (t) => {
        // Do not wait for the upgrade: send right after 'open', so the burst straddles the
        // polling -> websocket switch (client buffers while polling is paused).
        const { socket } = await connect(t, server, mode, { waitUpgrade: false });
        const upgraded = once(socket, 'upgrade', 10000);
        upgraded.catch(() => {});
        const N = 150;
        const p = collectMessages(socket, N, 20000);
        for (let i = 0; i < N; i++) socket.send(i % 5 === 0 ? Buffer.from([i]) : `u-${i}`);
        const got = await p;
        for (let i = 0; i < N; i++) {
          if (i % 5 === 0) assert.ok(isBinary(got[i]) && toBuffer(got[i]).equals(Buffer.from([i])), `message ${i}`);
          else assert.equal(got[i], `u-${i}`, `message ${i}`);
        }
        await upgraded;
        assert.equal(socket.transport.name, 'websocket');
        assert.equal(await echo(socket, 'after upgrade'), 'after upgrade');
      });
    }
  });
}
