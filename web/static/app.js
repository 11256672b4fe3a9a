// maskstream live page: one Server-Sent Events stream (api/live) brings pictures, source states and events.
// Every URL is relative, so the page works under a reverse proxy's path prefix.
"use strict";

const token = new URLSearchParams(location.search).get("token");
const MAX_EVENTS = 300; // rows kept in the feed
const cards = new Map(); // source id -> {root, img, state, reason, numbers}
let highlight = null; // {source, track}
let stream = null;
let lastSeq = 0;

function api(path, params = {}) {
  const query = new URLSearchParams(params);
  if (token) query.set("token", token);
  const text = query.toString();
  return "api/" + path + (text ? "?" + text : "");
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function card(source) {
  let entry = cards.get(source.id);
  if (entry) return entry;
  const root = el("article", "source");
  root.dataset.source = source.id;
  const title = el("h2");
  const name = el("span", "name", source.id);
  const state = el("span", "state");
  title.append(name, state);
  const url = el("div", "url", source.url || "");
  const img = el("img");
  img.alt = "live view of " + source.id;
  img.dataset.seq = "0";
  const reason = el("div", "reason");
  const numbers = el("div", "numbers");
  root.append(title, url, img, reason, numbers);
  document.getElementById("sources").append(root);
  const option = el("option", "", source.id);
  option.value = source.id;
  document.getElementById("filter-source").append(option);
  entry = { root, img, state, reason, numbers };
  cards.set(source.id, entry);
  return entry;
}

function fmt(value, digits, unit) {
  return value === null || value === undefined ? "–" : value.toFixed(digits) + (unit || "");
}

function showSources(message) {
  const status = message.status;
  document.getElementById("status").textContent =
    `${status.ready ? "ready" : "not ready: " + status.ready_reason} · ${status.frames} frames · up ${Math.round(status.uptime_s)} s · ${status.viewers} viewer(s)`;
  const typeSelect = document.getElementById("filter-type");
  if (typeSelect.options.length === 1) {
    for (const kind of status.event_types) {
      const option = el("option", "", kind);
      option.value = kind;
      typeSelect.append(option);
    }
  }
  for (const source of message.sources) {
    const entry = card(source);
    entry.root.dataset.state = source.state;
    entry.state.textContent = source.state;
    entry.state.className = "state " + source.state;
    entry.reason.textContent = source.reason || "";
    entry.numbers.replaceChildren(
      ...[
        ["fps", fmt(source.fps, 1)],
        ["drops", String(source.drops)],
        ["latency p50", fmt(source.latency_p50_s, 2, " s")],
        ["p99", fmt(source.latency_p99_s, 2, " s")],
        ["tracks", source.active_tracks === null ? "–" : String(source.active_tracks)],
        ["events/s", fmt(source.events_per_s, 1)],
      ].flatMap(([label, value]) => [label + " ", el("b", "", value), "  "])
    );
  }
}

function showFrame(message) {
  const entry = cards.get(message.source);
  if (!entry) return;
  entry.img.src = "data:image/jpeg;base64," + message.jpeg;
  entry.img.dataset.seq = String(message.seq);
  entry.img.dataset.frameIndex = String(message.frame_index);
  entry.img.dataset.highlight = message.highlight === null ? "" : String(message.highlight);
}

function passesFilter(row) {
  const source = document.getElementById("filter-source").value;
  const kind = document.getElementById("filter-type").value;
  return (!source || row.dataset.source === source) && (!kind || row.dataset.type === kind);
}

function showEvent(event) {
  lastSeq = Math.max(lastSeq, event.seq);
  const row = el("li");
  row.dataset.type = event.type;
  row.dataset.source = event.source_id;
  row.dataset.eventId = event.event_id;
  row.dataset.receivedAt = String(Date.now());
  const time = new Date(event.capture_time * 1000).toLocaleTimeString();
  row.append(el("span", "t", time + " "), el("span", "kind", event.type), " " + event.source_id);
  if (event.track_id !== undefined) {
    row.classList.add("track");
    row.dataset.track = String(event.track_id);
    row.append(` #${event.track_id} ${event.class_name} ${fmt(event.score, 2)}`);
    row.title = "click: highlight this track's mask";
    row.addEventListener("click", () => setHighlight(event.source_id, event.track_id, row));
  } else if (event.reason) {
    row.append(" " + event.reason);
  }
  if (!passesFilter(row)) row.classList.add("hidden");
  const list = document.getElementById("events");
  list.prepend(row);
  while (list.children.length > MAX_EVENTS) list.lastChild.remove();
}

function setHighlight(source, track, row) {
  document.querySelectorAll("#events li.selected").forEach((node) => node.classList.remove("selected"));
  const same = highlight && highlight.source === source && highlight.track === track;
  highlight = same ? null : { source, track };
  if (highlight && row) row.classList.add("selected");
  document.getElementById("highlight").hidden = !highlight;
  document.getElementById("highlight-what").textContent = highlight ? `${source} track #${track}` : "";
  connect();
}

function connect() {
  if (stream) stream.close();
  const params = {};
  if (lastSeq) params.since = String(lastSeq);
  if (highlight) params.highlight = `${highlight.source}:${highlight.track}`;
  stream = new EventSource(api("live", params));
  stream.addEventListener("sources", (e) => showSources(JSON.parse(e.data)));
  stream.addEventListener("frame", (e) => showFrame(JSON.parse(e.data)));
  stream.addEventListener("event", (e) => showEvent(JSON.parse(e.data)));
  stream.addEventListener("missed", (e) => {
    const row = el("li", "t", `(${JSON.parse(e.data).count} events not shown: too many at once)`);
    document.getElementById("events").prepend(row);
  });
  stream.onerror = () => {
    document.getElementById("status").textContent = "disconnected from maskstream, retrying…";
  };
}

for (const id of ["filter-source", "filter-type"]) {
  document.getElementById(id).addEventListener("change", () => {
    for (const row of document.querySelectorAll("#events li[data-type]")) row.classList.toggle("hidden", !passesFilter(row));
  });
}
document.getElementById("highlight-clear").addEventListener("click", () => {
  if (highlight) setHighlight(highlight.source, highlight.track, null);
});
connect();
