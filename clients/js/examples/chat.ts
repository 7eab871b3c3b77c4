// A small chat in a terminal (Node 20+: node --experimental-websocket) or a
// page: connect with a token source, join a room, print what arrives, send.
// Type-checked by the test command (tsc --noEmit).

import { ChorusError, connect, type Message, type RoomReset } from "@chorus-chat/client";

async function fetchToken(): Promise<string> {
  const response = await fetch("https://chat.example.com/api/login", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ name: "Ada" }),
  });
  const { token } = (await response.json()) as { token: string };
  return token;
}

const client = connect({ url: "wss://chat.example.com/ws", getToken: fetchToken });
client.on("state", ({ state, meaning, willReconnect }) => {
  console.log(`connection: ${state}${meaning ? ` (${meaning}${willReconnect ? ", reconnecting" : ""})` : ""}`);
});
client.on("mention", ({ room, message }) => console.log(`@ you in ${room}: ${message.body}`));

const lobby = client.join("lobby", { history: 20 });
lobby.on("message", (message: Message) => console.log(`[${message.seq}] ${message.from.name ?? message.from.id}: ${message.body}`));
lobby.on("reset", ({ lost, reason }: RoomReset) => console.log(`messages after ${lost.after} may be missing (${reason})`));
lobby.on("typing", ({ users }) => users.length && console.log(`${users.map((u) => u.name ?? u.id).join(", ")} typing…`));
lobby.on("presence", () => console.log(`${lobby.members.size} here`));

await lobby.ready;
try {
  const sent = await lobby.send("hello", { mentions: [] });
  console.log(`stored as #${sent.seq}${sent.duplicate ? " (a retry)" : ""}`);
  await lobby.react(sent.seq, "👋");
  await lobby.edit(sent.seq, "hello, everyone");
  await lobby.markRead();
  const { messages, more } = await lobby.older({ limit: 50 });
  console.log(`${messages.length} older messages${more ? ", and more" : ""}`);
  const dm = await client.dm("u-7");
  await dm.send("psst");
  for (const { room, text } of await client.drafts()) console.log(`draft in ${room}: ${text}`);
} catch (error) {
  if (error instanceof ChorusError && error.code === "rate_limited") {
    console.log(`slow down: retry in ${error.retryAfterMs} ms`);
  } else {
    throw error;
  }
}
client.close();
