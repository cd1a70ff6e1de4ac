// Private rooms, stored membership, roles and invitations (chatd/src/access.rs,
// docs/protocol.md "Rooms, members and roles"): a private room is invisible to whoever may not
// enter it; members are accounts, stored, so their rooms come back on every device and after a
// restart; owners change roles, moderators and owners invite, invite links expire.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { chat, chatAs, expectError, register, startChatd } from '../helpers/chatd.mjs';

const T = { timeout: 30000 };

async function accounts(srv, ...names) {
  const out = {};
  for (const name of names) out[name] = (await register(srv, name)).token;
  return out;
}

const listed = async (c) => (await c.ok('rooms:list', {})).rooms;

describe('chatd: private rooms, members, roles, invitations', () => {
  it('a private room is invisible to those not in it: not listed, not joinable, no history, no members', T, async (t) => {
    const srv = await startChatd({}, { t });
    const tokens = await accounts(srv, 'ann', 'bob');
    const ann = await chatAs(t, srv, { token: tokens.ann });
    const bob = await chatAs(t, srv, { token: tokens.bob });
    const gus = await chat(t, srv, 'gus'); // a guest

    const created = await ann.ok('room:create', { room: 'secret', topic: 'hush', private: true });
    assert.equal(created.room.private, true);
    await ann.ok('room:join', { room: 'secret' });
    await ann.send('secret', 'only for members');
    const mine = (await listed(ann)).find((r) => r.name === 'secret');
    assert.deepEqual([mine.private, mine.role], [true, 'owner']);

    for (const c of [bob, gus]) {
      assert.equal((await listed(c)).some((r) => r.name === 'secret'), false, `${c.user} sees it listed`);
      expectError(await c.ask('room:join', { room: 'secret' }), 'no_such_room', `${c.user} joins`);
      expectError(await c.ask('history', { room: 'secret' }), 'no_such_room', `${c.user} reads`);
      expectError(await c.ask('room:members', { room: 'secret' }), 'no_such_room', `${c.user} lists members`);
      expectError(await c.ask('message:send', { room: 'secret', id: 'x1', text: 'hi' }), 'not_member', `${c.user} writes`);
      expectError(await c.ask('room:invite_link', { room: 'secret' }), c === gus ? 'auth_required' : 'no_such_room');
    }
    assert.equal(bob.events.message.length + gus.events.message.length, 0, 'nothing of it reached them');
    // Guests have no private rooms; public rooms stay open to everyone.
    expectError(await gus.ask('room:create', { room: 'gus-room', private: true }), 'auth_required');
    await gus.ok('room:create', { room: 'plaza' });
    const plaza = (await listed(bob)).find((r) => r.name === 'plaza');
    assert.deepEqual([plaza.private, plaza.role], [false, null]);
    await bob.ok('room:join', { room: 'plaza' });
  });

  it('owners invite, members of a private room do not, a promoted moderator does; invite links expire', T, async (t) => {
    const srv = await startChatd({}, { t });
    const tokens = await accounts(srv, 'ann', 'bob', 'cat', 'dan', 'eve');
    const [ann, bob, cat, dan] = await Promise.all(['ann', 'bob', 'cat', 'dan'].map((n) => chatAs(t, srv, { token: tokens[n] })));
    await ann.ok('room:create', { room: 'team', private: true });
    await ann.ok('room:join', { room: 'team' });

    assert.equal((await ann.ok('room:invite', { room: 'team', user: 'BOB' })).user, 'bob');
    assert.deepEqual(await bob.events.invited.waitFor(), { room: 'team', by: 'ann' });
    assert.equal((await listed(bob)).find((r) => r.name === 'team').role, 'member');
    await bob.ok('room:join', { room: 'team' });
    const hello = await bob.send('team', 'hello team');
    await ann.events.message.waitFor((m) => m.id === hello.id);

    // A member of a private room may not invite, nor change roles.
    expectError(await bob.ask('room:invite', { room: 'team', user: 'cat' }), 'forbidden');
    expectError(await bob.ask('room:role', { room: 'team', user: 'bob', role: 'owner' }), 'forbidden');
    expectError(await ann.ask('room:invite', { room: 'team', user: 'nobody' }), 'unknown_user');
    expectError(await ann.ask('room:role', { room: 'team', user: 'bob', role: 'king' }), 'bad_request');
    expectError(await ann.ask('room:role', { room: 'team', user: 'cat', role: 'member' }), 'unknown_user');
    await ann.ok('room:role', { room: 'team', user: 'bob', role: 'moderator' });
    await bob.ok('room:invite', { room: 'team', user: 'cat' });
    await cat.ok('room:join', { room: 'team' });
    const members = (await cat.ok('room:members', { room: 'team' })).members;
    assert.deepEqual(members.map((m) => [m.user, m.role]), [['ann', 'owner'], ['bob', 'moderator'], ['cat', 'member']]);

    // An invite link: anyone with an account and the token gets in, until it expires.
    expectError(await bob.ask('room:invite_link', { room: 'team', hours: 0 }), 'bad_request');
    const link = await bob.ok('room:invite_link', { room: 'team', hours: 1 });
    assert.ok(link.expires_at > Date.now() + 3500_000 && link.expires_at <= Date.now() + 3600_000);
    expectError(await dan.ask('room:join', { room: 'team', invite: 'not-a-token' }), 'no_such_room');
    const guest = await chat(t, srv, 'gil');
    expectError(await guest.ask('room:join', { room: 'team', invite: link.invite }), 'no_such_room', 'a guest');
    await dan.ok('room:join', { room: 'team', invite: link.invite });
    assert.equal((await listed(dan)).find((r) => r.name === 'team').role, 'member');
    // The link opens this room only.
    await ann.ok('room:create', { room: 'other', private: true });
    expectError(await dan.ask('room:join', { room: 'other', invite: link.invite }), 'no_such_room');
  });

  it('membership is stored: the rooms come back on another connection and after a restart; room:leave ends it', T, async (t) => {
    const srv = await startChatd({}, { t });
    const { ann: token } = await accounts(srv, 'ann');
    const first = await chatAs(t, srv, { token });
    await first.ok('room:create', { room: 'plaza' });
    await first.ok('room:create', { room: 'secret', private: true });
    for (const room of ['plaza', 'secret']) await first.ok('room:join', { room });
    const expected = [{ name: 'plaza', role: 'owner', read: 0, unread: 0 }, { name: 'secret', role: 'owner', read: 0, unread: 0 }];
    const other = await chatAs(t, srv, { token });
    assert.deepEqual(other.session.rooms, expected);
    first.close();
    other.close();

    await srv.restart();
    const again = await chatAs(t, srv, { token });
    assert.deepEqual(again.session.rooms, expected);
    await again.ok('room:join', { room: 'plaza' });
    await again.ok('room:leave', { room: 'plaza' });
    const later = await chatAs(t, srv, { token });
    assert.deepEqual(later.session.rooms, [{ name: 'secret', role: 'owner', read: 0, unread: 0 }]);
  });
});
