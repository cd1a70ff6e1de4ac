// A rolling restart of the three nodes behind nginx while 300 clients chat (ROLLING_CLIENTS
// overrides): each node, stopped with SIGTERM, refuses new connections (503: nginx sends them
// elsewhere), tells its clients it is moving them and closes their connections spread over
// --drain-window-ms; the stock client reconnects by itself through nginx to another node and
// recovers its session there (same id, rooms, every missed message), so nobody loses a message,
// sees one twice, or sees anybody leave. The scenario is tests/helpers/rolling.mjs (also the
// bench's, bench/rolling.mjs, with 10 000 clients). `cargo build -p chatd` first.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster } from '../helpers/cluster.mjs';
import { rollingRestart } from '../helpers/rolling.mjs';

const CLIENTS = Number(process.env.ROLLING_CLIENTS ?? 300);
const WINDOW = 3000; // --drain-window-ms

describe('chatd cluster: rolling restart of every node, clients chatting', { timeout: 240000 }, () => {
  let cluster;
  before(async () => {
    cluster = await startCluster({
      flags: {
        'presence-grace-ms': 5000,
        'node-timeout-ms': 3000,
        'drain-window-ms': WINDOW,
        'max-connections-per-ip': CLIENTS * 2,
      },
    });
  });
  after(async () => { await cluster?.stop(); });

  let report;
  it(`${CLIENTS} clients: every client recovers, nothing doubled or out of order, no presence flicker, moves spread`, { timeout: 230000 }, async (t) => {
    report = await rollingRestart(cluster, {
      clients: CLIENTS,
      rooms: Math.max(1, Math.round(CLIENTS / 10)),
      sendEvery: 3000,
      scope: t,
    });
    t.diagnostic(JSON.stringify(report));
    const logs = () => cluster.logs().split('\n').filter((l) => /WARN|ERROR|---/.test(l)).join('\n');
    assert.deepEqual(report.problems.filter((p) => !/ misses | was sent by /.test(p)), [], logs());
    assert.equal(report.clients, CLIENTS);
    assert.ok(report.messages >= CLIENTS, `only ${report.messages} messages acked`);
    assert.equal(report.duplicated, 0);
    assert.equal(report.outOfOrder, 0);
    assert.equal(report.unrecovered, 0, 'clients reconnected without recovery');
    assert.equal(report.neverMoved, 0, 'clients never moved');
    assert.equal(report.notTold, 0, 'clients not told they move');
    assert.equal(report.presenceLeaves, 0);
    assert.equal(report.disconnected, 0);
    // The moves of each node were spread over its window, not all at once.
    for (const [id, n] of Object.entries(report.nodes)) {
      if (n.moved < 10) continue;
      assert.ok(n.spanMs >= WINDOW / 3, `node ${id}: ${n.moved} clients moved within ${n.spanMs} ms`);
      assert.ok(n.peakPerSecond <= 0.6 * n.moved, `node ${id}: ${n.peakPerSecond} of ${n.moved} moves within one second`);
    }
  });

  it('every acked message reaches every member', () => {
    assert.ok(report, 'the restart ran');
    assert.equal(report.lost, 0, JSON.stringify(report.problems));
  });
});
