// The chat client's link to the cluster, on the client SDK (clients/js,
// served by the node at /sdk/): the SDK authenticates with an `auth` frame,
// reconnects as the close codes say, rejoins every room with resume and
// resends unacknowledged sends with their client_msg_id. This adapter gives
// app.js the SDK's raw events and a few commands by name.

import { Client, randomId } from "./sdk/index.js";

const ignore = () => {};

/** A live link to a Chorus node that survives disconnects. */
export class Connection extends EventTarget {
  /** `renew`: gives a new token when this one expires (absent: the session ends then). */
  constructor(token, renew = null) {
    super();
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    this.client = new Client({
      url: `${scheme}://${location.host}/ws`,
      token,
      getToken: renew ?? undefined,
    });
    this.client.on("state", (event) => this.#state(event));
    this.client.on("event", (event) => this.dispatchEvent(new CustomEvent("event", { detail: event })));
    window.addEventListener("online", () => this.client.reconnectNow());
  }

  open() {
    this.client.open();
  }

  /** Closes for good (sign out). */
  close() {
    this.client.close();
  }

  get connected() {
    return this.client.connected;
  }

  /** Joins a room (again after each reconnect, resuming where it was). */
  join(room) {
    this.client.join(room);
  }

  leave(room) {
    this.client.rooms.get(room)?.leave().catch(ignore);
  }

  /** Resolves once `room` is joined (the first time). */
  ready(room) {
    return (this.client.rooms.get(room) ?? this.client.join(room)).ready;
  }

  /** Searches the archive: {hits, more} (a refusal rejects). */
  search(q) {
    return this.client.search(q, { limit: 20 });
  }

  /** Sends a message; kept and resent with the same id until stored. Returns its client_msg_id. */
  post(room, body, mentions = [], attachments = []) {
    const clientMsgId = `c-${randomId()}`;
    const joined = this.client.rooms.get(room) ?? this.client.join(room);
    joined.send(body, { mentions, attachments, clientMsgId }).catch(ignore);
    return clientMsgId;
  }

  /** Edit, delete, react or unreact (`command` names the room, the message's seq and id). */
  change(command) {
    this.client.request(command).catch(ignore);
  }

  /** Sets this user's status: "online" or "away". */
  setPresence(status) {
    this.client.setStatus(status).catch(ignore);
  }

  /** The room's members: the SDK asks on every join (answered with `members`). */
  presence() {}

  /** Read marker: the room is read up to `seq`. */
  read(room, seq) {
    this.client.rooms.get(room)?.markRead(seq).catch(ignore);
  }

  /** Saves the unsent text for a room on the server ("" clears it), for this user's other devices. */
  draft(room, text) {
    this.client.request({ type: "draft", room, text }, { retry: true }).catch(ignore);
  }

  /** Asks for this user's saved drafts (answered with a `drafts` event). */
  drafts() {
    this.client.request({ type: "drafts" }, { retry: true }).catch(ignore);
  }

  /** Typing indicator: "start" or "stop"; dropped while offline. */
  typing(room, state) {
    this.client.notify({ type: "typing", room, state });
  }

  /** The page before message `oldest` (answered with a `history` event; a refusal rejects). */
  history(room, oldest) {
    const command = { type: "history", room, before: oldest.seq, epoch: oldest.epoch, limit: 50 };
    return this.client.request(command, { retry: true });
  }

  /** Resume positions are the SDK's. */
  seen() {}

  #state({ state, node, attempt, code, reason, willReconnect }) {
    if (state === "disconnected" && !willReconnect && code !== 1000) {
      const kind = code === 4003 ? "expired" : "rejected";
      this.dispatchEvent(new CustomEvent(kind, { detail: { code, reason } }));
    }
    const shown = state === "disconnected" ? (willReconnect ? "reconnecting" : "offline") : state;
    this.dispatchEvent(new CustomEvent("status", { detail: { state: shown, node, attempt: attempt ?? 0 } }));
    if (state === "connected") this.dispatchEvent(new CustomEvent("ready"));
  }
}
