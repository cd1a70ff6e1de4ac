// Accounts across cluster nodes (one PostgreSQL, one Redis, nginx): a session made through one
// node is valid on every node, the tabs of one account on different nodes are one user, and a
// session ended through one node is refused by the others at their next handshake.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { api, chatAs, chatRefused, cookieToken, nextId, register } from '../helpers/chatd.mjs';
import { chatdHasPostgres, startCluster } from '../helpers/cluster.mjs';

describe('chatd cluster: accounts', { timeout: 120000, skip: !chatdHasPostgres() && 'chatd without PostgreSQL' }, () => {
  it('a session is valid on every node; one account on two nodes is one user', { timeout: 90000 }, async (t) => {
    const cluster = await startCluster({ t, flags: { guests: false } });
    const { a, b, c } = cluster.nodes;
    // Through nginx (a trusted proxy): the API and the cookie as a browser gets them.
    const { token } = await register(cluster.proxy, 'lena');
    const onA = await chatAs(t, a, { cookie: token });
    const onB = await chatAs(t, b, { token });
    assert.equal(onA.user, 'lena');
    assert.equal(onB.user, 'lena');
    await onA.ok('room:join', { room: 'lobby' });
    await onB.ok('room:join', { room: 'lobby' });
    const id = nextId();
    const got = onB.events.message.waitFor((m) => m.id === id);
    await onA.send('lobby', 'one user, two nodes', id);
    assert.equal((await got).user, 'lena');

    // A second session, ended through node c: refused everywhere from then on.
    const other = cookieToken((await api(c, '/api/login', { name: 'lena', password: 'password1' })).cookie);
    assert.equal((await api(a, '/api/me', undefined, { token: other })).status, 200);
    assert.equal((await api(c, '/api/logout', {}, { token: other })).status, 200);
    for (const node of [a, b, c]) {
      assert.equal((await chatRefused(t, node, { token: other })).data?.code, 'invalid_session');
    }
    assert.equal((await chatRefused(t, cluster.proxy, {})).data?.code, 'auth_required');
  });
});
