// Two clients on different nodes behind nginx; the node of one is SIGKILLed:
// the SDK reconnects to the other node, resumes the room, and nothing is lost
// or shown twice; sends made while disconnected arrive exactly once.

import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { connect } from "../src/index.js";
import { next, roomName, startCluster, token, until } from "./cluster.js";

let cluster;
before(async () => {
  cluster = await startCluster({ nodes: 2 });
});
after(async () => {
  await cluster?.stop();
});

/** A client through nginx on a node other than `avoid`'s (nginx spreads connections). */
async function clientOn(user, avoid) {
  for (let tries = 0; tries < 8; tries++) {
    const client = connect({ url: cluster.url, token: token(user), backoffMaxMs: 2_000 });
    await next(client, "connected");
    if (client.node !== avoid) return client;
    client.close();
  }
  throw new Error(`nginx kept putting ${user} on ${avoid}`);
}

test("a node SIGKILLed: the client moves to the other node, nothing lost or repeated, offline sends arrive once", async () => {
  const ada = await clientOn("ada");
  const bob = await clientOn("bob", ada.node);
  const name = roomName("failover");
  const adaRoom = ada.join(name);
  const bobRoom = bob.join(name);
  await Promise.all([adaRoom.ready, bobRoom.ready]);

  const bobSaw = [];
  bobRoom.on("message", (m) => bobSaw.push(m));
  const adaSaw = [];
  adaRoom.on("message", (m) => adaSaw.push(m));

  for (let i = 1; i <= 10; i++) await adaRoom.send(`before ${i}`);
  await until(bobRoom, "message", () => bobSaw.length === 10, "Bob has the first 10");

  // Bob's node dies; while Bob is away Ada keeps talking and Bob writes.
  const bobNode = cluster.nodes.find((n) => n.id === bob.node);
  const gone = next(bob, "disconnected");
  const reconnected = next(bob, "connected", () => true, 30_000);
  process.kill(bobNode.pid, "SIGKILL");
  const down = await gone;
  assert.equal(down.willReconnect, true);
  const bobSends = [1, 2, 3, 4, 5].map((i) => bobRoom.send(`offline ${i}`));
  assert.equal(bob.pendingSends.length, 5);
  for (let i = 1; i <= 10; i++) await adaRoom.send(`during ${i}`);

  const back = await reconnected;
  assert.notEqual(back.node, bobNode.id, "Bob is on the surviving node");
  const stored = await Promise.all(bobSends);
  assert.deepEqual(
    stored.map((s) => s.body),
    ["offline 1", "offline 2", "offline 3", "offline 4", "offline 5"],
  );
  for (let i = 1; i <= 10; i++) await adaRoom.send(`after ${i}`);
  await until(bobRoom, "message", () => bobSaw.length === 35, "Bob has all 35 messages");
  await until(adaRoom, "message", () => adaSaw.length === 35, "Ada has all 35 messages");

  // Each client saw every message once, in seq order, the same sequence.
  for (const saw of [adaSaw, bobSaw]) {
    const seqs = saw.map((m) => m.seq);
    assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), "in seq order");
    assert.equal(new Set(saw.map((m) => m.id)).size, saw.length, "no message twice");
  }
  assert.deepEqual(
    bobSaw.map((m) => m.id),
    adaSaw.map((m) => m.id),
  );
  const bodies = bobSaw.map((m) => m.body);
  for (const expected of ["before 10", "during 1", "during 10", "offline 5", "after 10"]) {
    assert.ok(bodies.includes(expected), `${expected} arrived`);
  }
  // A newcomer pages back through the room's history: the same 35, each once.
  const carol = await clientOn("carol");
  const carolRoom = carol.join(name, { history: 10 });
  const recent = [];
  carolRoom.on("message", (m) => recent.push(m));
  await carolRoom.ready;
  await until(carolRoom, "message", () => recent.length === 10, "Carol's 10 recent messages");
  let history = [...recent];
  for (let more = true; more; ) {
    const page = await carolRoom.older({ limit: 10 });
    history = [...page.messages, ...history];
    more = page.more;
  }
  assert.deepEqual(
    history.map((m) => m.id),
    adaSaw.map((m) => m.id),
  );
  carol.close();
  ada.close();
  bob.close();
});
