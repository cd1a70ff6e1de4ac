// Acknowledgements in both directions (protocol-notes.md B.7).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  MODES, startFixture, connectClient, ask, normalizeBinary, DEFAULT_WAIT_MS,
} from '../helpers/sio.mjs';

const T = { timeout: 20000 };

for (const mode of MODES) {
  describe(`sio acks [${mode.name}]`, () => {
    let server;
    before(async () => { server = await startFixture(); });
    after(async () => { await server?.stop(); });

    it('client emitWithAck gets the server ack (several arguments with the callback form)', T, async (t) => {
      const s = await connectClient(t, server, mode);
      assert.deepEqual(await s.emitWithAck('echo', { a: 1 }), { a: 1 });
      const args = await new Promise((resolve, reject) => {
        s.timeout(DEFAULT_WAIT_MS).emit('echo', 1, 'two', [3], (err, ...rest) => (err ? reject(err) : resolve(rest)));
      });
      assert.deepEqual(args, [1, 'two', [3]]);
    });

    it('many concurrent client acks each get their own answer', T, async (t) => {
      const s = await connectClient(t, server, mode);
      const answers = await Promise.all(Array.from({ length: 50 }, (_, i) => ask(s, 'echo', i)));
      assert.deepEqual(answers, Array.from({ length: 50 }, (_, i) => i));
    });

    it('client ack with binary in the answer (BINARY_ACK)', T, async (t) => {
      const s = await connectClient(t, server, mode);
      const got = await ask(s, 'echo', { file: Buffer.from([1, 2, 3]) });
      assert.deepEqual(normalizeBinary(got), { file: Buffer.from([1, 2, 3]) });
    });

    it('an event without a handler is not acknowledged: the client times out', T, async (t) => {
      const s = await connectClient(t, server, mode);
      await assert.rejects(s.timeout(300).emitWithAck('nobody-listens', 1), /operation has timed out/);
      assert.equal(s.connected, true);
    });

    it('server emit with ack: the client answers, the server gets the arguments', T, async (t) => {
      const s = await connectClient(t, server, mode);
      const seen = [];
      s.on('question', (...args) => {
        const cb = args.pop();
        seen.push(args);
        cb('answer', { n: args[0] + 1 }, null);
      });
      const r = await ask(s, 'server-ack', { event: 'question', timeoutMs: 5000 }, 41, 'x');
      assert.deepEqual(seen, [[41, 'x']]);
      assert.deepEqual(r, { ok: true, args: ['answer', { n: 42 }, null] });
    });

    it('server emit with ack: the client answers with binary', T, async (t) => {
      const s = await connectClient(t, server, mode);
      s.on('give-file', (name, cb) => cb({ name, data: Buffer.from(name) }, Buffer.from([0xff])));
      const r = await ask(s, 'server-ack', { event: 'give-file', timeoutMs: 5000 }, 'abc');
      assert.deepEqual(normalizeBinary(r), {
        ok: true,
        args: [{ name: 'abc', data: Buffer.from('abc') }, Buffer.from([0xff])],
      });
    });

    it('server emit with ack carrying binary, answered with nothing', T, async (t) => {
      const s = await connectClient(t, server, mode);
      let received;
      s.on('take', (buf, cb) => { received = buf; cb(); });
      const r = await ask(s, 'server-ack', { event: 'take', timeoutMs: 5000 }, Buffer.from([5, 6]));
      assert.deepEqual(r, { ok: true, args: [] });
      assert.deepEqual(normalizeBinary(received), Buffer.from([5, 6]));
    });

    it('server ack timeout when the client does not answer', T, async (t) => {
      const s = await connectClient(t, server, mode);
      let called = 0;
      s.on('ignored', () => { called += 1; }); // receives the event, never calls the ack
      const r = await ask(s, 'server-ack', { event: 'ignored', timeoutMs: 200 }, 1);
      assert.deepEqual(r, { error: 'operation has timed out' });
      assert.equal(called, 1);
      // a late answer to a timed-out ack is ignored and the connection stays healthy
      assert.equal(await ask(s, 'echo', 'ok'), 'ok');
    });

    it('server acks asked one after the other each get their own answer', T, async (t) => {
      const s = await connectClient(t, server, mode);
      s.on('double', (n, cb) => cb(n * 2));
      const rs = await Promise.all([1, 2, 3, 4, 5].map((n) => ask(s, 'server-ack', { event: 'double', timeoutMs: 5000 }, n)));
      assert.deepEqual(rs, [2, 4, 6, 8, 10].map((n) => ({ ok: true, args: [n] })));
    });
  });
}
