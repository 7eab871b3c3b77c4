// Tokens: refreshed before expiry without dropping the connection; an
// expired one replaced from getToken on reconnect; a refused one (close
// 4500, "do not reconnect") stops the client.

import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";
import { after, before, test } from "node:test";

import { ChorusError, Client, connect } from "../src/index.js";
import { next, roomName, startCluster, token } from "./cluster.js";

let cluster;
before(async () => {
  cluster = await startCluster({ nodes: 1 });
});
after(async () => {
  await cluster?.stop();
});

test("a token refreshed before it expires keeps the connection", async () => {
  let issued = 0;
  const client = connect({
    url: cluster.url,
    getToken: async () => token("rita", { ttl: issued++ === 0 ? 4 : 3600 }),
    refreshBeforeMs: 2_000,
  });
  const drops = [];
  client.on("disconnected", (event) => drops.push(event));
  const connected = await next(client, "connected");
  const firstExpiry = client.tokenExpiresAt;
  await next(client, "token");
  assert.ok(client.tokenExpiresAt > firstExpiry + 60, "the new token's expiry is the connection's now");
  // Past the first token's expiry (and the server's 4003 at that moment):
  await delay(Math.max(0, firstExpiry * 1000 - Date.now()) + 1_500);
  assert.deepEqual(drops, [], "the connection never dropped");
  assert.equal(client.conn, connected.conn);
  const room = client.join(roomName("refresh"));
  await room.ready;
  const sent = await room.send("still here");
  assert.equal(sent.body, "still here");
  client.close();
});

test("an expired token is replaced from getToken and the client reconnects", async () => {
  const tokens = [token("exa", { ttl: 3 }), token("exa")];
  let calls = 0;
  const client = connect({
    url: cluster.url,
    getToken: async () => tokens[Math.min(calls++, 1)],
    refreshBeforeMs: -1,
  });
  const first = await next(client, "connected");
  const room = client.join(roomName("expiry"));
  await room.ready;
  const closed = await next(client, "disconnected", () => true, 15_000);
  assert.equal(closed.code, 4003);
  assert.equal(closed.willReconnect, true);
  const again = await next(client, "connected");
  assert.notEqual(again.conn, first.conn);
  assert.equal(calls, 2, "a new token was asked for");
  await next(room, "joined");
  assert.equal((await room.send("with the new token")).body, "with the new token");
  client.close();
});

test("a refused token (close 4500) stops the client: no retries, waiting sends refused", async () => {
  for (const options of [
    { token: token("mallory", { secret: "not-the-cluster-secret-0123456789abcdef" }) },
    { getToken: async () => token("mallory", { secret: "not-the-cluster-secret-0123456789abcdef" }) },
  ]) {
    const client = new Client({ url: cluster.url, backoffMaxMs: 200, ...options });
    const states = [];
    client.on("state", (event) => states.push(event.state));
    client.open();
    const room = client.join(roomName("refused"));
    const send = room.send("never");
    const closed = await next(client, "disconnected", (event) => !event.willReconnect);
    assert.equal(closed.code, 4500);
    assert.equal(closed.willReconnect, false);
    await assert.rejects(send, (error) => error instanceof ChorusError && error.code === "closed");
    if (options.getToken) {
      // It asked for a token once more: the same one, so it gave up.
      assert.deepEqual(states, ["connecting", "disconnected", "reconnecting", "disconnected"]);
    } else {
      assert.deepEqual(states, ["connecting", "disconnected"]);
    }
    assert.equal(client.state, "disconnected");
  }
});
