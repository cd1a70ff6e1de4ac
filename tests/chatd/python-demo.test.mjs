// chatd end-to-end: the classic demos' protocol on `/` driven by a client in another language,
// python-socketio (tests/python/demo_client.py, installed into tests/.venv by
// `scripts/setup.sh --tests`). Its handlers take exactly the demo's arguments, so an event with
// an extra argument (a recovery offset) breaks it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { startChatd } from '../helpers/chatd.mjs';
import { REPO_ROOT } from '../helpers/server.mjs';

const PYTHON = path.join(REPO_ROOT, 'tests', '.venv', 'bin', 'python3');
const SCRIPT = path.join(REPO_ROOT, 'tests', 'python', 'demo_client.py');
const FAST = { 'message-rate': 10000, 'message-burst': 10000 };

/** Runs the Python demo client against `url`: { code, stdout, stderr }; killed after `ms`. */
function runPython(args, ms = 60000) {
  return new Promise((resolve, reject) => {
    const proc = spawn(PYTHON, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.setEncoding('utf8').on('data', (c) => { stdout += c; });
    proc.stderr.setEncoding('utf8').on('data', (c) => { stderr += c; });
    const timer = setTimeout(() => proc.kill('SIGKILL'), ms);
    proc.once('error', (err) => { clearTimeout(timer); reject(err); });
    proc.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe('classic demos on / with python-socketio', () => {
  for (const mode of ['default', 'polling']) {
    it(`login, user joined, typing, new message, stop typing, tutorial catch-up and ack, user left [${mode}]`, { timeout: 90000 }, async (t) => {
      assert.ok(existsSync(PYTHON), `${PYTHON} missing: run scripts/setup.sh --tests`);
      const srv = await startChatd(FAST, { t });
      const res = await runPython([srv.url, mode]);
      assert.equal(res.code, 0, `python client failed (${res.signal ?? res.code}):\n${res.stderr}\n${res.stdout}`);
      assert.equal(res.stdout.trim(), 'ok');
    });
  }
});
