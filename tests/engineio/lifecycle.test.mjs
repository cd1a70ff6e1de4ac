// The eio-echo example's process contract: listening line, --port 0, --path, SIGTERM/SIGINT.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startEioEcho } from '../helpers/server.mjs';
import { MODES, connect, echo } from '../helpers/eio.mjs';

describe('eio-echo process', () => {
  it('prints one listening line with the bound port and the default path /engine.io/', { timeout: 15000 }, async (t) => {
    const server = await startEioEcho();
    t.after(() => server.stop());
    assert.match(server.listeningLine, /^listening on http:\/\/127\.0\.0\.1:\d+\/engine\.io\/$/);
    assert.ok(server.port > 0 && server.port < 65536);
    assert.equal(server.path, '/engine.io/');
    assert.equal(server.url, `http://127.0.0.1:${server.port}/engine.io/`);
  });

  it('--port 0 picks a free port: two servers get different ports', { timeout: 15000 }, async (t) => {
    const [a, b] = await Promise.all([startEioEcho(), startEioEcho()]);
    t.after(() => Promise.all([a.stop(), b.stop()]));
    assert.notEqual(a.port, b.port);
  });

  it('--path /custom/ serves Engine.IO under that path', { timeout: 15000 }, async (t) => {
    const server = await startEioEcho(['--path', '/custom/']);
    t.after(() => server.stop());
    assert.equal(server.path, '/custom/');
    const { socket } = await connect(t, server, MODES[0]);
    assert.equal(await echo(socket, 'custom path'), 'custom path');
    // the default path is not served
    const res = await fetch(`http://127.0.0.1:${server.port}/engine.io/?EIO=4&transport=polling`);
    await res.arrayBuffer();
    assert.notEqual(res.status, 200);
  });

  for (const signal of ['SIGTERM', 'SIGINT']) {
    it(`shuts down on ${signal}`, { timeout: 15000 }, async (t) => {
      const server = await startEioEcho();
      t.after(() => server.stop('SIGKILL'));
      // with a live client connected
      const { socket } = await connect(t, server, MODES[1]);
      assert.equal(await echo(socket, 'x'), 'x');
      server.proc.kill(signal);
      const timeout = new Promise((_, reject) => {
        const tm = setTimeout(() => reject(new Error(`still running 5 s after ${signal}`)), 5000);
        server.exited.finally(() => clearTimeout(tm));
      });
      const { code, signal: sig } = await Promise.race([server.exited, timeout]);
      assert.ok(code === 0 || sig === signal, `exit after ${signal}: code ${code}, signal ${sig}`);
    });
  }
});
