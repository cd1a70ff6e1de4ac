// chatd --admin-ui and --admin-listen (docs/deploy.md, "Admin UI and the admin listener"):
// the Socket.IO Admin UI's build served at /admin-ui/ with chatd's pre-fill script, its
// namespace /admin for server administrators' accounts only (checked as /api/login checks
// them, rate limits included), production mode by default, the development and read-only
// flags, and the second listener that takes /metrics, /admin/drain, the UI and the namespace
// away from the public one (/healthz stays on both).
//
// The admin namespace is driven as the UI (@socket.io/admin-ui 0.5.1) connects to it
// (helpers/admin.mjs); tests/web/admin-ui.test.mjs drives the UI itself in Chromium.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { startChatd, chat, nextEvent, WAIT_MS } from '../helpers/chatd.mjs';
import { addUser, adminListener, uiClient, PASSWORD, UI_DIST } from '../helpers/chatd-admin.mjs';

const T = { timeout: 60000 };
const ROOT = { username: 'root', password: PASSWORD };
const CONTROLS = ['EMIT', 'JOIN', 'LEAVE', 'DISCONNECT', 'MJOIN', 'MLEAVE', 'MDISCONNECT'];
const SIGN_IN = 'sign in with a chatd administrator account';
const PREFILL_TAG = '<script src="chatd-admin-ui.js"></script>';

/** The connect_error message of a UI connection with `auth`. */
async function refusal(t, srv, auth, opts) {
  const ui = uiClient(t, srv, auth, opts);
  const err = await ui.refusal();
  ui.close();
  return err.message;
}

/** The files index.html loads (scripts, style sheets, the icon), relative to it. */
function assets(html) {
  return [...html.matchAll(/(?:src|href)="([^"]+)"/g)]
    .map((m) => m[1])
    .filter((u) => !/^https?:/.test(u));
}

const TYPES = {
  '.js': 'application/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

describe('chatd --admin-ui', () => {
  it('serves the Admin UI build at /admin-ui/, index.html with the pre-fill script first', T, async (t) => {
    const srv = await startChatd({ 'admin-ui': true }, { t });
    const original = readFileSync(path.join(UI_DIST, 'index.html'), 'utf8');
    const page = await srv.get('/admin-ui/');
    assert.equal(page.status, 200);
    assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    assert.match(page.headers.get('content-security-policy'), /frame-ancestors 'none'/);
    assert.equal(page.text, original.replace('<head>', `<head>${PREFILL_TAG}`));

    const refs = assets(original);
    assert.ok(refs.some((r) => r.startsWith('js/app.')) && refs.some((r) => r.startsWith('css/')), refs.join());
    for (const ref of refs) {
      const res = await srv.get(`/admin-ui/${ref}`);
      assert.equal(res.status, 200, ref);
      assert.equal(res.headers.get('content-type'), TYPES[path.extname(ref)], ref);
      assert.ok(res.body.equals(readFileSync(path.join(UI_DIST, ref))), `${ref}: not the package's file`);
    }
    // Revalidation, HEAD, the bare prefix, what is not there.
    const app = refs.find((r) => r.startsWith('js/app.'));
    const first = await srv.get(`/admin-ui/${app}`);
    const again = await srv.get(`/admin-ui/${app}`, { headers: { 'if-none-match': first.headers.get('etag') } });
    assert.equal(again.status, 304);
    const head = await srv.get('/admin-ui/', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(Number(head.headers.get('content-length')), Buffer.byteLength(page.text));
    const bare = await srv.get('/admin-ui', { redirect: 'manual' });
    assert.equal(bare.status, 308);
    assert.equal(bare.headers.get('location'), '/admin-ui/');
    assert.equal((await srv.get('/admin-ui/nope.js')).status, 404);
    assert.equal((await srv.get('/admin-ui/js')).status, 404);
    assert.equal((await srv.get('/admin-ui/', { method: 'POST', body: 'x' })).status, 405);

    const prefill = await srv.get('/admin-ui/chatd-admin-ui.js');
    assert.equal(prefill.status, 200);
    assert.equal(prefill.headers.get('content-type'), TYPES['.js']);
    assert.match(prefill.text, /localStorage\.setItem\('server_url', location\.origin\)/);
    assert.match(prefill.text, /localStorage\.setItem\('namespace', '\/admin'\)/);

    // Without --admin-listen the rest stays where it was.
    assert.equal((await srv.get('/metrics')).status, 200);
    assert.equal((await srv.get('/healthz')).status, 200);
    assert.equal((await srv.get('/')).status, 200);
  });

  it('is off by default: no files, no namespace; its other flags need it', T, async (t) => {
    const srv = await startChatd({}, { t });
    assert.equal((await srv.get('/admin-ui/')).status, 404);
    addUser(srv, 'root', PASSWORD, { admin: true });
    assert.equal(await refusal(t, srv, ROOT), 'Invalid namespace');
    for (const flag of ['admin-ui-development', 'admin-ui-read-only']) {
      await assert.rejects(startChatd({ [flag]: true }), /need --admin-ui/);
    }
    await assert.rejects(
      startChatd({ 'admin-ui': true, 'admin-ui-dir': path.join(UI_DIST, 'js') }),
      /no index\.html/,
    );
  });

  it('lets in administrators only, checked as /api/login checks passwords', T, async (t) => {
    const srv = await startChatd({ 'admin-ui': true }, { t });
    addUser(srv, 'root', PASSWORD, { admin: true });
    addUser(srv, 'bob', PASSWORD);
    const alice = await chat(t, srv, 'alice');
    const carol = await chat(t, srv, 'carol');

    // The UI's first attempt after a page load: a session id it never got.
    assert.equal(await refusal(t, srv, { sessionId: null }), SIGN_IN);
    assert.equal(await refusal(t, srv, { sessionId: '0123456789abcdef' }), SIGN_IN);
    assert.equal(await refusal(t, srv, {}), SIGN_IN);
    assert.equal(await refusal(t, srv, { username: 'root', password: 42 }), SIGN_IN);
    assert.equal(await refusal(t, srv, { username: 'root', password: 'not the password' }), 'invalid credentials');
    assert.equal(await refusal(t, srv, { username: 'nobody', password: PASSWORD }), 'invalid credentials');
    assert.equal(await refusal(t, srv, { username: 'bob', password: PASSWORD }), 'not an administrator');

    for (const wsOnly of [false, true]) {
      const ui = uiClient(t, srv, ROOT, { wsOnly });
      await ui.connected();
      const [config] = await ui.until('config');
      // Production mode: statistics, and the control buttons.
      assert.deepEqual(config.supportedFeatures, [...CONTROLS, 'AGGREGATED_EVENTS']);
      const [stats] = await ui.until('server_stats', (s) => s.namespaces.some((n) => n.name === '/chat' && n.socketsCount === 2));
      assert.ok(stats.clientsCount >= 3, JSON.stringify(stats));
      assert.ok(stats.namespaces.some((n) => n.name === '/admin' && n.socketsCount >= 1), JSON.stringify(stats));
      // No session id (the UI asks for the password again after a reload), and in production
      // mode no list of sockets (it comes right after the connection in development mode).
      assert.equal(ui.events.session.length, 0);
      assert.equal(ui.events.all_sockets.length, 0);
      ui.close();
    }
    assert.ok(alice.socket.connected && carol.socket.connected);
  });

  it('refuses on the per-account login rate limit as /api/login does', T, async (t) => {
    const srv = await startChatd({ 'admin-ui': true, 'auth-rate-per-account': 2, 'auth-rate-per-ip': 100 }, { t });
    addUser(srv, 'root', PASSWORD, { admin: true });
    for (let i = 0; i < 2; i += 1) {
      assert.equal(await refusal(t, srv, { username: 'root', password: `guess ${i}` }), 'invalid credentials');
    }
    assert.equal(await refusal(t, srv, ROOT), 'too many attempts, try again in a minute');
  });

  it('development mode: every socket and its events, and the controls act on chat clients', T, async (t) => {
    const srv = await startChatd({ 'admin-ui': true, 'admin-ui-development': true }, { t });
    addUser(srv, 'root', PASSWORD, { admin: true });
    const alice = await chat(t, srv, 'alice');
    const ui = uiClient(t, srv, ROOT);
    await ui.connected();
    const [config] = await ui.until('config');
    assert.deepEqual(config.supportedFeatures, [...CONTROLS, 'AGGREGATED_EVENTS', 'ALL_EVENTS']);
    const [sockets] = await ui.until('all_sockets');
    assert.ok(sockets.some((s) => s.id === alice.socket.id && s.nsp === '/chat'), JSON.stringify(sockets));
    const carol = await chat(t, srv, 'carol');
    await ui.until('socket_connected', (s) => s.id === carol.socket.id && s.nsp === '/chat');
    await ui.until('event_sent', (nsp, id, args) => nsp === '/chat' && id === carol.socket.id && args[0] === 'session');

    // The UI's disconnect button of one socket: `_disconnect(nsp, close, <its id as room>)`.
    const aliceId = alice.socket.id; // the client forgets it on disconnect
    const gone = nextEvent(alice.socket, 'disconnect');
    ui.socket.emit('_disconnect', '/chat', false, aliceId);
    assert.equal((await gone)[0], 'io server disconnect');
    await ui.until('socket_disconnected', (nsp, id) => nsp === '/chat' && id === aliceId);
    assert.ok(carol.socket.connected);
  });

  it('read-only: statistics without the controls', T, async (t) => {
    const srv = await startChatd({ 'admin-ui': true, 'admin-ui-read-only': true }, { t });
    addUser(srv, 'root', PASSWORD, { admin: true });
    const ui = uiClient(t, srv, ROOT);
    await ui.connected();
    const [config] = await ui.until('config');
    assert.deepEqual(config.supportedFeatures, ['AGGREGATED_EVENTS']);
    await ui.until('server_stats');
  });
});

describe('chatd --admin-listen', () => {
  it('takes /metrics, /admin/drain, the UI and its namespace off the public listener; /healthz is on both', T, async (t) => {
    const srv = await startChatd({ 'admin-ui': true, 'admin-listen': '127.0.0.1:0' }, { t });
    const admin = adminListener(srv);
    assert.notEqual(admin.port, srv.port);
    addUser(srv, 'root', PASSWORD, { admin: true });

    // The public listener: the site, no operator surface.
    assert.equal((await srv.get('/metrics')).status, 404);
    assert.equal((await srv.get('/admin-ui/')).status, 404);
    assert.equal((await srv.get('/admin-ui/chatd-admin-ui.js')).status, 404);
    assert.equal((await srv.get('/admin/drain', { method: 'POST' })).status, 404);
    assert.equal((await srv.get('/')).status, 200);
    assert.equal((await srv.get('/api/config')).status, 200);
    const health = await srv.get('/healthz');
    assert.equal(health.status, 200);

    // The admin listener: the operator surfaces, nothing of the site.
    const metrics = await admin.get('/metrics');
    assert.equal(metrics.status, 200);
    assert.match(metrics.headers.get('content-type'), /^text\/plain/);
    assert.match(metrics.text, /^chatd_/m);
    const adminHealth = await admin.get('/healthz');
    assert.equal(adminHealth.status, 200);
    assert.deepEqual(JSON.parse(adminHealth.text), JSON.parse(health.text));
    const page = await admin.get('/admin-ui/');
    assert.equal(page.status, 200);
    assert.ok(page.text.includes(PREFILL_TAG));
    assert.equal((await admin.get('/')).status, 404);
    assert.equal((await admin.get('/api/config')).status, 404);

    // The namespace: as if it did not exist on the public listener, even for an administrator.
    assert.equal(await refusal(t, srv, ROOT), 'Invalid namespace');
    assert.equal(await refusal(t, srv, ROOT, { wsOnly: true }), 'Invalid namespace');
    // The mark of the admin listener cannot be forged on the public one.
    const forged = await srv.get('/socket.io/?EIO=4&transport=polling', { headers: { 'x-chatd-admin-listener': '1' } });
    assert.equal(forged.status, 403);
    assert.match(forged.text, /x-chatd-admin-listener is set by chatd only/);
    // On the admin listener: a wrong password is refused, an administrator let in, over
    // polling and WebSocket; chat clients of the public listener show in its statistics.
    assert.equal(await refusal(t, srv, { ...ROOT, password: 'nope' }, { port: admin.port }), 'invalid credentials');
    const alice = await chat(t, srv, 'alice');
    for (const wsOnly of [false, true]) {
      const ui = uiClient(t, srv, ROOT, { port: admin.port, wsOnly });
      await ui.connected();
      await ui.until('server_stats', (s) => s.namespaces.some((n) => n.name === '/chat' && n.socketsCount === 1));
      ui.close();
    }
    assert.ok(alice.socket.connected);
  });

  it('stops with chatd: SIGTERM tells the UI on the admin listener and exits 0; /admin/drain works there', T, async (t) => {
    const srv = await startChatd({ 'admin-ui': true, 'admin-listen': '127.0.0.1:0' }, { t });
    const admin = adminListener(srv);
    addUser(srv, 'root', PASSWORD, { admin: true });
    const ui = uiClient(t, srv, ROOT, { port: admin.port });
    await ui.connected();
    const told = nextEvent(ui.socket, 'disconnect', { ms: WAIT_MS * 2 });
    const exit = await srv.kill('SIGTERM');
    assert.equal(exit.code, 0, JSON.stringify(exit));
    await told;

    const other = await startChatd({ 'admin-listen': '127.0.0.1:0' }, { t });
    const otherAdmin = adminListener(other);
    const proxied = await otherAdmin.get('/admin/drain', { method: 'POST', headers: { 'x-forwarded-for': '203.0.113.9' } });
    assert.equal(proxied.status, 403);
    const exited = other.run.exited;
    const res = await otherAdmin.get('/admin/drain', { method: 'POST' });
    assert.equal(res.status, 202);
    assert.equal((await exited).code, 0);
  });
});
