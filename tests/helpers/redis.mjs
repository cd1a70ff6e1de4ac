// A private redis-server for a test: 127.0.0.1 on a free port, no persistence.
//
//   const redis = await startRedis();   // redis.port, redis.url ("redis://127.0.0.1:<port>/")
//   await redis.stop();                 // SIGTERM, await exit
//   await redis.kill();                 // SIGKILL, await exit (a crash)
//   await startRedis({ port });         // again on a known port (no retry elsewhere)
//
// The binary is REDIS_SERVER_BIN, else /usr/bin/redis-server (Debian's, see scripts/setup.sh).
// Readiness is its "Ready to accept connections" log line; a port taken between our probe and
// its bind is retried on another port.
import { spawn } from 'node:child_process';
import net from 'node:net';

const BIN = process.env.REDIS_SERVER_BIN ?? '/usr/bin/redis-server';
const live = new Set();
process.on('exit', () => {
  for (const p of live) {
    try { p.kill('SIGKILL'); } catch { /* gone */ }
  }
});

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function startOnce(port, timeoutMs) {
  return new Promise((resolve, reject) => {
    const proc = spawn(BIN, ['--port', String(port), '--bind', '127.0.0.1', '--save', '',
      '--appendonly', 'no', '--loglevel', 'notice'], { stdio: ['ignore', 'pipe', 'pipe'] });
    live.add(proc);
    let out = '';
    let settled = false;
    const exited = new Promise((res) => proc.once('exit', (code, signal) => {
      live.delete(proc);
      res({ code, signal });
    }));
    const timer = setTimeout(() => finish(new Error(`redis-server not ready within ${timeoutMs} ms\n${out}`)), timeoutMs);
    function finish(err) {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err) {
        try { proc.kill('SIGKILL'); } catch { /* gone */ }
        reject(Object.assign(err, { output: out }));
        return;
      }
      resolve({
        port,
        url: `redis://127.0.0.1:${port}/`,
        proc,
        async stop() {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
          return exited;
        },
        async kill() {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
          return exited;
        },
      });
    }
    const onData = (chunk) => {
      out += chunk;
      if (out.includes('Ready to accept connections')) finish(null);
    };
    proc.stdout.setEncoding('utf8').on('data', onData);
    proc.stderr.setEncoding('utf8').on('data', onData);
    proc.once('error', (e) => finish(new Error(`cannot spawn ${BIN}: ${e.message}`)));
    proc.once('exit', (code) => finish(new Error(`redis-server exited (code ${code})\n${out}`)));
  });
}

/** Starts redis-server on a free port and resolves when it accepts connections. */
export async function startRedis({ timeoutMs = 10000, port } = {}) {
  if (port !== undefined) return startOnce(port, timeoutMs);
  let last;
  for (let i = 0; i < 5; i++) {
    try {
      return await startOnce(await freePort(), timeoutMs);
    } catch (e) {
      last = e;
      if (!/Address already in use/i.test(e.output ?? '')) throw e;
    }
  }
  throw last;
}
