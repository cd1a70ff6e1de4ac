// Small helpers around the official engine.io-client for the conformance tests.
// Everything here waits on events, guarded by timeouts that fail the test; nothing sleeps.
import { Socket } from 'engine.io-client';

/** Transport modes every behaviour is tested over. */
export const MODES = [
  { name: 'polling', transports: ['polling'], expectUpgrade: false },
  { name: 'websocket', transports: ['websocket'], expectUpgrade: false },
  { name: 'upgrade', transports: ['polling', 'websocket'], expectUpgrade: true },
];

export const DEFAULT_WAIT_MS = 5000;
export const SID_RE = /^[A-Za-z0-9_-]{20}$/;

const on = (em, ev, fn) => em.on(ev, fn);
const off = (em, ev, fn) => (em.off ? em.off(ev, fn) : em.removeListener(ev, fn));

function describeClose(args) {
  const [reason, details] = args;
  let d = '';
  if (details) {
    if (details instanceof Error) d = `${details.message} ${details.description ?? ''}`;
    else if (typeof details === 'object') {
      const ctx = details.context;
      d = details.description ?? '';
      if (ctx && typeof ctx === 'object' && 'code' in ctx) d += ` (ws close code ${ctx.code})`;
      else if (typeof ctx === 'number' || ctx?.status) d += ` (status ${ctx.status ?? ctx})`;
    } else d = String(details);
  }
  return `${reason}${d ? `: ${d}` : ''}`;
}

/**
 * Resolve with the event's argument list when `event` fires on `emitter`; reject after `ms`, or
 * as soon as one of `failOn` events fires first (by default a socket 'close' fails the wait
 * unless we are waiting for 'close' itself).
 */
export function once(emitter, event, ms = DEFAULT_WAIT_MS, { failOn } = {}) {
  const failEvents = failOn ?? (event === 'close' ? [] : ['close']);
  return new Promise((resolve, reject) => {
    const cleanups = [];
    const done = () => { clearTimeout(timer); for (const c of cleanups) c(); };
    const handler = (...args) => { done(); resolve(args); };
    on(emitter, event, handler);
    cleanups.push(() => off(emitter, event, handler));
    for (const fe of failEvents) {
      const fh = (...args) => {
        done();
        reject(new Error(`'${fe}' (${describeClose(args)}) while waiting for '${event}'`));
      };
      on(emitter, fe, fh);
      cleanups.push(() => off(emitter, fe, fh));
    }
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${ms} ms waiting for '${event}'`));
    }, ms);
  });
}

/** Collect the next `n` 'message' events (in arrival order). Fails on timeout or socket close. */
export function collectMessages(socket, n, ms = DEFAULT_WAIT_MS) {
  return new Promise((resolve, reject) => {
    const got = [];
    if (n === 0) { resolve(got); return; }
    const done = () => {
      clearTimeout(timer);
      off(socket, 'message', onMsg);
      off(socket, 'close', onClose);
    };
    const onMsg = (data) => {
      got.push(data);
      if (got.length === n) { done(); resolve(got); }
    };
    const onClose = (...args) => {
      done();
      reject(new Error(`socket closed (${describeClose(args)}) after ${got.length}/${n} messages`));
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`timed out after ${ms} ms: got ${got.length}/${n} messages`));
    }, ms);
    on(socket, 'message', onMsg);
    on(socket, 'close', onClose);
  });
}

/** Send one message and resolve with the next message received. */
export async function echo(socket, data, ms = DEFAULT_WAIT_MS) {
  const p = collectMessages(socket, 1, ms);
  socket.send(data);
  const [reply] = await p;
  return reply;
}

/** Normalise any binary payload the client can yield (Buffer / ArrayBuffer / typed array). */
export function toBuffer(data) {
  if (Buffer.isBuffer(data)) return data;
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError(`expected binary data, got ${typeof data}: ${String(data).slice(0, 80)}`);
}

export function isBinary(data) {
  return Buffer.isBuffer(data) || data instanceof ArrayBuffer || ArrayBuffer.isView(data);
}

/** Close a socket if it is still open; never throws. */
export function closeQuietly(socket) {
  try {
    if (socket && socket.readyState !== 'closed') socket.close();
  } catch { /* ignore */ }
}

/**
 * Create an engine.io-client Socket against `server` in `mode` and wait until it is open (and,
 * for the upgrade mode, upgraded to WebSocket). Registers cleanup on the test context `t`.
 * Returns { socket, handshake, openedAt }.
 */
export async function connect(t, server, mode, opts = {}) {
  const { waitUpgrade = mode.expectUpgrade, ms = DEFAULT_WAIT_MS, onSocket, ...clientOpts } = opts;
  const socket = new Socket(`http://127.0.0.1:${server.port}`, {
    path: server.path,
    transports: mode.transports,
    ...clientOpts,
  });
  onSocket?.(socket); // lets a test attach listeners before anything can happen
  t.after(() => closeQuietly(socket));
  const handshakeP = once(socket, 'handshake', ms);
  const openP = once(socket, 'open', ms);
  const upgradeP = waitUpgrade ? once(socket, 'upgrade', ms) : null;
  upgradeP?.catch(() => {}); // handled below; avoid an unhandled rejection while awaiting open
  const errors = [];
  socket.on('error', (e) => errors.push(e));
  socket.on('upgradeError', (e) => errors.push(e));
  try {
    const [[handshake]] = await Promise.all([handshakeP, openP]);
    const openedAt = Date.now();
    if (upgradeP) await upgradeP;
    return { socket, handshake, openedAt };
  } catch (err) {
    const extra = errors.length ? `; client errors: ${errors.map((e) => e?.message ?? e).join(', ')}` : '';
    throw new Error(`connect [${mode.name}] failed: ${err.message}${extra}`);
  }
}

/** A deterministic pseudo-random buffer. */
export function patternBuffer(len, seed = 1) {
  const b = Buffer.alloc(len);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

export { Socket };

/**
 * Raw polling GET with an explicit sid (no client library involved).
 * Resolves { status, contentType, text, json } (json is undefined when the body is not JSON).
 */
export async function rawPollGet(server, sid, ms = DEFAULT_WAIT_MS) {
  const url = `http://127.0.0.1:${server.port}${server.path}?EIO=4&transport=polling&sid=${encodeURIComponent(sid)}`;
  const res = await fetch(url, { signal: AbortSignal.timeout(ms) });
  const text = await res.text();
  let json;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, contentType: res.headers.get('content-type'), text, json };
}

export const SID_UNKNOWN = { code: 1, message: 'Session ID unknown' };

export function isSidUnknown(r) {
  return r.status === 400 && r.json?.code === 1 && r.json?.message === 'Session ID unknown';
}

/**
 * Raw-GET the old sid until the answer is no longer one that `retryWhile` accepts (a session that
 * is still being torn down), within `ms`; returns the last response. With the default
 * (`retryWhile` = never) this is exactly one request.
 */
export async function pollSidUntil(server, sid, { retryWhile = () => false, ms = 2000, everyMs = 25 } = {}) {
  const deadline = Date.now() + ms;
  const history = [];
  for (;;) {
    const r = await rawPollGet(server, sid);
    history.push(`${r.status} ${r.text.slice(0, 80)}`);
    if (!retryWhile(r) || Date.now() >= deadline) return { ...r, history };
    await new Promise((res) => setTimeout(res, everyMs)); // poll interval under a deadline
  }
}
