// Events with every JSON type and with binary, in both directions (protocol-notes.md B.7):
// client → server → ack back (`echo`), and client → server → event back (`echo-emit` →
// `echo-back`, which the server emits itself).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  MODES, startFixture, connectClient, next, ask, normalizeBinary, isBinary, record,
} from '../helpers/sio.mjs';
import { patternBuffer } from '../helpers/eio.mjs';

const T = { timeout: 20000 };

const JSON_VALUES = [
  ['null', null],
  ['true', true],
  ['false', false],
  ['zero', 0],
  ['positive integer', 42],
  ['negative integer', -17],
  ['float', 3.14159],
  ['negative float', -0.5],
  ['large integer (2^53 - 1)', Number.MAX_SAFE_INTEGER],
  ['large negative integer', -Number.MAX_SAFE_INTEGER],
  ['exponent', 1.5e300],
  ['tiny float', 5e-324],
  ['empty string', ''],
  ['ascii string', 'hello world'],
  ['unicode string', 'héllo wörld ✓ 日本語 😀 \u0000 "quotes" \\ / \n\t'],
  ['empty array', []],
  ['empty object', {}],
  ['nested object', { a: { b: { c: [1, { d: 'e' }, [null, false]] } }, 'key with spaces': 1, 'ünï': 'ok' }],
  ['array of mixed', [1, 'two', null, true, { three: 3 }, [4, [5]]]],
  ['object key order', { z: 1, a: 2, m: 3 }],
];

const BINARY_VALUES = [
  ['a Buffer', () => Buffer.from([1, 2, 3, 255, 0])],
  ['an empty Buffer', () => Buffer.alloc(0)],
  ['a 100 KiB buffer', () => patternBuffer(100 * 1024, 7)],
  ['a buffer nested in an object', () => ({ name: 'file', content: Buffer.from('héllo'), meta: { size: 6 } })],
  ['buffers nested in arrays', () => [Buffer.from([1]), [Buffer.from([2]), { deep: [Buffer.from([3])] }], 'text']],
  ['several buffers in one object', () => ({ a: Buffer.from([10]), b: Buffer.from([20, 21]), c: [null, Buffer.from([30])] })],
  ['a Uint8Array / ArrayBuffer', () => new Uint8Array([7, 8, 9]).buffer],
];

function assertSameBinary(actual, expected, what) {
  assert.deepEqual(normalizeBinary(actual), normalizeBinary(expected), what);
}

for (const mode of MODES) {
  describe(`sio events [${mode.name}]`, () => {
    let server;
    before(async () => { server = await startFixture(); });
    after(async () => { await server?.stop(); });

    for (const [name, value] of JSON_VALUES) {
      it(`JSON ${name}: ack and event round trip`, T, async (t) => {
        const s = await connectClient(t, server, mode);
        assert.deepEqual(await ask(s, 'echo', value), value);
        const back = next(s, 'echo-back');
        await ask(s, 'echo-emit', value);
        assert.deepEqual(await back, [value]);
      });
    }

    it('key order of objects is preserved', T, async (t) => {
      const s = await connectClient(t, server, mode);
      const obj = { z: 1, a: 2, m: { y: 1, b: 2 } };
      const got = await ask(s, 'echo', obj);
      assert.deepEqual(Object.keys(got), ['z', 'a', 'm']);
      assert.deepEqual(Object.keys(got.m), ['y', 'b']);
    });

    it('every JSON type at once, as separate arguments, order kept', T, async (t) => {
      const s = await connectClient(t, server, mode);
      const values = JSON_VALUES.map(([, v]) => v);
      const back = next(s, 'echo-back');
      await ask(s, 'echo-emit', ...values);
      assert.deepEqual(await back, values);
    });

    it('an event with no arguments', T, async (t) => {
      const s = await connectClient(t, server, mode);
      const back = next(s, 'echo-back');
      await ask(s, 'echo-emit');
      assert.deepEqual(await back, []);
    });

    it('a numeric event name reaches the server as its decimal text (no handler: no ack)', T, async (t) => {
      const s = await connectClient(t, server, mode);
      await assert.rejects(s.timeout(300).emitWithAck(123, 'x'), /operation has timed out/);
      assert.equal(await ask(s, 'echo', 'alive'), 'alive');
    });

    for (const [name, make] of BINARY_VALUES) {
      it(`binary: ${name} (ack and event)`, T, async (t) => {
        const s = await connectClient(t, server, mode);
        const value = make();
        const acked = await ask(s, 'echo', value);
        assertSameBinary(acked, value, 'ack');
        const back = next(s, 'echo-back');
        await ask(s, 'echo-emit', value, 'after');
        const args = await back;
        assert.equal(args.length, 2);
        assertSameBinary(args[0], value, 'event');
        assert.equal(args[1], 'after');
      });
    }

    it('binary arrives as binary (Buffer or ArrayBuffer), not as a placeholder object', T, async (t) => {
      const s = await connectClient(t, server, mode);
      const back = next(s, 'echo-back');
      await ask(s, 'echo-emit', { f: Buffer.from([1, 2]) });
      const [obj] = await back;
      assert.ok(isBinary(obj.f), `got ${JSON.stringify(obj.f)}`);
    });

    it('several binary events in a row stay whole and in order', T, async (t) => {
      const s = await connectClient(t, server, mode);
      const rec = record(s, 'echo-back');
      const sent = [];
      for (let i = 0; i < 20; i++) {
        const v = i % 2 ? { i, b: patternBuffer(50 + i, i + 1) } : [i, 'text'];
        sent.push(v);
        s.emit('echo-emit', v);
      }
      const got = await rec.until(20);
      assert.deepEqual(got.map(([v]) => normalizeBinary(v)), sent.map(normalizeBinary));
    });
  });
}
