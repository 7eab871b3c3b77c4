// Redis loses its data: the application is told, with a `reset` event and
// `recovered: false`, both on a live connection and on a resume.

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
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

function flushRedis() {
  const [host, port] = cluster.redis.split(":");
  execFileSync("redis-cli", ["-h", host, "-p", port, "FLUSHALL"]);
}

test("Redis data loss reaches the application as a reset with recovered: false", async () => {
  const ada = connect({ url: cluster.url, token: token("ada") });
  const bob = connect({ url: cluster.url, token: token("bob") });
  const name = roomName("loss");
  const [adaRoom, bobRoom] = [ada.join(name), bob.join(name)];
  await Promise.all([adaRoom.ready, bobRoom.ready]);
  const seen = [];
  bobRoom.on("message", (m) => seen.push(m.body));
  for (const body of ["one", "two", "three"]) await adaRoom.send(body);
  await until(bobRoom, "message", () => seen.length === 3, "Bob has three messages");
  const oldEpoch = bobRoom.epoch;

  flushRedis();
  const reset = next(bobRoom, "reset");
  await adaRoom.send("after the loss");
  const event = await reset;
  assert.equal(event.recovered, false);
  assert.equal(event.lost.epoch, oldEpoch);
  assert.equal(event.lost.after, 3);
  assert.notEqual(event.epoch, oldEpoch, "a new epoch");
  await until(bobRoom, "message", () => seen.includes("after the loss"), "the new epoch's message");
  assert.deepEqual(seen, ["one", "two", "three", "after the loss"]);
  ada.close();
  bob.close();
});
