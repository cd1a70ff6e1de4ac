// chatd restarted mid-conversation, behind nginx: the page shows the connection banner,
// reconnects by itself, and a message sent while chatd was down is delivered exactly once.
// chatd comes back on the same data directory and the same port, so nginx keeps working.
// Also the browser's own network going away (the "offline" banner).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { launchBrowser, openUser, startStack } from '../helpers/web.mjs';
import { io } from '../helpers/chatd.mjs';

const CASES = [
  { signal: 'SIGTERM', transports: undefined }, // clean shutdown: chatd closes every session
  { signal: 'SIGKILL', transports: 'polling' }, // a crash: the client only sees failed requests
];

describe('web client across a chatd restart or a network loss', { timeout: 120000 }, () => {
  let browser;
  before(async () => { browser = await launchBrowser(); });
  after(async () => { await browser?.close(); });

  for (const { signal, transports } of CASES) {
    it(`${signal} with ${transports ?? 'default'} transports: banner, reconnect, the queued message arrives once`, { timeout: 60000 }, async (t) => {
      const stack = await startStack({ 'presence-grace-ms': 1500 });
      t.after(() => stack.close());
      const alice = await openUser(browser, stack, { transports });
      const bob = await openUser(browser, stack, { transports });
      t.after(() => alice.close());
      t.after(() => bob.close());
      await alice.login('alice');
      await bob.login('bob');
      await alice.send('before the restart');
      await bob.message('before the restart').waitFor();

      const exit = await stack.chatd.kill(signal);
      assert.equal(signal === 'SIGTERM' ? exit.code : exit.signal, signal === 'SIGTERM' ? 0 : 'SIGKILL',
        `chatd exit: ${JSON.stringify(exit)}\n${stack.logs()}`);

      // Both pages notice and say so.
      for (const user of [alice, bob]) {
        await user.page.locator('[data-testid=banner][data-state=reconnecting]').waitFor();
        assert.match(await user.banner.textContent(), /reconnecting|connection lost|disconnected/i);
      }

      // alice writes while chatd is down: the message waits in her outbox.
      const text = `sent while chatd was down (${signal})`;
      await alice.typeAndSend(text);
      await alice.message(text).and(alice.page.locator('[data-status=queued]')).waitFor();
      assert.equal(await alice.message(text).getByTestId('status').textContent(), 'queued');

      await stack.chatd.start(); // same port, same data directory
      for (const user of [alice, bob]) await user.banner.waitFor({ state: 'hidden', timeout: 20000 });

      // Delivered: acknowledged at alice's, received by bob, once.
      await alice.message(text).and(alice.page.locator('[data-status=sent]')).waitFor();
      await bob.message(text).waitFor();
      // An ordering barrier: alice's commands are handled in order, so a duplicate of the queued
      // message would reach bob before this one.
      await alice.send('after the restart');
      await bob.message('after the restart').waitFor();
      assert.equal(await bob.message(text).count(), 1, 'bob sees it once');
      assert.equal(await alice.message(text).count(), 1, 'alice sees it once');
      // bob can still talk to alice.
      await bob.send('welcome back');
      await alice.message('welcome back').waitFor();

      // Still once after a reload, at both sides, and in order.
      for (const user of [bob, alice]) {
        await user.reload();
        await user.message('welcome back').waitFor();
        assert.equal(await user.message(text).count(), 1, `${user.name} after a reload`);
        const texts = await user.messages().getByTestId('text').allTextContents();
        assert.deepEqual(texts, ['before the restart', text, 'after the restart', 'welcome back'], `${user.name}'s lobby`);
        const seqs = await user.messages().evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
        assert.deepEqual(seqs, [1, 2, 3, 4]);
      }
      assert.deepEqual([...alice.errors, ...bob.errors], []);
    });
  }

  it('the browser goes offline: offline banner, the message waits, and goes out once back online', { timeout: 60000 }, async (t) => {
    const stack = await startStack();
    t.after(() => stack.close());
    const alice = await openUser(browser, stack);
    const bob = await openUser(browser, stack);
    t.after(() => alice.close());
    t.after(() => bob.close());
    await alice.login('alice');
    await bob.login('bob');
    await alice.upgraded();

    await alice.context.setOffline(true);
    await alice.page.locator('[data-testid=banner][data-state=offline]').waitFor();
    assert.match(await alice.banner.textContent(), /offline/i);
    const text = 'written without a network';
    await alice.typeAndSend(text);
    // Queued at once without a connection (or after the ack timeout if the socket lingers).
    await alice.message(text).and(alice.page.locator('[data-status=queued]')).waitFor();
    assert.equal(await bob.message(text).count(), 0);

    await alice.context.setOffline(false);
    await alice.banner.waitFor({ state: 'hidden', timeout: 20000 });
    await alice.message(text).and(alice.page.locator('[data-status=sent]')).waitFor();
    await bob.message(text).waitFor();
    await alice.send('and one more');
    await bob.message('and one more').waitFor();
    assert.equal(await bob.message(text).count(), 1);
    assert.deepEqual([...alice.errors, ...bob.errors], []);
  });

  it('away while more than a page was written: back without recovery, the page follows the catch-up to the end', { timeout: 60000 }, async (t) => {
    // bob's page cannot reach the server while chatd crashes, comes back and 150 messages are
    // written; recovery keeps sessions for 1 ms only. Back, the page has no session to recover:
    // it re-joins with `since`, and the join's ack holds one page (100 messages) of them.
    const stack = await startStack({ 'message-rate': 10000, 'message-burst': 10000, 'recovery-window-ms': 1 });
    t.after(() => stack.close());
    const bob = await openUser(browser, stack);
    t.after(() => bob.close());
    await bob.login('bob');
    await bob.upgraded();
    const writer = io(`http://127.0.0.1:${stack.chatd.port}/chat`, { auth: { username: 'writer' }, transports: ['websocket'] });
    t.after(() => writer.close());
    const ask = (event, payload) => writer.timeout(15000).emitWithAck(event, payload);
    assert.equal((await ask('room:join', { room: 'lobby' })).ok, true);
    assert.equal((await ask('message:send', { room: 'lobby', id: 'w-first', text: 'before bob left' })).ok, true);
    await bob.message('before bob left').waitFor();

    // Away: every new request of the page to Socket.IO fails.
    const blocked = '**/socket.io/**';
    await bob.context.route(blocked, (route) => route.abort());
    await bob.context.routeWebSocket(/\/socket\.io\//, (ws) => ws.close());
    await stack.chatd.kill('SIGKILL');
    const back = new Promise((resolve) => writer.once('connect', resolve));
    await stack.chatd.start();
    await back;
    assert.equal(writer.recovered, false);
    await bob.page.locator('[data-testid=banner][data-state=reconnecting]').waitFor();
    assert.equal((await ask('room:join', { room: 'lobby' })).ok, true);
    const N = 150;
    for (let i = 0; i < N; i++) {
      assert.equal((await ask('message:send', { room: 'lobby', id: `w-${i}`, text: `missed ${i}` })).ok, true);
    }
    await bob.context.unroute(blocked);
    await bob.context.unrouteAll();
    await bob.banner.waitFor({ state: 'hidden', timeout: 20000 });
    await bob.message(`missed ${N - 1}`).waitFor();
    const seqs = await bob.messages().evaluateAll((els) => els.map((e) => Number(e.dataset.seq)));
    assert.deepEqual(seqs, Array.from({ length: N + 1 }, (_, i) => i + 1), 'every message once, in order');
    assert.deepEqual(bob.errors, []);
  });
});
