// Browser end-to-end tests of the web client (web/) in real Chromium, through real nginx.
//
//   const stack = await startStack({ 'presence-grace-ms': 1500 });  // chatd + nginx, temp dirs
//   stack.url             "http://127.0.0.1:<nginx port>/" (the browser only ever talks to nginx)
//   stack.chatd           chatd on its own port (--trust-proxy, fresh --data-dir)
//   await stack.chatd.kill('SIGKILL'); await stack.chatd.start();   // same port, same data
//   await stack.close();  // stops nginx and chatd, removes their directories
//
//   const browser = await launchBrowser();                 // /usr/bin/chromium, never a download
//   const alice = await openUser(browser, stack, { transports: 'polling' });
//   await alice.login('alice');
//   await alice.send('hello');                            // Enter; waits until the ack
//
// nginx runs docs/deploy/nginx.conf as shipped, with only the upstream address and the listen
// port replaced. Nothing sleeps to synchronise: every wait is Playwright's auto-waiting, or an
// event, under a timeout.
import { spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { CHATD_BIN, withTimeout } from './chatd.mjs';
import { REPO_ROOT } from './server.mjs';

export { withTimeout };

/** Default time for any one wait in the browser (debug chatd, maybe a busy machine). */
export const UI_WAIT_MS = 15000;

/** Debian's Chromium (`CHROMIUM_BIN` overrides). Playwright never downloads a browser here. */
export const CHROMIUM_BIN = process.env.CHROMIUM_BIN || '/usr/bin/chromium';

/** nginx (`NGINX_BIN` overrides; else from PATH, else /usr/sbin/nginx). */
export const NGINX_BIN = process.env.NGINX_BIN || findInPath('nginx') || '/usr/sbin/nginx';

export const ARTIFACTS = path.join(REPO_ROOT, 'tests', 'artifacts');
export const SCREENSHOTS = path.join(ARTIFACTS, 'screenshots');

export const CHROMIUM_ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];

function findInPath(name) {
  for (const dir of (process.env.PATH || '').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = path.join(dir || '.', name);
    if (dir && existsSync(p)) return p;
  }
  return null;
}

// Everything we start, so that a crashing test file leaves no process or directory behind.
const liveProcs = new Set();
const liveDirs = new Set();
process.on('exit', () => {
  for (const p of liveProcs) {
    try { p.kill('SIGTERM'); } catch { /* gone */ } // nginx's master stops its worker on TERM
  }
  for (const d of liveDirs) {
    try { rmSync(d, { recursive: true, force: true }); } catch { /* ignore */ }
  }
});

const MAX_LOG = 256 * 1024;

/** Spawns a child, keeps the tail of its output, tracks it until it exits. */
function spawnTracked(bin, args, opts) {
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], ...opts });
  liveProcs.add(proc);
  const log = { out: '', err: '' };
  proc.stdout.setEncoding('utf8');
  proc.stderr.setEncoding('utf8');
  proc.stdout.on('data', (c) => { log.out = (log.out + c).slice(-MAX_LOG); });
  proc.stderr.on('data', (c) => { log.err = (log.err + c).slice(-MAX_LOG); });
  const exited = new Promise((resolve) => {
    proc.once('exit', (code, signal) => { liveProcs.delete(proc); resolve({ code, signal }); });
  });
  proc.once('error', () => liveProcs.delete(proc));
  return { proc, log, exited };
}

const running = (proc) => proc.exitCode === null && proc.signalCode === null;

/** Signals a child and waits for its exit, SIGKILL after `graceMs`. */
async function stopChild(child, signal = 'SIGTERM', graceMs = 5000) {
  if (!child) return null;
  if (running(child.proc)) child.proc.kill(signal);
  let timer;
  const killer = new Promise((resolve) => {
    timer = setTimeout(() => { try { child.proc.kill('SIGKILL'); } catch { /* gone */ } resolve(); }, graceMs);
  });
  await Promise.race([child.exited, killer]);
  clearTimeout(timer);
  return child.exited;
}

/** A port nobody listens on right now (nginx binds it a moment later). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// chatd on a fixed port across restarts

const LISTENING_RE = /^listening on http:\/\/127\.0\.0\.1:(\d+)\/\s*$/m;

/**
 * chatd with `--trust-proxy` on a temporary data directory. The first start picks a free port;
 * every later start uses the same port and the same data, so nginx's upstream stays valid.
 */
export class ChatdProcess {
  constructor(flags = {}) {
    // Guests (pick-a-name) unless `guests: false`.
    this.flags = { guests: true, ...flags };
    this.dataDir = mkdtempSync(path.join(os.tmpdir(), 'chatd-web-'));
    liveDirs.add(this.dataDir);
    this.port = 0;
    this.child = null;
  }

  get running() { return Boolean(this.child && running(this.child.proc)); }
  stderr() { return this.child?.log.err ?? ''; }

  args() {
    const out = ['--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir, '--trust-proxy'];
    for (const [k, v] of Object.entries(this.flags)) {
      if (v === undefined || v === null || v === false) continue;
      out.push(`--${k}`);
      if (v !== true) out.push(String(v));
    }
    return out;
  }

  /** Starts chatd and resolves at its `listening on` line. */
  async start(startTimeoutMs = 15000) {
    if (this.running) throw new Error('chatd is already running');
    if (!existsSync(CHATD_BIN)) throw new Error(`chatd binary not found: ${CHATD_BIN} (run: cargo build -p chatd)`);
    const env = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CHATD_')) env[k] = v;
    env.RUST_LOG = process.env.CHATD_TEST_LOG ?? 'warn';
    const child = spawnTracked(CHATD_BIN, this.args(), { cwd: REPO_ROOT, env });
    this.child = child;
    const ready = new Promise((resolve, reject) => {
      const onData = () => {
        const m = LISTENING_RE.exec(child.log.out);
        if (m) { child.proc.stdout.off('data', onData); resolve(Number(m[1])); }
      };
      child.proc.stdout.on('data', onData);
      child.exited.then(({ code, signal }) => reject(new Error(
        `chatd exited before listening (code ${code}, signal ${signal})\nargs: ${this.args().join(' ')}\nstderr: ${child.log.err}`)));
      child.proc.once('error', (e) => reject(new Error(`cannot spawn ${CHATD_BIN}: ${e.message}`)));
    });
    try {
      this.port = await withTimeout(ready, startTimeoutMs, `chatd's listening line\nstderr: ${child.log.err}`);
    } catch (err) {
      await stopChild(child, 'SIGKILL');
      throw err;
    }
    return this;
  }

  /** Sends `signal` (SIGTERM: clean shutdown; SIGKILL: crash) and waits for the exit. */
  async kill(signal = 'SIGTERM', ms = 15000) {
    const child = this.child;
    if (!child) return null;
    if (running(child.proc)) child.proc.kill(signal);
    return withTimeout(child.exited, ms, `chatd to exit after ${signal}\nstderr: ${child.log.err}`);
  }

  async close() {
    await stopChild(this.child);
    await rm(this.dataDir, { recursive: true, force: true });
    liveDirs.delete(this.dataDir);
  }
}

// ---------------------------------------------------------------------------------------------
// nginx with docs/deploy/nginx.conf

export const DEPLOY_NGINX_CONF = path.join(REPO_ROOT, 'docs', 'deploy', 'nginx.conf');

/** docs/deploy/nginx.conf with the upstream and the listen port replaced (each exactly once). */
export function deployConfig(upstreamPort, listenPort) {
  let text = readFileSync(DEPLOY_NGINX_CONF, 'utf8');
  const swap = (re, by, what) => {
    const hits = text.match(new RegExp(re.source, 'gm')) || [];
    if (hits.length !== 1) throw new Error(`${DEPLOY_NGINX_CONF}: expected one ${what}, found ${hits.length}`);
    text = text.replace(re, by);
  };
  swap(/^(\s*)server\s+127\.0\.0\.1:3000\s*;/m, `$1server 127.0.0.1:${upstreamPort};`, '`server 127.0.0.1:3000;`');
  swap(/^(\s*)listen\s+80\s*;/m, `$1listen 127.0.0.1:${listenPort};`, '`listen 80;`');
  return text;
}

/**
 * A private nginx (own prefix, pid, logs and temp paths) in front of chatd: docs/deploy/nginx.conf
 * for `upstreamPort`, or what `render(listenPort)` returns (another deploy file, rendered).
 * `logFormat` replaces the access log's format (e.g. to record `$upstream_addr`).
 */
export class Nginx {
  constructor(upstreamPort, { render, logFormat, workers = 1 } = {}) {
    this.upstreamPort = upstreamPort;
    this.workers = workers;
    this.render = render ?? ((listenPort) => deployConfig(this.upstreamPort, listenPort));
    this.logFormat = logFormat;
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'chatd-nginx-'));
    chmodSync(this.dir, 0o755); // nginx's workers drop root privileges (to nobody) and use it
    liveDirs.add(this.dir);
    this.port = 0;
    this.child = null;
  }

  get url() { return `http://127.0.0.1:${this.port}/`; }
  errorLog() {
    try { return readFileSync(path.join(this.dir, 'error.log'), 'utf8').slice(-MAX_LOG); } catch { return ''; }
  }
  accessLog() {
    try { return readFileSync(path.join(this.dir, 'access.log'), 'utf8'); } catch { return ''; }
  }

  writeConfig() {
    const d = this.dir;
    writeFileSync(path.join(d, 'chatd.conf'), this.render(this.port));
    for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(path.join(d, sub), { recursive: true });
    const main = path.join(d, 'nginx.conf');
    writeFileSync(main, [
      'daemon off;',
      `worker_processes ${this.workers};`,
      `pid ${d}/nginx.pid;`,
      `error_log ${d}/error.log warn;`,
      // Room for the rolling-restart bench's 10 000 clients (two connections each), over
      // two workers where the open-file limit is 20 000.
      'worker_rlimit_nofile 19000;',
      'events { worker_connections 18000; }',
      'http {',
      ...(this.logFormat ? [`    log_format test '${this.logFormat}';`, `    access_log ${d}/access.log test;`] : [`    access_log ${d}/access.log;`]),
      `    client_body_temp_path ${d}/client_body;`,
      `    proxy_temp_path ${d}/proxy;`,
      `    fastcgi_temp_path ${d}/fastcgi;`,
      `    uwsgi_temp_path ${d}/uwsgi;`,
      `    scgi_temp_path ${d}/scgi;`,
      `    include ${d}/chatd.conf;`,
      '}',
      '',
    ].join('\n'));
    return main;
  }

  /** Starts nginx on a free port; ready once `/healthz` answers through it. */
  async start(timeoutMs = 15000) {
    if (!existsSync(NGINX_BIN)) throw new Error(`nginx not found (${NGINX_BIN}): run scripts/setup.sh`);
    let lastError;
    for (let attempt = 0; attempt < 3; attempt++) {
      this.port = await freePort();
      const conf = this.writeConfig();
      const child = spawnTracked(NGINX_BIN, ['-e', path.join(this.dir, 'error.log'), '-p', this.dir, '-c', conf], {});
      this.child = child;
      try {
        await withTimeout(this.ready(child), timeoutMs, `nginx to answer on port ${this.port}`);
        return this;
      } catch (err) {
        lastError = err;
        await stopChild(child, 'SIGTERM');
        // Only a lost race for the port is worth another try.
        if (!/Address already in use/.test(this.errorLog() + child.log.err)) break;
      }
    }
    throw new Error(`nginx did not start: ${lastError?.message}\n${this.child?.log.err}\n${this.errorLog()}`);
  }

  /** Polls /healthz through nginx until chatd answers (nginx prints nothing when ready). */
  async ready(child) {
    let exited = null;
    child.exited.then((e) => { exited = e; });
    for (;;) {
      if (exited) throw new Error(`nginx exited (code ${exited.code}, signal ${exited.signal})`);
      try {
        const res = await fetch(`${this.url}healthz`, { signal: AbortSignal.timeout(1000) });
        if (res.status === 200) return;
      } catch { /* not listening yet */ }
      await new Promise((r) => setTimeout(r, 25)); // retry interval of a readiness probe
    }
  }

  async close() {
    await stopChild(this.child, 'SIGTERM');
    await rm(this.dir, { recursive: true, force: true });
    liveDirs.delete(this.dir);
  }
}

/** chatd (fresh data, `--trust-proxy`, extra `flags`) and nginx in front of it. */
export async function startStack(flags = {}) {
  const chatd = new ChatdProcess(flags);
  let nginx = null;
  try {
    await chatd.start();
    nginx = new Nginx(chatd.port);
    await nginx.start();
  } catch (err) {
    await nginx?.close();
    await chatd.close();
    throw err;
  }
  return {
    chatd,
    nginx,
    url: nginx.url,
    async close() {
      await nginx.close();
      await chatd.close();
    },
    /** Diagnostics for a failed assertion. */
    logs() {
      return `--- chatd stderr ---\n${chatd.stderr()}\n--- nginx error.log ---\n${nginx.errorLog()}`;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The browser

/** Launches Debian's Chromium, headless. */
export async function launchBrowser() {
  if (!existsSync(CHROMIUM_BIN)) throw new Error(`Chromium not found at ${CHROMIUM_BIN}: run scripts/setup.sh`);
  return chromium.launch({ executablePath: CHROMIUM_BIN, args: CHROMIUM_ARGS, timeout: 30000 });
}

export const DESKTOP = { width: 1280, height: 800 };
export const PHONE = { width: 390, height: 844 };

/** A RegExp matching an element's whole text `text` (any run of whitespace for whitespace). */
export function exactly(text) {
  const parts = text.trim().split(/\s+/).map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'));
  return new RegExp(`^\\s*${parts.join('\\s+')}\\s*$`);
}

/** One browser user: its own context (fresh profile), one page on the stack's nginx. */
export class ChatUser {
  constructor(context, page, base, query) {
    this.context = context;
    this.page = page;
    this.base = base;
    this.query = query;
    this.name = null;
    this.errors = [];
    this.websockets = []; // URLs of the WebSockets the page opened
    page.on('pageerror', (err) => this.errors.push(`pageerror: ${err.message}`));
    page.on('websocket', (ws) => this.websockets.push(ws.url()));
  }

  /** The states the connection banner went through since the page loaded. */
  bannerStates() { return this.page.evaluate(() => window.__banner); }

  /** Resolves once the page has opened a WebSocket (the Engine.IO upgrade). */
  async upgraded() {
    if (this.websockets.length === 0) await this.page.waitForEvent('websocket');
    return this.websockets;
  }

  get url() { return `${this.base}${this.query}`; }
  byId(id) { return this.page.getByTestId(id); }

  /** The banner (connection state). */
  get banner() { return this.byId('banner'); }
  get title() { return this.byId('conv-title'); }
  get typing() { return this.byId('typing'); }

  async goto() {
    await this.page.goto(this.url);
    // The account form is always there; the guest form once the server says it has guests.
    await this.byId('account-name').waitFor();
  }

  /**
   * Logs in (`register: true`: registers first) with an account; resolves once the lobby is
   * open and the connection is up.
   */
  async account(name, password, { register = false, invite } = {}) {
    this.name = name;
    if (register) await this.byId('mode-register').click();
    await this.byId('account-name').fill(name);
    await this.byId('account-password').fill(password);
    if (invite !== undefined) await this.byId('account-invite').fill(invite);
    await this.byId('account-password').press('Enter');
    await this.page.locator('#login').waitFor({ state: 'hidden' });
    await this.waitTitle('# lobby');
    await this.banner.waitFor({ state: 'hidden' });
  }

  /** Picks a name; resolves once the lobby is open and the connection is up. */
  async login(name) {
    this.name = name;
    await this.byId('login-name').fill(name);
    await this.byId('login-submit').click();
    await this.page.locator('#login').waitFor({ state: 'hidden' });
    await this.waitTitle('# lobby');
    await this.banner.waitFor({ state: 'hidden' });
  }

  /** Reloads the page and logs in again with the remembered name. */
  async reload() {
    await this.page.reload();
    const input = this.byId('login-name');
    await input.waitFor();
    const remembered = await input.inputValue();
    if (remembered !== this.name) throw new Error(`the login form offers ${JSON.stringify(remembered)}, not ${this.name}`);
    await this.byId('login-submit').click();
    await this.waitTitle('# lobby');
    await this.banner.waitFor({ state: 'hidden' });
  }

  async waitTitle(title) {
    await this.title.filter({ hasText: exactly(title) }).waitFor();
  }

  /** Every message element of the open conversation. */
  messages() { return this.byId('messages').getByTestId('message'); }

  /** Message elements whose text is exactly `text`. */
  message(text) {
    return this.messages().filter({ has: this.page.getByTestId('text').filter({ hasText: exactly(text) }) });
  }

  /** Types `text` into the composer (`\n` as Shift+Enter) and presses Enter. */
  async typeAndSend(text) {
    const input = this.byId('input');
    await input.click();
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      if (i > 0) await this.page.keyboard.press('Shift+Enter');
      if (lines[i]) await this.page.keyboard.insertText(lines[i]);
    }
    await this.page.keyboard.press('Enter');
  }

  /**
   * Types `text` into the composer and goes on typing (a space, then backspace: the text stays)
   * until `watcher` shows "<name> is typing…". Typing notices are volatile: chatd drops one for
   * a client that cannot take it at once (a long-polling client between two requests), and the
   * client repeats them every 2 s while typing goes on, as here.
   */
  async typeUntilSeenBy(watcher, text, attempts = 8) {
    await this.byId('input').click();
    await this.page.keyboard.type(text);
    const shown = watcher.typing.filter({ hasText: `${this.name} is typing…` });
    for (let i = 1; ; i++) {
      try {
        await shown.waitFor({ timeout: 3000 });
        return;
      } catch (err) {
        if (i >= attempts) throw err;
      }
      await this.page.keyboard.press('Space');
      await this.page.keyboard.press('Backspace');
    }
  }

  /** Sends `text` and waits until the server acknowledged it (status "sent", a seq). */
  async send(text) {
    await this.typeAndSend(text);
    await this.message(text).and(this.page.locator('[data-status=sent]')).waitFor();
  }

  /** The sidebar entry of a room. */
  room(name) { return this.byId('rooms').locator(`[data-testid=room][data-room="${name}"]`); }
  /** The sidebar entry of a direct conversation. */
  dm(peer) { return this.byId('dms').locator(`[data-testid=dm][data-peer="${peer}"]`); }
  /** A member in the member list of the open room. */
  member(name) { return this.byId('members').locator(`[data-testid=member][data-user="${name}"]`); }

  async screenshot(file) {
    mkdirSync(SCREENSHOTS, { recursive: true });
    const target = path.join(SCREENSHOTS, file);
    await this.page.screenshot({ path: target });
    return target;
  }

  async close() {
    await this.context.close().catch(() => {});
  }
}

/**
 * A new user in a fresh browser context. opts: { transports: 'polling' | undefined, viewport,
 * colorScheme: 'light' | 'dark' }.
 */
export async function openUser(browser, stack, opts = {}) {
  const context = await browser.newContext({
    viewport: opts.viewport ?? DESKTOP,
    colorScheme: opts.colorScheme ?? 'light',
    locale: 'en-GB',
    timezoneId: 'UTC',
  });
  context.setDefaultTimeout(UI_WAIT_MS);
  // Every state the connection banner shows, in order (window.__banner), for the assertions.
  await context.addInitScript(() => {
    window.__banner = [];
    document.addEventListener('DOMContentLoaded', () => {
      const b = document.querySelector('[data-testid=banner]');
      new MutationObserver(() => {
        const now = b.hidden ? 'hidden' : b.dataset.state;
        if (window.__banner.at(-1) !== now) window.__banner.push(now);
      }).observe(b, { attributes: true, attributeFilter: ['hidden', 'data-state'] });
    });
  });
  const page = await context.newPage();
  const query = opts.transports ? `?transports=${opts.transports}` : '';
  const user = new ChatUser(context, page, stack.url, query);
  await user.goto();
  return user;
}
