// scripts/rolling-restart.sh on a three-node cluster behind nginx while 30 clients chat. The
// script's restart command here is `POST /admin/drain` (in production, `systemctl restart
// chatd@<id>`), and this test plays systemd: a node that exited is started again on its port.
// The script must restart a, b and c one after the other, each time waiting for the node to be
// healthy and to see every node again, and exit 0; nobody loses a message or its session.
// `cargo build -p chatd` first.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { withTimeout } from '../helpers/chatd.mjs';
import { startCluster } from '../helpers/cluster.mjs';
import { rollingRestart } from '../helpers/rolling.mjs';
import { REPO_ROOT } from '../helpers/server.mjs';

describe('scripts/rolling-restart.sh', { timeout: 120000 }, () => {
  let cluster;
  let configDir;
  before(async () => {
    cluster = await startCluster({
      flags: { 'presence-grace-ms': 5000, 'node-timeout-ms': 3000, 'drain-window-ms': 1500 },
    });
    configDir = mkdtempSync(path.join(os.tmpdir(), 'chatd-rolling-conf-'));
  });
  after(async () => {
    await cluster?.stop();
    if (configDir) rmSync(configDir, { recursive: true, force: true });
  });

  it('restarts every node in turn, waiting for each to be back; clients move and recover', async (t) => {
    const ids = ['a', 'b', 'c'];
    for (const id of ids) {
      writeFileSync(path.join(configDir, `${id}.toml`), `listen = "127.0.0.1:${cluster.nodes[id].port}"\n`);
    }
    // systemd's part: start a node again once it exited (after its drain).
    const restarts = Object.fromEntries(ids.map((id) => [id, 0]));
    const exits = [];
    let supervising = true;
    const supervise = (id) => cluster.nodes[id].exited.then(async (exit) => {
      if (!supervising) return;
      exits.push({ id, ...exit });
      await cluster.restartNode(id);
      restarts[id] += 1;
      supervise(id);
    });
    ids.forEach(supervise);
    t.after(() => { supervising = false; });

    let output = '';
    const report = await rollingRestart(cluster, {
      clients: 30,
      rooms: 3,
      sendEvery: 1000,
      scope: t,
      restartAll: async () => {
        const script = spawn('bash', [path.join(REPO_ROOT, 'scripts/rolling-restart.sh'), ...ids], {
          env: {
            ...process.env,
            CONFIG_DIR: configDir,
            WAIT_S: '30',
            SETTLE_S: '2',
            RESTART_CMD: 'curl -fsS -X POST http://{addr}/admin/drain',
          },
        });
        script.stdout.on('data', (c) => { output += c; });
        script.stderr.on('data', (c) => { output += c; });
        const code = await withTimeout(new Promise((r) => script.on('exit', r)), 90000, 'the script to finish');
        assert.equal(code, 0, output);
      },
    });
    supervising = false;
    t.diagnostic(output.trim().split('\n').filter((l) => /back|restarting/.test(l)).join(' | '));
    assert.deepEqual(restarts, { a: 1, b: 1, c: 1 }, output);
    assert.deepEqual(exits.map((e) => [e.id, e.code]), [['a', 0], ['b', 0], ['c', 0]]);
    for (const id of ids) assert.match(output, new RegExp(`chatd@${id} is back: .*"status":"ok"`));
    assert.deepEqual(report.problems, []);
    assert.equal(report.lost, 0);
    assert.equal(report.duplicated, 0);
    assert.equal(report.unrecovered, 0);
    assert.equal(report.neverMoved, 0);
  });
});
