// The WebSocket side of the chat client: connect, authenticate, rejoin every
// room with resume after a reconnect, resend unacknowledged sends with the
// same client_msg_id, and reconnect with jittered exponential backoff.

const PROTOCOL = "chorus.json";
const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 15000;

/** A live link to a Chorus node that survives disconnects. */
export class Connection extends EventTarget {
  constructor(token) {
    super();
    this.token = token;
    this.ws = null;
    this.attempt = 0;
    this.stopped = false;
    this.node = null;
    this.nextRef = 1;
    // room -> {epoch, after}: where to resume each joined room.
    this.positions = new Map();
    // client_msg_id -> {room, body}: sends not yet acknowledged.
    this.pending = new Map();
    this.retryTimer = null;
    window.addEventListener("online", () => this.retryNow());
  }

  /** Opens the connection (again). */
  open() {
    this.stopped = false;
    clearTimeout(this.retryTimer);
    if (!navigator.onLine) {
      this.status("offline");
      return;
    }
    this.status(this.attempt === 0 ? "connecting" : "reconnecting");
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${scheme}://${location.host}/ws`, [PROTOCOL]);
    this.ws = ws;
    ws.onopen = () => this.send({ type: "auth", token: this.token });
    ws.onmessage = (frame) => this.receive(JSON.parse(frame.data));
    ws.onclose = (event) => {
      if (this.ws === ws) this.closed(event.code, event.reason);
    };
  }

  /** Closes for good (sign out). */
  close() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  retryNow() {
    if (!this.stopped && (!this.ws || this.ws.readyState === WebSocket.CLOSED)) this.open();
  }

  get connected() {
    return this.ws !== null && this.ws.readyState === WebSocket.OPEN && this.authed === true;
  }

  send(command) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(JSON.stringify(command));
      return true;
    }
    return false;
  }

  ref() {
    return String(this.nextRef++);
  }

  /** Joins a room: resumes from the last message seen, or asks for recent history. */
  join(room) {
    const at = this.positions.get(room);
    const command = { type: "join", room, ref: `join:${room}` };
    if (at) Object.assign(command, { epoch: at.epoch, after: at.after });
    else command.history = 50;
    this.send(command);
  }

  leave(room) {
    this.positions.delete(room);
    this.send({ type: "leave", room, ref: this.ref() });
  }

  /** Sends a message; it is resent with the same id after a reconnect until acknowledged. */
  post(room, body, mentions = [], attachments = []) {
    const id = `c-${crypto.randomUUID()}`;
    this.pending.set(id, { room, body, mentions, attachments });
    if (this.connected) this.send(sendCommand(id, this.pending.get(id)));
    return id;
  }

  /** Edit, delete, react or unreact (`command` names the room, the message's seq and id). */
  change(command) {
    if (this.connected) this.send({ ...command, ref: this.ref() });
  }

  /** Sets this user's status: "online" or "away". */
  setPresence(status) {
    if (this.connected) this.send({ type: "status", status, ref: this.ref() });
  }

  /** Asks who is in a room (answered with `members`). */
  presence(room) {
    if (this.connected) this.send({ type: "presence", room });
  }

  /** Read marker: the room is read up to `seq`; dropped while offline (sent again on the next view). */
  read(room, seq) {
    if (this.connected) this.send({ type: "read", room, seq });
  }

  /** Saves the unsent text for a room on the server ("" clears it), for this user's other devices. */
  draft(room, text) {
    if (this.connected) this.send({ type: "draft", room, text });
  }

  /** Asks for this user's saved drafts (answered with a `drafts` event). */
  drafts() {
    if (this.connected) this.send({ type: "drafts" });
  }

  /** Typing indicator: "start" (repeat while typing) or "stop"; dropped while offline. */
  typing(room, state) {
    if (this.connected) this.send({ type: "typing", room, state });
  }

  history(room, before) {
    this.send({ type: "history", room, before, limit: 50, ref: `history:${room}` });
  }

  /** Notes the last message seen in a room, for resuming. */
  seen(room, epoch, seq) {
    const at = this.positions.get(room);
    if (!at || at.epoch !== epoch || seq > at.after) this.positions.set(room, { epoch, after: seq });
  }

  receive(event) {
    switch (event.type) {
      case "welcome":
        this.node = event.node;
        this.authed = event.user !== null;
        if (this.authed) this.ready();
        break;
      case "authenticated":
        this.authed = true;
        this.ready();
        break;
      case "joined":
        if (!event.recovered) this.positions.set(event.room, { epoch: event.epoch, after: event.seq });
        break;
      case "reset":
        this.positions.set(event.room, { epoch: event.epoch, after: event.seq });
        break;
      case "sent":
        this.pending.delete(event.ref);
        break;
      case "message":
      case "edited":
      case "deleted":
      case "reaction":
        // Changes take places in the room's order too: resume after them.
        this.seen(event.room, this.positions.get(event.room)?.epoch, event.seq);
        break;
      case "error":
        // A refused send is not retried: it will not succeed as it is.
        if (event.ref && this.pending.has(event.ref)) this.pending.delete(event.ref);
        break;
    }
    this.dispatchEvent(new CustomEvent("event", { detail: event }));
  }

  ready() {
    this.attempt = 0;
    this.status("connected");
    this.dispatchEvent(new CustomEvent("ready"));
    for (const [id, pending] of this.pending) this.send(sendCommand(id, pending));
  }

  closed(code, reason) {
    this.authed = false;
    this.ws = null;
    if (this.stopped) return;
    // 4500-4999: do not reconnect with the same token.
    if (code >= 4500 && code <= 4999) {
      this.status("offline");
      this.dispatchEvent(new CustomEvent("rejected", { detail: { code, reason } }));
      return;
    }
    if (code === 4003) {
      this.dispatchEvent(new CustomEvent("expired"));
      return;
    }
    this.attempt += 1;
    const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** (this.attempt - 1));
    const delay = ceiling / 2 + Math.random() * (ceiling / 2);
    this.status(navigator.onLine ? "reconnecting" : "offline");
    this.retryTimer = setTimeout(() => this.open(), delay);
  }

  status(state) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("status", { detail: { state, node: this.node, attempt: this.attempt } }));
  }
}

/** The `send` of a pending message (the same every time it is resent). */
function sendCommand(id, { room, body, mentions, attachments }) {
  const command = { type: "send", room, body, mentions, client_msg_id: id, ref: id };
  if (attachments?.length) command.attachments = attachments;
  return command;
}
