// Search: a box in the sidebar searches the server's archive (the rooms this
// token may read) and lists the hits; choosing one opens its room, pages back
// to the message and shows it, highlighted. User content goes in as text only.

/** How far back a jump pages (pages of 50) before it gives up. */
const PAGES_TO_FIND = 40;

/** `app`: {state, joinRoom, addMessages, renderRoom, notify} of app.js. */
export function wireSearch(app) {
  const $ = (id) => document.getElementById(id);
  $("search-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const q = $("search-q").value.trim();
    if (!q || !app.state.conn) return;
    const list = $("search-results");
    list.hidden = false;
    list.replaceChildren(note("Searching…"));
    try {
      const { hits } = await app.state.conn.search(q);
      list.replaceChildren(...(hits.length ? hits.map((hit) => hitItem(hit, app)) : [note("Nothing found")]));
    } catch (error) {
      list.replaceChildren(note(error?.message || "The search failed"));
    }
  });
}

function note(text) {
  const item = document.createElement("li");
  item.className = "search-note";
  item.textContent = text;
  return item;
}

function hitItem(hit, app) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.className = "search-hit";
  const where = document.createElement("span");
  where.className = "search-where";
  const from = hit.message.from;
  where.textContent = `#${hit.message.room} · ${from.name || from.id}`;
  const snippet = document.createElement("span");
  snippet.className = "search-snippet";
  for (const part of hit.snippet) {
    const piece = document.createElement(part.hit ? "mark" : "span");
    piece.textContent = part.text;
    snippet.append(piece);
  }
  button.append(where, snippet);
  button.addEventListener("click", () => jump(hit.message, app).catch((error) => app.notify(error?.message || "cannot show it")));
  item.append(button);
  return item;
}

/** Opens the message's room and pages back until the message is there. */
async function jump(message, app) {
  const { state } = app;
  app.joinRoom(message.room);
  await state.conn.ready(message.room);
  const room = state.rooms.get(message.room);
  for (let page = 0; room && !room.messages.has(message.id) && page < PAGES_TO_FIND; page += 1) {
    const oldest = room.oldest();
    if (!oldest || !room.more) break;
    const older = await state.conn.history(room.name, oldest);
    room.more = older.more;
    app.addMessages(room, older.messages, false);
  }
  app.renderRoom();
  const shown = document.querySelector(`#messages li[data-id="${CSS.escape(message.id)}"]`);
  if (!shown) return app.notify("That message is too far back to show here");
  for (const old of document.querySelectorAll("#messages li.found")) old.classList.remove("found");
  shown.classList.add("found");
  shown.scrollIntoView({ block: "center" });
}
