// The rolling-restart bench: tests/helpers/rolling.mjs with thousands of stock socket.io-client
// clients on a three-node chatd cluster (PostgreSQL, Redis, nginx with
// docs/deploy/nginx-cluster.conf, all started here on free ports and stopped at the end).
//
//   cargo build --release -p chatd
//   CHATD_BIN=target/release/chatd node bench/rolling.mjs [--clients 10000] [--window-ms 10000]
//                                                         [--send-every-ms 10000]
//
// Prints the report (lost, duplicated, out of order, unrecovered: all must be 0; the peak of
// reconnections within one second, per node and overall) and writes it to
// bench/results/rolling-<timestamp>.json. Needs `scripts/setup.sh --tests` (tests/node_modules).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CHATD_BIN } from '../tests/helpers/chatd.mjs';
import { startCluster } from '../tests/helpers/cluster.mjs';
import { rollingRestart } from '../tests/helpers/rolling.mjs';

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '10000' },
    'window-ms': { type: 'string', default: '10000' },
    'send-every-ms': { type: 'string', default: '10000' },
    'room-size': { type: 'string', default: '10' },
  },
});
const clients = Number(values.clients);
const window = Number(values['window-ms']);
const started = new Date();
const log = (m) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${m}`);

log(`chatd ${CHATD_BIN}; ${clients} clients; drain window ${window} ms`);
const cluster = await startCluster({
  nginxWorkers: 2,
  flags: {
    'presence-grace-ms': 10000,
    'node-timeout-ms': 5000,
    'drain-window-ms': window,
    'max-connections-per-ip': clients * 2,
    'max-unfinished-connections': 65536,
    'log-format': 'text',
  },
});
let report;
try {
  report = await rollingRestart(cluster, {
    clients,
    rooms: Math.max(1, Math.round(clients / Number(values['room-size']))),
    sendEvery: Number(values['send-every-ms']),
    batch: 100,
    settleMs: 60000,
    log,
  });
  // What the nodes warned about, by message.
  const warnings = {};
  for (const n of Object.values(cluster.nodes)) {
    for (const line of n.allStderr().split('\n')) {
      const m = /(WARN|ERROR)\S*\s+(\S+?):?\s+(.*)$/.exec(line.replace(/\x1b\[[0-9;]*m/g, ''));
      if (m) {
        const key = `${m[1]} ${m[2]} ${m[3].replace(/\d+/g, 'N').slice(0, 120)}`;
        warnings[key] = (warnings[key] ?? 0) + 1;
      }
    }
  }
  report.nodeWarnings = warnings;
} catch (err) {
  console.error(cluster.logs());
  throw err;
} finally {
  await cluster.stop();
}
const result = { scenario: 'rolling', at: started.toISOString(), chatd: CHATD_BIN, windowMs: window, ...report };
const dir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'results');
mkdirSync(dir, { recursive: true });
const file = path.join(dir, `rolling-${started.toISOString().replace(/[:.]/g, '-')}.json`);
writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
console.log(JSON.stringify(result, null, 2));
log(`written to ${file}`);
const clean = report.lost === 0 && report.duplicated === 0 && report.outOfOrder === 0 && report.unrecovered === 0;
process.exit(clean ? 0 : 1);
