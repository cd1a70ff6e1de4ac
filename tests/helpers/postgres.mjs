// A throw-away PostgreSQL for a test: initdb in a temp dir, 127.0.0.1 on a free port, its
// Unix socket in the temp dir too, one database created.
//
//   const pg = await startPostgres();          // pg.url "postgres://postgres@127.0.0.1:<port>/chatd"
//   await pg.stop();                           // fast shutdown (SIGINT), waits for the exit
//   await pg.stop('SIGKILL');                  // a crash of the postmaster (waits for its backends)
//   pg.freeze(); pg.thaw();                    // SIGSTOP / SIGCONT: a server that does not answer
//   await pg.restart();                        // same port, same data
//   await pg.cleanup();                        // stop and remove the directory
//
// initdb and postgres come from PATH (`PG_BIN_DIR` overrides), else the newest
// /usr/lib/postgresql/*/bin (Debian's `postgresql` package). PostgreSQL refuses to run as root:
// as root the temp dir goes to the `postgres` user and both run through `runuser -u postgres --`.
// Readiness is the server's "ready to accept connections" log line.
import { spawn, spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const MAX_LOG = 256 * 1024;

/** A directory holding both `initdb` and `postgres`, or null. */
export function findPostgresBinDir() {
  const dirs = [];
  if (process.env.PG_BIN_DIR) dirs.push(process.env.PG_BIN_DIR);
  for (const d of (process.env.PATH || '').split(':')) if (d) dirs.push(d);
  const root = '/usr/lib/postgresql';
  if (existsSync(root)) {
    const versions = readdirSync(root).filter((v) => /^\d+(\.\d+)?$/.test(v)).sort((a, b) => Number(b) - Number(a));
    for (const v of versions) dirs.push(path.join(root, v, 'bin'));
  }
  for (const d of dirs) {
    const initdb = path.join(d, 'initdb');
    if (!existsSync(initdb)) continue;
    // A PATH entry may hold symlinks to a version's bin dir: use that dir (createdb, psql).
    const real = path.dirname(realpathSync(initdb));
    if (existsSync(path.join(real, 'postgres'))) return real;
  }
  return null;
}

const IS_ROOT = typeof process.getuid === 'function' && process.getuid() === 0;

function pgUser() {
  const r = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const g = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (r.status !== 0 || g.status !== 0) throw new Error('running as root needs a `postgres` user (Debian\'s postgresql package makes it)');
  return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
}

/** argv for running `bin` as the database's owner: through runuser when we are root. */
function asOwner(bin, args) {
  return IS_ROOT ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
}

function chownTree(dir, { uid, gid }) {
  chownSync(dir, uid, gid);
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) chownTree(p, { uid, gid });
    else chownSync(p, uid, gid);
  }
}

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

// Every server we start, so that a crashing test file leaves none behind.
const live = new Set();
function cleanUpEverything() {
  for (const pg of live) pg.abandon();
}
process.on('exit', cleanUpEverything);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    cleanUpEverything();
    process.kill(process.pid, sig);
  });
}

/** A PostgreSQL cluster in a temp dir; see the file's header. */
export class Postgres {
  constructor({ database = 'chatd' } = {}) {
    this.binDir = findPostgresBinDir();
    if (!this.binDir) throw new Error('PostgreSQL not found (initdb and postgres): run scripts/setup.sh --tests');
    this.database = database;
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'chatd-pg-'));
    this.dataDir = path.join(this.dir, 'data');
    this.socketDir = path.join(this.dir, 'sock');
    mkdirSync(this.socketDir);
    this.port = 0;
    this.child = null;
    this.log = '';
    live.add(this);
  }

  get url() { return `postgres://postgres@127.0.0.1:${this.port}/${this.database}`; }
  get running() { return Boolean(this.child && this.child.proc.exitCode === null && this.child.proc.signalCode === null); }

  /** initdb (trust authentication: only this machine's tests reach it) as the owner. */
  initdb() {
    if (IS_ROOT) chownTree(this.dir, pgUser());
    const [bin, args] = asOwner(path.join(this.binDir, 'initdb'), [
      '-D', this.dataDir, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync',
    ]);
    const r = spawnSync(bin, args, { cwd: this.dir, encoding: 'utf8', timeout: 60000 });
    if (r.status !== 0) throw new Error(`initdb failed (${r.status ?? r.signal}): ${r.error?.message ?? ''}\n${r.stdout}\n${r.stderr}`);
  }

  /** The postmaster's pid from postmaster.pid (runuser stands between us and it). */
  postmasterPid() {
    try {
      const pid = Number(readFileSync(path.join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    } catch { return null; }
  }

  /** Starts the server on `this.port` (a free one the first time); resolves once it is ready. */
  async start(timeoutMs = 30000) {
    if (this.running) throw new Error('PostgreSQL is already running');
    const fixedPort = this.port !== 0;
    for (let attempt = 0; ; attempt++) {
      if (!fixedPort) this.port = await freePort();
      try {
        await this.startOnce(timeoutMs);
        return this;
      } catch (err) {
        if (fixedPort || attempt >= 4 || !/could not bind|Address already in use/i.test(err.message)) throw err;
      }
    }
  }

  startOnce(timeoutMs) {
    const [bin, args] = asOwner(path.join(this.binDir, 'postgres'), [
      '-D', this.dataDir, '-p', String(this.port), '-k', this.socketDir,
      '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'max_connections=200',
    ]);
    const proc = spawn(bin, args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
    this.child = { proc, exited };
    return new Promise((resolve, reject) => {
      let settled = false;
      const finish = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (err) {
          this.signal('SIGQUIT');
          try { proc.kill('SIGKILL'); } catch { /* gone */ }
          reject(new Error(`${err.message}\n${this.log.slice(-4000)}`));
        } else resolve();
      };
      const timer = setTimeout(() => finish(new Error(`PostgreSQL not ready within ${timeoutMs} ms`)), timeoutMs);
      let runLog = ''; // this start's output only: an earlier run was ready too
      const onData = (c) => {
        this.log = (this.log + c).slice(-MAX_LOG);
        runLog = (runLog + c).slice(-MAX_LOG);
        if (/ready to accept connections/.test(runLog)) finish(null);
      };
      proc.stdout.setEncoding('utf8').on('data', onData);
      proc.stderr.setEncoding('utf8').on('data', onData);
      proc.once('error', (e) => finish(new Error(`cannot spawn ${bin}: ${e.message}`)));
      proc.once('exit', (code, signal) => finish(new Error(`PostgreSQL exited (code ${code}, signal ${signal})`)));
    });
  }

  signal(sig) {
    const pid = this.postmasterPid();
    if (pid && this.running) {
      try { process.kill(pid, sig); } catch { /* gone */ }
    }
  }

  /**
   * Stops the server and waits for it: SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait
   * for every client to leave); SIGKILL is a crash.
   */
  async stop(sig = 'SIGINT', timeoutMs = 30000) {
    if (!this.running) return this.child ? this.child.exited : null;
    const pid = this.postmasterPid();
    if (sig === 'SIGKILL') {
      // Its backends notice their postmaster is gone and exit; a new postmaster waits for them.
      if (pid) try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    } else this.signal(sig);
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`PostgreSQL did not exit within ${timeoutMs} ms after ${sig}`)), timeoutMs);
    });
    try {
      const exited = await Promise.race([this.child.exited, timeout]);
      // Backends outlive a killed postmaster for a moment, and may still commit: the server is
      // down once the last of them is gone.
      if (sig === 'SIGKILL' && !(await this.orphansGone(timeoutMs))) throw new Error(`PostgreSQL's backends still run ${timeoutMs} ms after SIGKILL`);
      return exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Pids of the processes working in the data directory (every PostgreSQL process does). */
  processes() {
    const dir = realpathSync(this.dataDir);
    const out = [];
    for (const pid of readdirSync('/proc')) {
      if (!/^\d+$/.test(pid)) continue;
      try { if (readlinkSync(`/proc/${pid}/cwd`) === dir) out.push(Number(pid)); } catch { /* gone, or not ours */ }
    }
    return out;
  }

  /** Whether every process working in the data directory went within `ms`. */
  async orphansGone(ms) {
    const deadline = Date.now() + ms;
    while (this.processes().length > 0) {
      if (Date.now() > deadline) return false;
      await new Promise((r) => setTimeout(r, 20)); // nothing announces it
    }
    return true;
  }

  /** Stops every process of the server (SIGSTOP): its connections neither fail nor answer. */
  freeze() {
    this.frozen = this.processes();
    for (const pid of this.frozen) process.kill(pid, 'SIGSTOP');
    return this.frozen.length;
  }

  /** Lets a frozen server go on; runuser, which stopped itself with its child, too. */
  thaw() {
    for (const pid of [...(this.frozen ?? []), this.child?.proc.pid]) {
      try { if (pid) process.kill(pid, 'SIGCONT'); } catch { /* gone */ }
    }
    this.frozen = null;
  }

  /** Stops (fast shutdown) and starts again on the same port and data. */
  async restart() {
    await this.stop();
    return this.start();
  }

  /** Creates `name` (as the superuser, over the Unix socket). */
  createDatabase(name = this.database) {
    const [bin, args] = asOwner(path.join(this.binDir, 'createdb'), ['-h', this.socketDir, '-p', String(this.port), '-U', 'postgres', name]);
    const r = spawnSync(bin, args, { cwd: this.dir, encoding: 'utf8', timeout: 30000 });
    if (r.status !== 0) throw new Error(`createdb ${name} failed (${r.status ?? r.signal}): ${r.stderr}`);
  }

  /** Runs SQL with psql over the Unix socket; resolves with its output (tab-separated rows). */
  psql(sql, database = this.database) {
    const psqlBin = existsSync(path.join(this.binDir, 'psql')) ? path.join(this.binDir, 'psql') : 'psql';
    const [bin, args] = asOwner(psqlBin, ['-h', this.socketDir, '-p', String(this.port), '-U', 'postgres', '-d', database,
      '-X', '-q', '-A', '-t', '-F', '\t', '-v', 'ON_ERROR_STOP=1', '-c', sql]);
    const r = spawnSync(bin, args, { cwd: this.dir, encoding: 'utf8', timeout: 30000 });
    if (r.status !== 0) throw new Error(`psql failed (${r.status ?? r.signal}): ${r.stderr}`);
    return r.stdout;
  }

  /** Stops the server (if running) and removes its directory. Idempotent. */
  async cleanup() {
    try {
      await this.stop();
    } catch {
      this.signal('SIGQUIT');
      try { this.child?.proc.kill('SIGKILL'); } catch { /* gone */ }
    }
    await rm(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  /** Synchronous last resort at process exit: immediate shutdown, directory removed. */
  abandon() {
    this.signal('SIGQUIT');
    try { rmSync(this.dir, { recursive: true, force: true }); } catch { /* ignore */ }
  }
}

/** initdb, start, create the database; `t` (a test context) cleans up after the test. */
export async function startPostgres({ database = 'chatd', t } = {}) {
  const pg = new Postgres({ database });
  t?.after(() => pg.cleanup());
  try {
    pg.initdb();
    await pg.start();
    pg.createDatabase();
  } catch (err) {
    await pg.cleanup();
    throw err;
  }
  return pg;
}
