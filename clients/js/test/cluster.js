// Real parts for the SDK's tests: `chorus-cluster` (Redis, chorus nodes and
// nginx, all on 127.0.0.1) started per test file, tokens signed with the
// cluster's secret, and waiting on events with a timeout.

import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { createServer } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const SECRET = "sdk-test-secret-0123456789abcdef0123";
const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const CLUSTER_BIN = process.env.CHORUS_CLUSTER_BIN ?? `${ROOT}target/debug/chorus-cluster`;

/** A free TCP port on 127.0.0.1. */
async function freePort() {
  const server = createServer();
  await new Promise((done) => server.listen(0, "127.0.0.1", done));
  const { port } = server.address();
  await new Promise((done) => server.close(done));
  return port;
}

/**
 * Starts `nodes` chorus nodes, Redis and nginx; resolves once they serve.
 * nginx's port is picked free first; if something took it meanwhile
 * (chorus-cluster then exits), another is tried.
 */
export async function startCluster(options = {}) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startClusterOnce(options);
    } catch (error) {
      if (attempt === 3 || !/exited/.test(error.message)) throw error;
    }
  }
}

async function startClusterOnce({ nodes = 2, nodeArgs = [] }) {
  const port = await freePort();
  const child = spawn(CLUSTER_BIN, ["--nodes", String(nodes), "--port", String(port), "--", ...nodeArgs], {
    env: { ...process.env, CHORUS_JWT_SECRET: SECRET, RUST_LOG: "warn" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const cluster = { url: `ws://127.0.0.1:${port}/ws`, redis: null, nodes: [], child };
  const lines = createInterface({ input: child.stdout });
  const started = new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`chorus-cluster exited (${code}) before it was ready`)));
    lines.on("line", (line) => {
      let m;
      if ((m = line.match(/^\s+redis\s+(\S+)/))) cluster.redis = m[1];
      else if ((m = line.match(/^\s+(\S+)\s+http:\/\/(\S+)\s+admin http:\/\/(\S+)\s+pid (\d+)/))) {
        cluster.nodes.push({ id: m[1], addr: m[2], admin: m[3], pid: Number(m[4]) });
      } else if (line.startsWith("ctrl-c stops everything")) resolve();
    });
  });
  await withTimeout(started, 60_000, "chorus-cluster to start");
  cluster.stop = async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((done) => child.once("exit", done));
    child.kill("SIGTERM");
    await withTimeout(exited, 30_000, "chorus-cluster to stop");
  };
  return cluster;
}

/** An HS256 token for `sub` that may join and post anywhere, valid `ttl` seconds. */
export function token(sub, { ttl = 3600, secret = SECRET, name } = {}) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const claims = { sub, exp: Math.floor(Date.now() / 1000) + ttl, rooms: { join: ["*"], post: ["*"] } };
  if (name) claims.name = name;
  const head = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  return `${head}.${createHmac("sha256", secret).update(head).digest("base64url")}`;
}

/** Rejects with "timed out waiting for <what>" after `ms`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The next `type` event of `emitter` for which `accept` holds. */
export function next(emitter, type, accept = () => true, ms = 20_000) {
  let off;
  const seen = new Promise((resolve) => {
    off = emitter.on(type, (event) => accept(event) && resolve(event));
  });
  return withTimeout(seen, ms, `a ${type} event`).finally(off);
}

/** Resolves once `condition()` holds, checked on each `type` event of `emitter`. */
export async function until(emitter, type, condition, what, ms = 20_000) {
  if (condition()) return;
  await next(emitter, type, () => condition(), ms).catch((error) => {
    throw new Error(`${error.message} (${what})`);
  });
}

/** A room name no other test uses. */
export function roomName(prefix) {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`;
}
