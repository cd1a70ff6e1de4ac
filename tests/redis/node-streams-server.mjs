// A Node.js socket.io 4.8 node on @socket.io/redis-streams-adapter 0.3, with the cluster events
// of socketio/examples/sio-echo.rs started with --redis-streams (see the table at the top of
// that file).
//
//   node redis/node-streams-server.mjs --port 0 --redis redis://127.0.0.1:6379/ [--recovery]
//
// Prints `listening on http://127.0.0.1:<port>/socket.io/` once bound, subscribed and reading
// the stream.
import http from 'node:http';
import { parseArgs } from 'node:util';
import { Server } from 'socket.io';
import { createAdapter } from '@socket.io/redis-streams-adapter';
import { createClient } from 'redis';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    redis: { type: 'string' },
    recovery: { type: 'boolean', default: false },
  },
});

const redis = createClient({ url: values.redis });
redis.on('error', (e) => console.error('redis:', e.message));
await redis.connect();

// The adapter subscribes and starts reading the stream on connections of its own, without
// telling when: wait until Redis counts one more subscriber and one more blocked XREAD.
const numsub = async () => Number((await redis.sendCommand(['PUBSUB', 'NUMSUB', 'socket.io#/#']))[1]);
const xreads = async () => (await redis.sendCommand(['CLIENT', 'LIST'])).split('\n')
  .filter((l) => / cmd=xread\b/.test(l)).length;
const [subs0, reads0] = [await numsub(), await xreads()];

const httpServer = http.createServer();
const io = new Server(httpServer, {
  adapter: createAdapter(redis),
  ...(values.recovery ? { connectionStateRecovery: {} } : {}),
});
for (let i = 0; i < 500 && (await numsub() <= subs0 || await xreads() <= reads0); i++) {
  await new Promise((r) => setTimeout(r, 10));
}

const error = (e) => ({ error: e.message });
const first = (responses) => responses.map((r) => (Array.isArray(r) ? r[0] : r));

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
  redis.quit().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
