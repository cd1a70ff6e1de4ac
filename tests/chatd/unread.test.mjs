// Read markers and unread counts (docs/protocol.md, `room:read`): a member's marker per room,
// moved by the client, never backwards; the user's other connections learn it at once (`read`);
// `rooms:list` and the `session` event carry the unread count (messages after the marker that
// others sent); kept across restarts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chat, chatAs, expectError, register, startChatd } from '../helpers/chatd.mjs';

const T = { timeout: 30000 };

const unreadIn = async (c, room) => (await c.ok('rooms:list', {})).rooms.find((r) => r.name === room).unread;

describe('chatd: read markers and unread counts', () => {
  it('counts what others sent after the marker, synchronises the tabs, survives a restart', T, async (t) => {
    const srv = await startChatd({}, { t });
    const ann = (await register(srv, 'ann')).token;
    const bob = (await register(srv, 'bob')).token;
    const tab1 = await chatAs(t, srv, { token: ann });
    const tab2 = await chatAs(t, srv, { token: ann });
    const b = await chatAs(t, srv, { token: bob });
    await tab1.ok('room:create', { room: 'news' });
    for (const c of [tab1, tab2, b]) await c.ok('room:join', { room: 'news' });

    const sent = [];
    for (let i = 0; i < 3; i++) sent.push(await b.send('news', `news ${i}`));
    await tab1.send('news', 'mine does not count');
    assert.equal(await unreadIn(tab1, 'news'), 3);
    assert.equal(await unreadIn(b, 'news'), 1, 'bob has not read ann\'s message');

    // Tab 1 reads up to the second message: tab 2 learns it, the count follows.
    const moved = await tab1.ok('room:read', { room: 'news', seq: sent[1].seq });
    assert.equal(moved.seq, sent[1].seq);
    assert.deepEqual(await tab2.events.read.waitFor(), { room: 'news', seq: sent[1].seq });
    assert.equal(await unreadIn(tab2, 'news'), 1);
    // Never backwards, never past the last message.
    assert.equal((await tab2.ok('room:read', { room: 'news', seq: 1 })).seq, sent[1].seq);
    const last = (await tab2.ok('room:read', { room: 'news', seq: 1e9 })).seq;
    assert.equal(last, sent[2].seq + 1);
    assert.equal(await unreadIn(tab1, 'news'), 0);

    await b.send('news', 'one more');
    await srv.restart();
    const again = await chatAs(t, srv, { token: ann });
    const news = again.session.rooms.find((r) => r.name === 'news');
    assert.deepEqual([news.read, news.unread], [last, 1]);
  });

  it('refuses markers to guests, non-members and malformed requests', T, async (t) => {
    const srv = await startChatd({}, { t });
    const ann = await chatAs(t, srv, { token: (await register(srv, 'ann')).token });
    const gus = await chat(t, srv, 'gus');
    await ann.ok('room:create', { room: 'news' });
    expectError(await gus.ask('room:read', { room: 'news', seq: 1 }), 'auth_required');
    expectError(await ann.ask('room:read', { room: 'elsewhere', seq: 1 }), 'not_member');
    expectError(await ann.ask('room:read', { room: 'news', seq: -1 }), 'bad_request');
    expectError(await ann.ask('room:read', { room: 'news' }), 'bad_request');
    expectError(await ann.ask('room:read', 'news'), 'bad_request');
    assert.equal((await ann.ok('room:read', { room: 'news', seq: 0 })).seq, 0);
  });
});
