// chatd end-to-end: the plain HTTP endpoints next to Socket.IO: /healthz, /metrics (counters
// move with the traffic), the stock client bundle under /socket.io/, the web client, and the
// origin check of the handshake.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { createRequire } from 'node:module';
import {
  startChatd, chat, chatRefused, TRANSPORTS, nextId,
} from '../helpers/chatd.mjs';

const T = { timeout: 30000 };
const require = createRequire(import.meta.url);
const CLIENT_DIST = path.join(path.dirname(require.resolve('socket.io-client/package.json')), 'dist');

describe('chatd HTTP endpoints', () => {
  let srv;
  before(async () => { srv = await startChatd(); });
  after(async () => { await srv?.close(); });

  it('/healthz answers ok', T, async () => {
    const res = await srv.get('/healthz');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^application\/json/);
    assert.deepEqual(JSON.parse(res.text), { status: 'ok', store: 'ok' });
    assert.equal((await srv.get('/healthz', { method: 'HEAD' })).status, 200);
    assert.equal((await srv.get('/healthz', { method: 'POST', body: 'x' })).status, 405);
    assert.equal((await srv.get('/no/such/page')).status, 404);
  });

  it('/metrics is Prometheus text, and its counters move with messages', T, async (t) => {
    const res = await srv.get('/metrics');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/plain/);
    for (const name of ['chatd_connections', 'chatd_rooms', 'chatd_messages_in_total', 'chatd_messages_out_total',
      'chatd_direct_messages_total', 'chatd_rejected_commands_total', 'chatd_refused_connections_total',
      'chatd_store_write_seconds']) {
      assert.match(res.text, new RegExp(`^# TYPE ${name} `, 'm'), `${name} is exported`);
    }
    const m0 = await srv.metrics();

    const ws = await chat(t, srv, 'metric-ws', { transport: TRANSPORTS.websocket });
    const poll = await chat(t, srv, 'metric-poll', { transport: TRANSPORTS.polling });
    const poll2 = await chat(t, srv, 'metric-poll2', { transport: TRANSPORTS.polling });
    const m1 = await srv.metrics();
    assert.equal(m1.get('chatd_connections{transport="websocket"}') - m0.get('chatd_connections{transport="websocket"}'), 1);
    assert.equal(m1.get('chatd_connections{transport="polling"}') - m0.get('chatd_connections{transport="polling"}'), 2);

    await ws.ok('room:create', { room: 'counted' });
    for (const c of [ws, poll, poll2]) await c.ok('room:join', { room: 'counted' });
    for (let i = 0; i < 3; i++) await ws.send('counted', `counted ${i}`);
    await poll.ok('dm:send', { to: 'metric-ws', id: nextId(), text: 'a dm' });
    expectCode(await poll.ask('message:send', { room: 'counted' }), 'bad_request');
    expectCode(await poll.ask('room:join', { room: 'nowhere' }), 'no_such_room');
    const refused = await chatRefused(t, srv, { username: 'x' });
    assert.equal(refused.data.code, 'invalid_name');

    const m2 = await srv.metrics();
    const delta = (k) => m2.get(k) - m1.get(k);
    assert.equal(delta('chatd_messages_in_total'), 3 + 1, 'messages stored: 3 in the room, 1 dm');
    assert.equal(delta('chatd_messages_out_total'), 3 * 2 + 1, 'deliveries: 3 messages to 2 others, a dm to 1');
    assert.equal(delta('chatd_direct_messages_total'), 1);
    assert.equal(delta('chatd_rejected_commands_total'), 2);
    assert.equal(delta('chatd_refused_connections_total'), 1);
    assert.equal(delta('chatd_store_write_seconds_count'), 4, 'one store write per message and dm');
    assert.ok(m2.get('chatd_rooms') >= 1);
    assert.ok(m2.get('chatd_store_write_seconds_sum') > m1.get('chatd_store_write_seconds_sum'));
    assert.equal(m2.get('chatd_store_write_seconds_bucket{le="+Inf"}'), m2.get('chatd_store_write_seconds_count'));
  });

  it('serves the stock client bundle: /socket.io/socket.io.min.js (and socket.io.js for the demos)', T, async () => {
    for (const file of ['socket.io.min.js', 'socket.io.js']) {
      const res = await srv.get(`/socket.io/${file}`);
      assert.equal(res.status, 200, file);
      assert.match(res.headers.get('content-type'), /javascript/, file);
      assert.ok(res.body.equals(readFileSync(path.join(CLIENT_DIST, file))), `${file} is the installed socket.io-client's`);
    }
    const plain = await srv.get('/socket.io/socket.io.min.js', { headers: { 'accept-encoding': 'identity' } });
    assert.ok(plain.body.equals(readFileSync(path.join(CLIENT_DIST, 'socket.io.min.js'))));
    assert.match(plain.text, /4\.8\.\d/, 'socket.io-client 4.8.x');
  });

  it('serves the web client at /', T, async () => {
    const res = await srv.get('/');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type'), /^text\/html/);
  });

  it('the web client may not be framed, and connects only to its own origin (CSP)', T, async () => {
    for (const p of ['/', '/app.js']) {
      const res = await srv.get(p);
      assert.equal(res.status, 200, p);
      const csp = res.headers.get('content-security-policy');
      const directives = new Map(csp.split(';').map((d) => d.trim().split(/\s+/)).map(([k, ...v]) => [k, v]));
      assert.deepEqual(directives.get('frame-ancestors'), ["'none'"], csp);
      assert.deepEqual(directives.get('connect-src'), ["'self'"], csp);
      assert.deepEqual(directives.get('default-src'), ["'self'"], csp);
      assert.equal(res.headers.get('x-frame-options'), 'DENY');
    }
  });

  it('handshakes from another origin are refused with 403; the same origin is fine', T, async () => {
    const url = '/socket.io/?EIO=4&transport=polling';
    const foreign = await srv.get(url, { headers: { origin: 'http://evil.example' } });
    assert.equal(foreign.status, 403);
    const same = await srv.get(url, { headers: { origin: `http://127.0.0.1:${srv.port}` } });
    assert.equal(same.status, 200);
    assert.match(same.text, /^0\{"sid":/);
    const none = await srv.get(url);
    assert.equal(none.status, 200);
  });
});

/**
 * A polling handshake over plain HTTP with exactly these headers (Host included, which fetch
 * cannot set): resolves with the status.
 */
function handshake(srv, headers) {
  return new Promise((resolve, reject) => {
    const req = http.get({
      host: '127.0.0.1', port: srv.port, path: '/socket.io/?EIO=4&transport=polling', headers, timeout: 5000,
    }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
    });
    req.on('timeout', () => req.destroy(new Error('handshake timed out')));
    req.on('error', reject);
  });
}

describe('chatd origin check', () => {
  it('the own origin is http plus the Host header: scheme and port count, default ports elided', T, async (t) => {
    const srv = await startChatd({}, { t });
    const here = `127.0.0.1:${srv.port}`;
    const cases = [
      [{ host: here, origin: `http://${here}` }, 200],
      [{ host: here, origin: `HTTP://${here}` }, 200],
      [{ host: here, origin: `https://${here}` }, 403],
      [{ host: here, origin: `http://127.0.0.1:${srv.port + 1}` }, 403],
      [{ host: here, origin: 'http://127.0.0.1' }, 403],
      [{ host: here, origin: 'null' }, 403],
      [{ host: here, origin: `http://${here}/path` }, 403],
      [{ host: 'chat.example', origin: 'http://chat.example' }, 200],
      [{ host: 'chat.example', origin: 'http://chat.example:80' }, 200],
      [{ host: 'chat.example:80', origin: 'http://chat.example' }, 200],
      [{ host: 'chat.example', origin: 'https://chat.example' }, 403],
      // Without --trust-proxy, X-Forwarded-Proto is not believed.
      [{ host: 'chat.example', 'x-forwarded-proto': 'https', origin: 'https://chat.example' }, 403],
      [{ host: here }, 200],
    ];
    for (const [headers, status] of cases) {
      assert.equal(await handshake(srv, headers), status, JSON.stringify(headers));
    }
  });

  it('behind a trusted proxy (--trust-proxy) the scheme comes from X-Forwarded-Proto', T, async (t) => {
    const srv = await startChatd({ 'trust-proxy': true }, { t });
    const cases = [
      [{ host: 'chat.example', 'x-forwarded-proto': 'https', origin: 'https://chat.example' }, 200],
      [{ host: 'chat.example', 'x-forwarded-proto': 'https', origin: 'https://chat.example:443' }, 200],
      [{ host: 'chat.example', 'x-forwarded-proto': 'https', origin: 'http://chat.example' }, 403],
      [{ host: 'chat.example', 'x-forwarded-proto': 'http', origin: 'http://chat.example' }, 200],
      [{ host: 'chat.example', origin: 'http://chat.example' }, 200],
      [{ host: 'chat.example', origin: 'https://chat.example' }, 403],
    ];
    for (const [headers, status] of cases) {
      assert.equal(await handshake(srv, headers), status, JSON.stringify(headers));
    }
  });

  it('--allowed-origins are matched exactly (scheme, host, port)', T, async (t) => {
    const srv = await startChatd({ 'allowed-origins': 'https://app.example, http://localhost:5173' }, { t });
    const host = `127.0.0.1:${srv.port}`;
    for (const origin of ['https://app.example', 'https://APP.example:443', 'http://localhost:5173']) {
      assert.equal(await handshake(srv, { host, origin }), 200, origin);
    }
    for (const origin of ['http://app.example', 'https://app.example:8443', 'https://sub.app.example',
      'http://localhost', 'https://localhost:5173', 'http://localhost:5173.evil.example']) {
      assert.equal(await handshake(srv, { host, origin }), 403, origin);
    }
  });

  it('an --allowed-origins entry that is not an origin stops chatd at start-up', T, async () => {
    for (const bad of ['*', 'app.example', 'https://app.example/path']) {
      const started = await startChatd({ 'allowed-origins': bad }).then((s) => s, (err) => err);
      if (!(started instanceof Error)) {
        await started.close();
        assert.fail(`chatd started with --allowed-origins ${bad}`);
      }
      assert.match(started.message, /--allowed-origins/, bad);
    }
  });
});

describe('chatd --allowed-origins', () => {
  it('lets the listed origins connect', T, async (t) => {
    const srv = await startChatd({ 'allowed-origins': 'https://chat.example, http://other.example/' }, { t });
    const url = '/socket.io/?EIO=4&transport=polling';
    for (const origin of ['https://chat.example', 'http://other.example']) {
      assert.equal((await srv.get(url, { headers: { origin } })).status, 200, origin);
    }
    assert.equal((await srv.get(url, { headers: { origin: 'https://evil.example' } })).status, 403);
  });
});

function expectCode(res, code) {
  assert.equal(res?.ok, false);
  assert.equal(res.error?.code, code, JSON.stringify(res));
}

describe('chatd POST /admin/drain', { timeout: 30000 }, () => {
  it('is refused through a proxy; from this host it stops the node as SIGTERM does', async (t) => {
    const srv = await startChatd({}, { t });
    const proxied = await srv.get('/admin/drain', { method: 'POST', headers: { 'x-forwarded-for': '203.0.113.9' } });
    assert.equal(proxied.status, 403);
    assert.equal(JSON.parse(proxied.text).status, 'forbidden');
    // Still serving.
    assert.equal((await srv.get('/healthz')).status, 200);
    const exited = srv.run.exited;
    const res = await srv.get('/admin/drain', { method: 'POST' });
    assert.equal(res.status, 202);
    assert.deepEqual(JSON.parse(res.text), { status: 'draining' });
    // One node without Redis stops as on SIGTERM: it exits 0.
    const exit = await exited;
    assert.equal(exit.code, 0, JSON.stringify(exit));
  });
});
