// chatd end-to-end: several clients chatting across rooms (docs/protocol.md, "Commands").
// Clients over different transports share rooms: create, list with member counts, join, send,
// receive, leave, topic, and the documented errors of those commands.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startChatd, chat, TRANSPORTS, barrier, expectError, nextId, seqs,
} from '../helpers/chatd.mjs';

const T = { timeout: 30000 };

/** The rooms:list entry of `name`. */
async function listed(client, name) {
  const res = await client.ok('rooms:list', {});
  return res.rooms.find((r) => r.name === name);
}

describe('chatd rooms: several clients chatting across rooms', () => {
  let srv;
  before(async () => { srv = await startChatd({ 'message-rate': 1000, 'message-burst': 1000 }); });
  after(async () => { await srv?.close(); });

  it('create, list with member counts, join, send, receive, topic, leave', T, async (t) => {
    // Three users on three transports: default (polling upgraded to WebSocket), polling only,
    // WebSocket only.
    const alice = await chat(t, srv, 'alice');
    const bob = await chat(t, srv, 'bob', { transport: TRANSPORTS.polling });
    const carol = await chat(t, srv, 'carol', { transport: TRANSPORTS.websocket });
    assert.equal(alice.socket.io.engine.transport.name, 'websocket');
    assert.equal(bob.socket.io.engine.transport.name, 'polling');

    // create: names are case-insensitive, stored lowercase; the topic is optional.
    const rust = await alice.ok('room:create', { room: 'Rust', topic: 'Crabs' });
    assert.deepEqual(rust.room, { name: 'rust', topic: 'Crabs', private: false });
    const go = await bob.ok('room:create', { room: 'go' });
    assert.deepEqual(go.room, { name: 'go', topic: '', private: false });
    expectError(await carol.ask('room:create', { room: 'RUST' }), 'room_exists', 'create RUST');

    // list: every room, nobody in the new ones yet.
    const list0 = await carol.ok('rooms:list', {});
    const names = list0.rooms.map((r) => r.name);
    for (const n of ['lobby', 'rust', 'go']) assert.ok(names.includes(n), `${n} listed: ${names}`);
    assert.deepEqual(list0.rooms.find((r) => r.name === 'rust'), { name: 'rust', topic: 'Crabs', members: 0, private: false, role: null, unread: null });
    assert.deepEqual(list0.rooms.find((r) => r.name === 'go'), { name: 'go', topic: '', members: 0, private: false, role: null, unread: null });

    // join: alice rust+lobby, bob rust+go+lobby, carol go+lobby.
    const j1 = await alice.ok('room:join', { room: 'rust' });
    assert.deepEqual(j1.room, { name: 'rust', topic: 'Crabs' });
    assert.deepEqual(j1.members, ['alice']);
    assert.deepEqual(j1.messages, []);
    assert.equal(j1.last_seq, 0);
    const j2 = await bob.ok('room:join', { room: 'RUST' });
    assert.deepEqual(j2.members, ['alice', 'bob']);
    await alice.events.presence.waitFor((p) => p.room === 'rust' && p.user === 'bob' && p.online === true);
    await bob.ok('room:join', { room: 'go' });
    await carol.ok('room:join', { room: 'go' });
    for (const c of [alice, bob, carol]) await c.ok('room:join', { room: 'lobby' });
    await bob.events.presence.waitFor((p) => p.room === 'go' && p.user === 'carol' && p.online);

    assert.equal((await listed(carol, 'rust')).members, 2);
    assert.equal((await listed(carol, 'go')).members, 2);
    assert.equal((await listed(carol, 'lobby')).members, 3);

    // send/receive: each room's messages reach its members only, in order, sender excluded.
    const before = Date.now();
    const m1 = await alice.send('rust', 'fearless concurrency');
    assert.deepEqual(Object.keys(m1).sort(), ['id', 'room', 'seq', 'text', 'ts', 'user']);
    assert.equal(m1.room, 'rust');
    assert.equal(m1.seq, 1);
    assert.equal(m1.user, 'alice');
    assert.equal(m1.text, 'fearless concurrency');
    assert.ok(m1.ts >= before - 1000 && m1.ts <= Date.now() + 1000, `ts ${m1.ts}`);
    assert.deepEqual(await bob.events.message.waitFor((m) => m.id === m1.id), m1);

    const m2 = await bob.send('go', 'goroutines');
    assert.equal(m2.seq, 1, 'sequence numbers are per room');
    assert.deepEqual(await carol.events.message.waitFor((m) => m.id === m2.id), m2);
    const m3 = await carol.send('go', 'channels');
    assert.equal(m3.seq, 2);
    await bob.events.message.waitFor((m) => m.id === m3.id);
    const m4 = await bob.send('rust', 'borrow checker');
    assert.equal(m4.seq, 2);
    await alice.events.message.waitFor((m) => m.id === m4.id);

    // Everything above has reached everyone once each saw a lobby barrier.
    await barrier(alice, 'lobby', [bob, carol]);
    assert.deepEqual(seqs(alice.events.message.filter((m) => m.room === 'rust')), [2], 'alice: rust, not her own');
    assert.equal(alice.events.message.count((m) => m.room === 'go'), 0, 'alice is not in go');
    assert.equal(carol.events.message.count((m) => m.room === 'rust'), 0, 'carol is not in rust');
    assert.deepEqual(seqs(bob.events.message.filter((m) => m.room === 'rust')), [1]);
    assert.deepEqual(seqs(bob.events.message.filter((m) => m.room === 'go')), [2]);

    // A late joiner gets the recent messages in the join ack.
    const dave = await chat(t, srv, 'dave', { transport: TRANSPORTS.polling });
    const j3 = await dave.ok('room:join', { room: 'rust' });
    assert.deepEqual(j3.messages, [m1, m4]);
    assert.equal(j3.cursor, 1);
    assert.equal(j3.last_seq, 2);
    assert.deepEqual(j3.members, ['alice', 'bob', 'dave']);

    // topic: members get a `topic` event, the list shows it; others see nothing.
    await bob.ok('room:topic', { room: 'rust', topic: 'Ferris' });
    for (const c of [alice, bob, dave]) {
      assert.deepEqual(await c.events.topic.waitFor((e) => e.room === 'rust'), { room: 'rust', topic: 'Ferris', by: 'bob' });
    }
    assert.equal((await listed(carol, 'rust')).topic, 'Ferris');
    expectError(await carol.ask('room:topic', { room: 'rust', topic: 'x' }), 'not_member', 'topic by a non-member');
    expectError(await bob.ask('room:topic', { room: 'rust', topic: 'x'.repeat(201) }), 'too_long', 'topic of 201');
    await bob.ok('room:topic', { room: 'rust', topic: 'é'.repeat(200) }); // 200 characters (400 bytes) is fine
    await alice.events.topic.waitFor((e) => e.topic === 'é'.repeat(200));

    // leave: announced to the others at once; no more messages of the room.
    assert.deepEqual(await bob.ok('room:leave', { room: 'rust' }), { ok: true });
    await alice.events.presence.waitFor((p) => p.room === 'rust' && p.user === 'bob' && p.online === false);
    await dave.events.presence.waitFor((p) => p.room === 'rust' && p.user === 'bob' && p.online === false);
    assert.equal((await listed(carol, 'rust')).members, 2);
    const m5 = await alice.send('rust', 'after bob left');
    await dave.events.message.waitFor((m) => m.id === m5.id);
    // The rust broadcast was queued before alice's ack; a later lobby message is behind it.
    await barrier(alice, 'lobby', [bob]);
    assert.equal(bob.events.message.count((m) => m.id === m5.id), 0, 'bob left rust');
    expectError(await bob.ask('room:leave', { room: 'rust' }), 'not_member', 'leave twice');
    expectError(await bob.ask('message:send', { room: 'rust', id: nextId(), text: 'x' }), 'not_member', 'send after leave');
    expectError(await bob.ask('room:topic', { room: 'rust', topic: 'x' }), 'not_member', 'topic after leave');
    // ... and can come back, catching up with `since`.
    const back = await bob.ok('room:join', { room: 'rust', since: 2 });
    assert.deepEqual(back.messages, [m5]);

    for (const c of [alice, bob, carol, dave]) assert.deepEqual(c.problems(), []);
  });

  it('room names, unknown rooms and membership', T, async (t) => {
    const erin = await chat(t, srv, 'erin');
    for (const room of ['', ' ', 'has space', 'x'.repeat(33), 'café', '@erin:frank', 'a/b', 'dot.ted']) {
      expectError(await erin.ask('room:create', { room }), 'invalid_room_name', `create ${JSON.stringify(room)}`);
      expectError(await erin.ask('room:join', { room }), 'invalid_room_name', `join ${JSON.stringify(room)}`);
    }
    const ok32 = await erin.ok('room:create', { room: `A-b_${'c'.repeat(28)}` });
    assert.equal(ok32.room.name, `a-b_${'c'.repeat(28)}`);
    expectError(await erin.ask('room:create', { room: 'toolong', topic: 'y'.repeat(201) }), 'too_long', 'create with a long topic');
    expectError(await erin.ask('room:join', { room: 'nowhere' }), 'no_such_room', 'join unknown');
    expectError(await erin.ask('history', { room: 'nowhere' }), 'no_such_room', 'history unknown');
    expectError(await erin.ask('message:send', { room: 'nowhere', id: nextId(), text: 'x' }), 'not_member', 'send unknown');
    expectError(await erin.ask('room:leave', { room: 'nowhere' }), 'not_member', 'leave unknown');
    expectError(await erin.ask('typing', { room: 'lobby', typing: true }), 'not_member', 'typing without joining');
    expectError(await erin.ask('room:topic', { room: 'lobby', topic: 'x' }), 'not_member', 'topic without joining');
    // The list does not show direct conversations, only rooms.
    const list = await erin.ok('rooms:list', {});
    assert.ok(list.rooms.every((r) => !r.name.startsWith('@')));
    assert.ok(list.rooms.every((r) => typeof r.members === 'number' && typeof r.topic === 'string'));
  });

  it('members count users, not tabs; the join ack lists them', T, async (t) => {
    const f1 = await chat(t, srv, 'frank');
    const f2 = await chat(t, srv, 'frank', { token: f1.token, transport: TRANSPORTS.polling });
    const gina = await chat(t, srv, 'gina');
    await gina.ok('room:create', { room: 'tabs' });
    await gina.ok('room:join', { room: 'tabs' });
    await f1.ok('room:join', { room: 'tabs' });
    const j = await f2.ok('room:join', { room: 'tabs' });
    assert.deepEqual(j.members, ['frank', 'gina']);
    assert.equal((await listed(gina, 'tabs')).members, 2);
    // A message from one tab reaches the other tab too, not the sending one.
    const m = await f1.send('tabs', 'from tab 1');
    await f2.events.message.waitFor((x) => x.id === m.id);
    await gina.events.message.waitFor((x) => x.id === m.id);
    await barrier(gina, 'tabs', [f1]);
    assert.equal(f1.events.message.count((x) => x.id === m.id), 0, 'not to the sending tab');
  });
});
