// The Chorus chat client: sign-in, rooms, messages. All user content is put
// into the page with textContent, never as HTML.

import { Connection } from "./connection.js";
import { applyChange, decorate, mentionsIn } from "./changes.js";
import { attachmentsView, humanSize, upload } from "./files.js";
import { wireSearch } from "./search.js";

const $ = (id) => document.getElementById(id);
const SESSION = "chorus.session";
const HISTORY_PAGE = 50;
/** While the user types, "typing start" is sent at most this often (the server relays one per 2 s). */
const TYPING_REPEAT_MS = 2500;

/** Per room: messages by id (kept in seq order), paging and unread state. */
class Room {
  constructor(name) {
    this.name = name;
    this.epoch = null;
    this.messages = new Map();
    this.more = true;
    this.loadingOlder = false;
    this.unread = 0;
    this.typing = new Map(); // user id -> {name, until (ms)}
    this.members = new Map(); // user id -> name: who is in the room now
    this.away = new Set(); // members whose status is away
  }
  newestSeq() {
    let newest = 0;
    for (const m of this.messages.values()) if (m.epoch === this.epoch && m.seq > newest) newest = m.seq;
    return newest;
  }
  /** The oldest message shown: where paging back continues. */
  oldest() {
    let oldest = null;
    for (const m of this.messages.values()) if (oldest === null || before(m, oldest)) oldest = m;
    return oldest;
  }
}

/** Whether message `a` comes before `b`: by epoch, then seq (pages reach earlier epochs). */
function before(a, b) {
  return a.epoch !== b.epoch ? a.epoch < b.epoch : a.seq < b.seq;
}

const state = {
  session: null, // {token, name, source: "dev"|"token"}
  user: null,
  conn: null,
  rooms: new Map(),
  active: null,
  drafts: new Map(), // room -> unsent text, saved on the server for every device
  editing: null, // {room, seq, id}: the message the composer is editing, if any
  // Files being uploaded or ready to attach: {room, name, fraction, stored, error, cancel}.
  uploads: [],
  // Where the page itself last put the log's scroll position: only a scroll
  // up from there (the user's) loads older messages.
  scrollTop: 0,
};

function saveSession() {
  const rooms = [...state.rooms.keys()];
  sessionStorage.setItem(SESSION, JSON.stringify({ ...state.session, rooms, active: state.active }));
}

function loadSession() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION));
  } catch {
    return null;
  }
}

// ---- sign-in ----------------------------------------------------------------

async function devLogin(name) {
  const response = await fetch("/api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ name }),
  });
  const reply = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(reply.code === "dev_login_disabled"
      ? "This server has no guest sign-in; use a token."
      : reply.message || `sign-in failed (${response.status})`);
  }
  return reply.token;
}

async function signInWithName(event) {
  event.preventDefault();
  const name = $("login-name").value.trim();
  if (!name) return;
  try {
    const token = await devLogin(name);
    start({ token, name, source: "dev" }, ["lobby"], "lobby");
  } catch (error) {
    $("login-error").textContent = error.message;
  }
}

function signInWithToken() {
  const token = $("login-token").value.trim();
  if (token) start({ token, source: "token" }, ["lobby"], "lobby");
}

function signOut(message = "") {
  if (state.conn) state.conn.close();
  state.conn = null;
  state.rooms.clear();
  state.active = null;
  sessionStorage.removeItem(SESSION);
  $("chat").hidden = true;
  $("signin").hidden = false;
  $("signout").hidden = true;
  $("away").hidden = true;
  $("me").hidden = true;
  $("login-error").textContent = message;
  setStatus({ state: "offline" });
}

// ---- connection ---------------------------------------------------------------

function start(session, rooms, active) {
  state.session = session;
  // A guest's token is renewed by signing in again under the same name;
  // a pasted token ends the session when it expires.
  const renew = session.source === "dev" ? renewGuestToken : null;
  state.conn = new Connection(session.token, renew);
  for (const name of rooms) state.rooms.set(name, new Room(name));
  state.active = active && state.rooms.has(active) ? active : rooms[0] || null;
  $("signin").hidden = true;
  $("chat").hidden = false;
  $("signout").hidden = false;
  $("away").hidden = false;
  const conn = state.conn;
  conn.addEventListener("status", (e) => setStatus(e.detail));
  conn.addEventListener("ready", () => {
    for (const name of state.rooms.keys()) conn.join(name);
  });
  conn.addEventListener("event", (e) => handle(e.detail));
  conn.addEventListener("rejected", (e) => signOut(`Signed out: ${e.detail.reason || "token refused"}`));
  conn.addEventListener("expired", () => signOut("Your token expired; sign in again."));
  saveSession();
  renderRooms();
  renderRoom();
  conn.open();
}

/** A new guest token for the signed-in name (the SDK asks before the old one expires). */
async function renewGuestToken() {
  state.session.token = await devLogin(state.session.name);
  saveSession();
  return state.session.token;
}

function setStatus({ state: s, node, attempt }) {
  const status = $("status");
  status.dataset.state = s;
  status.textContent = s === "connected" ? `connected · ${node}`
    : s === "reconnecting" ? `reconnecting… (attempt ${attempt})`
    : s;
  const live = s === "connected";
  $("message").disabled = !state.active;
  $("send").disabled = !state.active;
  $("composer").dataset.live = live;
}

function handle(event) {
  const room = event.room ? state.rooms.get(event.room) : null;
  switch (event.type) {
    case "welcome":
    case "authenticated":
      if (event.user) {
        state.user = event.user;
        $("me").textContent = event.user.name || event.user.id;
        $("me").hidden = false;
        state.conn.drafts();
      }
      break;
    case "dm_started":
    case "notification":
      // A direct conversation (started here, on another device, or by the other
      // user): it joins the room list; the message arrives with the room's history.
      if (!state.rooms.has(event.room)) {
        state.rooms.set(event.room, new Room(event.room));
        state.conn.join(event.room);
        saveSession();
        renderRooms();
        const who = event.by || event.message?.from;
        if (who?.id !== state.user?.id) notify(`Direct message from ${who?.name || who?.id}`);
      }
      break;
    case "drafts":
      state.drafts = new Map(event.drafts.map((d) => [d.room, d.text]));
      restoreDraft();
      break;
    case "draft":
      if (event.text) state.drafts.set(event.room, event.text);
      else state.drafts.delete(event.room);
      // Another device typed it: show it unless this one is being typed in.
      if (event.room === state.active && document.activeElement !== $("message")) restoreDraft(true);
      // Marks the composer when what it shows is what the server keeps.
      if (event.room === state.active && event.text === $("message").value) {
        $("message").dataset.draft = "saved";
      }
      break;
    case "joined":
      if (!room) break;
      if (!event.recovered && room.epoch !== null && room.messages.size > 0) {
        // The gap could not be filled: start over from the latest messages.
        room.messages.clear();
        room.more = true;
        room.gap = true;
      }
      room.epoch = event.epoch;
      room.readSeq = event.read_seq || 0;
      // The server's count, from the marker any of this user's devices left.
      if (room.name !== state.active || document.hidden) {
        room.unread = event.unread || 0;
        renderRooms();
      }
      if (room.name === state.active) renderRoom();
      markRead(room);
      state.conn.presence(room.name);
      break;
    case "members":
      if (!room) break;
      room.members = new Map(event.members.map((u) => [u.id, u.name || u.id]));
      room.away = new Set(event.members.filter((u) => u.status === "away").map((u) => u.id));
      if (room.name === state.active) renderOnline();
      break;
    case "status":
      if (!event.room) {
        $("away").setAttribute("aria-pressed", String(event.status === "away"));
        break;
      }
      if (!room) break;
      if (event.status === "away") room.away.add(event.user.id);
      else room.away.delete(event.user.id);
      if (room.name === state.active) renderOnline();
      break;
    case "edited":
    case "deleted":
    case "reaction":
      if (room && applyChange(room, event) && room.name === state.active) renderRoom("keep");
      break;
    case "mention":
      notify(`${event.message.from.name || event.message.from.id} mentioned you in #${event.room}`);
      break;
    case "presence":
      // Joins and leaves gathered over a quarter of a second; a join means
      // online until a status says otherwise.
      if (!room) break;
      for (const user of event.joins || []) {
        room.members.set(user.id, user.name || user.id);
        room.away.delete(user.id);
      }
      for (const user of event.leaves || []) {
        room.members.delete(user.id);
        room.away.delete(user.id);
      }
      if (room.name === state.active) renderOnline();
      break;
    case "receipt":
      // Another device of this user read the room: clear the count here too.
      if (room && event.user?.id === state.user?.id && event.seq > (room.readSeq || 0)) {
        room.readSeq = event.seq;
        if (room.newestSeq() <= event.seq && room.unread) {
          room.unread = 0;
          renderRooms();
        }
      }
      break;
    case "message":
      if (!room) break;
      // A message from someone ends their typing indicator.
      if (room.typing.delete(event.from?.id) && room.name === state.active) renderTyping();
      addMessages(room, [event], true);
      break;
    case "typing":
      if (!room || !event.user || event.user.id === state.user?.id) break;
      if (event.state === "stop") room.typing.delete(event.user.id);
      else {
        room.typing.set(event.user.id, {
          name: event.user.name || event.user.id,
          until: Date.now() + (event.expires_in_ms || 6000),
        });
      }
      if (room.name === state.active) renderTyping();
      break;
    case "history":
      if (!room) break;
      room.loadingOlder = false;
      room.more = event.more;
      addMessages(room, event.messages, false);
      break;
    case "sent":
      if (room && room.name === state.active) renderRoom("keep");
      break;
    case "reset":
      if (!room) break;
      room.epoch = event.epoch;
      room.gap = true;
      if (room.name === state.active) renderRoom();
      break;
    case "left":
      if (room && event.reason) dropRoom(room.name);
      break;
    case "error":
      if (event.ref?.startsWith("join:")) dropRoom(event.ref.slice(5));
      notify(event.message || event.code);
      break;
  }
}

// ---- rooms and messages ---------------------------------------------------------

function addMessages(room, messages, live) {
  let added = 0;
  for (const m of messages) {
    if (room.messages.has(m.id)) continue;
    // Live messages are of the room's current epoch; history pages say each one's.
    m.epoch ??= room.epoch;
    room.messages.set(m.id, m);
    added += 1;
    state.conn.seen(room.name, room.epoch, m.seq);
  }
  if (!added) return;
  room.messages = new Map([...room.messages.entries()].sort((a, b) => (before(a[1], b[1]) ? -1 : 1)));
  if (live && (room.name !== state.active || document.hidden)) {
    room.unread += added;
    renderRooms();
  }
  if (room.name === state.active) renderRoom(live ? "bottom" : "keep");
  markRead(room);
}

/** Tells the server the room is read up to its newest message, when it is on screen. */
function markRead(room) {
  if (!room || room.name !== state.active || document.hidden || !state.conn?.connected) return;
  const newest = room.newestSeq();
  if (newest > (room.readSeq || 0)) {
    room.readSeq = newest;
    state.conn.read(room.name, newest);
  }
}

function joinRoom(name) {
  if (!state.rooms.has(name)) {
    state.rooms.set(name, new Room(name));
    if (state.conn.connected) state.conn.join(name);
  }
  select(name);
}

function dropRoom(name) {
  state.rooms.delete(name);
  if (state.active === name) state.active = state.rooms.keys().next().value || null;
  saveSession();
  renderRooms();
  renderRoom();
}

function select(name) {
  state.active = name;
  const room = state.rooms.get(name);
  if (room) room.unread = 0;
  markRead(room);
  saveSession();
  renderRooms();
  renderRoom("bottom");
  renderTyping();
  renderOnline();
  $("message").value = "";
  restoreDraft();
  $("sidebar").classList.remove("open");
  $("menu").setAttribute("aria-expanded", "false");
  $("message").focus();
}

function renderRooms() {
  const list = $("rooms");
  list.replaceChildren();
  for (const room of state.rooms.values()) {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.room = room.name;
    button.setAttribute("aria-current", String(room.name === state.active));
    const label = document.createElement("span");
    label.textContent = `# ${room.name}`;
    button.append(label);
    if (room.unread > 0) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = String(room.unread);
      badge.setAttribute("aria-label", `${room.unread} unread`);
      button.append(badge);
    }
    button.addEventListener("click", () => select(room.name));
    item.append(button);
    list.append(item);
  }
}

function initials(name) {
  const words = name.trim().split(/\s+/).filter(Boolean);
  return (words.length > 1 ? words[0][0] + words[1][0] : name.slice(0, 2)).toUpperCase();
}

function colour(id) {
  let hash = 0;
  for (const c of id) hash = (hash * 31 + c.codePointAt(0)) >>> 0;
  return `hsl(${hash % 360} 55% 42%)`;
}

function messageItem(m) {
  const item = document.createElement("li");
  item.className = "message";
  item.dataset.id = m.id;
  item.dataset.seq = m.seq;
  const name = m.from.name || m.from.id;
  const avatar = document.createElement("div");
  avatar.className = "avatar";
  avatar.style.background = colour(m.from.id);
  avatar.setAttribute("aria-hidden", "true");
  if (m.from.avatar && /^https?:\/\//.test(m.from.avatar)) {
    const img = document.createElement("img");
    img.src = m.from.avatar;
    img.alt = "";
    img.onerror = () => img.replaceWith(document.createTextNode(initials(name)));
    avatar.append(img);
  } else {
    avatar.textContent = initials(name);
  }
  const content = document.createElement("div");
  const meta = document.createElement("div");
  meta.className = "meta";
  const author = document.createElement("span");
  author.className = "author";
  author.textContent = name;
  const time = document.createElement("time");
  time.className = "time";
  const at = new Date(m.ts);
  time.dateTime = at.toISOString();
  time.title = at.toLocaleString();
  time.textContent = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  meta.append(author, time);
  const body = document.createElement("p");
  body.className = "body";
  body.textContent = m.body;
  content.append(meta, body);
  if (m.attachments?.length && !m.deleted && state.session) {
    content.append(attachmentsView(m.attachments, state.session.token));
  }
  item.append(avatar, content);
  if (m.seq) decorate(item, m, changeActions);
  return item;
}

/** What the controls on a message do (see changes.js). */
const changeActions = {
  get me() {
    return state.user?.id;
  },
  react(m, emoji, add) {
    state.conn.change({ type: add ? "react" : "unreact", room: m.room, seq: m.seq, id: m.id, emoji });
  },
  edit(m) {
    state.editing = { room: m.room, seq: m.seq, id: m.id };
    $("composer").dataset.editing = m.seq;
    $("message").value = m.body;
    $("message").focus();
  },
  remove(m) {
    state.conn.change({ type: "delete", room: m.room, seq: m.seq, id: m.id });
  },
};

function pendingItems(roomName) {
  const items = [];
  for (const [id, { room, body }] of state.conn?.pending ?? []) {
    if (room !== roomName) continue;
    const item = messageItem({ id, seq: "", ts: Date.now(), body, from: state.user || { id: "me" } });
    item.classList.add("pending");
    item.querySelector(".time").textContent = "sending…";
    items.push(item);
  }
  return items;
}

function renderRoom(scroll = "keep") {
  const room = state.rooms.get(state.active);
  $("room-title").textContent = room ? `# ${room.name}` : "No room";
  $("leave").hidden = !room;
  $("message").disabled = !room;
  $("send").disabled = !room;
  $("attach").disabled = !room;
  renderUploads();
  const log = $("log");
  const fromBottom = log.scrollHeight - log.scrollTop;
  const list = $("messages");
  list.replaceChildren();
  const older = $("older");
  older.hidden = !room;
  if (!room) return;
  const oldest = room.oldest();
  older.textContent = room.loadingOlder ? "Loading older messages…"
    : room.more && oldest !== null ? "Scroll up for older messages" : "Start of the room";
  if (room.gap) {
    const gap = document.createElement("li");
    gap.className = "gap";
    gap.textContent = "Some messages could not be recovered; scroll up for history.";
    list.append(gap);
  }
  for (const m of room.messages.values()) list.append(messageItem(m));
  list.append(...pendingItems(room.name).filter((item) => !room.messages.has(item.dataset.id)));
  if (scroll === "bottom") log.scrollTop = log.scrollHeight;
  else log.scrollTop = log.scrollHeight - fromBottom;
  state.scrollTop = log.scrollTop;
}

/** "3 online" beside the active room's title; the names in its tooltip. */
function renderOnline() {
  const room = state.rooms.get(state.active);
  const online = $("online");
  const away = room ? [...room.away].filter((id) => room.members.has(id)).length : 0;
  online.textContent = room && room.members.size
    ? `${room.members.size} online${away ? ` · ${away} away` : ""}` : "";
  online.title = room
    ? [...room.members].map(([id, name]) => (room.away.has(id) ? `${name} (away)` : name)).join(", ")
    : "";
}

/** "Ada is typing…" under the log of the active room; lapsed entries are dropped. */
function renderTyping() {
  const room = state.rooms.get(state.active);
  const now = Date.now();
  const names = [];
  let next = Infinity;
  for (const [id, who] of room ? room.typing : []) {
    if (who.until <= now) room.typing.delete(id);
    else {
      names.push(who.name);
      next = Math.min(next, who.until);
    }
  }
  $("typing").textContent = names.length === 0 ? ""
    : names.length === 1 ? `${names[0]} is typing…`
    : names.length <= 3 ? `${names.slice(0, -1).join(", ")} and ${names.at(-1)} are typing…`
    : "Several people are typing…";
  clearTimeout(renderTyping.timer);
  if (next !== Infinity) renderTyping.timer = setTimeout(renderTyping, next - now + 10);
}

/** Puts the active room's saved draft into the composer (when it is empty, or `force`). */
function restoreDraft(force = false) {
  const input = $("message");
  if (!state.active || (!force && input.value)) return;
  input.value = state.drafts.get(state.active) || "";
}

/** Saves the composer's text as the active room's draft, a moment after typing stops. */
function saveDraft() {
  clearTimeout(saveDraft.timer);
  // Text being edited is an existing message, not unsent words.
  if (state.editing) return;
  const room = state.active;
  const text = $("message").value;
  saveDraft.timer = setTimeout(() => {
    if ((state.drafts.get(room) || "") === text) return;
    if (text) state.drafts.set(room, text);
    else state.drafts.delete(room);
    state.conn?.draft(room, text);
  }, 800);
}

/** Tells the active room about this user's typing: start (repeated while typing) or stop. */
function typed() {
  const typing = $("message").value.trim() !== "";
  const now = Date.now();
  if (typing && state.active && now - (typed.sentAt || 0) >= TYPING_REPEAT_MS) {
    typed.sentAt = now;
    typed.room = state.active;
    state.conn?.typing(state.active, "start");
  } else if (!typing && typed.room) {
    state.conn?.typing(typed.room, "stop");
    typed.room = null;
    typed.sentAt = 0;
  }
}

function loadOlder() {
  const room = state.rooms.get(state.active);
  if (!room || !room.more || room.loadingOlder || !state.conn?.connected) return;
  const oldest = room.oldest();
  if (oldest === null) {
    room.more = false;
    return renderRoom();
  }
  room.loadingOlder = true;
  state.conn.history(room.name, oldest).catch((error) => {
    // Refused (the archive is down, say): the next scroll asks again.
    room.loadingOlder = false;
    notify(error?.message || "older messages could not be loaded");
    renderRoom();
  });
  renderRoom();
}

function notify(text) {
  const notice = $("notice");
  notice.textContent = text;
  clearTimeout(notify.timer);
  notify.timer = setTimeout(() => (notice.textContent = ""), 5000);
}

// ---- wiring ----------------------------------------------------------------------

function sendMessage(event) {
  event?.preventDefault();
  const input = $("message");
  const body = input.value.trim();
  const ready = state.uploads.filter((u) => u.room === state.active && u.stored);
  if ((!body && !ready.length) || !state.active) return;
  if (state.editing) {
    if (!body) return;
    // The composer was editing a message: change it instead of sending a new one.
    state.conn.change({ type: "edit", ...state.editing, body });
    state.editing = null;
    delete $("composer").dataset.editing;
    input.value = "";
    return;
  }
  state.conn.post(state.active, body, mentionsIn(body), ready.map((u) => u.stored.id));
  state.uploads = state.uploads.filter((u) => !ready.includes(u));
  renderUploads();
  input.value = "";
  // The message itself ends the typing indicator (the server forgets the throttle too).
  typed.room = null;
  typed.sentAt = 0;
  clearTimeout(saveDraft.timer);
  if (state.drafts.delete(state.active)) state.conn.draft(state.active, "");
  renderRoom("bottom");
}

/** Uploads `files` to the active room; each shows its progress until it is sent. */
function startUploads(files) {
  const room = state.active;
  if (!room || !state.session) return;
  for (const file of files) {
    const entry = { room, name: file.name || "pasted image", fraction: 0, stored: null, error: null };
    const { done, cancel } = upload(room, file, state.session.token, (fraction) => {
      entry.fraction = fraction;
      renderUploads();
    });
    entry.cancel = cancel;
    state.uploads.push(entry);
    done
      .then((stored) => (entry.stored = stored))
      .catch((error) => {
        if (error.message === "cancelled") state.uploads = state.uploads.filter((u) => u !== entry);
        else entry.error = error.message;
      })
      .finally(renderUploads);
  }
  renderUploads();
}

/** The active room's uploads above the composer: progress, ready, or why not. */
function renderUploads() {
  const list = $("uploads");
  list.replaceChildren();
  for (const entry of state.uploads.filter((u) => u.room === state.active)) {
    const item = document.createElement("li");
    item.className = "upload";
    item.dataset.state = entry.error ? "failed" : entry.stored ? "ready" : "uploading";
    const name = document.createElement("span");
    name.className = "upload-name";
    name.textContent = entry.name;
    const bar = document.createElement("progress");
    bar.max = 1;
    bar.value = entry.stored ? 1 : entry.fraction;
    const status = document.createElement("span");
    status.className = "upload-status";
    status.textContent = entry.error || (entry.stored ? `ready · ${humanSize(entry.stored.size)}` : `${Math.round(entry.fraction * 100)}%`);
    const remove = document.createElement("button");
    remove.type = "button";
    remove.className = "upload-cancel";
    remove.textContent = "✕";
    remove.setAttribute("aria-label", entry.stored || entry.error ? `Remove ${entry.name}` : `Cancel ${entry.name}`);
    remove.addEventListener("click", () => {
      if (!entry.stored && !entry.error) return entry.cancel();
      state.uploads = state.uploads.filter((u) => u !== entry);
      renderUploads();
    });
    item.append(name, bar, status, remove);
    list.append(item);
  }
  list.hidden = !list.children.length;
}

function wire() {
  $("attach").addEventListener("click", () => $("file-input").click());
  $("file-input").addEventListener("change", () => {
    startUploads([...$("file-input").files]);
    $("file-input").value = "";
  });
  for (const target of [$("log"), $("composer")]) {
    target.addEventListener("dragover", (event) => event.preventDefault());
    target.addEventListener("drop", (event) => {
      event.preventDefault();
      if (event.dataTransfer?.files.length) startUploads([...event.dataTransfer.files]);
    });
  }
  $("message").addEventListener("paste", (event) => {
    const files = [...(event.clipboardData?.files ?? [])];
    if (!files.length) return;
    event.preventDefault();
    startUploads(files);
  });
  $("login-form").addEventListener("submit", signInWithName);
  $("token-button").addEventListener("click", signInWithToken);
  $("signout").addEventListener("click", () => signOut());
  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const input = $("join-room");
    if (!input.checkValidity()) return input.reportValidity();
    joinRoom(input.value.trim());
    input.value = "";
  });
  $("leave").addEventListener("click", () => {
    if (!state.active) return;
    state.conn.leave(state.active);
    dropRoom(state.active);
  });
  $("composer").addEventListener("submit", sendMessage);
  $("away").addEventListener("click", () => {
    const away = $("away").getAttribute("aria-pressed") !== "true";
    state.conn?.setPresence(away ? "away" : "online");
  });
  $("message").addEventListener("input", () => {
    delete $("message").dataset.draft;
    typed();
    saveDraft();
  });
  $("message").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) sendMessage(event);
  });
  $("log").addEventListener("scroll", () => {
    // Near the top after scrolling up. The page's own scrolls (to the bottom
    // as a join's history streams in, where the top can still be near while
    // the log barely overflows) never load older messages.
    const top = $("log").scrollTop;
    const up = top < state.scrollTop;
    state.scrollTop = top;
    if (up && top < 40) loadOlder();
  });
  $("menu").addEventListener("click", () => {
    const open = $("sidebar").classList.toggle("open");
    $("menu").setAttribute("aria-expanded", String(open));
  });
  document.addEventListener("visibilitychange", () => {
    const room = state.rooms.get(state.active);
    if (!document.hidden && room && room.unread) {
      room.unread = 0;
      renderRooms();
    }
    markRead(room);
  });
  wireSearch({ state, joinRoom, addMessages, renderRoom, notify });
  const saved = loadSession();
  if (saved?.token) start(saved, saved.rooms?.length ? saved.rooms : ["lobby"], saved.active);
}

wire();
