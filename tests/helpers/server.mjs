// Spawning the Rust example servers (target/debug/examples/*) for the Node conformance tests.
//
//   const srv = await startServer('eio-echo', ['--ping-interval', '300']);
//   srv.port, srv.url ("http://127.0.0.1:<port>/engine.io/"), srv.path, srv.proc
//   await srv.stop();            // SIGTERM, await exit (SIGKILL after a grace period)
//
// Readiness is the server's one stdout line `listening on http://127.0.0.1:<port><path>`;
// we never sleep to wait for it. `--port 0` is passed unless the caller gives --port itself.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

const TARGET_DIR = process.env.CARGO_TARGET_DIR
  ? path.resolve(REPO_ROOT, process.env.CARGO_TARGET_DIR)
  : path.join(REPO_ROOT, 'target');

/** Absolute path of a cargo example binary (debug profile). */
export function exampleBinary(name) {
  const envName = `${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}_BIN`; // e.g. EIO_ECHO_BIN
  if (process.env[envName]) return path.resolve(process.env[envName]);
  return path.join(TARGET_DIR, 'debug', 'examples', name);
}

const LISTENING_RE = /^listening on (http:\/\/127\.0\.0\.1:(\d+)(\/\S*))\s*$/;
const MAX_LOG = 256 * 1024; // keep the last 256 KiB of stderr for diagnostics

// Every child we start, so that a crashing test file never leaves servers behind.
const live = new Set();
process.on('exit', () => {
  for (const child of live) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

/**
 * Start an example server and resolve once it printed its listening line.
 * @param {string} name   example name, e.g. 'eio-echo'
 * @param {string[]} args extra command-line flags
 * @param {{ startTimeoutMs?: number, env?: object, command?: string[] }} [opts]
 *   `command`: run this program and leading arguments instead of the example binary, e.g.
 *   `[process.execPath, 'redis/node-server.mjs']` (relative paths from tests/).
 * @returns {Promise<{port:number,url:string,path:string,proc:import('node:child_process').ChildProcess,
 *   stop:(signal?:string)=>Promise<{code:number|null,signal:string|null}>,stderr:()=>string,
 *   stdout:()=>string, exited:Promise<{code:number|null,signal:string|null}>}>}
 */
export function startServer(name, args = [], opts = {}) {
  const bin = opts.command ? opts.command[0] : exampleBinary(name);
  const prefix = opts.command ? opts.command.slice(1) : [];
  const startTimeoutMs = opts.startTimeoutMs ?? 15000;
  const fullArgs = args.includes('--port') ? [...args] : ['--port', '0', ...args];

  return new Promise((resolve, reject) => {
    if (!opts.command && !existsSync(bin)) {
      reject(new Error(`server binary not found: ${bin} (run scripts/setup.sh / cargo build --examples)`));
      return;
    }
    const proc = spawn(bin, [...prefix, ...fullArgs], {
      cwd: opts.command ? path.join(REPO_ROOT, 'tests') : REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...(opts.env ?? {}) },
    });
    live.add(proc);

    let stdout = '';
    let stderr = '';
    let lineBuf = '';
    let ready = false;
    let exitInfo = null;

    const exited = new Promise((res) => {
      proc.once('exit', (code, signal) => {
        exitInfo = { code, signal };
        live.delete(proc);
        res(exitInfo);
      });
    });

    const fail = (err) => {
      if (ready) return;
      ready = true; // settle once
      clearTimeout(timer);
      try { proc.kill('SIGKILL'); } catch { /* ignore */ }
      reject(err);
    };

    const timer = setTimeout(() => {
      fail(new Error(`${name} did not print its listening line within ${startTimeoutMs} ms\n` +
        `args: ${fullArgs.join(' ')}\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, startTimeoutMs);

    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk) => {
      stderr += chunk;
      if (stderr.length > MAX_LOG) stderr = stderr.slice(-MAX_LOG);
    });

    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk) => {
      stdout += chunk;
      if (stdout.length > MAX_LOG) stdout = stdout.slice(-MAX_LOG);
      if (ready) return;
      lineBuf += chunk;
      let nl;
      while (!ready && (nl = lineBuf.indexOf('\n')) !== -1) {
        const line = lineBuf.slice(0, nl).replace(/\r$/, '');
        lineBuf = lineBuf.slice(nl + 1);
        const m = LISTENING_RE.exec(line);
        if (!m) continue;
        ready = true;
        clearTimeout(timer);
        const server = {
          name,
          args: fullArgs,
          url: m[1],
          port: Number(m[2]),
          path: m[3],
          listeningLine: line,
          proc,
          exited,
          stdout: () => stdout,
          stderr: () => stderr,
          /** Kill the server (SIGTERM by default) and wait until it exited. Idempotent. */
          async stop(signal = 'SIGTERM', graceMs = 5000) {
            if (exitInfo) return exitInfo;
            proc.kill(signal);
            let t;
            const killer = new Promise((res) => {
              t = setTimeout(() => {
                try { proc.kill('SIGKILL'); } catch { /* ignore */ }
                res();
              }, graceMs);
            });
            await Promise.race([exited, killer]);
            clearTimeout(t);
            return exited;
          },
        };
        resolve(server);
      }
    });

    proc.once('error', (err) => fail(new Error(`failed to spawn ${bin}: ${err.message}`)));
    proc.once('exit', (code, signal) => {
      fail(new Error(`${name} exited before listening (code ${code}, signal ${signal})\n` +
        `args: ${fullArgs.join(' ')}\nstdout: ${stdout}\nstderr: ${stderr}`));
    });
  });
}

/** startServer('eio-echo', args) — the Engine.IO echo example (engineio/examples/eio-echo.rs). */
export function startEioEcho(args = [], opts = {}) {
  return startServer('eio-echo', args, opts);
}
