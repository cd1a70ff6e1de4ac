// The Socket.IO Admin UI that chatd serves itself (`--admin-ui`, on `--admin-listen`), in
// Chromium: the page comes with this server's address filled in, a wrong password gets the
// UI's "Invalid credentials", an administrator signs in through the UI's own form, sees the
// chat clients connected with the stock socket.io-client, and disconnects one of them with
// the socket's button: that client sees the server disconnect it, the other stays.
// Screenshots go to artifacts/screenshots/admin-ui-*.png.
//
// And docs/deploy/nginx.conf in front of chatd without --admin-listen: the operator paths
// are not reachable through it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chat, nextEvent, startChatd, TRANSPORTS } from '../helpers/chatd.mjs';
import { addUser, adminListener, PASSWORD } from '../helpers/chatd-admin.mjs';
import { launchBrowser, SCREENSHOTS, startStack, UI_WAIT_MS } from '../helpers/web.mjs';

const T = { timeout: 90000 };
// The page loads its fonts and icons from Google Fonts and jsDelivr: not from a test.
const EXTERNAL = /^https:\/\/(fonts\.googleapis\.com|fonts\.gstatic\.com|cdn\.jsdelivr\.net)\//;

describe('the Admin UI served by chatd, in Chromium', { timeout: 180000 }, () => {
  let browser;
  before(async () => { browser = await launchBrowser(); });
  after(async () => { await browser?.close(); });

  it('signs in through its form, lists the chat clients and disconnects one of them', T, async (t) => {
    const srv = await startChatd({ 'admin-ui': true, 'admin-ui-development': true, 'admin-listen': '127.0.0.1:0' }, { t });
    const admin = adminListener(srv);
    addUser(srv, 'root', PASSWORD, { admin: true });
    const alice = await chat(t, srv, 'alice', { transport: TRANSPORTS.websocket });
    const bob = await chat(t, srv, 'bob', { transport: TRANSPORTS.polling });
    const aliceId = alice.socket.id;
    const bobId = bob.socket.id;

    const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'en-GB' });
    t.after(() => context.close());
    context.setDefaultTimeout(UI_WAIT_MS);
    await context.route(EXTERNAL, (route) => route.abort());
    // Anything the page's Content-Security-Policy blocked.
    await context.addInitScript(() => {
      window.__csp = [];
      document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
    });
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    mkdirSync(SCREENSHOTS, { recursive: true });

    await page.goto(`${admin.url}/admin-ui/`);
    // chatd's script gave the UI this server's address: it tried it without a password.
    const dialog = page.locator('.v-dialog--active');
    await dialog.getByText('Error: sign in with a chatd administrator account').waitFor();
    assert.equal(await dialog.getByLabel('Server URL').inputValue(), admin.url);

    await dialog.getByLabel('Username').fill('root');
    await dialog.getByLabel('Password').fill('not the password');
    await dialog.getByRole('button', { name: 'Connect' }).click();
    await dialog.getByText('Invalid credentials', { exact: true }).waitFor();

    await dialog.getByLabel('Password').fill(PASSWORD);
    await dialog.getByRole('button', { name: 'Connect' }).click();
    await page.locator('header').getByText('connected', { exact: true }).first().waitFor();
    await dialog.waitFor({ state: 'detached' });

    // The dashboard counts the two chat sockets; the sockets page lists them.
    const chatRow = page.locator('tr', { has: page.getByText('/chat', { exact: true }) });
    await chatRow.filter({ has: page.getByText('2', { exact: true }) }).waitFor();
    await page.getByRole('link', { name: 'Sockets' }).click();
    await page.getByRole('button', { name: /Select namespace/ }).click();
    await page.getByRole('option', { name: '/chat' }).click();
    const aliceRow = page.locator('tbody tr', { hasText: aliceId });
    const bobRow = page.locator('tbody tr', { hasText: bobId });
    await aliceRow.filter({ hasText: 'WebSocket' }).waitFor();
    await bobRow.filter({ hasText: 'HTTP long-polling' }).waitFor();
    assert.equal(await page.locator('tbody tr').count(), 2);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'admin-ui-sockets.png') });

    // The socket's disconnect button.
    const gone = nextEvent(alice.socket, 'disconnect', { ms: UI_WAIT_MS });
    await aliceRow.getByRole('button').click();
    assert.equal((await gone)[0], 'io server disconnect');
    // The button's row also opens the socket's page, which shows it gone.
    await page.getByText('Socket details').waitFor();
    await page.locator('.v-chip', { hasText: /^\s*disconnected\s*$/ }).first().waitFor();
    await page.screenshot({ path: path.join(SCREENSHOTS, 'admin-ui-disconnected.png') });
    assert.equal(bob.socket.connected, true);
    // bob still chats.
    assert.equal((await bob.ask('room:join', { room: 'lobby' })).ok, true);

    assert.deepEqual(errors, []);
    assert.deepEqual(await page.evaluate(() => window.__csp), []);
  });
});

describe('docs/deploy/nginx.conf in front of chatd --admin-ui', { timeout: 60000 }, () => {
  it('keeps the operator paths private; /healthz and the site go through', async (t) => {
    const stack = await startStack({ 'admin-ui': true });
    t.after(() => stack.close());
    const get = async (p, init = {}) => (await fetch(new URL(p, stack.url), { signal: AbortSignal.timeout(5000), redirect: 'manual', ...init })).status;
    for (const p of ['/metrics', '/admin-ui/', '/admin-ui', '/admin-ui/chatd-admin-ui.js']) {
      assert.equal(await get(p), 404, p);
    }
    assert.equal(await get('/admin/drain', { method: 'POST' }), 404);
    assert.equal(await get('/healthz'), 200);
    assert.equal(await get('/'), 200);
    // chatd itself still serves them, to whoever reaches it directly.
    const direct = await fetch(`http://127.0.0.1:${stack.chatd.port}/admin-ui/`, { signal: AbortSignal.timeout(5000) });
    assert.equal(direct.status, 200);
  });
});
