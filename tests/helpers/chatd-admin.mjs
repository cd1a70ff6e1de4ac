// chatd's operator surfaces: `--admin-ui` (the Socket.IO Admin UI at /admin-ui/ and its
// namespace /admin, for administrators' accounts) and `--admin-listen` (a second listener).
//
//   const srv = await startChatd({ 'admin-ui': true, 'admin-listen': '127.0.0.1:0' }, { t });
//   const admin = adminListener(srv);      // { port, url, get(path, init) } of the 2nd listener
//   addUser(srv, 'root', PASSWORD, { admin: true });   // `chatd user add`, the server running
//   const ui = uiClient(t, srv, { username: 'root', password: PASSWORD }, { port: admin.port });
//   await ui.connected();                  // helpers/admin.mjs's client: events, until, next
//
// chatd prints `admin listening on http://127.0.0.1:<port>/` before its `listening on` line,
// so the admin port is known as soon as startChatd resolves.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { createRequire } from 'node:module';
import { CHATD_BIN, WAIT_MS } from './chatd.mjs';
import { adminClient } from './admin.mjs';

const require = createRequire(import.meta.url);

/** The Admin UI's build that chatd serves (tests/node_modules, installed by scripts/setup.sh). */
export const UI_DIST = path.join(path.dirname(require.resolve('@socket.io/admin-ui/package.json')), 'ui', 'dist');

/** The password of every account these tests make. */
export const PASSWORD = 'a long password';

const ADMIN_RE = /^admin listening on http:\/\/127\.0\.0\.1:(\d+)\/\s*$/m;

/** The admin listener of a chatd started with `--admin-listen 127.0.0.1:0`. */
export function adminListener(srv) {
  const m = ADMIN_RE.exec(srv.run.stdout());
  if (!m) throw new Error(`no admin listener line in chatd's output:\n${srv.run.stdout()}`);
  const port = Number(m[1]);
  const url = `http://127.0.0.1:${port}`;
  return {
    port,
    url,
    /** GET (or `init.method`) a path on the admin listener: { status, headers, text, body }. */
    async get(p, init = {}) {
      const res = await fetch(`${url}${p}`, { signal: AbortSignal.timeout(WAIT_MS), redirect: 'manual', ...init });
      const body = Buffer.from(await res.arrayBuffer());
      return { status: res.status, headers: res.headers, body, text: body.toString('utf8') };
    },
  };
}

/** `chatd user add NAME [--admin]` on the server's data directory (it may be running). */
export function addUser(srv, name, password = PASSWORD, { admin = false } = {}) {
  const args = ['user', 'add', name, ...(admin ? ['--admin'] : []), '--data-dir', srv.dataDir];
  const r = spawnSync(CHATD_BIN, args, { input: `${password}\n`, encoding: 'utf8', timeout: 30000 });
  if (r.status !== 0) throw new Error(`chatd ${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
  return r.stdout;
}

/**
 * The admin namespace of chatd, connected to as the UI does (helpers/admin.mjs), on the public
 * listener or on `{ port }`. Closed after the test when `t` is given.
 */
export function uiClient(t, srv, auth, { port = srv.port, wsOnly = false } = {}) {
  const client = adminClient({ port, path: '/socket.io' }, { auth, wsOnly });
  t?.after(() => client.close());
  return client;
}
