// chatd as a cluster behind nginx: PostgreSQL, redis-server, three chatd nodes (a, b, c) and
// nginx running docs/deploy/nginx-cluster.conf with only the nodes' ports and its listen port
// replaced.
//
//   const cluster = await startCluster({ t });        // t: stopped after the test
//   cluster.url                  "http://127.0.0.1:<nginx port>" (no trailing slash)
//   cluster.proxy                { url } for chat(t, cluster.proxy, 'alice')
//   cluster.nodes.b              a Chatd (helpers/chatd.mjs): .url, .port, .get(), .metrics()
//   await cluster.kill('b', 'SIGKILL');    await cluster.restartNode('b');   // same port
//   await cluster.restartRedis();          await cluster.restartPostgres();  // same ports
//   await cluster.restartRedis({ crash: true, down: async () => { … } });  // during the outage
//   cluster.requests()           nginx's access log: { status, method, upstream, uri, sid }
//   await cluster.stop();        // everything stopped, every directory removed
//
// Options: `nodes` (ids, default a b c; nginx needs exactly those of the conf), `flags` (extra
// chatd flags for every node), `store`: 'postgres' (default: `--store postgres://…`),
// 'sqlite-shared' (one SQLite data dir for all nodes, for a chatd without PostgreSQL) or
// 'sqlite' (each node its own: no shared state, enough for routing); `redis` (default true:
// `--redis redis://…`), `nginx` (default true).
// Every node runs with --trust-proxy and --node-id <id>.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Chatd, CHATD_BIN, startChatd } from './chatd.mjs';
import { startPostgres } from './postgres.mjs';
import { startRedis } from './redis.mjs';
import { REPO_ROOT } from './server.mjs';
import { Nginx } from './web.mjs';

export const CLUSTER_NGINX_CONF = path.join(REPO_ROOT, 'docs', 'deploy', 'nginx-cluster.conf');

/** The node ids the deploy file routes, with the port each has there. */
export const CONF_NODES = { a: 3001, b: 3002, c: 3003 };

/**
 * docs/deploy/nginx-cluster.conf for `ports` ({ a: 41001, … }) and `listenPort`: each node's
 * address must appear exactly twice (its own upstream and the pool), `listen 80;` once.
 */
export function clusterConfig(ports, listenPort) {
  let text = readFileSync(CLUSTER_NGINX_CONF, 'utf8');
  const swap = (re, by, what, n) => {
    const hits = text.match(new RegExp(re.source, 'gm')) || [];
    if (hits.length !== n) throw new Error(`${CLUSTER_NGINX_CONF}: expected ${n} × ${what}, found ${hits.length}`);
    text = text.replace(new RegExp(re.source, 'gm'), by);
  };
  for (const [id, confPort] of Object.entries(CONF_NODES)) {
    if (!ports[id]) throw new Error(`no port for node ${id}`);
    swap(new RegExp(`^(\\s*)server\\s+127\\.0\\.0\\.1:${confPort}\\b`), `$1server 127.0.0.1:${ports[id]}`, `server 127.0.0.1:${confPort}`, 2);
  }
  swap(/^(\s*)listen\s+80\s*;/, `$1listen 127.0.0.1:${listenPort};`, '`listen 80;`', 1);
  return text;
}

// Tab-separated, so that the test can tell which node served which request.
const LOG_FORMAT = '$status\\t$request_method\\t$upstream_addr\\t$request_uri';

/** Parses the access log written with LOG_FORMAT. */
function parseAccessLog(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const [status, method, upstream, uri] = line.split('\t');
    let sid = null;
    try { sid = new URL(uri, 'http://x').searchParams.get('sid'); } catch { /* not a URL */ }
    out.push({ status: Number(status), method, upstream, uri, sid });
  }
  return out;
}

/** Whether the chatd binary takes `--store postgres://…` (its --help says so). */
export function chatdHasPostgres() {
  const r = spawnSync(CHATD_BIN, ['--help'], { encoding: 'utf8' });
  return r.status === 0 && /postgres:\/\//.test(r.stdout);
}

// Shared data directories, removed at exit if a test file crashed before stop().
const liveDirs = new Set();
process.on('exit', () => {
  for (const d of liveDirs) {
    try { rmSync(d, { recursive: true, force: true }); } catch { /* ignore */ }
  }
});

export class Cluster {
  constructor() {
    this.sharedDir = null;
    this.pg = null;
    this.redis = null;
    this.nodes = {};
    this.nginx = null;
  }

  /** nginx's base URL, without a trailing slash. */
  get url() { return this.nginx.url.replace(/\/$/, ''); }
  /** A target for chat(t, srv, name) that goes through nginx. */
  get proxy() { return { url: this.url }; }

  /** The node a session id belongs to (its prefix), or null. */
  static nodeOf(sid) {
    const m = /^([a-z0-9]{1,8})-/.exec(sid ?? '');
    return m ? m[1] : null;
  }

  /** nginx's access log so far, one entry per finished request. */
  requests() { return parseAccessLog(this.nginx?.accessLog() ?? ''); }

  /** The port a node listens on, by the upstream address nginx logs. */
  nodeByAddress(addr) {
    return Object.keys(this.nodes).find((id) => addr === `127.0.0.1:${this.nodes[id].port}`) ?? null;
  }

  async kill(id, signal = 'SIGKILL') { return this.nodes[id].kill(signal); }

  /** Starts a node again on its port and data (after it exited; SIGKILLs it otherwise). */
  async restartNode(id) { return this.nodes[id].restart({ samePort: true }); }

  /**
   * Kills redis-server (`SIGKILL`) or stops it, and starts it on the same port. `down`, if
   * given, runs once it has exited and before it starts again (what happens during the outage).
   */
  async restartRedis({ crash = false, down } = {}) {
    const { port } = this.redis;
    await (crash ? this.redis.kill() : this.redis.stop());
    try {
      await down?.();
    } finally {
      this.redis = await startRedis({ port });
    }
    return this.redis;
  }

  /**
   * Stops PostgreSQL (fast shutdown, or `SIGKILL`) and starts it on the same port and data;
   * `down` as for restartRedis.
   */
  async restartPostgres({ crash = false, down } = {}) {
    await this.pg.stop(crash ? 'SIGKILL' : 'SIGINT');
    try {
      await down?.();
    } finally {
      await this.pg.start();
    }
    return this.pg;
  }

  /** Diagnostics for a failed assertion. */
  logs() {
    const parts = [];
    for (const [id, n] of Object.entries(this.nodes)) parts.push(`--- chatd ${id} stderr ---\n${n.stderr().slice(-4000)}`);
    if (this.nginx) parts.push(`--- nginx error.log ---\n${this.nginx.errorLog().slice(-4000)}`);
    if (this.pg) parts.push(`--- postgres ---\n${this.pg.log.slice(-2000)}`);
    return parts.join('\n');
  }

  /** Stops nginx, the nodes, Redis and PostgreSQL; removes their directories. Idempotent. */
  async stop() {
    const errors = [];
    const attempt = async (f) => { try { await f(); } catch (e) { errors.push(e); } };
    if (this.nginx) await attempt(() => this.nginx.close());
    this.nginx = null;
    // Nodes stop together (each takes up to its shutdown delivery time).
    await Promise.all(Object.values(this.nodes).map((n) => attempt(() => n.close())));
    if (this.redis) await attempt(() => this.redis.stop());
    this.redis = null;
    if (this.pg) await attempt(() => this.pg.cleanup());
    this.pg = null;
    if (this.sharedDir) {
      await rm(this.sharedDir, { recursive: true, force: true });
      liveDirs.delete(this.sharedDir);
      this.sharedDir = null;
    }
    if (errors.length) throw new AggregateError(errors, errors.map((e) => e.message).join('\n'));
  }
}

/** Starts the cluster (see the file's header); with `t`, stops it after the test. */
export async function startCluster({ t, nodes = Object.keys(CONF_NODES), flags = {}, store = 'postgres', redis = true, nginx = true, nginxWorkers = 1 } = {}) {
  if (!['postgres', 'sqlite-shared', 'sqlite'].includes(store)) throw new Error(`unknown store ${store}`);
  const cluster = new Cluster();
  t?.after(() => cluster.stop());
  try {
    if (store === 'postgres') cluster.pg = await startPostgres();
    if (store === 'sqlite-shared') {
      cluster.sharedDir = mkdtempSync(path.join(os.tmpdir(), 'chatd-cluster-'));
      liveDirs.add(cluster.sharedDir);
    }
    if (redis) cluster.redis = await startRedis();
    const started = await Promise.allSettled(nodes.map(async (id) => {
      const nodeFlags = { 'trust-proxy': true, 'node-id': id, ...flags };
      // The URLs are read at start: a restarted Redis or PostgreSQL keeps its port.
      if (cluster.pg) nodeFlags.store = cluster.pg.url;
      if (redis) nodeFlags.redis = cluster.redis.url;
      if (!cluster.sharedDir) return startChatd(nodeFlags);
      return new Chatd(cluster.sharedDir, nodeFlags).start();
    }));
    nodes.forEach((id, i) => { if (started[i].status === 'fulfilled') cluster.nodes[id] = started[i].value; });
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    if (nginx) {
      const ports = Object.fromEntries(nodes.map((id) => [id, cluster.nodes[id].port]));
      cluster.nginx = new Nginx(null, { render: (listen) => clusterConfig(ports, listen), logFormat: LOG_FORMAT, workers: nginxWorkers });
      await cluster.nginx.start();
    }
  } catch (err) {
    const logs = cluster.logs();
    await cluster.stop().catch(() => {});
    err.message += `\n${logs}`;
    throw err;
  }
  return cluster;
}
