// The web client (web/) in Chromium through nginx on a chatd cluster (PostgreSQL, Redis, nodes
// a, b, c; docs/deploy/nginx-cluster.conf) during a rolling restart: two users in a room type a
// message every ~300 ms while the three nodes are stopped (SIGTERM: each drains, moving its
// clients to the others over --drain-window-ms) and started again, one after the other. A move
// is meant to be invisible: the banner never shows, every message typed is on both pages once
// (seqs 1..n, no gap), and neither page ever drops the other user from its member list.
// The restart order follows bob, so that his page is moved twice in a row (a move onto the
// node that is stopped next).
//
// `cargo build -p chatd` first.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { elapse } from '../helpers/chatd.mjs';
import { chatdHasPostgres, Cluster, startCluster } from '../helpers/cluster.mjs';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, launchBrowser, openUser } from '../helpers/web.mjs';

const WINDOW = 1500; // --drain-window-ms
const TYPE_EVERY = 300; // ms between two messages of one user
const SKIP = chatdHasPostgres() ? false : 'this chatd has no PostgreSQL store';

/** The node serving a page now: the prefix of the session id in its latest WebSocket's URL. */
function nodeOf(user) {
  return Cluster.nodeOf(new URL(user.websockets.at(-1)).searchParams.get('sid'));
}

/** Resolves once the page has opened more than `count` WebSockets. */
async function openedMore(user, count) {
  while (user.websockets.length <= count) await user.page.waitForEvent('websocket');
}

/** [seq, text] of every message the page shows, top to bottom (a pending one has seq 0). */
function shown(user) {
  return user.messages().evaluateAll((els) => els.map((e) => [
    Number(e.dataset.seq), e.querySelector('[data-testid=text]').textContent,
  ]));
}

/**
 * Records, from now on, every change of the banner (a state, or hidden) and every member list
 * the page renders, in window.__rolling: [{ at, banner } | { at, members }].
 */
function watchPage(user) {
  return user.page.evaluate(() => {
    const log = [];
    window.__rolling = log;
    const b = document.querySelector('[data-testid=banner]');
    new MutationObserver(() => {
      log.push({ at: Date.now(), banner: b.hidden ? 'hidden' : (b.dataset.state ?? 'shown'), text: b.textContent });
    }).observe(b, { attributes: true, attributeFilter: ['hidden', 'data-state'], childList: true, characterData: true, subtree: true });
    const members = document.querySelector('[data-testid=members]');
    new MutationObserver(() => {
      const names = [...members.querySelectorAll('[data-testid=member]')].map((m) => m.dataset.user);
      log.push({ at: Date.now(), members: names });
    }).observe(members, { childList: true });
  });
}

describe('web client on a chatd cluster: rolling restart', { skip: SKIP, timeout: 120000 }, () => {
  let browser;
  before(async () => { browser = await launchBrowser(); });
  after(async () => { await browser?.close(); });

  it('two users chatting while every node restarts: no banner, nothing lost or doubled, nobody leaves', {
    timeout: 100000,
  }, async (t) => {
    const cluster = await startCluster({
      t,
      flags: {
        'drain-window-ms': WINDOW,
        'presence-grace-ms': 4000,
        'node-timeout-ms': 3000,
        'message-burst': 1000,
        'message-rate': 1000,
      },
    });
    const site = { url: cluster.nginx.url };
    const users = [];
    for (const name of ['alice', 'bob']) {
      const user = await openUser(browser, site);
      t.after(() => user.close());
      user.frames = [];
      user.page.on('websocket', (ws) => {
        const id = new URL(ws.url()).searchParams.get('sid');
        ws.on('framereceived', (f) => user.frames.push(`${Date.now()} ${id} < ${String(f.payload).slice(0, 80)}`));
        ws.on('framesent', (f) => user.frames.push(`${Date.now()} ${id} > ${String(f.payload).slice(0, 80)}`));
        ws.on('close', () => user.frames.push(`${Date.now()} ${id} closed`));
      });
      await user.login(name);
      await user.upgraded();
      users.push(user);
    }
    const [alice, bob] = users;
    await alice.member('bob').waitFor();
    await bob.member('alice').waitFor();
    for (const user of users) await watchPage(user);
    const opened = users.map((u) => u.websockets.length);

    // Each types a message every ~300 ms through the composer, whether or not it is acked yet.
    const sent = { alice: [], bob: [] };
    let typing = true;
    const typists = users.map(async (user) => {
      for (let i = 1; typing; i++) {
        const text = `${user.name} ${i}`;
        sent[user.name].push(text);
        await user.typeAndSend(text);
        await elapse(TYPE_EVERY); // the typing pace, not a synchronisation
      }
    });

    // One node after the other: SIGTERM, it drains and exits 0, it starts again on its port.
    // First bob's node, then the one he moved to (if it has not restarted yet), then the rest.
    const order = [];
    const remaining = new Set(['a', 'b', 'c']);
    while (remaining.size) {
      const id = remaining.has(nodeOf(bob)) ? nodeOf(bob) : [...remaining][0];
      remaining.delete(id);
      order.push(id);
      const bobOpened = bob.websockets.length;
      const moves = nodeOf(bob) === id;
      const exit = await cluster.kill(id, 'SIGTERM');
      assert.equal(exit.code, 0, `node ${id} exit ${JSON.stringify(exit)}\n${cluster.logs()}`);
      // Back on another node before this one returns: his next move is then certain.
      if (moves) await openedMore(bob, bobOpened);
      await cluster.restartNode(id);
    }
    typing = false;
    await Promise.all(typists);

    const all = [...sent.alice, ...sent.bob];
    try {
      // Every message typed ends up acked on its page and shown on both.
      for (const user of users) {
        for (const text of sent[user.name]) await user.message(text).and(user.page.locator('[data-status=sent]')).waitFor();
        for (const text of all) await user.message(text).waitFor();
      }
      const [a, b] = [await shown(alice), await shown(bob)];
      assert.deepEqual(a, b, 'the same messages on both pages');
      assert.deepEqual(a.map(([seq]) => seq), Array.from({ length: all.length }, (_, i) => i + 1), 'seqs 1..n, once each');
      assert.deepEqual(a.map(([, text]) => text).sort(), [...all].sort(), 'each message typed, once');

      for (const [user, other] of [[alice, bob], [bob, alice]]) {
        const log = await user.page.evaluate(() => window.__rolling);
        const showed = log.filter((e) => e.banner && e.banner !== 'hidden');
        assert.deepEqual(showed, [], `${user.name}'s banner showed`);
        const without = log.filter((e) => e.members && !e.members.includes(other.name));
        assert.deepEqual(without, [], `${user.name}'s member list lost ${other.name}`);
        assert.equal(await user.banner.isHidden(), true);
      }
    } catch (e) {
      // What each page received and every node logged, for the post-mortem.
      mkdirSync(ARTIFACTS, { recursive: true });
      for (const n of ['a', 'b', 'c']) writeFileSync(path.join(ARTIFACTS, `web-rolling-node-${n}.log`), cluster.nodes[n].allStderr());
      for (const user of users) {
        writeFileSync(path.join(ARTIFACTS, `web-rolling-${user.name}.log`), [
          `shown: ${JSON.stringify(await shown(user).catch(() => null))}`,
          `page log: ${JSON.stringify(await user.page.evaluate(() => window.__rolling).catch(() => null))}`,
          ...user.frames,
        ].join('\n'));
      }
      e.message += `\n(page frames and node logs in ${ARTIFACTS}/web-rolling-*.log)`;
      throw e;
    }
    // Each page was moved (a new WebSocket, on another node); bob at least twice.
    users.forEach((u, i) => assert.ok(u.websockets.length > opened[i], `${u.name} was never moved`));
    assert.ok(bob.websockets.length >= opened[1] + 2, `bob was moved ${bob.websockets.length - opened[1]} time(s)`);
    assert.deepEqual([...alice.errors, ...bob.errors], []);
    t.diagnostic(`${all.length} messages; restart order ${order.join(' ')}; WebSockets opened: alice ${alice.websockets.length}, bob ${bob.websockets.length}`);
  });
});
