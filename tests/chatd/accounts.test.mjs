// chatd end-to-end: accounts over the JSON API (register, login, logout, password change,
// sessions listed and revoked, invites), the /chat handshake by session cookie or auth.token,
// guests, rate limits, registration modes, the `chatd user` / `chatd invite` commands, and a
// session valid on a second node sharing PostgreSQL.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  startChatd, chat, chatRefused, chatAs, api, register, cookieToken, nextEvent, CHATD_BIN, TRANSPORTS, nextId,
} from '../helpers/chatd.mjs';
import { findPostgresBinDir, startPostgres } from '../helpers/postgres.mjs';

const T = { timeout: 60000 };

function assertError(res, status, code) {
  assert.equal(res.status, status, `HTTP status of ${res.text}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal(res.json?.ok, false, res.text);
  assert.equal(res.json.error.code, code, res.text);
  assert.equal(typeof res.json.error.message, 'string');
  assert.ok(res.json.error.message.length > 0);
}

/** Runs `chatd <args>` with `input` on stdin: { status, stdout, stderr }. */
function cli(args, input = '') {
  const r = spawnSync(CHATD_BIN, args, { input, encoding: 'utf8', timeout: 30000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('chatd accounts', () => {
  it('register, login, sessions listed and revoked, password change, logout', T, async (t) => {
    const srv = await startChatd({}, { t });
    const config = await api(srv, '/api/config');
    assert.deepEqual(config.json, { ok: true, registration: 'open', guests: true });

    const reg = await api(srv, '/api/register', { name: 'Alice', password: 'password1' }, { headers: { 'user-agent': 'first' } });
    assert.equal(reg.status, 201, reg.text);
    assert.deepEqual(reg.json.user, { name: 'Alice', admin: false });
    assert.equal(reg.json.token, undefined, 'the token is in the cookie only');
    assert.match(reg.cookie, /^chatd_session=[A-Za-z0-9_-]{43}; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/);
    const first = cookieToken(reg.cookie);

    const me = await api(srv, '/api/me', undefined, { cookie: first });
    assert.equal(me.status, 200);
    assert.deepEqual(me.json.user, { name: 'Alice', admin: false });
    assert.equal(me.json.session.id, reg.json.session.id);

    assertError(await api(srv, '/api/register', { name: 'alice', password: 'password2' }), 409, 'name_taken');
    assertError(await api(srv, '/api/register', { name: 'bob', password: 'short' }), 400, 'invalid_password');
    assertError(await api(srv, '/api/register', { name: 'x', password: 'password1' }), 400, 'invalid_name');
    assertError(await api(srv, '/api/login', { name: 'alice', password: 'wrong-password' }), 401, 'invalid_credentials');
    assertError(await api(srv, '/api/login', { name: 'nobody', password: 'password1' }), 401, 'invalid_credentials');

    // A second session, this time with the token in the body (for non-browser clients).
    const login = await api(srv, '/api/login', { name: 'alice', password: 'password1', token: true });
    assert.equal(login.status, 200, login.text);
    const second = login.json.token;
    assert.equal(cookieToken(login.cookie), second);
    const third = cookieToken((await api(srv, '/api/login', { name: 'ALICE', password: 'password1' })).cookie);

    const listed = await api(srv, '/api/sessions', undefined, { token: second });
    assert.equal(listed.status, 200);
    assert.equal(listed.json.sessions.length, 3);
    assert.deepEqual(listed.json.sessions.map((s) => s.current), [false, true, false]);
    assert.equal(listed.json.sessions[0].user_agent, 'first');
    for (const s of listed.json.sessions) {
      assert.deepEqual(Object.keys(s).sort(), ['created_at', 'current', 'expires_at', 'id', 'user_agent']);
    }

    // Revoking the first session: its token no longer works.
    const firstId = listed.json.sessions[0].id;
    assert.equal((await api(srv, '/api/sessions/revoke', { id: firstId }, { token: second })).status, 200);
    assertError(await api(srv, '/api/me', undefined, { cookie: first }), 401, 'invalid_session');
    assertError(await api(srv, '/api/sessions/revoke', { id: firstId }, { token: second }), 404, 'not_found');
    assertError(await api(srv, '/api/sessions'), 401, 'auth_required');

    // A password change keeps the current session only.
    assertError(await api(srv, '/api/password', { current: 'nope-nope', new: 'password2' }, { token: second }), 401, 'invalid_credentials');
    assertError(await api(srv, '/api/password', { current: 'password1', new: 'short' }, { token: second }), 400, 'invalid_password');
    assert.equal((await api(srv, '/api/password', { current: 'password1', new: 'password2' }, { token: second })).status, 200);
    assertError(await api(srv, '/api/me', undefined, { token: third }), 401, 'invalid_session');
    assert.equal((await api(srv, '/api/me', undefined, { token: second })).status, 200);
    assertError(await api(srv, '/api/login', { name: 'alice', password: 'password1' }), 401, 'invalid_credentials');
    assert.equal((await api(srv, '/api/login', { name: 'alice', password: 'password2' })).status, 200);

    // Logout ends the session and clears the cookie.
    const out = await api(srv, '/api/logout', {}, { cookie: second });
    assert.equal(out.status, 200);
    assert.match(out.cookie, /^chatd_session=; Path=\/; Max-Age=0; HttpOnly; SameSite=Lax$/);
    assertError(await api(srv, '/api/me', undefined, { cookie: second }), 401, 'invalid_session');
    // Durable: after a restart the account is there.
    await srv.restart();
    assert.equal((await api(srv, '/api/login', { name: 'alice', password: 'password2' })).status, 200);
  });

  it('the /chat handshake takes the session cookie or auth.token; without, no guests', T, async (t) => {
    const srv = await startChatd({ guests: false }, { t });
    assert.equal((await api(srv, '/api/config')).json.guests, false);
    const { token } = await register(srv, 'alice');
    for (const transport of [TRANSPORTS.polling, TRANSPORTS.websocket]) {
      const byCookie = await chatAs(t, srv, { cookie: token, transport });
      const { rooms, ...who } = byCookie.session;
      assert.deepEqual(who, { user: 'alice', guest: false, admin: false });
      assert.ok(Array.isArray(rooms), 'the rooms she belongs to');
      const byToken = await chatAs(t, srv, { token, transport });
      assert.equal(byToken.user, 'alice');
      // Both tabs are one user: a message of one reaches the other.
      await byCookie.ok('room:join', { room: 'lobby' });
      await byToken.ok('room:join', { room: 'lobby' });
      const got = byToken.events.message.waitFor((m) => m.text === `hi over ${transport.name}`);
      const sent = await byCookie.send('lobby', `hi over ${transport.name}`);
      assert.equal(sent.user, 'alice');
      await got;
      byCookie.close();
      byToken.close();
    }
    const code = async (auth, opts) => (await chatRefused(t, srv, auth, TRANSPORTS.default, opts)).data?.code;
    assert.equal(await code({}), 'auth_required');
    assert.equal(await code({ username: 'mallory' }), 'auth_required');
    assert.equal(await code({ token: 'not-a-session' }), 'invalid_session');
    assert.equal(await code({}, { extraHeaders: { cookie: 'chatd_session=expired' } }), 'invalid_session');
    // A session ended by logout is refused at the next handshake.
    await api(srv, '/api/logout', {}, { token });
    assert.equal(await code({ token }), 'invalid_session');
  });

  it('logout, revocation and a new password end the live /chat connections of those sessions', T, async (t) => {
    const srv = await startChatd({ guests: false }, { t });
    const { token: first } = await register(srv, 'ivan');
    const login = async () => cookieToken((await api(srv, '/api/login', { name: 'ivan', password: 'password1' })).cookie);
    const [second, third, fourth] = [await login(), await login(), await login()];
    const tabs = {
      first: await chatAs(t, srv, { token: first }),
      second: await chatAs(t, srv, { cookie: second }),
      third: await chatAs(t, srv, { token: third, transport: TRANSPORTS.polling }),
      fourth: await chatAs(t, srv, { token: fourth }),
    };
    const ended = (tab) => Promise.all([
      nextEvent(tab.socket, 'session_ended'),
      tab.disconnects.waitFor(([reason]) => reason === 'io server disconnect'),
    ]).then(([[payload]]) => payload.reason);

    // Revoked from another session.
    const listed = (await api(srv, '/api/sessions', undefined, { token: fourth })).json.sessions;
    let end = ended(tabs.first);
    assert.equal((await api(srv, '/api/sessions/revoke', { id: listed[0].id }, { token: fourth })).status, 200);
    assert.equal(await end, 'session revoked');
    // Logged out.
    end = ended(tabs.second);
    await api(srv, '/api/logout', {}, { cookie: second });
    assert.equal(await end, 'logged out');
    // A new password ends the others, not this one.
    end = ended(tabs.third);
    assert.equal((await api(srv, '/api/password', { current: 'password1', new: 'password2' }, { token: fourth })).status, 200);
    assert.equal(await end, 'password changed');
    assert.equal(tabs.fourth.socket.connected, true);
    await tabs.fourth.ok('rooms:list', {});
    assert.equal(tabs.fourth.events.session.length, 1);
  });

  it('a connection recovered after a drop comes back only while its session is valid', T, async (t) => {
    const srv = await startChatd({ guests: false }, { t });
    const { token } = await register(srv, 'jane');
    const other = cookieToken((await api(srv, '/api/login', { name: 'jane', password: 'password1' })).cookie);
    for (const revoke of [false, true]) {
      const tab = await chatAs(t, srv, { token: revoke ? other : token, transport: TRANSPORTS.websocket });
      await tab.ok('room:join', { room: 'lobby' });
      const dropped = tab.disconnects.waitFor(([reason]) => reason === 'forced close');
      tab.socket.io.engine.close();
      await dropped;
      if (revoke) {
        const listed = (await api(srv, '/api/sessions', undefined, { token })).json.sessions;
        const id = listed.find((s) => !s.current).id;
        assert.equal((await api(srv, '/api/sessions/revoke', { id }, { token })).status, 200);
      }
      const back = nextEvent(tab.socket, 'connect');
      tab.socket.connect();
      await back;
      assert.equal(tab.socket.recovered, true);
      if (revoke) {
        await tab.disconnects.waitFor(([reason]) => reason === 'io server disconnect');
      } else {
        await tab.ok('rooms:list', {});
      }
      tab.close();
    }
  });

  it('the cookie is Secure behind a trusted proxy saying https, or with --cookie-secure', T, async (t) => {
    const proxied = await startChatd({ 'trust-proxy': true }, { t });
    const https = await api(proxied, '/api/register', { name: 'kim', password: 'password1' }, { headers: { 'x-forwarded-proto': 'https' } });
    assert.match(https.cookie, /; HttpOnly; SameSite=Lax; Secure$/);
    const plain = await api(proxied, '/api/login', { name: 'kim', password: 'password1' });
    assert.doesNotMatch(plain.cookie, /Secure/);
    // Not from a trusted proxy: the header does not count.
    const direct = await startChatd({}, { t });
    const spoofed = await api(direct, '/api/register', { name: 'kim', password: 'password1' }, { headers: { 'x-forwarded-proto': 'https' } });
    assert.doesNotMatch(spoofed.cookie, /Secure/);
    const always = await startChatd({ 'cookie-secure': true }, { t });
    assert.match((await api(always, '/api/register', { name: 'kim', password: 'password1' })).cookie, /; Secure$/);
  });

  it('guests cannot take an account name or a look-alike, and a guest name cannot be registered while in use', T, async (t) => {
    const srv = await startChatd({}, { t });
    const { token } = await register(srv, 'alice');
    for (const name of ['alice', 'ALICE', '\u0430lice']) {
      const err = await chatRefused(t, srv, { username: name });
      assert.equal(err.data?.code, 'name_taken', name);
    }
    const guest = await chat(t, srv, 'bob');
    assert.equal(guest.events.session.all[0].guest, true);
    assert.equal(typeof guest.token, 'string');
    assertError(await api(srv, '/api/register', { name: 'Bob', password: 'password1' }), 409, 'name_taken');
    // A guest and an account talk together; a cookie wins over a picked name.
    const alice = await chatAs(t, srv, { cookie: token });
    await alice.ok('room:join', { room: 'lobby' });
    await guest.ok('room:join', { room: 'lobby' });
    const got = alice.events.message.waitFor((m) => m.user === 'bob');
    await guest.send('lobby', 'hello alice');
    await got;
  });

  it('login and registration are rate limited per address and per account with 429 and JSON', T, async (t) => {
    const perIp = await startChatd({ 'auth-rate-per-ip': 3, 'auth-rate-per-account': 100 }, { t });
    for (let i = 0; i < 3; i++) {
      assertError(await api(perIp, '/api/login', { name: `user${i}`, password: 'password1' }), 401, 'invalid_credentials');
    }
    const limited = await api(perIp, '/api/login', { name: 'someone', password: 'password1' });
    assertError(limited, 429, 'rate_limited');
    assert.equal(limited.headers.get('retry-after'), '20');
    assertError(await api(perIp, '/api/register', { name: 'newbie', password: 'password1' }), 429, 'rate_limited');
    // Other requests carry on.
    assert.equal((await api(perIp, '/api/config')).status, 200);

    const perAccount = await startChatd({ 'auth-rate-per-ip': 100, 'auth-rate-per-account': 2 }, { t });
    await register(perAccount, 'carol');
    assertError(await api(perAccount, '/api/login', { name: 'carol', password: 'guess-one' }), 401, 'invalid_credentials');
    const over = await api(perAccount, '/api/login', { name: 'Carol', password: 'password1' });
    assertError(over, 429, 'rate_limited');
    assert.equal(over.headers.get('retry-after'), '30');
    await register(perAccount, 'dave');
    assert.equal((await api(perAccount, '/api/login', { name: 'dave', password: 'password1' })).status, 200);
  });

  it('registration modes, invites from the command line and the admin API, the user commands', T, async (t) => {
    const closed = await startChatd({ registration: 'closed' }, { t });
    assertError(await api(closed, '/api/register', { name: 'erin', password: 'password1' }), 403, 'registration_closed');
    assert.equal((await api(closed, '/api/config')).json.registration, 'closed');

    const srv = await startChatd({ registration: 'invite' }, { t });
    const dir = ['--data-dir', srv.dataDir];
    assertError(await api(srv, '/api/register', { name: 'erin', password: 'password1' }), 403, 'registration_closed');
    assertError(await api(srv, '/api/register', { name: 'erin', password: 'password1', invite: 'made-up' }), 400, 'invalid_invite');

    // The first administrator, on the command line (the server runs meanwhile).
    let r = cli(['user', 'add', 'root', '--admin', ...dir], 'rootpassword\n');
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /added root \(administrator\)/);
    r = cli(['user', 'add', 'ROOT', ...dir], 'rootpassword\n');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /exists/);
    r = cli(['user', 'add', 'weak', ...dir], 'short\n');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /8 to 256/);
    r = cli(['invite', 'create', '--hours', '2', ...dir]);
    assert.equal(r.status, 0, r.stderr);
    const cliCode = r.stdout.split('\n')[0];
    assert.match(cliCode, /^[A-Za-z0-9_-]{24}$/);

    const root = cookieToken((await api(srv, '/api/login', { name: 'root', password: 'rootpassword' })).cookie);
    assert.equal((await api(srv, '/api/me', undefined, { cookie: root })).json.user.admin, true);
    const made = await api(srv, '/api/invites', { hours: 1 }, { cookie: root });
    assert.equal(made.status, 201, made.text);
    const reg = await api(srv, '/api/register', { name: 'erin', password: 'password1', invite: made.json.code });
    assert.equal(reg.status, 201, reg.text);
    assertError(await api(srv, '/api/register', { name: 'fred', password: 'password1', invite: made.json.code }), 400, 'invalid_invite');
    assert.equal((await api(srv, '/api/register', { name: 'fred', password: 'password1', invite: cliCode })).status, 201);
    // Not an administrator: no invites.
    assertError(await api(srv, '/api/invites', {}, { cookie: cookieToken(reg.cookie) }), 403, 'forbidden');

    r = cli(['user', 'list', ...dir]);
    assert.equal(r.status, 0, r.stderr);
    const rows = r.stdout.trim().split('\n').map((l) => l.split('\t').slice(0, 2));
    assert.deepEqual(rows, [['erin', 'user'], ['fred', 'user'], ['root', 'admin']]);

    // `user passwd` sets the password and ends every session.
    r = cli(['user', 'passwd', 'erin', ...dir], 'new-password\n');
    assert.equal(r.status, 0, r.stderr);
    assertError(await api(srv, '/api/me', undefined, { cookie: cookieToken(reg.cookie) }), 401, 'invalid_session');
    assert.equal((await api(srv, '/api/login', { name: 'erin', password: 'new-password' })).status, 200);
    r = cli(['user', 'passwd', 'nobody', ...dir], 'new-password\n');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no such account/);
    r = cli(['user', 'list', '--store', 'memory']);
    assert.equal(r.status, 1);
  });

  it('malformed requests get JSON errors and the server carries on', T, async (t) => {
    const srv = await startChatd({}, { t });
    assertError(await api(srv, '/api/login', undefined, { raw: 'name=a&password=b', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, 'bad_request');
    assertError(await api(srv, '/api/login', undefined, { raw: '{"name":', headers: { 'content-type': 'application/json' } }), 400, 'bad_request');
    assertError(await api(srv, '/api/login', { name: 1, password: [] }), 400, 'bad_request');
    assertError(await api(srv, '/api/login', null), 400, 'bad_request');
    assertError(await api(srv, '/api/register', { name: 'big', password: 'x'.repeat(10000) }), 413, 'bad_request');
    assertError(await api(srv, '/api/nope'), 404, 'not_found');
    const get = await api(srv, '/api/login');
    assertError(get, 405, 'bad_request');
    assert.equal(get.headers.get('allow'), 'POST');
    assertError(await api(srv, '/api/me', {}), 405, 'bad_request');
    // Another site's page cannot post to the API with the browser's cookie.
    assertError(await api(srv, '/api/logout', {}, { headers: { origin: 'https://evil.example' } }), 403, 'forbidden');
    assertError(await api(srv, '/api/me', undefined, { token: 'x'.repeat(1000) }), 401, 'invalid_session');
    assert.equal((await api(srv, '/api/register', { name: 'gina', password: 'password1' }, { headers: { origin: srv.url } })).status, 201);
  });

  it('a session made on one node is valid on another sharing PostgreSQL', { ...T, skip: !findPostgresBinDir() && 'PostgreSQL not installed' }, async (t) => {
    const pg = await startPostgres({ t });
    const a = await startChatd({ store: pg.url, guests: false }, { t });
    const b = await startChatd({ store: pg.url, guests: false }, { t });
    const { token } = await register(a, 'hana');
    assert.equal((await api(b, '/api/me', undefined, { cookie: token })).json.user.name, 'hana');
    const onB = await chatAs(t, b, { cookie: token });
    assert.equal(onB.user, 'hana');
    await onB.ok('room:join', { room: 'lobby' });
    const id = nextId();
    await onB.send('lobby', 'from b', id);
    // Logout on b ends it on a too.
    await api(b, '/api/logout', {}, { token });
    assertError(await api(a, '/api/me', undefined, { token }), 401, 'invalid_session');
    assert.equal((await chatRefused(t, a, { token })).data?.code, 'invalid_session');
  });
});
