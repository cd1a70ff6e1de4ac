// chatd end-to-end: identity at CONNECT (docs/protocol.md, "Connecting and identity"): name
// rules, uniqueness (case-insensitive), tabs sharing a name through the token, the name kept
// for the grace period; and the connections-per-address limit.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startChatd, chat, chatRefused, TRANSPORTS, elapse,
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

describe('chatd connections per address', () => {
  const MAX = 3;
  let srv;
  before(async () => { srv = await startChatd({ 'max-connections-per-ip': MAX }); });
  after(async () => { await srv?.close(); });

  it(`--max-connections-per-ip ${MAX}: the next one is refused with too_many_connections until one closes`, T, async (t) => {
    const before = (await srv.metrics()).get('chatd_refused_connections_total');
    const open = [
      await chat(t, srv, 'ip1', { transport: TRANSPORTS.websocket }),
      await chat(t, srv, 'ip2', { transport: TRANSPORTS.polling }),
    ];
    // Refused for its name: that must not use up a slot.
    assertRefused(await chatRefused(t, srv, { username: 'IP1' }), 'name_taken', 'taken name');
    open.push(await chat(t, srv, 'ip3'));
    assertRefused(await chatRefused(t, srv, { username: 'ip4' }), 'too_many_connections', 'fourth');
    assertRefused(await chatRefused(t, srv, { username: 'ip4' }, TRANSPORTS.polling), 'too_many_connections', 'fourth again (polling)');
    // The limit is checked before the name.
    assertRefused(await chatRefused(t, srv, { username: '!' }), 'too_many_connections', 'invalid name over the limit');
    assert.ok((await srv.metrics()).get('chatd_refused_connections_total') >= before + 4);

    // One closes: its slot is free again once chatd has seen it go (asynchronously, so a
    // refused attempt in between is retried, each attempt a full round trip, within a deadline).
    open[0].close();
    const deadline = performance.now() + 5000;
    let joined = null;
    while (!joined) {
      try {
        joined = await chat(t, srv, 'ip4');
      } catch (err) {
        assert.equal(err.data?.code, 'too_many_connections', err.message);
        assert.ok(performance.now() < deadline, 'the slot of the closed connection was never released');
      }
    }
    assertRefused(await chatRefused(t, srv, { username: 'ip5' }), 'too_many_connections', 'full again');
    // Without --trust-proxy, X-Forwarded-For is not believed.
    const spoofed = await chatRefused(t, srv, { username: 'ip5' }, TRANSPORTS.polling, { extraHeaders: { 'x-forwarded-for': '10.9.9.9' } });
    assertRefused(spoofed, 'too_many_connections', 'a spoofed X-Forwarded-For');
    for (const c of [joined, open[1], open[2]]) await c.ok('rooms:list', {});
  });
});

describe('chatd connections per address behind a proxy (--trust-proxy)', () => {
  it('counts connections per X-Forwarded-For client address', T, async (t) => {
    const srv = await startChatd({ 'max-connections-per-ip': 1, 'trust-proxy': true }, { t });
    const from = (ip) => ({ transport: TRANSPORTS.polling, extraHeaders: { 'x-forwarded-for': `${ip}, 10.0.0.254` } });
    const a = await chat(t, srv, 'proxied-a', from('10.0.0.1'));
    await chat(t, srv, 'proxied-b', from('10.0.0.2'));
    const refusedC = await chatRefused(t, srv, { username: 'proxied-c' }, TRANSPORTS.polling, { extraHeaders: { 'x-forwarded-for': '10.0.0.1' } });
    assertRefused(refusedC, 'too_many_connections', 'a second connection from 10.0.0.1');
    await a.ok('rooms:list', {});
  });
});
