// End-to-end helpers for chatd (chatd/, protocol in docs/protocol.md) with the official
// socket.io-client.
//
//   const srv = await startChatd({ 'presence-grace-ms': 300 });   // fresh temp --data-dir
//   srv.port, srv.url ("http://127.0.0.1:<port>"), srv.dataDir, srv.proc
//   await srv.kill('SIGKILL');     // or 'SIGTERM': resolves with { code, signal } once exited
//   await srv.restart();           // same data dir and flags, new port (srv.port changes)
//   await srv.close();             // stop (SIGTERM, then SIGKILL) and remove the data dir
//
//   const alice = await chat(t, srv, 'alice');                   // /chat, waits for `session`
//   const res = await alice.ask('room:join', { room: 'lobby' }); // the ack's first argument
//   await alice.events.message.waitFor((m) => m.text === 'hi');
//
// Every chatd runs with `--guests` (pick-a-name, as the clients below do) unless the flags say
// `guests: false`. The accounts API: `await api(srv, '/api/login', { name, password })`.
//
// Readiness is chatd's stdout line `listening on http://127.0.0.1:<port>/`; nothing sleeps to
// synchronise: every wait is on an event, under a timeout that fails the test.
import { spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { io } from 'socket.io-client';
import { REPO_ROOT } from './server.mjs';

export { io };

/** Default time to wait for anything. Generous: debug build, maybe a busy machine. */
export const WAIT_MS = 5000;

const TARGET_DIR = process.env.CARGO_TARGET_DIR
  ? path.resolve(REPO_ROOT, process.env.CARGO_TARGET_DIR)
  : path.join(REPO_ROOT, 'target');

/** The chatd binary (`CHATD_BIN` overrides; default target/debug/chatd). */
export const CHATD_BIN = process.env.CHATD_BIN
  ? path.resolve(process.env.CHATD_BIN)
  : path.join(TARGET_DIR, 'debug', 'chatd');

/** Transport choices of the stock client: its default (polling, then upgrade), or one only. */
export const TRANSPORTS = {
  default: { name: 'default', transports: undefined, upgrade: true },
  polling: { name: 'polling', transports: ['polling'], upgrade: false },
  websocket: { name: 'websocket', transports: ['websocket'], upgrade: false },
};

const LISTENING_RE = /^listening on (http:\/\/127\.0\.0\.1:(\d+))\/\s*$/;
const MAX_LOG = 256 * 1024;

// Everything we start, so that a crashing test file leaves no process or directory behind.
const liveProcs = new Set();
const liveDirs = new Set();
function cleanUpEverything() {
  for (const p of liveProcs) {
    try { p.kill('SIGKILL'); } catch { /* gone */ }
  }
  for (const d of liveDirs) {
    try { rmSync(d, { recursive: true, force: true }); } catch { /* ignore */ }
  }
}
process.on('exit', cleanUpEverything);
// 'exit' does not run when a signal ends the process (the test runner cancelling a file, ^C).
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    cleanUpEverything();
    process.kill(process.pid, sig);
  });
}

/** A promise that rejects after `ms` unless `promise` settles first. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Waits `ms` (only to wait out a protocol timer that the test asserts on). */
export function elapse(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function flagArgs(flags) {
  const out = [];
  for (const [k, v] of Object.entries(flags)) {
    if (v === undefined || v === null || v === false) continue;
    out.push(`--${k}`);
    if (v !== true) out.push(String(v));
  }
  return out;
}

/** The environment for chatd: ours without CHATD_* settings (flags only), quiet logs. */
function childEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('CHATD_')) env[k] = v;
  }
  env.RUST_LOG = process.env.CHATD_TEST_LOG ?? 'warn';
  return { ...env, ...extra };
}

/** Spawns chatd and resolves at its listening line. */
function spawnChatd(args, { env, startTimeoutMs = 15000, onPanic } = {}) {
  return new Promise((resolve, reject) => {
    if (!existsSync(CHATD_BIN)) {
      reject(new Error(`chatd binary not found: ${CHATD_BIN} (run: cargo build -p chatd)`));
      return;
    }
    const proc = spawn(CHATD_BIN, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: childEnv(env) });
    liveProcs.add(proc);
    // CHATD_TEST_LOG_DIR: every run's whole standard error in a file of its own (debugging).
    if (process.env.CHATD_TEST_LOG_DIR) {
      proc.stderr.pipe(createWriteStream(path.join(process.env.CHATD_TEST_LOG_DIR, `chatd-${proc.pid}.log`)));
    }
    let stdout = '';
    let stderr = '';
    let lineBuf = '';
    let settled = false;
    const exited = new Promise((res) => {
      proc.once('exit', (code, signal) => { liveProcs.delete(proc); res({ code, signal }); });
    });
    const fail = (err) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      try { proc.kill('SIGKILL'); } catch { /* ignore */ }
      reject(err);
    };
    const timer = setTimeout(() => fail(new Error(
      `chatd did not print its listening line within ${startTimeoutMs} ms\nargs: ${args.join(' ')}\nstderr: ${stderr}`,
    )), startTimeoutMs);
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (c) => {
      stderr = (stderr + c).slice(-MAX_LOG);
      if (/panicked at/.test(c)) onPanic?.(c);
    });
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (c) => {
      stdout = (stdout + c).slice(-MAX_LOG);
      if (settled) return;
      lineBuf += c;
      let nl;
      while (!settled && (nl = lineBuf.indexOf('\n')) !== -1) {
        const line = lineBuf.slice(0, nl).replace(/\r$/, '');
        lineBuf = lineBuf.slice(nl + 1);
        const m = LISTENING_RE.exec(line);
        if (!m) continue;
        settled = true;
        clearTimeout(timer);
        resolve({ proc, exited, url: m[1], port: Number(m[2]), stdout: () => stdout, stderr: () => stderr });
      }
    });
    proc.once('error', (err) => fail(new Error(`failed to spawn ${CHATD_BIN}: ${err.message}`)));
    proc.once('exit', (code, signal) => fail(new Error(
      `chatd exited before listening (code ${code}, signal ${signal})\nargs: ${args.join(' ')}\nstderr: ${stderr}`,
    )));
  });
}

/** A running chatd on a temporary data directory. */
export class Chatd {
  constructor(dataDir, flags = {}, env) {
    this.dataDir = dataDir;
    // Guests (pick-a-name on /chat) unless a test says `guests: false`: most tests are about
    // the chat, not accounts.
    this.flags = { guests: true, ...flags };
    this.env = env;
    this.run = null;
    this.closed = false;
    this.panics = [];
  }

  get port() { return this.run.port; }
  get url() { return this.run.url; }
  get proc() { return this.run.proc; }
  get exited() { return this.run.exited; }
  stderr() { return this.run?.stderr() ?? ''; }
  /** The standard error of every run of this node so far (restarts included). */
  allStderr() { return (this.pastStderr ?? '') + this.stderr(); }

  async start(port = 0) {
    const args = ['--listen', `127.0.0.1:${port}`, '--data-dir', this.dataDir, ...flagArgs(this.flags)];
    if (this.run) this.pastStderr = ((this.pastStderr ?? '') + this.run.stderr()).slice(-MAX_LOG);
    this.run = await spawnChatd(args, { env: this.env, onPanic: (text) => this.panics.push(text) });
    return this;
  }

  /** Sends `signal` and waits until the process exited: { code, signal }. */
  async kill(signal = 'SIGKILL', ms = 15000) {
    const { proc, exited } = this.run;
    if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
    return withTimeout(exited, ms, `chatd to exit after ${signal}\nstderr: ${this.stderr()}`);
  }

  /**
   * Starts chatd again on the same data directory (after it exited; kills it otherwise), on a
   * new port, or on the same one with `{ samePort: true }` so that clients can reconnect.
   */
  async restart({ samePort = false } = {}) {
    const port = samePort ? this.port : 0;
    if (this.run && this.run.proc.exitCode === null && this.run.proc.signalCode === null) {
      await this.kill('SIGKILL');
    }
    return this.start(port);
  }

  /**
   * Stops chatd (SIGTERM, SIGKILL after 5 s) and removes the data directory. Idempotent.
   * Throws if chatd panicked at any time (a panic is a bug whatever the test was about).
   */
  async close() {
    if (this.closed) return;
    this.closed = true;
    if (this.run) {
      const { proc, exited } = this.run;
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => { try { proc.kill('SIGKILL'); } catch { /* gone */ } }, 5000);
        await exited;
        clearTimeout(t);
      }
    }
    await rm(this.dataDir, { recursive: true, force: true });
    liveDirs.delete(this.dataDir);
    if (this.panics.length) throw new Error(`chatd panicked:\n${this.panics.join('\n').slice(0, 4000)}`);
  }

  /** GET a path on chatd: { status, headers, text }. */
  async get(p, init = {}) {
    const res = await fetch(`${this.url}${p}`, { signal: AbortSignal.timeout(WAIT_MS), ...init });
    const body = Buffer.from(await res.arrayBuffer());
    return { status: res.status, headers: res.headers, body, text: body.toString('utf8') };
  }

  /** The /metrics samples as a Map "name{labels}" → number. */
  async metrics() {
    const { status, text } = await this.get('/metrics');
    if (status !== 200) throw new Error(`/metrics: HTTP ${status}`);
    const out = new Map();
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue;
      const i = line.lastIndexOf(' ');
      out.set(line.slice(0, i), Number(line.slice(i + 1)));
    }
    return out;
  }
}

/**
 * Starts chatd with a fresh temporary --data-dir and `--listen 127.0.0.1:0`. `flags` are
 * chatd flags without the dashes: { 'presence-grace-ms': 300, 'trust-proxy': true }.
 * With a test context `t`, the server is closed (and its directory removed) after the test.
 */
export async function startChatd(flags = {}, { t, env } = {}) {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'chatd-test-'));
  liveDirs.add(dataDir);
  const srv = new Chatd(dataDir, flags, env);
  t?.after(() => srv.close());
  try {
    await srv.start();
  } catch (err) {
    await srv.close();
    throw err;
  }
  return srv;
}

// ---------------------------------------------------------------------------------------------
// Clients

/**
 * Records every `event` on a socket. With connection state recovery on, server events carry
 * the recovery offset as an extra last argument: only the first `nargs` arguments are kept
 * (`nargs` 1: the payload itself), and anything beyond them must be that one offset string;
 * with `{ exact: true }` (a namespace without recovery) there must be nothing beyond them.
 */
export class Recorder {
  constructor(socket, event, nargs = 1, { exact = false } = {}) {
    this.event = event;
    this.all = [];
    this.raw = [];
    this.waiters = new Set();
    this.problems = [];
    this.listener = (...args) => {
      const extra = args.slice(nargs);
      if (extra.length > (exact ? 0 : 1) || (extra.length === 1 && typeof extra[0] !== 'string')) {
        this.problems.push(`'${event}' with unexpected extra arguments ${JSON.stringify(extra)}`);
      }
      const v = nargs === 1 ? args[0] : args.slice(0, nargs);
      this.raw.push(args);
      this.all.push(v);
      for (const w of [...this.waiters]) w.check();
    };
    socket.on(event, this.listener);
    this.socket = socket;
  }

  get length() { return this.all.length; }

  /** Matching events so far. */
  filter(pred = () => true) { return this.all.filter(pred); }

  count(pred = () => true) { return this.all.filter(pred).length; }

  /**
   * Resolves with the first event at index >= `from` that matches `pred` (already recorded or
   * still to come); fails after `ms`.
   */
  waitFor(pred = () => true, { ms = WAIT_MS, from = 0 } = {}) {
    return this.waitCount(pred, 1, { ms, from }).then((xs) => xs[0]);
  }

  /** Resolves with the first `n` events at index >= `from` that match `pred`. */
  waitCount(pred, n, { ms = WAIT_MS, from = 0 } = {}) {
    return new Promise((resolve, reject) => {
      const w = {
        check: () => {
          const got = this.all.slice(from).filter(pred);
          if (got.length >= n) {
            clearTimeout(w.timer);
            this.waiters.delete(w);
            resolve(got.slice(0, n));
          }
        },
      };
      w.timer = setTimeout(() => {
        this.waiters.delete(w);
        const got = this.all.slice(from).filter(pred).length;
        reject(new Error(`timed out after ${ms} ms waiting for ${n} matching '${this.event}' events (got ${got}; ` +
          `last: ${JSON.stringify(this.all.slice(-3))})`));
      }, ms);
      this.waiters.add(w);
      w.check();
    });
  }

  stop() { this.socket.off(this.event, this.listener); }
}

/** Disconnects a client socket and closes its manager; never throws. */
export function closeSocket(socket) {
  try { socket.disconnect(); } catch { /* ignore */ }
  try { socket.io._close(); } catch { /* ignore */ }
}

/** The next `event` of a socket (its argument list), failing after `ms` or on `failOn`. */
export function nextEvent(emitter, event, { ms = WAIT_MS, failOn = [] } = {}) {
  return new Promise((resolve, reject) => {
    const cleanups = [];
    const done = () => { clearTimeout(timer); for (const c of cleanups) c(); };
    const h = (...args) => { done(); resolve(args); };
    emitter.on(event, h);
    cleanups.push(() => emitter.off(event, h));
    for (const fe of failOn) {
      const fh = (...args) => { done(); reject(new Error(`'${fe}' (${args.map(String).join(', ')}) while waiting for '${event}'`)); };
      emitter.on(fe, fh);
      cleanups.push(() => emitter.off(fe, fh));
    }
    const timer = setTimeout(() => { done(); reject(new Error(`timed out after ${ms} ms waiting for '${event}'`)); }, ms);
  });
}

/** Stock-client options for a socket on chatd (no auto-reconnection unless asked). */
export function clientOptions(transport = TRANSPORTS.default, opts = {}) {
  const o = { path: '/socket.io/', forceNew: true, reconnection: false, ...opts };
  if (transport.transports) o.transports = transport.transports;
  return o;
}

/** A raw stock-client socket (not awaited); closed after the test when `t` is given. */
export function socketFor(t, srv, nsp, transport = TRANSPORTS.default, opts = {}) {
  const s = io(`${srv.url}${nsp}`, clientOptions(transport, opts));
  t?.after(() => closeSocket(s));
  return s;
}

/** Waits for `connect` (failing on `connect_error`), and for the upgrade when `upgrade`. */
export async function connected(socket, { upgrade = false, ms = WAIT_MS } = {}) {
  const up = upgrade && socket.io.engine?.transport?.name !== 'websocket'
    ? nextEvent(socket.io.engine, 'upgrade', { ms, failOn: ['upgradeError', 'close'] }).then(() => null, (e) => e)
    : null;
  if (!socket.connected) {
    await nextEvent(socket, 'connect', { ms, failOn: ['connect_error'] });
  }
  const err = await up;
  if (err) throw new Error(`upgrade to websocket failed: ${err.message}`);
  return socket;
}

/** A connect attempt that must be refused: resolves with the `connect_error` Error. */
export async function refused(socket, ms = WAIT_MS) {
  const [err] = await nextEvent(socket, 'connect_error', { ms, failOn: ['connect'] });
  return err;
}

const CHAT_EVENTS = ['message', 'presence', 'typing', 'topic', 'dm', 'session', 'invited', 'read'];

/** A `/chat` client: the socket, its user and token, recorders of every server event. */
export class ChatClient {
  constructor(socket, transport) {
    this.socket = socket;
    this.transport = transport;
    this.events = {};
    for (const e of CHAT_EVENTS) this.events[e] = new Recorder(socket, e);
    this.disconnects = new Recorder(socket, 'disconnect', 2);
    this.user = undefined;
    this.token = undefined;
  }

  get id() { return this.socket.id; }

  /** Emits a command and resolves with its ack (first argument); fails after `ms`. */
  ask(event, ...args) {
    return this.socket.timeout(WAIT_MS).emitWithAck(event, ...args);
  }

  /** `ask`, asserting `ok: true`; returns the ack. */
  async ok(event, ...args) {
    const res = await this.ask(event, ...args);
    if (!res || res.ok !== true) {
      throw new Error(`${event} ${JSON.stringify(args)} failed: ${JSON.stringify(res)}`);
    }
    return res;
  }

  /** Sends a message (`id` defaults to a fresh one) and returns the stored message. */
  async send(room, text, id = nextId()) {
    return (await this.ok('message:send', { room, id, text })).message;
  }

  /** Problems seen by the recorders (unexpected extra arguments). */
  problems() {
    return Object.values(this.events).flatMap((r) => r.problems);
  }

  close() { closeSocket(this.socket); }
}

let idCounter = 0;
/** A fresh client message id. */
export function nextId(prefix = 'm') {
  idCounter += 1;
  return `${prefix}-${process.pid}-${idCounter}`;
}

/**
 * Connects to `/chat` as `username` and waits for `connect` and the `session` event.
 * opts: { token, transport, upgrade (default: true for the default transports), auth, ...client opts }
 */
export async function chat(t, srv, username, opts = {}) {
  const { token, transport = TRANSPORTS.default, auth, upgrade = transport.upgrade, ...rest } = opts;
  const socket = socketFor(t, srv, '/chat', transport, {
    auth: auth ?? (token ? { username, token } : { username }),
    ...rest,
  });
  const c = new ChatClient(socket, transport);
  let session;
  try {
    await connected(socket, { upgrade });
    session = await c.events.session.waitFor();
  } catch (err) {
    closeSocket(socket);
    throw err;
  }
  c.user = session.user;
  c.token = session.token;
  return c;
}

/** A `/chat` connection that must be refused; resolves with the `connect_error` Error. */
export async function chatRefused(t, srv, auth, transport = TRANSPORTS.default, opts = {}) {
  const socket = socketFor(t, srv, '/chat', transport, { auth, ...opts });
  try {
    return await refused(socket);
  } finally {
    closeSocket(socket);
  }
}

// ---------------------------------------------------------------------------------------------
// The accounts API

/**
 * A request to chatd's JSON API: POST with `body` (JSON) unless `opts.method` says otherwise,
 * GET without a body. opts: { token (Authorization: Bearer), cookie (the session token, sent as
 * the cookie), headers, method, raw (a body sent as is) }.
 * Resolves with { status, headers, json, cookie } (`cookie`: the Set-Cookie header or null).
 */
export async function api(srv, p, body, opts = {}) {
  const headers = { ...(opts.headers ?? {}) };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  if (opts.cookie) headers.cookie = `chatd_session=${opts.cookie}`;
  const method = opts.method ?? (body === undefined && opts.raw === undefined ? 'GET' : 'POST');
  let payload;
  if (opts.raw !== undefined) payload = opts.raw;
  else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(`${srv.url}${p}`, { method, headers, body: payload, signal: AbortSignal.timeout(WAIT_MS * 2) });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, headers: res.headers, json, text, cookie: res.headers.get('set-cookie') };
}

/** The session token in a Set-Cookie header. */
export function cookieToken(setCookie) {
  return /chatd_session=([^;]*)/.exec(setCookie ?? '')?.[1] || null;
}

/** Registers `name` (password `password1` unless given) and resolves with { token, user, res }. */
export async function register(srv, name, password = 'password1', extra = {}) {
  const res = await api(srv, '/api/register', { name, password, ...extra });
  if (res.status !== 201) throw new Error(`register ${name}: HTTP ${res.status} ${res.text}`);
  return { token: cookieToken(res.cookie), user: res.json.user, res };
}

/**
 * Connects to `/chat` with an account session: `{ cookie }` (sent as the browser's cookie
 * through extraHeaders) or `{ token }` (auth.token); waits for `session`.
 */
export async function chatAs(t, srv, { cookie, token, transport = TRANSPORTS.default, ...rest } = {}) {
  const opts = { ...rest };
  if (cookie) opts.extraHeaders = { cookie: `chatd_session=${cookie}` };
  opts.auth = token ? { token } : {};
  const socket = socketFor(t, srv, '/chat', transport, opts);
  const c = new ChatClient(socket, transport);
  try {
    await connected(socket, { upgrade: transport.upgrade });
    const session = await c.events.session.waitFor();
    c.user = session.user;
    c.session = session;
  } catch (err) {
    closeSocket(socket);
    throw err;
  }
  return c;
}

/** Sequence numbers of messages. */
export const seqs = (messages) => messages.map((m) => m.seq);

/** [from, from+1, …, to] */
export function range(from, to) {
  const out = [];
  for (let i = from; i <= to; i++) out.push(i);
  return out;
}

/** Asserts the server's answer is `ok: false` with `code`; returns the error. */
export function expectError(res, code, what = '') {
  if (!res || res.ok !== false || !res.error || res.error.code !== code) {
    throw new Error(`${what}: expected error ${code}, got ${JSON.stringify(res)}`);
  }
  if (typeof res.error.message !== 'string' || res.error.message.length === 0) {
    throw new Error(`${what}: error without a message: ${JSON.stringify(res)}`);
  }
  return res.error;
}

/**
 * An ordering barrier: `sender` posts a unique message to `room` and every observer waits for
 * it. Room events reach a connection in the order the room produced them, so anything the room
 * emitted before this message has been received by the observers once this resolves.
 */
export async function barrier(sender, room, observers) {
  const id = nextId('barrier');
  const waits = observers.map((o) => o.events.message.waitFor((m) => m.id === id && m.room === room));
  await sender.send(room, 'barrier', id);
  await Promise.all(waits);
}

/**
 * Sends `n` messages to `room` at once (pipelined; chatd handles one connection's commands in
 * order) and resolves with one entry per message, in send order: { i, id, text, res } or
 * { i, id, text, err }. `onAck(entry, acked)` runs as each ack arrives (acked = count so far).
 */
export function sendMany(client, room, n, { prefix = nextId('burst'), text = (i) => `${prefix} #${i}`, onAck, ms = 30000 } = {}) {
  let acked = 0;
  const all = [];
  for (let i = 0; i < n; i++) {
    const entry = { i, id: `${prefix}-${i}`, text: text(i) };
    all.push(new Promise((resolve) => {
      client.socket.timeout(ms).emit('message:send', { room, id: entry.id, text: entry.text }, (err, res) => {
        if (err) entry.err = err;
        else {
          entry.res = res;
          acked += 1;
          onAck?.(entry, acked);
        }
        resolve(entry);
      });
    }));
  }
  return Promise.all(all);
}

/**
 * `room:join` with `since`, then `history` with `after` while the reply says `more`: every
 * message after `since`, oldest first, and each reply (the join's ack first).
 */
export async function catchUp(client, room, since) {
  const join = await client.ok('room:join', { room, since });
  const replies = [join];
  const messages = [...join.messages];
  let page = join;
  while (page.more) {
    page = await client.ok('history', { room, after: messages.at(-1).seq, limit: 100 });
    replies.push(page);
    messages.push(...page.messages);
  }
  return { join, replies, messages };
}

/** Every message of a room, oldest first, paging back with `history` (100 at a time). */
export async function fullHistory(client, room, { event = 'history', key = 'room' } = {}) {
  const out = [];
  let before;
  for (;;) {
    const page = await client.ok(event, { [key]: room, limit: 100, ...(before === undefined ? {} : { before }) });
    out.unshift(...page.messages);
    if (!page.more) return out;
    before = page.cursor;
  }
}
