// User text is only ever text: markup and scripts in messages are shown literally, live and
// from history; only http(s) URLs become links, and those open safely.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, openUser, startStack } from '../helpers/web.mjs';

const XSS = '<img src=x onerror=window.__xss=1><script>window.__xss=2</script><b>bold</b>';
const T = { timeout: 60000 };

describe('web client: user text is text', { timeout: 120000 }, () => {
  let stack;
  let browser;
  let alice;
  let bob;

  before(async () => {
    stack = await startStack();
    browser = await launchBrowser();
    alice = await openUser(browser, stack);
    bob = await openUser(browser, stack);
    await alice.login('alice');
    await bob.login('bob');
  });

  after(async () => {
    await browser?.close();
    await stack?.close();
  });

  /** The message shows `text` literally: one text element, no element inside it. */
  async function assertLiteral(user, text, where) {
    const msg = user.message(text);
    await msg.waitFor();
    assert.equal(await msg.count(), 1, `${where}: once`);
    const body = msg.getByTestId('text');
    assert.equal(await body.textContent(), text, `${where}: the text content equals the input`);
    assert.equal(await body.locator('*').count(), 0, `${where}: no element inside the text`);
    assert.equal(await user.byId('messages').locator('img, script, b').count(), 0, `${where}: nothing injected`);
    assert.equal(await user.page.evaluate(() => typeof window.__xss), 'undefined', `${where}: no script ran`);
  }

  it('markup and script in a message are shown as literal text, live and after a reload', T, async () => {
    await alice.send(XSS);
    await assertLiteral(alice, XSS, 'sender');
    await assertLiteral(bob, XSS, 'receiver');
    await bob.reload();
    await assertLiteral(bob, XSS, 'history');
    assert.deepEqual([...alice.errors, ...bob.errors], []);
  });

  it('markup in a user name or a room name is refused, never rendered', T, async () => {
    const eve = await openUser(browser, stack);
    try {
      await eve.byId('login-name').fill('<b>eve</b>');
      await eve.byId('login-submit').click();
      // The form's pattern stops it in the browser already: still on the login form.
      await eve.byId('login-name').and(eve.page.locator(':invalid')).waitFor();
      assert.equal(await eve.byId('login').isVisible(), true);
      // Without the pattern (another client), the server refuses it; the error is plain text.
      await eve.byId('login-name').evaluate((input) => input.removeAttribute('pattern'));
      await eve.byId('login-submit').click();
      await eve.byId('login-error').filter({ hasText: /names are 2 to 32/ }).waitFor();
      assert.equal(await eve.page.locator('b').count(), 0);
      await eve.close();

      // Same for a room name.
      await alice.byId('create-room-name').evaluate((input) => input.removeAttribute('pattern'));
      await alice.byId('create-room-name').fill('<b>x</b>');
      await alice.byId('create-room-submit').click();
      await alice.page.locator('[data-testid=banner][data-state=error]').filter({ hasText: /room names/ }).waitFor();
      assert.equal(await alice.page.locator('b').count(), 0);
      await alice.waitTitle('# lobby');
      assert.equal(await alice.page.evaluate(() => typeof window.__xss), 'undefined');
    } finally {
      await eve.close();
    }
  });

  it('http(s) URLs become safe links; other schemes and markup links stay text', T, async () => {
    const text = 'docs: https://example.com/a?b=1&c=<2>. Also javascript:alert(1) and <a href="javascript:alert(2)">x</a> (see http://example.org/x)';
    await alice.send(text);
    const msg = bob.message(text);
    await msg.waitFor();
    const body = msg.getByTestId('text');
    assert.equal(await body.textContent(), text);
    const links = await body.locator('a').evaluateAll((as) => as.map((a) => ({
      href: a.getAttribute('href'), text: a.textContent, target: a.target, rel: a.rel,
    })));
    assert.deepEqual(links.map((l) => [l.href, l.text]), [
      ['https://example.com/a?b=1&c=', 'https://example.com/a?b=1&c='],
      ['http://example.org/x', 'http://example.org/x'],
    ]);
    for (const l of links) {
      assert.equal(l.target, '_blank');
      assert.deepEqual(l.rel.split(' ').sort(), ['nofollow', 'noopener', 'noreferrer']);
    }
    // A click opens a new page without access to ours (served by the test, not the network).
    await bob.context.route('http://example.org/**', (route) => route.fulfill({ contentType: 'text/html', body: '<p>elsewhere</p>' }));
    const [popup] = await Promise.all([bob.context.waitForEvent('page'), body.locator('a').nth(1).click()]);
    await popup.waitForLoadState();
    assert.equal(popup.url(), 'http://example.org/x');
    assert.equal(await popup.evaluate(() => window.opener), null, 'the new page has no opener');
    await popup.close();
    assert.equal(await bob.page.evaluate(() => typeof window.__xss), 'undefined');
  });
});
