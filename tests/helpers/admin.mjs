// Driving the admin namespace as the official Socket.IO Admin UI (@socket.io/admin-ui 0.5.1,
// ui/src/App.vue) does: io(serverUrl + '/admin', {forceNew, reconnection: false,
// withCredentials: true, transports, path, auth}), with every listener registered before the
// connection, since `session` and `config` come right after it.
//
//   const admin = adminClient(server, { auth: { username, password } });
//   await admin.connected();          // or: await admin.refusal() -> the connect_error
//   const [stats] = await admin.until('server_stats', (s) => s.clientsCount === 2);
//   admin.events.config               // every `config` received so far (argument lists)
//   admin.close();
//
// Everything waits on events under a timeout; nothing sleeps.
import { io } from 'socket.io-client';
import bcrypt from 'bcryptjs';
import { once } from './eio.mjs';

export const WAIT_MS = 10000;

/** The events the UI listens to (App.vue, registerEventListeners). */
export const UI_EVENTS = [
  'session', 'config', 'server_stats', 'all_sockets', 'socket_connected', 'socket_updated',
  'socket_disconnected', 'room_joined', 'room_left', 'event_received', 'event_sent',
];

/** The password every test server uses, and its bcrypt hash as bcryptjs (the UI's) makes it. */
export const PASSWORD = 'changeit';
export const HASH = bcrypt.hashSync(PASSWORD, 4);
/** The hash of `changeit` in @socket.io/admin-ui's README ($2b$, cost 10). */
export const README_HASH = '$2b$10$heqvAkYMez.Va6Et2uXInOnkCT6/uQj1brkrbyG3LpopDklcq7ZOS';

/** sio-echo flags for an instrumented server with basic authentication. */
export function adminFlags({ user = 'admin', hash = HASH, extra = [] } = {}) {
  return ['--admin', '--admin-user', user, '--admin-password-hash', hash, ...extra];
}

/**
 * An admin client, connecting as the UI does. `events[name]` records every UI event;
 * `until(name, pred)` resolves with the first recorded or future arguments matching `pred`.
 */
export function adminClient(server, { auth = {}, wsOnly = false, nsp = '/admin' } = {}) {
  const socket = io(`http://127.0.0.1:${server.port}${nsp}`, {
    forceNew: true,
    reconnection: false,
    withCredentials: true,
    transports: wsOnly ? ['websocket'] : ['polling', 'websocket'],
    path: server.path,
    auth,
  });
  const events = Object.fromEntries(UI_EVENTS.map((e) => [e, []]));
  const order = [];
  let waiters = [];
  for (const name of UI_EVENTS) {
    socket.on(name, (...args) => {
      events[name].push(args);
      order.push([name, args]);
      waiters = waiters.filter((w) => {
        if (w.name !== name || !w.pred(...args)) return true;
        w.resolve(args);
        return false;
      });
    });
  }
  const wait = (name, pred, ms) => new Promise((resolve, reject) => {
    const w = {
      name,
      pred,
      resolve: (v) => { clearTimeout(timer); resolve(v); },
    };
    const timer = setTimeout(() => {
      waiters = waiters.filter((x) => x !== w);
      reject(new Error(`timed out after ${ms} ms waiting for a matching '${name}' ` +
        `(got ${events[name].length}: ${JSON.stringify(events[name].slice(-3))})`));
    }, ms);
    waiters.push(w);
  });
  return {
    socket,
    events,
    /** Every UI event in arrival order, as [name, args]. */
    order,
    connected: () => once(socket, 'connect', WAIT_MS, { failOn: ['connect_error'] }),
    /** The connect_error (call it before the connection can fail). */
    refusal: () => once(socket, 'connect_error', WAIT_MS, { failOn: ['connect'] }).then(([err]) => err),
    until(name, pred = () => true, ms = WAIT_MS) {
      const found = events[name].find((args) => pred(...args));
      if (found) return Promise.resolve(found);
      return wait(name, pred, ms);
    },
    /** The next `name` to arrive from now on. */
    next(name, ms = WAIT_MS) {
      return wait(name, () => true, ms);
    },
    close() {
      try { socket.disconnect(); } catch { /* gone */ }
    },
  };
}

/** Sums the aggregated events of every `server_stats` recorded so far, by `type[:subType]`. */
export function totals(statsList, serverId) {
  const out = {};
  for (const [stats] of statsList) {
    if (serverId && stats.serverId !== serverId) continue;
    for (const e of stats.aggregatedEvents) {
      const key = e.subType ? `${e.type}:${e.subType}` : e.type;
      out[key] = (out[key] ?? 0) + e.count;
    }
  }
  return out;
}

/**
 * A plain Socket.IO client of sio-echo's namespaces, connected and greeted (sio-echo emits
 * `auth` on connection), so that nothing more arrives unasked.
 */
export async function appClient(t, server, { nsp = '/', transports = ['websocket'], auth } = {}) {
  const socket = io(`http://127.0.0.1:${server.port}${nsp}`, {
    path: server.path,
    transports,
    forceNew: true,
    reconnection: false,
    auth,
  });
  t?.after(() => socket.disconnect());
  const greeted = once(socket, 'auth', WAIT_MS);
  await once(socket, 'connect', WAIT_MS, { failOn: ['connect_error'] });
  await greeted;
  return socket;
}

/** Emits with an ack and resolves with the ack's first argument. */
export const ask = (socket, event, ...args) => socket.timeout(WAIT_MS).emitWithAck(event, ...args);
