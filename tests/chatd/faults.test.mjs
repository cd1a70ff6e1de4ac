// chatd end-to-end under faults: the store failing writes for real (a full filesystem), and
// SIGTERM with many polling-only clients. docs/protocol.md, "message:send" and "Events from the
// server" (`shutdown`).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, openSync, writeSync, closeSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  Chatd, startChatd, chat, TRANSPORTS, expectError, nextEvent, withTimeout, nextId, seqs, range,
} from '../helpers/chatd.mjs';

const T = { timeout: 60000 };
const FAST = { 'message-rate': 10000, 'message-burst': 10000 };

/** Mounts a small tmpfs (needs root); null where that is not allowed. */
function smallFilesystem(t, size) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chatd-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'ignore' });
  } catch {
    rmSync(dir, { recursive: true, force: true });
    return null;
  }
  return dir;
}

/** Writes zeros to `file` until the filesystem is full. */
function fillUp(file) {
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(64 * 1024);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if (err.code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}

describe('chatd store faults', () => {
  it('a full disk: the sender gets an error ack, never ok; chatd recovers when space comes back', T, async (t) => {
    const mnt = smallFilesystem(t, '8m');
    if (!mnt) {
      t.skip('mounting a tmpfs needs root');
      return;
    }
    const dataDir = path.join(mnt, 'data');
    mkdirSync(dataDir);
    const srv = new Chatd(dataDir, FAST);
    t.after(async () => {
      await srv.close();
      execFileSync('umount', ['-l', mnt]);
      rmSync(mnt, { recursive: true, force: true });
    });
    await srv.start();
    const alice = await chat(t, srv, 'alice', { transport: TRANSPORTS.websocket });
    const bob = await chat(t, srv, 'bob', { transport: TRANSPORTS.polling });
    await alice.ok('room:create', { room: 'disk' });
    await alice.ok('room:join', { room: 'disk' });
    await bob.ok('room:join', { room: 'disk' });
    const before = await alice.send('disk', 'before the disk filled up');
    await bob.events.message.waitFor((m) => m.id === before.id);

    const filler = path.join(mnt, 'filler');
    fillUp(filler);
    const big = 'x'.repeat(4000);
    const failed = [];
    for (let i = 0; i < 5; i++) {
      const id = nextId('full');
      const res = await alice.ask('message:send', { room: 'disk', id, text: `${i} ${big}` });
      expectError(res, 'unavailable', `send ${i} on a full disk`);
      failed.push(id);
    }
    // The same for a direct message and a topic change: errors, never ok.
    expectError(await alice.ask('dm:send', { to: 'bob', id: nextId('dm'), text: big }), 'unavailable', 'dm on a full disk');
    expectError(await alice.ask('room:topic', { room: 'disk', topic: 'y'.repeat(200) }), 'unavailable', 'topic on a full disk');
    assert.ok(alice.socket.connected && bob.socket.connected);

    // Space again: the same ids go through, with the next sequence numbers (nothing was stored).
    rmSync(filler);
    const retried = [];
    for (const [i, id] of failed.entries()) {
      const res = await alice.ok('message:send', { room: 'disk', id, text: `${i} ${big}` });
      assert.equal(res.duplicate, false, 'the failed send was not stored');
      retried.push(res.message);
    }
    assert.deepEqual(seqs(retried), range(before.seq + 1, before.seq + failed.length));
    await bob.events.message.waitFor((m) => m.id === failed.at(-1));
    assert.deepEqual(bob.events.message.all, [before, ...retried], 'only stored messages were broadcast');
    const history = await bob.ok('history', { room: 'disk' });
    assert.deepEqual(history.messages, [before, ...retried]);
    await alice.ok('room:topic', { room: 'disk', topic: 'back' });
  });
});

describe('chatd SIGTERM with polling-only clients', () => {
  // Clients between two polls when the server stops must come back for the packets queued for
  // them. A busy client (a loaded machine) comes back late: here the test's event loop is kept
  // busy for BUSY_MS right after the signal, which is what made some clients miss the notice
  // when the server kept serving for two seconds only.
  const N = 200;
  const BUSY_MS = 3000;
  for (const busy of [false, true]) {
    it(`every one of ${N} polling clients receives the shutdown notice${busy ? ' (busy clients)' : ''}`, { timeout: 120000 }, async (t) => {
      const srv = await startChatd({ 'max-connections-per-ip': N + 10 }, { t });
      const clients = [];
      for (let i = 0; i < N; i += 20) {
        const batch = [];
        for (let j = i; j < Math.min(i + 20, N); j++) {
          batch.push(chat(t, srv, `poller${j}`, { transport: TRANSPORTS.polling, reconnection: false }));
        }
        clients.push(...await Promise.all(batch));
      }
      const notices = clients.map((c) => withTimeout(
        new Promise((resolve) => c.socket.once('shutdown', resolve)),
        30000,
        `${c.user}: the shutdown notice`,
      ).then(() => true, () => false));
      const exited = srv.kill('SIGTERM', 30000);
      if (busy) {
        const until = Date.now() + BUSY_MS;
        while (Date.now() < until) { /* a busy client: nothing of it runs meanwhile */ }
      }
      const exit = await exited;
      assert.deepEqual(exit, { code: 0, signal: null }, `exit status; stderr:\n${srv.stderr()}`);
      const got = await Promise.all(notices);
      const missed = clients.filter((_, i) => !got[i]).map((c) => c.user);
      assert.deepEqual(missed, [], `${missed.length} of ${N} missed the shutdown notice`);
    });
  }
});
