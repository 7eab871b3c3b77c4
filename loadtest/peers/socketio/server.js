"use strict";
// A Socket.IO 4 chat node, the peer Chorus's load tests compare with: rooms
// (join / leave), chat messages broadcast to a room, and the official Redis
// adapter so that several nodes share rooms through Redis pub/sub. It checks
// the same HS256 tokens as Chorus (handshake `auth.token`), with node's crypto.
//
//   PORT=8091 REDIS_URL=redis://127.0.0.1:6399 CHORUS_JWT_SECRET=... node server.js
//
// Client protocol (Engine.IO v4 / Socket.IO v5 over a WebSocket, no polling):
//   connect     40{"token":"<jwt>"}            -> 40{"sid":"..."}
//   join        42<ack>["join","room"]         -> 43<ack>[{"ok":true}]
//   chat        42["chat",{"room":"r","body":"..."}]
//   delivered   42["message",{"room":"r","from":"user","body":"..."}]
const http = require("node:http");
const crypto = require("node:crypto");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const port = Number(process.env.PORT || 8091);
const host = process.env.HOST || "127.0.0.1";
const redisUrl = process.env.REDIS_URL || "redis://127.0.0.1:6399";
const secret = process.env.CHORUS_JWT_SECRET;
if (!secret) {
  console.error("socketio peer: CHORUS_JWT_SECRET is required");
  process.exit(2);
}

// The token's subject when its HS256 signature and expiry check out, else null.
function verify(token) {
  if (typeof token !== "string") return null;
  const parts = token.split(".");
  if (parts.length !== 3) return null;
  const signature = crypto
    .createHmac("sha256", secret)
    .update(parts[0] + "." + parts[1])
    .digest("base64url");
  const given = Buffer.from(parts[2]);
  const wanted = Buffer.from(signature);
  if (given.length !== wanted.length || !crypto.timingSafeEqual(given, wanted)) return null;
  try {
    const claims = JSON.parse(Buffer.from(parts[1], "base64url").toString());
    if (typeof claims.sub !== "string" || !(claims.exp * 1000 > Date.now())) return null;
    return claims.sub;
  } catch {
    return null;
  }
}

const validRoom = (room) => typeof room === "string" && room.length > 0 && room.length <= 128;

async function main() {
  const pub = createClient({ url: redisUrl });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const server = http.createServer((req, res) => {
    res.writeHead(req.url === "/readyz" ? 200 : 404);
    res.end();
  });
  const io = new Server(server, {
    transports: ["websocket"],
    serveClient: false,
    maxHttpBufferSize: 64 * 1024,
    adapter: createAdapter(pub, sub),
  });
  io.use((socket, next) => {
    const user = verify(socket.handshake.auth && socket.handshake.auth.token);
    if (!user) return next(new Error("unauthorized"));
    socket.data.user = user;
    next();
  });
  io.on("connection", (socket) => {
    const reply = (ack, value) => typeof ack === "function" && ack(value);
    socket.on("join", (room, ack) => {
      if (!validRoom(room)) return reply(ack, { error: "bad_room" });
      socket.join(room);
      reply(ack, { ok: true });
    });
    socket.on("leave", (room, ack) => {
      if (!validRoom(room)) return reply(ack, { error: "bad_room" });
      socket.leave(room);
      reply(ack, { ok: true });
    });
    socket.on("chat", (msg, ack) => {
      if (!msg || !validRoom(msg.room) || typeof msg.body !== "string") {
        return reply(ack, { error: "bad_message" });
      }
      if (!socket.rooms.has(msg.room)) return reply(ack, { error: "not_joined" });
      io.to(msg.room).emit("message", { room: msg.room, from: socket.data.user, body: msg.body });
      reply(ack, { ok: true });
    });
  });
  server.listen(port, host, () => console.error(`socketio peer listening on ${host}:${port}`));
}

main().catch((error) => {
  console.error("socketio peer:", error);
  process.exit(1);
});
