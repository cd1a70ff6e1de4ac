// chatd end-to-end: identity at CONNECT (docs/protocol.md, "Connecting and identity"): name
// rules, uniqueness (case-insensitive), tabs sharing a name through the token, the name kept
// for the grace period; and the connections-per-address limit, behind trusted proxies too.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Socket as EngineSocket } from 'engine.io-client';
import {
  startChatd, chat, chatRefused, TRANSPORTS, elapse, refused, socketFor,
} from '../helpers/chatd.mjs';

const T = { timeout: 30000 };
const GRACE = 700;

function assertRefused(err, code, what) {
  assert.ok(err instanceof Error, `${what}: an Error`);
  assert.equal(err.data?.code, code, `${what}: err.data = ${JSON.stringify(err.data)}, message ${err.message}`);
  assert.equal(typeof err.message, 'string');
  assert.ok(err.message.length > 0, `${what}: err.message`);
}

describe('chatd identity', () => {
  let srv;
  before(async () => { srv = await startChatd({ 'presence-grace-ms': GRACE }); });
  after(async () => { await srv?.close(); });

  it('names against the rules are refused with invalid_name', T, async (t) => {
    const bad = [
      {}, { username: '' }, { username: 'a' }, { username: 'x'.repeat(33) }, { username: 'has space' },
      { username: '<b>' }, { username: 'a/b' }, { username: 'al@ce' }, { username: 'tab\there' },
      { username: 42 }, { username: null }, { username: ['alice'] }, { token: 'abcdefghijklmnopqrstuvwxyz' },
    ];
    for (const [i, auth] of bad.entries()) {
      // Every other one over polling only.
      const transport = i % 2 ? TRANSPORTS.polling : TRANSPORTS.websocket;
      assertRefused(await chatRefused(t, srv, auth, transport), 'invalid_name', JSON.stringify(auth));
    }
  });

  it('names by the rules are accepted: 2 to 32 letters (any script), digits, _ - .', T, async (t) => {
    for (const name of ['ab', 'x'.repeat(32), 'a.b-c_d', 'Zoë', '日本語', 'Ünïcødé_9', 'user2026']) {
      const c = await chat(t, srv, name, { transport: TRANSPORTS.polling });
      assert.equal(c.user, name);
      assert.equal(typeof c.token, 'string');
      assert.ok(c.token.length >= 16, `token ${c.token}`);
      c.close();
    }
  });

  it('names are unique among online users, case-insensitively; the token shares a name across tabs', T, async (t) => {
    const tab1 = await chat(t, srv, 'Zed');
    assert.equal(tab1.user, 'Zed');
    for (const name of ['Zed', 'zed', 'ZED', 'zEd']) {
      assertRefused(await chatRefused(t, srv, { username: name }), 'name_taken', name);
    }
    // Another user's token does not open someone else's name.
    const yuri = await chat(t, srv, 'yuri');
    assertRefused(await chatRefused(t, srv, { username: 'zed', token: yuri.token }), 'name_taken', 'zed with yuri\'s token');
    assertRefused(await chatRefused(t, srv, { username: 'zed', token: 'not-the-token-0123456789' }), 'name_taken', 'zed with a wrong token');

    // With the token: a second tab of the same user, same name (as first spelled) and token.
    const tab2 = await chat(t, srv, 'ZED', { token: tab1.token, transport: TRANSPORTS.polling });
    assert.equal(tab2.user, 'Zed');
    assert.equal(tab2.token, tab1.token);
    // Both tabs are one user in rooms.
    await tab1.ok('room:join', { room: 'lobby' });
    const j = await tab2.ok('room:join', { room: 'lobby' });
    assert.equal(j.members.filter((m) => m.toLowerCase() === 'zed').length, 1);
  });

  it('the name stays reserved for the grace period after the last tab left; only the token takes it back', T, async (t) => {
    const first = await chat(t, srv, 'quinn');
    first.close();
    // Within the grace period (it is 700 ms; this takes a round trip):
    assertRefused(await chatRefused(t, srv, { username: 'Quinn' }), 'name_taken', 'quinn within the grace period');
    const back = await chat(t, srv, 'quinn', { token: first.token });
    assert.equal(back.token, first.token);
    back.close();
    // Wait out the grace period (what is asserted here): then anyone may take the name.
    await elapse(GRACE * 2);
    const other = await chat(t, srv, 'QUINN');
    assert.equal(other.user, 'QUINN');
    assert.notEqual(other.token, first.token, 'a new identity, a new token');
    assertRefused(await chatRefused(t, srv, { username: 'quinn', token: first.token }), 'name_taken', 'the old token no longer holds the name');
  });
});

/**
 * A connection refused by the per-address cap, which applies at the Engine.IO handshake: 403
 * (which the polling transport reports), a transport error on WebSocket.
 */
function assertCapped(err, transport, what) {
  assert.ok(err instanceof Error, `${what}: an Error`);
  if (transport === TRANSPORTS.websocket) {
    assert.equal(err.message, 'websocket error', what);
  } else {
    assert.equal(err.description, 403, `${what}: ${err.message}`);
  }
}

function engineSession(srv, extraHeaders = {}) {
  return new Promise((resolve, reject) => {
    const s = new EngineSocket(srv.url, { path: '/socket.io/', transports: ['polling'], extraHeaders });
    s.on('open', () => resolve(s));
    s.on('error', (err) => { s.close(); reject(err); });
  });
}

describe('chatd connections per address', () => {
  const MAX = 3;
  let srv;
  before(async () => { srv = await startChatd({ 'max-connections-per-ip': MAX }); });
  after(async () => { await srv?.close(); });

  it(`--max-connections-per-ip ${MAX}: the next connection is refused at the handshake until one closes`, T, async (t) => {
    const before = (await srv.metrics()).get('chatd_refused_connections_total');
    const open = [
      await chat(t, srv, 'ip1', { transport: TRANSPORTS.websocket }),
      await chat(t, srv, 'ip2', { transport: TRANSPORTS.polling }),
    ];
    // Refused for its name: its session closes and gives its place back.
    assertRefused(await chatRefused(t, srv, { username: 'IP1' }), 'name_taken', 'taken name');
    // Released asynchronously: a refused attempt in between is retried within a deadline.
    const deadline = performance.now() + 5000;
    let third = null;
    while (!third) {
      try {
        third = await chat(t, srv, 'ip3');
      } catch (err) {
        // chat() reports the connect_error in its message.
        assert.match(err.message, /xhr poll error|websocket error/, 'after a refused name');
        assert.ok(performance.now() < deadline, 'the place of the refused connection was never released');
      }
    }
    open.push(third);
    assertCapped(await chatRefused(t, srv, { username: 'ip4' }), TRANSPORTS.default, 'fourth');
    assertCapped(await chatRefused(t, srv, { username: 'ip4' }, TRANSPORTS.polling), TRANSPORTS.polling, 'fourth (polling)');
    assertCapped(await chatRefused(t, srv, { username: 'ip4' }, TRANSPORTS.websocket), TRANSPORTS.websocket, 'fourth (websocket)');
    // The demo namespace and bare Engine.IO sessions count and are refused alike.
    assertCapped(await refused(socketFor(t, srv, '/', TRANSPORTS.polling)), TRANSPORTS.polling, 'the demo namespace');
    await assert.rejects(engineSession(srv), (err) => err.description === 403, 'a bare Engine.IO session');
    assert.ok((await srv.metrics()).get('chatd_refused_connections_total') >= before + 5);

    // One closes: its place is free again once chatd has seen it go.
    open[0].close();
    const again = performance.now() + 5000;
    let joined = null;
    while (!joined) {
      try {
        joined = await chat(t, srv, 'ip4');
      } catch (err) {
        assert.match(err.message, /xhr poll error|websocket error/, 'retry');
        assert.ok(performance.now() < again, 'the place of the closed connection was never released');
      }
    }
    assertCapped(await chatRefused(t, srv, { username: 'ip5' }), TRANSPORTS.default, 'full again');
    // Without trusted proxies, X-Forwarded-For is not believed.
    const spoofed = await chatRefused(t, srv, { username: 'ip5' }, TRANSPORTS.polling, { extraHeaders: { 'x-forwarded-for': '10.9.9.9' } });
    assertCapped(spoofed, TRANSPORTS.polling, 'a spoofed X-Forwarded-For');
    for (const c of [joined, open[1], open[2]]) await c.ok('rooms:list', {});
  });
});

describe('chatd connections per address behind a trusted proxy (--trusted-proxies)', () => {
  it('counts per forwarded client address; entries the client forged are ignored', T, async (t) => {
    const srv = await startChatd({ 'max-connections-per-ip': 1, 'trusted-proxies': '127.0.0.1' }, { t });
    // The proxy appends the address it saw; whatever the client sent stays on the left.
    const from = (ip, forged = '') => ({
      transport: TRANSPORTS.polling,
      extraHeaders: { 'x-forwarded-for': forged ? `${forged}, ${ip}` : ip },
    });
    const a = await chat(t, srv, 'proxied-a', from('10.0.0.1'));
    await chat(t, srv, 'proxied-b', from('10.0.0.2'));
    for (let i = 0; i < 20; i++) {
      const { extraHeaders } = from('10.0.0.1', `192.0.2.${i}`);
      const forged = await chatRefused(t, srv, { username: `forged${i}` }, TRANSPORTS.polling, { extraHeaders });
      assertCapped(forged, TRANSPORTS.polling, `forged entry ${i}`);
    }
    await a.ok('rooms:list', {});
  });
});
