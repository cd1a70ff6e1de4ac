// The stock client bundle served under the Socket.IO path: ETag / 304, gzip and brotli
// encodings, source maps. Compared byte for byte with the installed socket.io-client package.
// (Plain HTTP, so not repeated per transport mode.)
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import zlib from 'node:zlib';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { startFixture } from '../helpers/sio.mjs';

const T = { timeout: 20000 };

const require = createRequire(import.meta.url);
const DIST = path.join(path.dirname(require.resolve('socket.io-client/package.json')), 'dist');
const dist = (name) => readFileSync(path.join(DIST, name));

/** A raw GET (no automatic decompression): { status, headers, body: Buffer }. */
function get(server, urlPath, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: server.port, path: urlPath, headers, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.setTimeout(5000, () => req.destroy(new Error(`GET ${urlPath} timed out`)));
    req.on('error', reject);
  });
}

describe('sio client files', () => {
  let server;
  before(async () => { server = await startFixture(); });
  after(async () => { await server?.stop(); });

  const file = (name) => `${server.path}${name}`;

  it('GET socket.io.min.js: the package file, as JavaScript, with an ETag', T, async () => {
    const r = await get(server, file('socket.io.min.js'));
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /javascript/);
    assert.ok(r.headers.etag, 'has an ETag');
    assert.equal(r.headers['content-encoding'], undefined);
    assert.ok(r.body.equals(dist('socket.io.min.js')), 'same bytes as the package');
  });

  it('a second GET with If-None-Match gets 304 and no body', T, async () => {
    const first = await get(server, file('socket.io.min.js'));
    const second = await get(server, file('socket.io.min.js'), { 'If-None-Match': first.headers.etag });
    assert.equal(second.status, 304);
    assert.equal(second.body.length, 0);
    assert.equal(second.headers.etag, first.headers.etag);
    // a stale tag gets the file
    const stale = await get(server, file('socket.io.min.js'), { 'If-None-Match': '"not-the-tag"' });
    assert.equal(stale.status, 200);
    assert.ok(stale.body.equals(dist('socket.io.min.js')));
  });

  it('Accept-Encoding: br gives a brotli body that decompresses to the file', T, async () => {
    const r = await get(server, file('socket.io.min.js'), { 'Accept-Encoding': 'br' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-encoding'], 'br');
    assert.ok(r.body.length < dist('socket.io.min.js').length);
    assert.ok(zlib.brotliDecompressSync(r.body).equals(dist('socket.io.min.js')));
  });

  it('Accept-Encoding: gzip gives a gzip body that decompresses to the file', T, async () => {
    const r = await get(server, file('socket.io.min.js'), { 'Accept-Encoding': 'gzip' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-encoding'], 'gzip');
    assert.ok(zlib.gunzipSync(r.body).equals(dist('socket.io.min.js')));
  });

  it('the ETag is the same whatever the encoding, and 304 works with an encoding', T, async () => {
    const plain = await get(server, file('socket.io.min.js'));
    const br = await get(server, file('socket.io.min.js'), { 'Accept-Encoding': 'gzip, deflate, br' });
    assert.equal(br.headers['content-encoding'], 'br');
    assert.equal(br.headers.etag, plain.headers.etag);
    const again = await get(server, file('socket.io.min.js'), { 'Accept-Encoding': 'br', 'If-None-Match': br.headers.etag });
    assert.equal(again.status, 304);
  });

  for (const name of ['socket.io.js', 'socket.io.esm.min.js', 'socket.io.msgpack.min.js']) {
    it(`GET ${name}`, T, async () => {
      const r = await get(server, file(name));
      assert.equal(r.status, 200);
      assert.match(r.headers['content-type'], /javascript/);
      assert.ok(r.body.equals(dist(name)));
    });
  }

  for (const name of ['socket.io.min.js.map', 'socket.io.js.map']) {
    it(`source map ${name} is served`, T, async () => {
      const r = await get(server, file(name));
      assert.equal(r.status, 200);
      assert.match(r.headers['content-type'], /json/);
      assert.ok(r.body.equals(dist(name)));
      assert.equal(JSON.parse(r.body.toString('utf8')).version, 3);
    });
  }

  it('other paths under the prefix are not client files', T, async () => {
    const r = await get(server, file('socket.io.min.js.bak'));
    assert.notEqual(r.status, 200);
  });
});
