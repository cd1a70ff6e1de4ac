// A Node.js socket.io 4.8 node on @socket.io/redis-adapter 8.3, with the same cluster events as
// socketio/examples/sio-echo.rs started with --redis (see the table at the top of that file),
// server-side `notify` included, and the namespace /custom.
//
//   node redis/node-server.mjs --port 0 --redis redis://127.0.0.1:6379/ [--redis-requests-timeout MS]
//     [--specific-response-channel]   (the adapter's publishOnSpecificResponseChannel)
//     [--sharded]                     (createShardedAdapter: Redis 7 sharded pub/sub)
//
// Prints `listening on http://127.0.0.1:<port>/socket.io/` once bound and subscribed.
import http from 'node:http';
import { parseArgs } from 'node:util';
import { Server } from 'socket.io';
import { createAdapter, createShardedAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    redis: { type: 'string' },
    'redis-requests-timeout': { type: 'string', default: '5000' },
    'specific-response-channel': { type: 'boolean', default: false },
    sharded: { type: 'boolean', default: false },
  },
});

const pub = createClient({ url: values.redis });
const sub = pub.duplicate();
for (const c of [pub, sub]) c.on('error', (e) => console.error('redis:', e.message));
await Promise.all([pub.connect(), sub.connect()]);

const httpServer = http.createServer();
const io = new Server(httpServer, {
  adapter: values.sharded
    ? createShardedAdapter(pub, sub)
    : createAdapter(pub, sub, {
      requestsTimeout: Number(values['redis-requests-timeout']),
      publishOnSpecificResponseChannel: values['specific-response-channel'],
    }),
});
// The adapter subscribed on `sub`; a later command on the same connection completes after it.
if (values.sharded) {
  await sub.sSubscribe('node-server-ready-probe', () => {});
  await sub.sUnsubscribe('node-server-ready-probe');
} else {
  await sub.subscribe('node-server-ready-probe', () => {});
  await sub.unsubscribe('node-server-ready-probe');
}

const error = (e) => ({ error: e.message });
const first = (responses) => responses.map((r) => (Array.isArray(r) ? r[0] : r));

io.on('notify', (...args) => io.local.emit('notified', ...args));
io.of('/custom').on('connection', (socket) => socket.emit('auth', socket.handshake.auth ?? {}));

io.on('ping', (...args) => {
  const cb = typeof args[args.length - 1] === 'function' ? args.pop() : null;
  cb?.({ node: 'node', got: args });
});

io.on('connection', (socket) => {
  socket.emit('auth', socket.handshake.auth ?? {});
  socket.on('broadcast', (...args) => io.emit('broadcast', ...args));
  socket.on('to-room', (room, ...args) => io.to(room).emit('broadcast', ...args));
  socket.on('count', (cb) => io.fetchSockets().then((s) => cb(s.length), (e) => cb(error(e))));
  socket.on('join-all', (room, cb) => {
    io.socketsJoin(room);
    cb?.();
  });
  socket.on('rooms', (cb) => cb([...socket.rooms].sort()));
  socket.on('server-side-emit', (...args) => {
    const cb = args.pop();
    io.serverSideEmitWithAck('ping', ...args).then((r) => cb(first(r)), (e) => cb(error(e)));
  });
  socket.on('server-count', async (cb) => cb(await io.of('/').adapter.serverCount()));
  socket.on('all-rooms', (cb) => Promise.resolve().then(() => io.of('/').adapter.allRooms()).then((r) => cb([...r].sort()), (e) => cb(error(e))));
  socket.on('broadcast-with-ack', (...args) => {
    const cb = args.pop();
    io.timeout(2000).emit('question', ...args, (err, responses) => {
      const sorted = [...responses].sort((a, b) => JSON.stringify(a) < JSON.stringify(b) ? -1 : 1);
      cb({ responses: sorted, missing: err ? 1 : 0 });
    });
  });
});

httpServer.listen(Number(values.port), '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${httpServer.address().port}/socket.io/`);
});

const stop = () => {
  io.close();
  Promise.allSettled([pub.quit(), sub.quit()]).finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
