// Live cluster view: polls /api/cluster every second and derives rates from
// the nodes' counters. All values are put into the page with textContent.

const $ = (id) => document.getElementById(id);
const POLL_MS = 1000;
const KEEP = 120;

const previous = new Map(); // node id -> {at, totals}
const series = { connections: [], out: [] };

function rate(node) {
  const before = previous.get(node.id);
  previous.set(node.id, { at: node.heartbeat_at, totals: node.totals });
  if (!before || node.heartbeat_at <= before.at || !node.totals) return null;
  const seconds = (node.heartbeat_at - before.at) / 1000;
  return {
    in: Math.max(0, node.totals.messages_received - before.totals.messages_received) / seconds,
    out: Math.max(0, node.totals.frames_delivered - before.totals.frames_delivered) / seconds,
  };
}

const rates = new Map();

function fmt(value, digits = 0) {
  return value === null || value === undefined ? "–" : Number(value).toLocaleString(undefined, {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  });
}

function uptime(startedAt) {
  const s = Math.max(0, Math.floor((Date.now() - startedAt) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h`;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function render(view) {
  let connections = 0, inRate = 0, outRate = 0;
  const rows = [];
  for (const node of view.nodes) {
    const r = rate(node) ?? rates.get(node.id) ?? null;
    if (r) rates.set(node.id, r);
    connections += node.connections;
    inRate += r?.in ?? 0;
    outRate += r?.out ?? 0;
    const stateText = node.draining ? "draining" : node.ready ? "ready" : "not ready";
    const stateClass = node.draining ? "state-draining" : node.ready ? "state-ready" : "state-down";
    const row = document.createElement("tr");
    row.dataset.node = node.id;
    const name = document.createElement("th");
    name.scope = "row";
    name.textContent = node.id + (node.id === view.node ? " (this)" : "");
    row.append(
      name,
      cell(stateText, stateClass),
      cell(fmt(node.connections)),
      cell(fmt(node.rooms)),
      cell(fmt(r?.in, 1)),
      cell(fmt(r?.out, 1)),
      cell(fmt(node.recent?.fanout_mean, 1)),
      cell(node.recent?.delivery_p50_ms == null ? "–" : `${fmt(node.recent.delivery_p50_ms, 2)} ms`),
      cell(node.recent?.delivery_p99_ms == null ? "–" : `${fmt(node.recent.delivery_p99_ms, 2)} ms`),
      cell(node.version),
      cell(uptime(node.started_at)),
    );
    rows.push(row);
  }
  for (const id of [...rates.keys()]) if (!view.nodes.some((n) => n.id === id)) rates.delete(id);
  $("nodes").replaceChildren(...rows);
  $("t-nodes").textContent = fmt(view.nodes.length);
  $("t-connections").textContent = fmt(connections);
  $("t-in").textContent = fmt(inRate, 1);
  $("t-out").textContent = fmt(outRate, 1);
  push(series.connections, connections);
  push(series.out, outRate);
  chart($("c-connections"), series.connections);
  chart($("c-out"), series.out);
  const status = $("status");
  status.dataset.state = view.fresh ? "connected" : "reconnecting";
  status.textContent = `${view.fresh ? "live" : "stale"} · ${new Date().toLocaleTimeString()}`;
}

function push(list, value) {
  list.push(value);
  if (list.length > KEEP) list.shift();
}

function chart(svg, values) {
  const max = Math.max(1, ...values);
  const step = 300 / (KEEP - 1);
  const offset = KEEP - values.length;
  const points = values.map((v, i) => `${((offset + i) * step).toFixed(1)},${(78 - (v / max) * 74).toFixed(1)}`);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points.join(" "));
  svg.replaceChildren(line);
}

async function poll() {
  try {
    const response = await fetch("/api/cluster", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
  } catch (error) {
    const status = $("status");
    status.dataset.state = "offline";
    status.textContent = `unreachable (${error.message})`;
  }
  setTimeout(poll, POLL_MS);
}

poll();
