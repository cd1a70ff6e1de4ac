// Node socket.io 4.8 peer for bench/: on connection join room `all`; `echo` -> `echo` with the
// same arguments; `trigger {k, b}` -> broadcast K messages `tick {ts, i, b}` to room `all`.
// PORT (default 0) on 127.0.0.1, RECOVERY=1 turns connection state recovery on, REDIS_URL joins
// a cluster through @socket.io/redis-adapter 8.3 (classic). Prints `listening on <addr>` once
// bound (and subscribed).
"use strict";
const http = require("node:http");
const { Server } = require("socket.io");

const now = () => performance.timeOrigin + performance.now();
const recovery = process.env.RECOVERY === "1";

async function adapter() {
  if (!process.env.REDIS_URL) return {};
  const { createAdapter } = require("@socket.io/redis-adapter");
  const { createClient } = require("redis");
  const pub = createClient({ url: process.env.REDIS_URL });
  const sub = pub.duplicate();
  for (const c of [pub, sub]) c.on("error", (e) => console.error("redis:", e.message));
  await Promise.all([pub.connect(), sub.connect()]);
  return { adapter: createAdapter(pub, sub), sub };
}

(async () => {
  const { adapter: redisAdapter, sub } = await adapter();
  const httpServer = http.createServer();
  const io = new Server(httpServer, {
    serveClient: false,
    pingInterval: 25000,
    pingTimeout: 20000,
    ...(redisAdapter ? { adapter: redisAdapter } : {}),
    ...(recovery
      ? { connectionStateRecovery: { maxDisconnectionDuration: 120000, skipMiddlewares: true } }
      : {}),
  });
  if (sub) {
    // The adapter subscribed on `sub`; a later command on the same connection completes after it.
    await sub.subscribe("bench-ready-probe", () => {});
    await sub.unsubscribe("bench-ready-probe");
  }

  io.on("connection", (socket) => {
    socket.join("all");
    socket.on("echo", (...args) => socket.emit("echo", ...args));
    socket.on("trigger", (arg) => {
      const k = (arg && arg.k) || 1;
      const b = arg && arg.b !== undefined ? arg.b : null;
      for (let i = 0; i < k; i++) io.to("all").emit("tick", { ts: now(), i, b });
    });
  });

  httpServer.listen(Number(process.env.PORT || 0), "127.0.0.1", 4096, () => {
    const a = httpServer.address();
    console.log(`listening on ${a.address}:${a.port}`);
  });
})();
for (const sig of ["SIGTERM", "SIGINT"]) process.on(sig, () => process.exit(0));
