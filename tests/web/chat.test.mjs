// The web client (web/) in real Chromium, through real nginx (docs/deploy/nginx.conf) in front of
// chatd: two users in two browser contexts go through the whole client, once with the default
// transports (polling, then the WebSocket upgrade) and once with `?transports=polling`.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chat, sendMany, TRANSPORTS } from '../helpers/chatd.mjs';
import { exactly, launchBrowser, openUser, startStack } from '../helpers/web.mjs';

const GRACE_MS = 1500; // chatd's --presence-grace-ms for these tests
const SEEDED = 120; // more than two pages of history (50 a page)
const T = { timeout: 60000 };

for (const transports of [undefined, 'polling']) {
  const mode = transports ?? 'default';

  describe(`web client, two users (${mode} transports)`, { timeout: 120000 }, () => {
    let stack;
    let browser;
    let alice;
    let bob;
    const room = `web-${mode}`;

    before(async () => {
      stack = await startStack({
        'presence-grace-ms': GRACE_MS,
        // The API seeds history quickly; the browser's own commands are far below the limits.
        'message-rate': 1000,
        'message-burst': 1000,
      });
      browser = await launchBrowser();
    });

    after(async () => {
      await browser?.close();
      await stack?.close();
    });

    /** No uncaught error in either page so far. */
    function noPageErrors() {
      assert.deepEqual([...(alice?.errors ?? []), ...(bob?.errors ?? [])], [], stack.logs());
    }

    it('two users pick names and meet in the lobby; a taken name is refused', T, async () => {
      alice = await openUser(browser, stack, { transports });
      await alice.login('alice');
      assert.equal(await alice.byId('me').textContent(), 'alice');
      assert.deepEqual(await alice.bannerStates(), ['connecting', 'hidden'], 'the banner while connecting');
      assert.equal(await alice.byId('conv-topic').textContent(), 'Everyone');

      bob = await openUser(browser, stack, { transports });
      await bob.byId('login-name').fill('ALICE'); // names are unique case-insensitively
      await bob.byId('login-submit').click();
      await bob.byId('login-error').filter({ hasText: /in use/ }).waitFor();
      assert.equal(await bob.byId('login').isVisible(), true, 'still on the login form');
      await bob.login('bob');

      // Presence both ways, and the sidebar's member count.
      await alice.member('bob').waitFor();
      await bob.member('alice').waitFor();
      await alice.room('lobby').getByTestId('room-members').filter({ hasText: exactly('2') }).waitFor();
      await bob.room('lobby').getByTestId('room-members').filter({ hasText: exactly('2') }).waitFor();
      assert.match(await alice.member('alice').textContent(), /\(you\)/);
      if (!transports) {
        // The default transports upgrade to a WebSocket, through nginx.
        for (const user of [alice, bob]) {
          const [url] = await user.upgraded();
          assert.match(url, new RegExp(`^ws://127\\.0\\.0\\.1:${stack.nginx.port}/socket\\.io/\\?EIO=4&transport=websocket&sid=`));
        }
      }
      noPageErrors();
    });

    it('messages go both ways: sending → sent, Enter sends, Shift+Enter is a newline', T, async () => {
      // Record every delivery state alice's messages go through.
      await alice.page.evaluate(() => {
        window.__states = [];
        new MutationObserver((records) => {
          for (const r of records) {
            for (const n of r.addedNodes) {
              if (n.dataset?.status) window.__states.push(`${n.querySelector('[data-testid=text]').textContent}:${n.dataset.status}`);
            }
          }
        }).observe(document.getElementById('messages'), { childList: true });
      });
      await alice.send('hello bob, from alice');
      const states = (await alice.page.evaluate(() => window.__states))
        .filter((s) => s.startsWith('hello bob, from alice:'))
        .map((s) => s.split(':').pop());
      assert.equal(states[0], 'sending', `states seen: ${states}`);
      assert.equal(states.at(-1), 'sent', `states seen: ${states}`);
      assert.equal(await alice.byId('input').inputValue(), '', 'the composer is cleared');

      const atBob = bob.message('hello bob, from alice');
      await atBob.waitFor();
      assert.equal(await atBob.getAttribute('data-status'), null, 'no delivery state on others’ messages');
      assert.equal(await atBob.locator('.author').textContent(), 'alice');

      await bob.send('line one\nline two');
      const atAlice = alice.message('line one\nline two');
      await atAlice.waitFor();
      assert.equal(await atAlice.getByTestId('text').textContent(), 'line one\nline two');
      assert.equal(await alice.messages().count(), 2);
      noPageErrors();
    });

    it('the typing indicator appears and disappears', T, async () => {
      await bob.typeUntilSeenBy(alice, 'abc');
      // Emptying the composer ends typing (at once; at the latest when the notice expires).
      await bob.page.keyboard.press('Control+A');
      await bob.page.keyboard.press('Backspace');
      await alice.typing.filter({ hasText: exactly('') }).waitFor();

      await bob.typeUntilSeenBy(alice, 'typing again');
      // Sending ends typing too.
      await bob.page.keyboard.press('Enter');
      await alice.message('typing again').waitFor();
      await alice.typing.filter({ hasText: exactly('') }).waitFor();
      noPageErrors();
    });

    it('a created room: the other user finds it after a reload (history kept), joins, gets unread badges', T, async () => {
      await alice.byId('create-room-name').fill(room);
      await alice.byId('create-room-submit').click();
      await alice.waitTitle(`# ${room}`);
      await alice.room(room).waitFor();
      assert.equal(await alice.room(room).getAttribute('class'), 'active');
      await alice.room(room).getByTestId('room-members').filter({ hasText: exactly('1') }).waitFor();

      // bob reloads: the lobby's history is there again, and the room list has the new room.
      await bob.reload();
      for (const text of ['hello bob, from alice', 'line one\nline two', 'typing again']) {
        await bob.message(text).waitFor();
        assert.equal(await bob.message(text).count(), 1, `${text} once`);
      }
      assert.equal(await bob.message('typing again').getAttribute('data-status'), 'sent');
      await bob.room(room).getByRole('button').click();
      await bob.waitTitle(`# ${room}`);
      await alice.member('bob').waitFor();
      await bob.member('alice').waitFor();
      await alice.room(room).getByTestId('room-members').filter({ hasText: exactly('2') }).waitFor();

      // alice looks at the lobby; bob writes in the room: an unread badge on it at alice's.
      await alice.room('lobby').getByRole('button').click();
      await alice.waitTitle('# lobby');
      await bob.send(`news in ${room}`);
      await bob.send(`more news in ${room}`);
      await alice.room(room).getByTestId('unread').filter({ hasText: exactly('2') }).waitFor();
      await alice.room(room).getByRole('button').click();
      await alice.waitTitle(`# ${room}`);
      await alice.message(`more news in ${room}`).waitFor();
      await alice.room(room).getByTestId('unread').waitFor({ state: 'detached' });
      noPageErrors();
    });

    it('older history loads on scrolling up', T, async () => {
      // Seed the lobby through nginx with the API (a third user, the stock client).
      const seeder = await chat(null, { url: stack.url.replace(/\/$/, '') }, 'seeder', { transport: TRANSPORTS.websocket });
      try {
        await seeder.ok('room:join', { room: 'lobby' });
        const pad = (i) => String(i + 1).padStart(3, '0');
        const sent = await sendMany(seeder, 'lobby', SEEDED, { prefix: `seed-${mode}`, text: (i) => `seed ${pad(i)}` });
        assert.ok(sent.every((e) => e.res?.ok), 'all seeded');
      } finally {
        seeder.close();
      }

      await alice.reload();
      // The latest page: 50 messages, a hint, the oldest ones not loaded yet.
      await alice.message(`seed ${SEEDED}`).waitFor();
      await alice.byId('messages').locator('.older').waitFor();
      assert.equal(await alice.messages().count(), 50);
      assert.equal(await alice.message('seed 001').count(), 0);
      assert.equal(await alice.message('hello bob, from alice').count(), 0);

      // Scroll to the top until the first message of the room is there.
      const box = alice.byId('messages');
      await box.hover();
      for (let pages = 0; pages < 5; pages++) {
        if (await alice.message('hello bob, from alice').count() > 0) break;
        const count = await alice.messages().count();
        await alice.page.mouse.wheel(0, -100000);
        await alice.messages().nth(count).waitFor(); // the next page arrived
      }
      await alice.message('hello bob, from alice').waitFor();
      await box.locator('.older').waitFor({ state: 'detached' }); // nothing more to load
      // Every message once, in order.
      const seqs = await alice.messages().evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
      assert.equal(seqs.length, SEEDED + 3);
      assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b));
      assert.equal(new Set(seqs).size, seqs.length);
      assert.equal(seqs[0], 1);
      // alice kept her place among the old messages instead of jumping to the latest.
      const fromEnd = await box.evaluate((b) => b.scrollHeight - b.scrollTop - b.clientHeight);
      assert.ok(fromEnd > 1000, `${fromEnd} px above the end`);
      noPageErrors();
    });

    it('a direct message: click a member, DM view, unread badge at the other side', T, async () => {
      await alice.waitTitle('# lobby');
      await alice.member('bob').getByRole('button').click();
      await alice.waitTitle('@ bob');
      assert.equal(await alice.byId('conv-topic').textContent(), 'Direct message');
      assert.equal(await alice.messages().count(), 0);
      await alice.send('psst, bob');

      // bob is in the room: the conversation shows up in his DM list with a badge.
      await bob.dm('alice').getByTestId('unread').filter({ hasText: exactly('1') }).waitFor();
      await bob.waitTitle(`# ${room}`);
      await bob.dm('alice').getByRole('button').click();
      await bob.waitTitle('@ alice');
      await bob.message('psst, bob').waitFor();
      await bob.dm('alice').getByTestId('unread').waitFor({ state: 'detached' });
      await bob.send('hi alice, privately');
      await alice.message('hi alice, privately').waitFor();
      assert.equal(await alice.messages().count(), 2);
      // Not in the lobby.
      await alice.room('lobby').getByRole('button').click();
      await alice.waitTitle('# lobby');
      assert.equal(await alice.message('psst, bob').count(), 0);
      // The conversation is still listed after a reload, with its history.
      await alice.reload();
      await alice.dm('bob').getByRole('button').click();
      await alice.waitTitle('@ bob');
      await alice.message('hi alice, privately').waitFor();
      assert.deepEqual(await alice.messages().getByTestId('text').allTextContents(), ['psst, bob', 'hi alice, privately']);
      await alice.room('lobby').getByRole('button').click();
      await alice.waitTitle('# lobby');
      noPageErrors();
    });

    it('presence: bob closes his page and leaves the member list after the grace period', T, async () => {
      await alice.member('bob').waitFor();
      noPageErrors();
      const closedAt = Date.now();
      await bob.close();
      const stillThere = await alice.member('bob').count();
      if (Date.now() - closedAt < GRACE_MS / 2) assert.equal(stillThere, 1, 'bob stays during the grace period');
      await alice.member('bob').waitFor({ state: 'detached', timeout: GRACE_MS + 10000 });
      const gone = Date.now() - closedAt;
      assert.ok(gone >= GRACE_MS - 100, `bob left after ${gone} ms, before the ${GRACE_MS} ms grace`);
      await alice.room('lobby').getByTestId('room-members').filter({ hasText: exactly('1') }).waitFor();
      assert.deepEqual(alice.errors, []);
      if (transports === 'polling') assert.deepEqual([...alice.websockets, ...bob.websockets], [], 'polling only');
    });
  });
}
