// The web client at desktop (1280×800) and phone (390×844) width, light and dark: usable at
// both widths, and screenshots of each as test artifacts in tests/artifacts/screenshots/.
//
// WEB_UPDATE_DOCS_SCREENSHOT=1 also copies the light desktop screenshot to docs/screenshot.png
// (the README's picture).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { DESKTOP, PHONE, launchBrowser, openUser, startStack } from '../helpers/web.mjs';
import { REPO_ROOT } from '../helpers/server.mjs';

const T = { timeout: 60000 };
const DOCS_SCREENSHOT = path.join(REPO_ROOT, 'docs', 'screenshot.png');
const MAX_DOCS_PNG = 200 * 1024;

describe('web client layout: desktop and phone, light and dark', { timeout: 120000 }, () => {
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
    // A conversation worth looking at.
    await alice.byId('create-room-name').fill('rust');
    await alice.byId('create-room-submit').click();
    await alice.waitTitle('# rust');
    await bob.byId('create-room-name').fill('rust'); // exists: bob joins it
    await bob.byId('create-room-submit').click();
    await bob.waitTitle('# rust');
    await alice.room('lobby').getByRole('button').click();
    await bob.room('lobby').getByRole('button').click();
    await bob.send('Morning! Is the new build behind nginx yet?');
    await alice.send('Yes: nginx in front, chatd behind it. Notes at https://example.com/deploy');
    await bob.send('Nice. I restarted chatd and the page reconnected by itself.\nNothing lost.');
    await alice.send('Messages are acknowledged only once they are on disk.');
    await bob.room('rust').getByRole('button').click();
    await bob.send('Anyone up for a borrow-checker puzzle?');
    await alice.room('rust').getByTestId('unread').waitFor();
    await bob.room('lobby').getByRole('button').click();
    await bob.member('alice').getByRole('button').click();
    await bob.send('Lunch at noon?');
    await alice.dm('bob').getByTestId('unread').waitFor();
    await bob.room('lobby').getByRole('button').click();
    await alice.message('Nice. I restarted chatd and the page reconnected by itself.\nNothing lost.').waitFor();
  });

  after(async () => {
    await browser?.close();
    await stack?.close();
  });

  /** Shows bob typing at alice's (for the picture). */
  async function bobTyping() {
    await bob.byId('input').fill('');
    await bob.typeUntilSeenBy(alice, 'Let me');
  }

  async function look(scheme, viewport) {
    await alice.page.emulateMedia({ colorScheme: scheme });
    await alice.page.setViewportSize(viewport);
    const bg = await alice.page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(bg, scheme === 'dark' ? 'rgb(22, 24, 28)' : 'rgb(255, 255, 255)', `${scheme} background`);
    const overflow = await alice.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling (${overflow} px too wide)`);
  }

  /** The composer is on screen, inside the viewport. */
  async function composerOnScreen(viewport) {
    for (const id of ['input', 'send']) {
      const box = await alice.byId(id).boundingBox();
      assert.ok(box, `${id} is shown`);
      assert.ok(box.x >= 0 && box.x + box.width <= viewport.width + 0.5, `${id} fits across: ${JSON.stringify(box)}`);
      assert.ok(box.y >= 0 && box.y + box.height <= viewport.height + 0.5, `${id} fits down: ${JSON.stringify(box)}`);
    }
  }

  for (const scheme of ['light', 'dark']) {
    it(`desktop, ${scheme}: sidebar, conversation and members side by side`, T, async () => {
      await look(scheme, DESKTOP);
      for (const id of ['sidebar', 'messages', 'members-panel']) assert.equal(await alice.byId(id).isVisible(), true, id);
      assert.equal(await alice.byId('open-sidebar').isVisible(), false);
      await composerOnScreen(DESKTOP);
      await bobTyping();
      const file = await alice.screenshot(`desktop-${scheme}.png`);
      if (scheme === 'light' && process.env.WEB_UPDATE_DOCS_SCREENSHOT === '1') {
        assert.ok(statSync(file).size < MAX_DOCS_PNG, `${file} is ${statSync(file).size} bytes`);
        copyFileSync(file, DOCS_SCREENSHOT);
      }
    });

    it(`phone, ${scheme}: one column, menus for rooms and members, sending works`, T, async () => {
      await look(scheme, PHONE);
      await composerOnScreen(PHONE);
      assert.equal(await alice.byId('sidebar').isVisible(), false, 'the sidebar folds away');
      assert.equal(await alice.byId('members-panel').isVisible(), false, 'so do the members');
      await bobTyping();
      await alice.screenshot(`phone-${scheme}.png`);

      // The room menu: open it, pick a room, and it closes again.
      await alice.byId('open-sidebar').click();
      await alice.byId('sidebar').waitFor();
      const sidebar = await alice.byId('sidebar').boundingBox();
      assert.ok(sidebar.x >= 0 && sidebar.x + sidebar.width <= PHONE.width, `sidebar on screen: ${JSON.stringify(sidebar)}`);
      await alice.screenshot(`phone-${scheme}-rooms.png`);
      await alice.room('rust').getByRole('button').click();
      await alice.waitTitle('# rust');
      await alice.byId('sidebar').waitFor({ state: 'hidden' });
      await alice.message('Anyone up for a borrow-checker puzzle?').waitFor();
      await alice.send(`Sent from a phone (${scheme})`);
      await bob.room('rust').getByTestId('unread').waitFor();

      // The member list.
      await alice.byId('toggle-members').click();
      await alice.member('bob').waitFor();
      await alice.screenshot(`phone-${scheme}-members.png`);
      await alice.byId('close-members').click();
      await alice.byId('members-panel').waitFor({ state: 'hidden' });
      // Picking someone there opens the conversation and closes the panel; Escape closes menus.
      await alice.byId('toggle-members').click();
      await alice.member('bob').getByRole('button').click();
      await alice.waitTitle('@ bob');
      await alice.byId('members-panel').waitFor({ state: 'hidden' });
      await alice.byId('open-sidebar').click();
      await alice.byId('sidebar').waitFor();
      await alice.page.keyboard.press('Escape');
      await alice.byId('sidebar').waitFor({ state: 'hidden' });

      // Back to the lobby for the next picture.
      await alice.byId('open-sidebar').click();
      await alice.room('lobby').getByRole('button').click();
      await alice.waitTitle('# lobby');
      await bob.room('rust').getByRole('button').click();
      await bob.room('lobby').getByRole('button').click();
      await bob.room('rust').getByTestId('unread').waitFor({ state: 'detached' });
      assert.deepEqual([...alice.errors, ...bob.errors], []);
    });
  }

  it('the README screenshot is there and small', () => {
    const size = statSync(DOCS_SCREENSHOT).size;
    assert.ok(size > 1000 && size < MAX_DOCS_PNG, `docs/screenshot.png is ${size} bytes`);
  });
});
