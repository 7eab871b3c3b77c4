// The room features through the SDK against a real node: edits, deletes and
// reactions, presence and typing, read markers and unread counts, direct
// messages, mentions, drafts, and the bounded send queue.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { ChorusError, closeCodeInfo, connect } from "../src/index.js";
import { next, roomName, startCluster, token, until } from "./cluster.js";

let cluster;
before(async () => {
  cluster = await startCluster({ nodes: 2 });
});
after(async () => {
  await cluster?.stop();
});

/** Two users in one new room, both joined. */
async function pair(prefix) {
  const ada = connect({ url: cluster.url, token: token(`ada-${prefix}`, { name: "Ada" }) });
  const bob = connect({ url: cluster.url, token: token(`bob-${prefix}`, { name: "Bob" }) });
  const name = roomName(prefix);
  const rooms = [ada.join(name), bob.join(name)];
  await Promise.all(rooms.map((room) => room.ready));
  return { ada, bob, adaRoom: rooms[0], bobRoom: rooms[1], close: () => (ada.close(), bob.close()) };
}

test("edits, deletes and reactions reach the other member and answer with changed", async () => {
  const { adaRoom, bobRoom, close } = await pair("changes");
  const sent = await adaRoom.send("helo");
  const edited = next(bobRoom, "edited");
  await adaRoom.edit(sent.seq, "hello");
  assert.equal((await edited).body, "hello");
  const reacted = next(bobRoom, "reaction");
  const changed = await bobRoom.react(sent.seq, "👍");
  assert.equal(changed.type, "changed");
  assert.equal((await reacted).emoji, "👍");
  const deleted = next(bobRoom, "deleted");
  await adaRoom.delete(sent.seq);
  assert.equal((await deleted).target, sent.seq);
  await assert.rejects(adaRoom.edit(sent.seq, "again"), (error) => error.code === "message_deleted");
  close();
});

test("presence, status and typing", async () => {
  const { ada, adaRoom, bob, bobRoom, close } = await pair("presence");
  await until(adaRoom, "presence", () => adaRoom.members.has(bob.user.id), "Bob in Ada's members");
  const away = next(adaRoom, "status", (e) => e.user.id === bob.user.id);
  await bob.setStatus("away");
  await away;
  assert.equal(adaRoom.members.get(bob.user.id).status, "away");
  const typing = next(adaRoom, "typing", (e) => e.users.length === 1);
  bobRoom.startTyping();
  bobRoom.startTyping(); // throttled: one start on the wire
  assert.equal((await typing).users[0].id, bob.user.id);
  const stopped = next(adaRoom, "typing", (e) => e.users.length === 0);
  bobRoom.stopTyping();
  await stopped;
  const left = next(adaRoom, "presence", (e) => e.leaves.some((u) => u.id === bob.user.id));
  await bobRoom.leave();
  await left;
  assert.equal(bob.rooms.has(bobRoom.name), false);
  assert.equal(ada.rooms.has(adaRoom.name), true);
  close();
});

test("unread counts follow messages and read markers from any device", async () => {
  const { ada, adaRoom, bobRoom, close } = await pair("unread");
  for (const body of ["a", "b", "c"]) await adaRoom.send(body);
  await until(bobRoom, "message", () => bobRoom.unread === 3, "three unread for Bob");
  assert.equal(adaRoom.unread, 0, "your own messages are not unread");
  // Bob reads on another device: this one's count follows the receipt.
  const other = connect({ url: cluster.url, token: token(`bob-unread`) });
  const otherRoom = other.join(bobRoom.name);
  await otherRoom.ready;
  const cleared = next(bobRoom, "unread", (e) => e.unread === 0);
  await otherRoom.markRead(bobRoom.seq);
  await cleared;
  assert.equal(bobRoom.readSeq, bobRoom.seq);
  other.close();
  ada.close();
  close();
});

test("direct messages, notifications, mentions and drafts", async () => {
  const ada = connect({ url: cluster.url, token: token("ada-dm") });
  const bob = connect({ url: cluster.url, token: token("bob-dm") });
  await Promise.all([next(ada, "connected"), next(bob, "connected")]);
  const started = next(bob, "dm");
  const notified = next(bob, "notification");
  const dm = await ada.dm("bob-dm");
  assert.equal(dm.name, "dm:ada-dm+bob-dm");
  assert.equal((await started).room, dm.name);
  await dm.send("psst");
  assert.equal((await notified).message.body, "psst");

  const name = roomName("mention");
  const room = ada.join(name);
  await room.ready;
  const mentioned = next(bob, "mention");
  await room.send("@bob-dm look", { mentions: ["bob-dm"] });
  assert.equal((await mentioned).message.body, "@bob-dm look");

  const synced = next(bob, "draft", (e) => e.room === name);
  await bob.join(name).ready;
  await bob.rooms.get(name).saveDraft("half a thou");
  assert.equal((await synced).text, "half a thou");
  assert.deepEqual(await bob.drafts(), [{ room: name, text: "half a thou" }]);
  ada.close();
  bob.close();
});

test("the send queue is bounded while offline; close refuses what waits", async () => {
  const client = connect({ url: "ws://127.0.0.1:9/ws", token: token("nobody"), maxQueuedSends: 2, backoffMaxMs: 100 });
  const room = client.join("lobby");
  const waiting = [room.send("one"), room.send("two")];
  await assert.rejects(room.send("three"), (error) => error instanceof ChorusError && error.code === "queue_full");
  client.close();
  for (const send of waiting) await assert.rejects(send, (error) => error.code === "closed");
});

test("close codes: reconnect, only with a new token, or never", () => {
  assert.equal(closeCodeInfo(4000).reconnect, "yes");
  assert.equal(closeCodeInfo(4003).reconnect, "token");
  assert.equal(closeCodeInfo(4501).reconnect, "no");
  assert.equal(closeCodeInfo(1002).reconnect, "no");
  assert.equal(closeCodeInfo(4321).reconnect, "yes", "the 4000-4499 range reconnects");
  assert.equal(closeCodeInfo(4777).reconnect, "no", "the 4500-4999 range does not");
});
