// One joined room: its messages delivered once and in `seq` order across
// reconnects (resumed from the epoch and last seq; what cannot be recovered
// is announced with a `reset` event), history paging, presence, typing,
// read markers and unread counts, edits, deletes, reactions and drafts.

import { Emitter } from "./emitter.js";

/** Message ids remembered per room to drop a message delivered twice. */
const REMEMBERED_IDS = 2_000;
/** Message seqs kept per room to count the unread ones after a marker. */
const REMEMBERED_SEQS = 10_000;
/** Least time between two typing starts sent (the server relays one per 2 s). */
const TYPING_EVERY_MS = 2_000;

export class Room extends Emitter {
  /** The room's name. */
  name;
  /** The room's numbering (from `joined` or `reset`). */
  epoch = null;
  /** The last entry (message or change) delivered: where a resume starts. */
  seq = 0;
  /** The oldest message delivered in this epoch: where `older()` continues. */
  oldest = null;
  /** Whether the room is joined on the current connection. */
  joined = false;
  /** Messages not read yet (by this user, on any device). */
  unread = 0;
  /** This user's read marker, when there is one. */
  readSeq = null;
  /** Who is in the room now: id -> {id, name?, status}. */
  members = new Map();
  /** Who is typing now (not this user): id -> user. */
  typing = new Map();

  #client;
  #history;
  #everJoined = false;
  #ids = new Set();
  #messageSeqs = [];
  #lastMessage = null;
  #typers = new Map();
  #typingSentAt = 0;
  #ready = null;
  /** Where `older()` continues once it has paged: the oldest message's {epoch, seq}. */
  #cursor = null;

  constructor(client, name, history) {
    super();
    this.#client = client;
    this.name = name;
    this.#history = history;
    this.#ready = deferred();
  }

  /** Resolves once the room is joined (the first time). */
  get ready() {
    return this.#ready.promise;
  }

  /** The join (or resume) command for the current state. */
  joinCommand() {
    const command = { type: "join", room: this.name };
    if (this.#everJoined) Object.assign(command, { epoch: this.epoch, after: this.seq });
    else command.history = this.#history;
    return command;
  }

  /**
   * Sends a message; resolves with it once stored (`sent`: id, seq, ts ...).
   * Waits while offline and is resent with the same client_msg_id after a
   * reconnect: never posted twice.
   */
  send(body, options = {}) {
    return this.#client.send(this, body, options);
  }

  /**
   * The page of messages before the oldest one delivered or paged: {messages,
   * more}. With a server archive it goes on past Redis's history, into
   * earlier epochs, to the room's first message.
   */
  async older({ limit = 50 } = {}) {
    const command = { type: "history", room: this.name, limit };
    const cursor = this.#cursor ?? (this.oldest !== null ? { epoch: this.epoch, seq: this.oldest } : null);
    if (cursor) Object.assign(command, { before: cursor.seq, epoch: cursor.epoch });
    const page = await this.#client.request(command, { retry: true });
    const first = page.messages[0];
    if (first) {
      const epoch = first.epoch ?? page.epoch;
      this.#cursor = { epoch, seq: first.seq };
      if (epoch === this.epoch) this.oldest = Math.min(this.oldest ?? Infinity, first.seq);
    }
    return { messages: page.messages, more: page.more };
  }

  edit(seq, body, { id } = {}) {
    return this.#client.request({ type: "edit", room: this.name, seq, body, ...(id ? { id } : {}) });
  }

  delete(seq, { id } = {}) {
    return this.#client.request({ type: "delete", room: this.name, seq, ...(id ? { id } : {}) });
  }

  react(seq, emoji) {
    return this.#client.request({ type: "react", room: this.name, seq, emoji });
  }

  unreact(seq, emoji) {
    return this.#client.request({ type: "unreact", room: this.name, seq, emoji });
  }

  /** Marks the room read up to `seq` (default: the last message delivered). */
  async markRead(seq = this.#lastMessage ?? this.seq) {
    const marked = await this.#client.request({ type: "read", room: this.name, seq }, { retry: true });
    return marked.seq;
  }

  /** The room's read markers: [{user, seq}]. */
  async receipts() {
    return (await this.#client.request({ type: "receipts", room: this.name }, { retry: true })).receipts;
  }

  /** Call on keystrokes: sends at most one `start` every 2 s. */
  startTyping() {
    const now = Date.now();
    if (now - this.#typingSentAt < TYPING_EVERY_MS) return;
    this.#typingSentAt = now;
    this.#client.notify({ type: "typing", room: this.name, state: "start" });
  }

  stopTyping() {
    if (!this.#typingSentAt) return;
    this.#typingSentAt = 0;
    this.#client.notify({ type: "typing", room: this.name, state: "stop" });
  }

  /** Saves the unsent text for this room ("" clears it), for the user's other devices. */
  async saveDraft(text) {
    await this.#client.request({ type: "draft", room: this.name, text }, { retry: true });
  }

  /** Leaves the room: nothing more arrives from it. */
  async leave() {
    this.#client.rooms.delete(this.name);
    if (this.joined) await this.#client.request({ type: "leave", room: this.name });
    this.joined = false;
  }

  /** The connection dropped: joined again (with resume) when it is back. */
  disconnected() {
    this.joined = false;
    for (const timer of this.#typers.values()) clearTimeout(timer);
    this.#typers.clear();
    if (this.typing.size) {
      this.typing.clear();
      this.emit("typing", { room: this.name, users: [] });
    }
  }

  /** An event for this room, from the client; false when dropped as a repeat. */
  handle(event) {
    switch (event.type) {
      case "joined":
        return this.#joined(event);
      case "message":
        return this.#message(event);
      case "edited":
      case "deleted":
      case "reaction":
        if (!this.#fresh(event.seq)) return false;
        this.seq = event.seq;
        return this.emit(event.type, event);
      case "reset":
        this.emit("reset", {
          room: this.name,
          reason: event.reason,
          recovered: false,
          epoch: event.epoch,
          seq: event.seq,
          lost: { epoch: this.epoch, after: this.seq },
        });
        this.epoch = event.epoch;
        this.seq = event.seq;
        this.oldest = null;
        this.#cursor = null;
        this.#lastMessage = null;
        return;
      case "typing":
        return this.#typingEvent(event);
      case "presence":
        for (const user of event.joins ?? []) this.members.set(user.id, { status: "online", ...user });
        for (const user of event.leaves ?? []) this.members.delete(user.id);
        return this.emit("presence", { room: this.name, joins: event.joins ?? [], leaves: event.leaves ?? [] });
      case "members":
        this.members = new Map(event.members.map((m) => [m.id, m]));
        return this.emit("presence", { room: this.name, joins: event.members, leaves: [] });
      case "status": {
        const member = this.members.get(event.user.id);
        if (member) member.status = event.status;
        return this.emit("status", event);
      }
      case "marked":
        return this.#marker(event.seq);
      case "receipt":
        if (event.user.id === this.#client.user?.id) this.#marker(event.seq);
        return this.emit("receipt", event);
      case "left":
        this.joined = false;
        this.#client.rooms.delete(this.name);
        return this.emit("left", event);
      case "error":
        // A join refused (forbidden, too_many_rooms ...): the room is given up.
        if (!this.joined && event.ref?.startsWith("j")) {
          this.#client.rooms.delete(this.name);
          this.#ready.reject(Object.assign(new Error(event.message), { code: event.code }));
        }
        return this.emit("error", event);
    }
  }

  #joined(event) {
    const before = { epoch: this.epoch, seq: this.seq };
    const resumed = this.#everJoined;
    this.joined = true;
    this.unread = event.unread ?? 0;
    this.readSeq = event.read_seq ?? null;
    if (!resumed) {
      // The history asked for comes next: the entries before it are not ours to resume from.
      this.epoch = event.epoch;
      this.seq = Math.max(0, event.seq - this.#history);
    } else if (!event.recovered) {
      this.emit("reset", {
        room: this.name,
        reason: event.epoch === before.epoch ? "not_recovered" : "epoch_changed",
        recovered: false,
        epoch: event.epoch,
        seq: event.seq,
        lost: before,
      });
      if (event.epoch !== before.epoch) {
        this.seq = 0;
        this.oldest = null;
        this.#cursor = null;
        this.#lastMessage = null;
      } else {
        this.seq = Math.max(this.seq, event.seq - this.#history);
      }
      this.epoch = event.epoch;
    }
    this.#everJoined = true;
    this.emit("joined", { room: this.name, epoch: event.epoch, seq: event.seq, recovered: event.recovered });
    this.#ready.resolve(this);
    this.#client.flushSends(this);
    this.#client.request({ type: "presence", room: this.name }).catch(() => {});
  }

  #fresh(seq) {
    return seq > this.seq;
  }

  #message(message) {
    if (!this.#fresh(message.seq) || this.#ids.has(message.id)) return false;
    this.seq = message.seq;
    this.#ids.add(message.id);
    if (this.#ids.size > REMEMBERED_IDS) this.#ids.delete(this.#ids.values().next().value);
    this.oldest = Math.min(this.oldest ?? Infinity, message.seq);
    this.#lastMessage = message.seq;
    if (message.from?.id !== this.#client.user?.id) {
      this.#messageSeqs.push(message.seq);
      if (this.#messageSeqs.length > REMEMBERED_SEQS) this.#messageSeqs.shift();
      if (this.readSeq === null || message.seq > this.readSeq) this.unread += 1;
    }
    this.#typistDone(message.from?.id);
    this.emit("message", message);
  }

  #marker(seq) {
    if (this.readSeq !== null && seq <= this.readSeq) return;
    this.readSeq = seq;
    const after = this.#messageSeqs.filter((s) => s > seq).length;
    this.unread = Math.min(this.unread, after);
    this.emit("unread", { room: this.name, unread: this.unread, readSeq: seq });
  }

  #typingEvent(event) {
    const id = event.user.id;
    if (id === this.#client.user?.id) return;
    if (event.state === "stop") return this.#typistDone(id);
    clearTimeout(this.#typers.get(id));
    this.#typers.set(id, setTimeout(() => this.#typistDone(id), event.expires_in_ms ?? 6_000));
    this.typing.set(id, event.user);
    this.emit("typing", { room: this.name, users: [...this.typing.values()] });
  }

  #typistDone(id) {
    if (!this.typing.has(id)) return;
    clearTimeout(this.#typers.get(id));
    this.#typers.delete(id);
    this.typing.delete(id);
    this.emit("typing", { room: this.name, users: [...this.typing.values()] });
  }
}

function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => ((resolve = res), (reject = rej)));
  promise.catch(() => {});
  return { promise, resolve, reject };
}
