// The connection: one WebSocket at a time to any node (through a load
// balancer), authenticated with an `auth` frame (never a token in a URL),
// reconnected with exponential backoff and full jitter as the close code
// allows, the token refreshed before it expires, every room joined again
// with resume, and every unacknowledged send resent with its client_msg_id.

import { closeCodeInfo, RETRIED_SEND_ERRORS } from "./codes.js";
import { Emitter } from "./emitter.js";
import { Room } from "./room.js";

/** The subprotocol this client speaks (JSON text frames). */
export const SUBPROTOCOL = "chorus.json";

const DEFAULTS = {
  backoffMinMs: 500,
  backoffMaxMs: 15_000,
  requestTimeoutMs: 30_000,
  maxQueuedSends: 100,
  maxQueuedCommands: 100,
  refreshBeforeMs: 60_000,
  heartbeatMs: 30_000,
  heartbeatTimeoutMs: 10_000,
  history: 50,
};

/** A refusal from the server (its `code`), or a condition of this client. */
export class ChorusError extends Error {
  constructor(code, message, extra = {}) {
    super(message || code);
    this.name = "ChorusError";
    this.code = code;
    Object.assign(this, extra);
  }
}

/** Opens a client: `connect({url, token})` or `connect({url, getToken})`. */
export function connect(options) {
  const client = new Client(options);
  client.open();
  return client;
}

/** 16 random bytes as hex (crypto.getRandomValues also works on plain http pages). */
export function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export class Client extends Emitter {
  /** Options, with defaults. */
  options;
  /** "idle" | "connecting" | "connected" | "reconnecting" | "disconnected". */
  state = "idle";
  /** The authenticated user ({id, name?, avatar?}), once connected. */
  user = null;
  /** The node this connection is on, and the connection's id. */
  node = null;
  conn = null;
  /** The server's limits (from `welcome`). */
  limits = null;
  /** When the current token expires (Unix seconds). */
  tokenExpiresAt = null;
  /** Joined rooms, by name. */
  rooms = new Map();

  #WebSocket;
  #token;
  #ws = null;
  #authed = false;
  #attempt = 0;
  #stopped = false;
  #tokenRefused = null;
  #retryTimer = null;
  #refreshTimer = null;
  #heartbeatTimer = null;
  #lastFrameAt = 0;
  #nextRef = 1;
  /** ref -> {command, resolve, reject, timer, retry}: commands sent or waiting. */
  #requests = new Map();
  /** Commands waiting for a connection, in order. */
  #queue = [];
  /** client_msg_id -> pending send, in the order they were made. */
  #sends = new Map();

  constructor(options) {
    super();
    if (!options?.url) throw new TypeError("chorus: url is required");
    if (!options.token && !options.getToken) throw new TypeError("chorus: token or getToken is required");
    this.options = { ...DEFAULTS, ...options };
    this.#WebSocket = options.WebSocket ?? globalThis.WebSocket;
    if (!this.#WebSocket) {
      throw new TypeError("chorus: no WebSocket here; pass one (Node 20: run with --experimental-websocket)");
    }
    this.#token = options.token ?? null;
  }

  /** Whether the connection is up and authenticated. */
  get connected() {
    return this.#authed;
  }

  /** Connects (again, after `close`). */
  open() {
    this.#stopped = false;
    this.#attempt = 0;
    this.#connect();
  }

  /** Closes for good: no reconnect; waiting sends and commands are refused with `closed`. */
  close() {
    this.#stop(new ChorusError("closed", "the client was closed"));
    const ws = this.#ws;
    this.#detach();
    ws?.close(1000);
    this.#setState("disconnected", { code: 1000, reason: "closed by the client", willReconnect: false });
  }

  /** While waiting to reconnect: try now (e.g. when the browser is back online). */
  reconnectNow() {
    if (this.#stopped || this.#ws || this.state !== "reconnecting") return;
    clearTimeout(this.#retryTimer);
    this.#connect();
  }

  /** Joins `name` (or returns the room already joined): messages, presence, typing... */
  join(name, { history = this.options.history } = {}) {
    let room = this.rooms.get(name);
    if (room) return room;
    room = new Room(this, name, history);
    this.rooms.set(name, room);
    if (this.#authed) this.#joinRoom(room);
    return room;
  }

  /** Opens the direct conversation with `user`; resolves with its room. */
  async dm(user) {
    const joined = await this.request({ type: "dm", user });
    return this.rooms.get(joined.room);
  }

  /**
   * Full-text search of the server's archive in the rooms this token may
   * read: {q, hits: [{message, snippet, rank}], more}, best first. Options:
   * rooms (names), limit (1-100), offset (0-1000).
   */
  async search(q, { rooms, limit, offset } = {}) {
    const command = { type: "search", q };
    if (rooms !== undefined) command.rooms = rooms;
    if (limit !== undefined) command.limit = limit;
    if (offset !== undefined) command.offset = offset;
    const { hits, more } = await this.request(command, { retry: true });
    return { q, hits, more };
  }

  /** This user's saved drafts: [{room, text}]. */
  async drafts() {
    return (await this.request({ type: "drafts" }, { retry: true })).drafts;
  }

  /** Sets this user's status: "online" or "away". */
  async setStatus(status) {
    await this.request({ type: "status", status });
  }

  /**
   * Sends `command` with a fresh `ref` and resolves with the event that
   * answers it (or rejects with a ChorusError). Waits for a connection when
   * there is none (a bounded queue). `retry`: sent again after a reconnect if
   * unanswered (for commands that may safely be repeated).
   */
  request(command, { retry = false } = {}) {
    if (this.#stopped) return Promise.reject(new ChorusError("closed", "the client is closed"));
    const waiting = [...this.#requests.values()].filter((r) => !r.sent).length;
    if (!this.#authed && waiting >= this.options.maxQueuedCommands) {
      return Promise.reject(new ChorusError("queue_full", "too many commands wait for a connection"));
    }
    const ref = `r${this.#nextRef++}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#requests.delete(ref);
        reject(new ChorusError("timeout", `no answer to ${command.type} in ${this.options.requestTimeoutMs} ms`));
      }, this.options.requestTimeoutMs);
      const request = { command: { ...command, ref }, resolve, reject, timer, retry, sent: false };
      this.#requests.set(ref, request);
      if (this.#authed) this.#transmit(request);
    });
  }

  /** Sends a command that has no answer (typing); dropped while offline. */
  notify(command) {
    if (this.#authed) this.#write(command);
  }

  // ---- sends ---------------------------------------------------------------

  /** Used by Room.send. */
  send(room, body, { mentions, attachments, clientMsgId } = {}) {
    if (this.#stopped) return Promise.reject(new ChorusError("closed", "the client is closed"));
    if (this.#sends.size >= this.options.maxQueuedSends) {
      return Promise.reject(new ChorusError("queue_full", `${this.#sends.size} sends are waiting already`));
    }
    const id = clientMsgId ?? `c-${randomId()}`;
    if (this.#sends.has(id)) return this.#sends.get(id).promise;
    let settle;
    const promise = new Promise((resolve, reject) => (settle = { resolve, reject }));
    const command = { type: "send", room: room.name, body, client_msg_id: id, ref: id };
    if (mentions?.length) command.mentions = mentions;
    if (attachments?.length) command.attachments = attachments;
    const pending = { id, room, command, ...settle, promise, retryTimer: null, transmitted: false };
    this.#sends.set(id, pending);
    if (this.#authed && room.joined) this.#transmitSend(pending);
    return promise;
  }

  /** Sends that wait for their `sent`, oldest first. */
  get pendingSends() {
    return [...this.#sends.values()].map(({ id, room, command }) => ({ id, room: room.name, body: command.body }));
  }

  /** A room is joined (again): its waiting sends go out, in order. */
  flushSends(room) {
    for (const pending of this.#sends.values()) {
      if (pending.room === room && !pending.retryTimer) this.#transmitSend(pending);
    }
  }

  #transmitSend(pending) {
    pending.transmitted = true;
    this.#write(pending.command);
  }

  #sendAnswered(event) {
    const pending = this.#sends.get(event.ref);
    if (!pending) return false;
    if (event.type === "sent") {
      this.#sends.delete(event.ref);
      const { body, mentions = [], attachments = [] } = pending.command;
      pending.resolve({ ...event, body, mentions, attachments, client_msg_id: pending.id, from: this.user });
      return true;
    }
    if (RETRIED_SEND_ERRORS.has(event.code)) {
      // Tried again with the same client_msg_id: never stored twice.
      const delay = event.retry_after_ms ?? this.#backoff(2);
      pending.retryTimer = setTimeout(() => {
        pending.retryTimer = null;
        if (this.#authed && pending.room.joined) this.#transmitSend(pending);
      }, delay);
      return true;
    }
    this.#sends.delete(event.ref);
    pending.reject(new ChorusError(event.code, event.message, { room: pending.room.name }));
    return true;
  }

  // ---- the connection --------------------------------------------------------

  async #connect() {
    clearTimeout(this.#retryTimer);
    // A reconnect was announced ("reconnecting", with its delay) when it was planned.
    if (this.#attempt === 0) this.#setState("connecting");
    let token;
    try {
      token = await this.#currentToken();
    } catch (error) {
      if (error instanceof ChorusError && error.code === "token_refused") {
        this.#stop(new ChorusError("closed", error.message, { closeCode: error.closeCode }));
        this.#setState("disconnected", { code: error.closeCode, reason: error.message, willReconnect: false });
        return;
      }
      this.emit("error", new ChorusError("token_unavailable", `getToken failed: ${error?.message ?? error}`));
      return this.#retry(closeCodeInfo(1006));
    }
    if (this.#stopped) return;
    const ws = new this.#WebSocket(this.options.url, [SUBPROTOCOL]);
    this.#ws = ws;
    ws.onopen = () => ws.send(JSON.stringify({ type: "auth", token, ref: "auth" }));
    ws.onmessage = (frame) => {
      if (this.#ws === ws) this.#receive(frame.data);
    };
    ws.onerror = () => {};
    ws.onclose = (event) => {
      if (this.#ws === ws) this.#closed(event.code, event.reason);
    };
  }

  async #currentToken() {
    const refused = this.#tokenRefused;
    if (refused) {
      if (!this.options.getToken) {
        throw new ChorusError("token_refused", refused.meaning, { closeCode: refused.code });
      }
      const fresh = await this.options.getToken();
      if (refused.code !== 4003 && fresh === refused.token) {
        throw new ChorusError("token_refused", `${refused.meaning}, and getToken gave the same token`, {
          closeCode: refused.code,
        });
      }
      this.#tokenRefused = null;
      this.#token = fresh;
    }
    this.#token ??= await this.options.getToken();
    return this.#token;
  }

  #receive(data) {
    this.#lastFrameAt = Date.now();
    if (typeof data !== "string") return;
    let event;
    try {
      event = JSON.parse(data);
    } catch {
      return;
    }
    // Every event, raw, for applications that keep their own state (a
    // message or change the room dropped as already delivered is left out).
    if (this.#dispatch(event) !== false) this.emit("event", event);
  }

  /** Handles one event; false when it was dropped as a repeat. */
  #dispatch(event) {
    switch (event.type) {
      case "welcome":
        this.node = event.node;
        this.conn = event.conn;
        this.limits = event.limits;
        return;
      case "authenticated":
        this.user = event.user;
        this.tokenExpiresAt = event.token_expires_at;
        return this.#ready();
      case "error":
        if (event.ref === "auth") return this.emit("error", new ChorusError(event.code, event.message));
        if (this.#sendAnswered(event)) return;
        break;
      case "sent":
        this.#sendAnswered(event);
        return;
    }
    if (event.ref && this.#requests.has(event.ref)) return this.#answered(event);
    switch (event.type) {
      // The user's own channel: about rooms this connection may not be in.
      case "mention":
      case "notification":
      case "draft":
        return this.emit(event.type, event);
      case "dm_started":
        return this.emit("dm", event);
      case "status":
        if (event.room === undefined) return this.emit("status", event);
    }
    const room = event.room !== undefined ? this.rooms.get(event.room) : undefined;
    if (room) return room.handle(event);
    switch (event.type) {
      case "error":
        return this.emit("error", new ChorusError(event.code, event.message, { room: event.room }));
    }
  }

  #answered(event) {
    const request = this.#requests.get(event.ref);
    this.#requests.delete(event.ref);
    clearTimeout(request.timer);
    if (event.type === "error") {
      const extra = { room: event.room, retryAfterMs: event.retry_after_ms };
      return request.reject(new ChorusError(event.code, event.message, extra));
    }
    if (event.type === "joined" && request.command.type === "dm") {
      // The conversation's room: joined like any other from now on.
      const room = this.rooms.get(event.room) ?? new Room(this, event.room, this.options.history);
      this.rooms.set(event.room, room);
      room.handle(event);
    } else if (event.type === "refreshed") {
      this.tokenExpiresAt = event.token_expires_at;
      this.#scheduleRefresh();
    } else if (event.room !== undefined) {
      this.rooms.get(event.room)?.handle(event);
    }
    request.resolve(event);
  }

  #ready() {
    this.#authed = true;
    this.#attempt = 0;
    this.#setState("connected", { node: this.node, conn: this.conn });
    this.#scheduleRefresh();
    this.#startHeartbeat();
    // Joins first: the server takes a connection's commands in order, so
    // whatever follows for a room finds it joined.
    for (const room of this.rooms.values()) this.#joinRoom(room);
    for (const request of this.#requests.values()) if (!request.sent) this.#transmit(request);
  }

  #joinRoom(room) {
    const ref = `j${this.#nextRef++}`;
    this.#write({ ...room.joinCommand(), ref });
  }

  #transmit(request) {
    request.sent = true;
    this.#write(request.command);
  }

  #write(command) {
    const ws = this.#ws;
    if (ws && ws.readyState === 1) ws.send(JSON.stringify(command));
  }

  #closed(code, reason) {
    this.#detach();
    const info = closeCodeInfo(code);
    if (this.#stopped) return;
    if (info.reconnect === "no" || (info.reconnect === "token" && !this.options.getToken)) {
      this.#stop(new ChorusError("closed", info.meaning, { closeCode: code }));
      this.#setState("disconnected", { code, reason, meaning: info.meaning, willReconnect: false });
      return;
    }
    if (info.reconnect === "token") this.#tokenRefused = { code, meaning: info.meaning, token: this.#token };
    this.#setState("disconnected", { code, reason, meaning: info.meaning, willReconnect: true });
    this.#retry(info);
  }

  /** Forgets the socket; commands in flight wait again (or fail when not repeatable). */
  #detach() {
    const ws = this.#ws;
    this.#ws = null;
    this.#authed = false;
    if (ws) ws.onopen = ws.onmessage = ws.onclose = null;
    clearTimeout(this.#refreshTimer);
    clearInterval(this.#heartbeatTimer);
    for (const room of this.rooms.values()) room.disconnected();
    for (const [ref, request] of this.#requests) {
      if (!request.sent) continue;
      if (request.retry) {
        request.sent = false;
      } else {
        this.#requests.delete(ref);
        clearTimeout(request.timer);
        request.reject(new ChorusError("disconnected", `the connection dropped before ${request.command.type} was answered`));
      }
    }
    for (const pending of this.#sends.values()) {
      clearTimeout(pending.retryTimer);
      pending.retryTimer = null;
    }
  }

  #stop(error) {
    this.#stopped = true;
    clearTimeout(this.#retryTimer);
    for (const request of this.#requests.values()) {
      clearTimeout(request.timer);
      request.reject(error);
    }
    this.#requests.clear();
    for (const pending of this.#sends.values()) {
      clearTimeout(pending.retryTimer);
      pending.reject(error);
    }
    this.#sends.clear();
  }

  /** Full jitter: a random delay up to min(max, min * 2^(attempt-1)). */
  #backoff(attempt) {
    const { backoffMinMs, backoffMaxMs } = this.options;
    const ceiling = Math.min(backoffMaxMs, backoffMinMs * 2 ** Math.max(0, attempt - 1));
    return Math.random() * ceiling;
  }

  #retry(info) {
    this.#attempt += 1;
    let delay = this.#backoff(this.#attempt);
    if (info.minDelayMs) delay = Math.max(delay, info.minDelayMs * (0.5 + Math.random() / 2));
    if (info.maxDelayMs) delay = Math.min(delay, info.maxDelayMs);
    this.#setState("reconnecting", { attempt: this.#attempt, delayMs: Math.round(delay) });
    this.#retryTimer = setTimeout(() => this.#connect(), delay);
  }

  /** With getToken: a new token goes out `refreshBeforeMs` before expiry (or halfway, for short ones). */
  #scheduleRefresh() {
    clearTimeout(this.#refreshTimer);
    if (!this.options.getToken || !this.tokenExpiresAt || this.options.refreshBeforeMs < 0) return;
    const left = this.tokenExpiresAt * 1000 - Date.now();
    const delay = Math.max(0, Math.max(left - this.options.refreshBeforeMs, left / 2));
    this.#refreshTimer = setTimeout(async () => {
      try {
        const token = await this.options.getToken();
        await this.request({ type: "refresh", token });
        this.#token = token;
        this.emit("token", { expiresAt: this.tokenExpiresAt });
      } catch (error) {
        this.emit("error", error instanceof ChorusError ? error : new ChorusError("token_unavailable", String(error)));
        // Tried again later; at expiry the server closes (4003) and a reconnect takes a new token.
        if (this.#authed) this.#refreshTimer = setTimeout(() => this.#scheduleRefresh(), 5_000);
      }
    }, delay);
  }

  /** An application-level ping when the link has been quiet: a dead link is noticed and replaced. */
  #startHeartbeat() {
    const { heartbeatMs, heartbeatTimeoutMs } = this.options;
    if (!heartbeatMs) return;
    this.#lastFrameAt = Date.now();
    let pinged = 0;
    this.#heartbeatTimer = setInterval(() => {
      const quiet = Date.now() - this.#lastFrameAt;
      if (pinged && this.#lastFrameAt < pinged && Date.now() - pinged > heartbeatTimeoutMs) {
        const ws = this.#ws;
        this.#closed(4002, "no answer to a ping");
        ws?.close();
        return;
      }
      if (quiet >= heartbeatMs && (!pinged || this.#lastFrameAt >= pinged)) {
        pinged = Date.now();
        this.#write({ type: "ping", ref: "heartbeat" });
      }
    }, Math.min(heartbeatMs, heartbeatTimeoutMs) / 2);
  }

  #setState(state, detail = {}) {
    this.state = state;
    const event = { state, ...detail };
    this.emit(state, event);
    this.emit("state", event);
  }
}
