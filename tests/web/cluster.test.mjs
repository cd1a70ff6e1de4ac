// The web client (web/) in Chromium against a chatd cluster behind nginx
// (docs/deploy/nginx-cluster.conf; PostgreSQL, Redis, nodes a, b, c): two users on two nodes
// chat; the node of one of them is killed (SIGKILL). Its page reconnects through nginx to a live
// node by itself, and both go on chatting: every message reaches both pages once and in order,
// and neither is shown the other leaving for good.
//
// `cargo build -p chatd` first.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { elapse } from '../helpers/chatd.mjs';
import { chatdHasPostgres, Cluster, startCluster } from '../helpers/cluster.mjs';
import { exactly, launchBrowser, openUser } from '../helpers/web.mjs';

const GRACE = 1000; // --presence-grace-ms
const NODE_TIMEOUT = 2000; // --node-timeout-ms
const SKIP = chatdHasPostgres() ? false : 'this chatd has no PostgreSQL store';

/** The node serving a page now: the prefix of the session id in its latest WebSocket's URL. */
function nodeOf(user) {
  return Cluster.nodeOf(new URL(user.websockets.at(-1)).searchParams.get('sid'));
}

/**
 * Reloads the page until it is served by another node than `node`. The pool's least_conn does
 * not see upgraded WebSockets (they go to their session's node by the sid), so a new page may
 * land on any node.
 */
async function moveOffNode(user, node) {
  for (let i = 0; i < 6 && nodeOf(user) === node; i++) {
    const opened = user.websockets.length;
    await user.reload();
    if (user.websockets.length === opened) await user.page.waitForEvent('websocket');
  }
}

/** What a page shows of the open room: [seq, text] of every message, top to bottom. */
function shown(user) {
  return user.messages().evaluateAll((els) => els.map((e) => [
    Number(e.dataset.seq), e.querySelector('[data-testid=text]').textContent,
  ]));
}

describe('web client on a chatd cluster', { skip: SKIP, timeout: 90000 }, () => {
  let browser;
  before(async () => { browser = await launchBrowser(); });
  after(async () => { await browser?.close(); });

  it('the node of one user is killed: both keep chatting, nothing lost or doubled, nobody gone', { timeout: 60000 }, async (t) => {
    const cluster = await startCluster({ t, flags: { 'presence-grace-ms': GRACE, 'node-timeout-ms': NODE_TIMEOUT } });
    const site = { url: cluster.nginx.url };
    const alice = await openUser(browser, site);
    t.after(() => alice.close());
    await alice.login('alice');
    await alice.upgraded();
    const bob = await openUser(browser, site);
    t.after(() => bob.close());
    await bob.login('bob');
    await bob.upgraded();
    const victim = nodeOf(alice);
    await moveOffNode(bob, victim);
    assert.notEqual(nodeOf(bob), victim, `both on node ${victim}`);
    await alice.member('bob').waitFor();
    await bob.member('alice').waitFor();

    const sent = { alice: [], bob: [] };
    const say = async (user, text) => {
      sent[user.name].push(text);
      await user.send(text);
    };
    await say(alice, 'hello from alice');
    await say(bob, 'hello from bob');
    await alice.message('hello from bob').waitFor();
    await bob.message('hello from alice').waitFor();

    const killedAt = performance.now();
    const exit = await cluster.kill(victim, 'SIGKILL');
    assert.equal(exit.signal, 'SIGKILL');
    // Her page notices (the banner's every state is recorded, however short).
    await alice.page.waitForFunction(() => window.__banner.includes('reconnecting'));

    // Both write at once: alice's goes out when her page is back.
    sent.alice.push('alice, while her node is gone');
    await alice.typeAndSend('alice, while her node is gone');
    await say(bob, 'bob, right after the crash');
    await alice.banner.waitFor({ state: 'hidden', timeout: 20000 });
    const moved = nodeOf(alice);
    assert.ok(moved !== victim && cluster.nodes[moved], `alice back on a live node (${moved})`);
    await alice.message('alice, while her node is gone').and(alice.page.locator('[data-status=sent]')).waitFor();
    for (let i = 1; i <= 3; i++) {
      await say(alice, `alice after the crash ${i}`);
      await say(bob, `bob after the crash ${i}`);
    }

    // Both pages end up with the same conversation: every message once, seqs 1..n in order.
    const all = [...sent.alice, ...sent.bob];
    for (const user of [alice, bob]) {
      for (const text of all) await user.message(text).waitFor();
    }
    const [a, b] = [await shown(alice), await shown(bob)];
    assert.deepEqual(a, b, 'the same messages on both pages');
    assert.deepEqual(a.map(([seq]) => seq), Array.from({ length: all.length }, (_, i) => i + 1), 'seqs 1..n, once each');
    assert.deepEqual(a.map(([, text]) => text).sort(), [...all].sort(), 'each message once');
    for (const who of ['alice', 'bob']) {
      const order = a.filter(([, text]) => sent[who].includes(text)).map(([, text]) => text);
      assert.deepEqual(order, sent[who], `${who}'s messages in the order written`);
    }

    // Once a silent node counts as gone and the grace is over, each still sees the other.
    await elapse(Math.max(0, killedAt + GRACE + NODE_TIMEOUT + 1000 - performance.now()));
    await say(bob, 'still there?');
    await alice.message('still there?').waitFor();
    assert.equal(await bob.member('alice').count(), 1, 'bob sees alice present');
    assert.equal(await alice.member('bob').count(), 1, 'alice sees bob present');
    await bob.room('lobby').getByTestId('room-members').filter({ hasText: exactly('2') }).waitFor();
    assert.deepEqual([...alice.errors, ...bob.errors], []);
  });
});
