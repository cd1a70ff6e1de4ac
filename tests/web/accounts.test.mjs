// The web client's account screens in real Chromium through nginx: register, chat, log out, log
// in again; "continue as guest" only where the server has guests; keyboard only; phone width.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PHONE, launchBrowser, openUser, startStack } from '../helpers/web.mjs';

const T = { timeout: 60000 };

describe('web client: accounts', { timeout: 180000 }, () => {
  let stack;
  let browser;

  before(async () => {
    stack = await startStack({ guests: false });
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await stack?.close();
  });

  it('register, chat, log out, log in again; no guest path on a server without guests', T, async () => {
    const alice = await openUser(browser, stack);
    // The server has no guests: only the account form.
    await alice.byId('mode-register').waitFor();
    assert.equal(await alice.byId('guest-form').isVisible(), false);
    await alice.screenshot('accounts-login-desktop.png');

    // A wrong password shows the server's message, as text.
    await alice.byId('account-name').fill('nobody');
    await alice.byId('account-password').fill('password1');
    await alice.byId('account-submit').click();
    await alice.byId('account-error').filter({ hasText: 'wrong name or password' }).waitFor();

    await alice.account('alice', 'correct horse', { register: true });
    assert.equal(await alice.byId('me').textContent(), 'alice');
    assert.equal(await alice.byId('logout').isVisible(), true);

    const bob = await openUser(browser, stack, { viewport: PHONE });
    await bob.byId('mode-register').click();
    await bob.screenshot('accounts-register-phone.png');
    // Keyboard only: Tab to each field, Enter submits.
    await bob.byId('account-name').focus();
    await bob.page.keyboard.type('bob');
    await bob.page.keyboard.press('Tab');
    await bob.page.keyboard.type('battery staple');
    await bob.page.keyboard.press('Enter');
    await bob.waitTitle('# lobby');
    await bob.banner.waitFor({ state: 'hidden' });

    await alice.member('bob').waitFor();
    await alice.send('hello from an account');
    await bob.message('hello from an account').waitFor();

    // A reload keeps the session (the cookie): straight back into the chat.
    await alice.page.reload();
    await alice.waitTitle('# lobby');
    assert.equal(await alice.byId('me').textContent(), 'alice');
    // The cookie is HttpOnly: the page cannot read it.
    assert.equal(await alice.page.evaluate(() => document.cookie), '');

    // Log out: back to the login screen, and a reload stays there.
    await alice.byId('logout').click();
    await alice.byId('account-name').waitFor();
    await alice.page.locator('#login').waitFor({ state: 'visible' });
    await alice.page.reload();
    await alice.byId('account-name').waitFor();
    assert.equal(await alice.byId('shell').isVisible(), false);
    // Log in again.
    await alice.account('alice', 'correct horse');
    await alice.message('hello from an account').waitFor();
    // A second tab shares the session (the cookie); logging out in one ends the other too.
    const tab = await alice.context.newPage();
    await tab.goto(alice.url);
    await tab.getByTestId('conv-title').filter({ hasText: '# lobby' }).waitFor();
    await alice.byId('logout').click();
    await tab.getByTestId('account-error').filter({ hasText: 'You were logged out (logged out).' }).waitFor();
    assert.equal(await tab.getByTestId('shell').isVisible(), false);
    await alice.account('alice', 'correct horse');
    assert.deepEqual([...alice.errors, ...bob.errors], [], stack.logs());
    await alice.context.close();
    await bob.context.close();
  });

  it('"continue as guest" where the server has guests, and guests cannot take an account name', T, async () => {
    const guests = await startStack({ guests: true });
    try {
      const acct = await openUser(browser, guests);
      await acct.account('carol', 'password1', { register: true });
      const guest = await openUser(browser, guests, { viewport: PHONE });
      await guest.byId('guest-form').waitFor();
      await guest.screenshot('accounts-guest-phone.png');
      await guest.byId('login-name').fill('Carol');
      await guest.byId('login-submit').click();
      await guest.byId('login-error').filter({ hasText: /belongs to an account/ }).waitFor();
      await guest.login('dan');
      assert.equal(await guest.byId('logout').isVisible(), false, 'guests have nothing to log out of');
      await acct.member('dan').waitFor();
      await acct.context.close();
      await guest.context.close();
    } finally {
      await guests.close();
    }
  });
});
