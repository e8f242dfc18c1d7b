// The live view: plain JavaScript, no build step. Reads the labels from /v1/models, the sources from /v1/state
// (polled for status), events from WS /v1/stream, frames from /v1/view/frames/{source} (only while the page is
// visible). With a token, the page was opened as /?token=T: every request sends it in the Authorization header
// (the websocket, which cannot, as ?token=).
"use strict";

const token = new URLSearchParams(location.search).get("token");
const authHeaders = token ? { Authorization: `Bearer ${token}` } : {};
const HISTORY_S = 60; // seconds of label probabilities per track chart
const MAX_EVENTS = 15;
const STATE_POLL_MS = 1000;
// Same palette as service/live/latest_frames.py, so a box on the frame and its card share a colour.
const TRACK_COLOURS = ["#3cb44b", "#f58230", "#0082c8", "#911eb4", "#dc143c", "#ffd200", "#46f0f0", "#f000c3"];
const LABEL_COLOURS = ["#e6194b", "#3cb44b", "#ffe119", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
  "#bfef45", "#469990", "#9a6324", "#800000"];

const view = { labels: [], clock: 0, sources: new Map() };
// Lost events, from the stream's seq numbers (the same rule as client/gaps.py): per source the last seq received;
// a jump, or a heartbeat's last_seq ahead of it, counts the events in between as missed.
const seqs = { last: new Map(), missed: 0 };

function advanceSeq(source, seq, expectedBefore) {
  const last = seqs.last.get(source);
  if (last === undefined || seq < last) { seqs.last.set(source, seq); return 0; }  // first sight, or a restart
  if (seq === last) return 0;
  const lost = expectedBefore - last;
  seqs.last.set(source, seq);
  return lost;
}

function countGaps(event) {
  if (typeof event.seq !== "number") return;
  let lost = advanceSeq(event.source, event.seq, event.seq - 1);
  if (event.type === "heartbeat") {
    for (const [source, published] of Object.entries(event.last_seq || {})) lost += advanceSeq(source, published, published);
  }
  if (!lost) return;
  seqs.missed += lost;
  const gaps = $("#gaps");
  gaps.hidden = false;
  gaps.textContent = `${seqs.missed} event${seqs.missed === 1 ? "" : "s"} missed`;
}

const $ = (selector, root = document) => root.querySelector(selector);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const fmt = (x, digits = 2) => (typeof x === "number" ? x.toFixed(digits) : "–");
const trackColour = (id) => TRACK_COLOURS[id % TRACK_COLOURS.length];
const labelColour = (labels, label) => LABEL_COLOURS[Math.max(0, labels.indexOf(label)) % LABEL_COLOURS.length];

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders, ...(options.headers || {}) } });
  if (!response.ok && response.status !== 202) {
    let detail = response.statusText;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(`${path}: ${response.status} ${detail}`);
  }
  return response;
}

function showError(message) {
  const el = $("#error");
  el.textContent = message;
  el.hidden = !message;
}

function withToken(href) {
  return token ? `${href}?token=${encodeURIComponent(token)}` : href;
}

// ---- charts: label probabilities over time, one line per label --------------------------------------------------

function drawChart(canvas, points, labels, tMin, tMax) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  const pad = { left: 26, right: 4, top: 4, bottom: 14 };
  const x = (t) => pad.left + ((t - tMin) / Math.max(1e-6, tMax - tMin)) * (width - pad.left - pad.right);
  const y = (p) => pad.top + (1 - p) * (height - pad.top - pad.bottom);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "10px sans-serif";
  ctx.fillStyle = "#666";
  ctx.strokeStyle = "#ddd";
  ctx.lineWidth = 1;
  for (const p of [0, 0.5, 1]) {
    ctx.beginPath();
    ctx.moveTo(pad.left, y(p));
    ctx.lineTo(width - pad.right, y(p));
    ctx.stroke();
    ctx.fillText(p.toFixed(1), 2, y(p) + 3);
  }
  ctx.fillText(`${fmt(tMin, 0)} s`, pad.left, height - 2);
  const right = `${fmt(tMax, 0)} s`;
  ctx.fillText(right, width - pad.right - ctx.measureText(right).width, height - 2);
  ctx.lineWidth = 1.5;
  for (const label of labels) {
    const visible = points.filter((point) => point.t >= tMin && point.probs[label] !== undefined);
    if (!visible.length) continue;
    ctx.strokeStyle = labelColour(labels, label);
    ctx.beginPath();
    visible.forEach((point, i) => {
      const px = x(point.t), py = y(point.probs[label]);
      if (i === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    });
    ctx.stroke();
    if (visible.length === 1) ctx.fillRect(x(visible[0].t) - 2, y(visible[0].probs[label]) - 2, 4, 4);
  }
}

function renderLegend(el, labels) {
  el.replaceChildren(...labels.map((label) => {
    const item = document.createElement("li");
    item.textContent = label;
    item.style.setProperty("--colour", labelColour(labels, label));
    return item;
  }));
}

// ---- live sources ------------------------------------------------------------------------------------------------

function addSource(name) {
  const el = $("#source-template").content.firstElementChild.cloneNode(true);
  el.dataset.source = name;
  $(".source-name", el).textContent = name;
  $("#sources").append(el);
  const source = { name, el, tracks: new Map(), events: [], frameUrl: null };
  view.sources.set(name, source);
  frameLoop(source);
  return source;
}

// One card per person (person_id: the same across their tracks, so their history goes on when they come back;
// the track id where the service sends none), kept while its history reaches into the last HISTORY_S.
const personOf = (item) => item.person_id ?? item.track_id;

function trackCard(source, id, trackId = id) {
  let track = source.tracks.get(id);
  if (!track) {
    const el = $("#track-template").content.firstElementChild.cloneNode(true);
    el.dataset.personId = id;
    el.style.setProperty("--colour", trackColour(trackId));
    $(".tracks", source.el).append(el);
    track = { id, el, history: [], label: null, confidence: null, uncertain: null, looking: null };
    source.tracks.set(id, track);
  }
  track.el.dataset.trackId = trackId;
  $(".track-id", track.el).textContent = id === trackId ? `#${id}` : `#${id} (track ${trackId})`;
  return track;
}

function renderTrack(track) {
  $(".label", track.el).textContent = track.label || "…";
  $(".confidence", track.el).textContent = track.label ? fmt(track.confidence) : "";
  const notes = [];
  if (track.looking === true) notes.push("looking at you");
  if (track.looking === false) notes.push("looking away");
  if (track.uncertain) notes.push(`uncertain: ${track.uncertain.replace("_", " ")}`);
  $(".face-notes", track.el).textContent = notes.join(" · ");
  track.el.classList.toggle("uncertain", Boolean(track.uncertain));
  track.el.dataset.points = track.history.length;
  // The last minute of the service clock (before a minute has passed: all of it).
  const tMax = Math.max(view.clock, 10);
  drawChart($("canvas", track.el), track.history, view.labels, Math.max(0, tMax - HISTORY_S), tMax);
}

function renderTracks(source) {
  $(".nobody", source.el).hidden = source.tracks.size > 0;
  for (const track of source.tracks.values()) renderTrack(track);
}

function renderStatus(source, s) {
  const status = $(".source-status", source.el);
  status.textContent = s.status;
  status.dataset.status = s.status;
  const parts = [`${s.kind}`, `${fmt(s.fps_processed, 1)} fps`, `frames read ${s.frames_read}`,
    `sampled ${s.frames_sampled}`, `dropped ${s.frames_dropped}`, `reconnects ${s.reconnects}`];
  if (s.last_error) parts.push(`last error: ${s.last_error}`);
  $(".source-figures", source.el).textContent = parts.join(" · ");
}

function applyState(state) {
  if (typeof state.t === "number") view.clock = Math.max(view.clock, state.t);
  const sources = state.sources || {};
  $("#no-sources").hidden = Object.keys(sources).length > 0;
  for (const [name, s] of Object.entries(sources)) {
    const source = view.sources.get(name) || addSource(name);
    renderStatus(source, s);
    const inView = new Set();
    for (const t of s.tracks || []) {
      inView.add(personOf(t));
      const track = trackCard(source, personOf(t), t.track_id);
      track.el.classList.remove("lost");
      track.looking = t.looking ?? null;
      track.uncertain = t.uncertain_reason ?? null;
      if (t.label) {
        track.label = t.label;
        track.confidence = t.confidence;
        if (!track.history.length && t.probs) track.history.push({ t: t.last_seen, probs: t.probs });
      }
    }
    for (const [id, track] of source.tracks) {
      if (inView.has(id)) continue;
      track.el.classList.add("lost");  // gone for now: the card (and its history) waits for the person's return
      const newest = track.history.length ? track.history[track.history.length - 1].t : -Infinity;
      if (newest < view.clock - HISTORY_S) { track.el.remove(); source.tracks.delete(id); }
    }
    renderTracks(source);
  }
}

async function pollState() {
  for (;;) {
    try {
      applyState(await (await api("/v1/state")).json());
    } catch (error) {
      showError(`state: ${error.message}`);
    }
    await sleep(STATE_POLL_MS);
  }
}

function describeEvent(event) {
  const who = event.track_id === undefined ? "" : personOf(event) === event.track_id ? `#${event.track_id} `
    : `#${personOf(event)} (track ${event.track_id}) `;
  const back = event.type === "track_new" && event.seen_before ? " (seen before)" : "";
  const t = event.t ?? event.t_end;
  const what = event.type === "emotion" ? `${event.label} ${fmt(event.confidence)}` : event.type.replace("_", " ");
  const uncertain = event.uncertain_reason ? ` (uncertain: ${event.uncertain_reason.replace("_", " ")})` : "";
  return `${fmt(t, 1)} s  ${who}${what}${back}${uncertain}`;
}

function addEvent(source, event) {
  const list = $(".events", source.el);
  const item = document.createElement("li");
  item.className = event.type;
  item.textContent = describeEvent(event);
  list.prepend(item);
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
}

function renderPrompt(source, event) {
  $(".prompt", source.el).textContent = event.prompt;
  $(".messages", source.el).replaceChildren(...(event.messages || []).map((message) => {
    const item = document.createElement("li");
    const role = document.createElement("b");
    role.textContent = `${message.role}: `;
    item.append(role, message.content);
    return item;
  }));
}

function onEvent(event) {
  countGaps(event);
  const t = event.t ?? event.t_end;
  if (typeof t === "number") view.clock = Math.max(view.clock, t);
  if (event.type === "heartbeat") {
    for (const source of view.sources.values()) renderTracks(source);
    return;
  }
  const source = view.sources.get(event.source);
  if (!source) return;
  addEvent(source, event);
  if (event.type === "emotion") {
    const track = trackCard(source, personOf(event), event.track_id);
    track.el.classList.remove("lost");
    track.history.push({ t: event.t_end, probs: event.probs });
    while (track.history.length && track.history[0].t < view.clock - HISTORY_S) track.history.shift();
    track.label = event.label;
    track.confidence = event.confidence;
    track.uncertain = event.uncertain_reason ?? null;
    track.looking = event.looking ?? null;
    renderPrompt(source, event);
    renderTracks(source);
  } else if (event.type === "track_lost") {
    const track = source.tracks.get(personOf(event));
    if (track) track.el.classList.add("lost");
  }
}

function connectStream() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const url = `${scheme}://${location.host}/v1/stream${token ? `?token=${encodeURIComponent(token)}` : ""}`;
  const socket = new WebSocket(url);
  const connection = $("#connection");
  socket.onopen = () => { connection.textContent = "live"; connection.dataset.status = "open"; };
  socket.onmessage = (message) => onEvent(JSON.parse(message.data));
  socket.onclose = () => {
    connection.textContent = "stream closed, reconnecting";
    connection.dataset.status = "reconnecting";
    setTimeout(connectStream, 2000);
  };
}

// Frames are fetched only while the page is visible: a hidden tab costs the service no encoding.
async function frameLoop(source) {
  const img = $(".frame", source.el);
  let interval = 500;
  for (;;) {
    if (document.hidden) { await sleep(500); continue; }
    try {
      const response = await fetch(`/v1/view/frames/${encodeURIComponent(source.name)}`,
        { headers: authHeaders, cache: "no-store" });
      if (response.ok) {
        const url = URL.createObjectURL(await response.blob());
        const previous = source.frameUrl;
        img.onload = () => { if (previous) URL.revokeObjectURL(previous); };
        img.src = url;
        source.frameUrl = url;
        $(".frame-time", source.el).textContent = `frame at ${response.headers.get("X-Frame-Time")} s`;
        interval = 1000 / (parseFloat(response.headers.get("X-View-Max-Fps")) || 2);
      } else if (response.status === 404) {
        $(".frame-time", source.el).textContent = "no frames (the view's frame endpoint is off)";
        return;
      }
    } catch (_) { /* the service restarts or the network blips: try again */ }
    await sleep(interval);
  }
}

// ---- clip upload -----------------------------------------------------------------------------------------------

async function waitForJob(location) {
  for (;;) {
    const job = await (await api(location)).json();
    if (job.status === "done") return job.report;
    if (job.status === "failed") throw new Error(job.error || "analysis failed");
    $("#clip-status").textContent = `${job.status}…`;
    await sleep(1000);
  }
}

function renderClipReport(report) {
  const result = $("#clip-result");
  const summary = document.createElement("p");
  summary.textContent = `${report.source}: ${fmt(report.duration, 1)} s, ${report.frames_decoded} frames, `
    + `${report.tracks.length} track(s), model ${report.model}`;
  const legend = document.createElement("ul");
  legend.className = "legend";
  renderLegend(legend, report.labels);
  result.replaceChildren(summary, legend);
  if (!report.tracks.length) result.append("no faces found");
  for (const track of report.tracks) {
    const points = report.events.filter((e) => e.type === "emotion" && e.track_id === track.track_id)
      .map((e) => ({ t: (e.t_start + e.t_end) / 2, probs: e.probs }));
    const card = document.createElement("div");
    card.className = "track clip-track";
    card.dataset.trackId = track.track_id;
    const title = document.createElement("h4");
    title.textContent = `#${track.track_id} ${track.dominant_label || "…"} `
      + `(${fmt(track.t_first, 1)}–${fmt(track.t_last, 1)} s, ${track.windows} windows)`;
    const canvas = document.createElement("canvas");
    canvas.className = "chart";
    canvas.width = 720;
    canvas.height = 140;
    card.append(title, canvas);
    result.append(card);
    drawChart(canvas, points, report.labels, 0, Math.max(report.duration, 1));
  }
  for (const warning of report.warnings || []) {
    const p = document.createElement("p");
    p.className = "warning";
    p.textContent = warning;
    result.append(p);
  }
}

async function uploadClip(event) {
  event.preventDefault();
  const form = event.target;
  const status = $("#clip-status");
  status.textContent = "analysing…";
  try {
    const response = await api("/v1/clips", { method: "POST", body: new FormData(form) });
    const report = response.status === 202 ? await waitForJob(response.headers.get("Location"))
      : await response.json();
    status.textContent = "done";
    renderClipReport(report);
  } catch (error) {
    status.textContent = error.message;
  }
}

// ---- start -------------------------------------------------------------------------------------------------------

async function start() {
  $("#docs-link").href = withToken("/docs");
  $("#redoc-link").href = withToken("/redoc");
  $("#clip-form").addEventListener("submit", uploadClip);
  try {
    const models = await (await api("/v1/models")).json();
    const active = models.models.find((m) => m.name === models.active) || models.models[0];
    view.labels = active.labels;
    $("#model").textContent = `model ${models.active} (${view.labels.length} labels)`;
    renderLegend($("#legend"), view.labels);
  } catch (error) {
    showError(error.message);
    return;
  }
  connectStream();
  pollState();
}

start();
