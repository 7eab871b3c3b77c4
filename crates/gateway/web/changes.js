// Edits, deletes and reactions in the chat client: the server's change events
// applied to the messages a room keeps, and the controls on each message. All
// user content goes into the page with textContent, never as HTML.

/** The reaction offered on every message with one click. */
export const QUICK_REACTION = "👍";

/** Applies an `edited`, `deleted` or `reaction` event to the message it targets; true when the room has it. */
export function applyChange(room, event) {
  const m = [...room.messages.values()].find((x) => x.seq === event.target);
  if (!m) return false;
  if (event.type === "edited") {
    m.body = event.body;
    m.edited = event.ts;
  } else if (event.type === "deleted") {
    m.body = "";
    m.deleted = true;
    m.reactions = [];
    m.attachments = [];
  } else {
    const reactions = m.reactions || (m.reactions = []);
    let r = reactions.find((x) => x.emoji === event.emoji);
    if (event.action === "add") {
      if (!r) reactions.push((r = { emoji: event.emoji, count: 0, users: [] }));
      if (!r.users.includes(event.user.id)) r.users.push(event.user.id);
    } else if (r) {
      r.users = r.users.filter((u) => u !== event.user.id);
    }
    if (r) r.count = r.users.length;
    m.reactions = reactions.filter((x) => x.count > 0);
  }
  return true;
}

function button(className, text, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

/**
 * Adds to a rendered message its edited mark or tombstone, its reactions, and
 * the controls: react (anyone), edit and delete (the sender).
 * `actions`: {me, react(m, emoji, add), edit(m), remove(m)}.
 */
export function decorate(item, m, actions) {
  const content = item.lastElementChild;
  const body = item.querySelector(".body");
  if (m.deleted) {
    item.classList.add("deleted");
    body.textContent = "This message was deleted.";
    return;
  }
  if (m.edited) {
    const mark = document.createElement("span");
    mark.className = "edited";
    mark.textContent = "(edited)";
    mark.title = new Date(m.edited).toLocaleString();
    item.querySelector(".meta").append(mark);
  }
  const bar = document.createElement("div");
  bar.className = "reactions";
  const mine = (r) => r.users.includes(actions.me);
  for (const r of m.reactions || []) {
    const chip = button("reaction", `${r.emoji} ${r.count}`, `${r.emoji} from ${r.users.join(", ")}`,
      () => actions.react(m, r.emoji, !mine(r)));
    chip.dataset.emoji = r.emoji;
    chip.title = r.users.join(", ");
    chip.setAttribute("aria-pressed", String(mine(r)));
    bar.append(chip);
  }
  if (!(m.reactions || []).some((r) => r.emoji === QUICK_REACTION)) {
    bar.append(button("add-reaction", `+${QUICK_REACTION}`, `React with ${QUICK_REACTION}`,
      () => actions.react(m, QUICK_REACTION, true)));
  }
  if (m.from.id === actions.me) {
    bar.append(button("edit", "Edit", "Edit this message", () => actions.edit(m)));
    bar.append(button("delete", "Delete", "Delete this message", () => actions.remove(m)));
  }
  content.append(bar);
}

/** The user ids a text mentions: `@id` words. */
export function mentionsIn(text) {
  return [...new Set([...text.matchAll(/(?:^|\s)@([A-Za-z0-9_.:=+-]{1,128})/g)].map((x) => x[1]))];
}
