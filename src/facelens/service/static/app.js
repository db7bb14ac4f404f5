// facelens web UI: plain JavaScript over the /v1 API. The API key lives in sessionStorage
// (this tab only) and is sent as a Bearer token.
"use strict";

const $ = (sel) => document.querySelector(sel);
let key = sessionStorage.getItem("facelens-key") || "";
let gallery = sessionStorage.getItem("facelens-gallery") || "default";
let liveAbort = null;
let me = null; // the signed-in key: id, tenant, name, scopes

// The answers of /v1/identify and /v1/verify, read in one place (field names may change
// with the API; the pages read these shapes only).
const read = {
  identify: (r) => ({
    width: r.width,
    height: r.height,
    faces: r.faces.map((f) => ({ box: f.box, name: f.identity ? f.identity.name : null, score: f.identity ? f.identity.score : null })),
  }),
  verify: (r) => ({
    same: r.same,
    similarity: r.similarity,
    threshold: r.threshold,
    thresholdName: r.threshold_name ?? "",
    model: r.model,
    faces: { a: r.faces_a ?? [], b: r.faces_b ?? [] },
    chosen: { a: r.face_a ?? 0, b: r.face_b ?? 0 },
  }),
};

function plural(n, what, many = what + "s") {
  return `${n} ${n === 1 ? what : many}`;
}

function allows(scope) {
  return !!me && (me.scopes.includes(scope) || me.scopes.includes("admin"));
}

async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: "Bearer " + key }, options.headers || {});
  const res = await fetch(path, Object.assign({}, options, { headers }));
  const body = res.headers.get("content-type")?.includes("json") ? await res.json() : null;
  if (!res.ok) {
    const msg = body ? `${body.detail}${body.reasons?.length ? " (" + body.reasons.join(", ") + ")" : ""}` : res.statusText;
    const err = new Error(msg);
    err.status = res.status;
    throw err;
  }
  return body;
}

function hideFlash() {
  clearTimeout(flash.t);
  $("#flash").hidden = true;
}

function flash(text, bad = false) {
  const el = $("#flash");
  el.textContent = text;
  el.className = bad ? "flash bad" : "flash";
  el.hidden = false;
  clearTimeout(flash.t);
  flash.t = setTimeout(() => (el.hidden = true), 6000);
}

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// -- sign in --------------------------------------------------------------------------------

async function signIn(candidate) {
  key = candidate;
  try {
    await api("/v1/galleries");
  } catch (e) {
    key = "";
    throw e;
  }
  sessionStorage.setItem("facelens-key", key);
  me = await api("/v1/keys/me");
  $("#tenant-label").textContent = `${me.name || "key " + me.id} (tenant ${me.tenant})`;
  // only the pages and controls this key may use (the API refuses the rest with 403 anyway)
  document.querySelectorAll("[data-scope]").forEach((b) => (b.hidden = !!b.dataset.scope && !allows(b.dataset.scope)));
  document.querySelectorAll("[data-scope-missing]").forEach((b) => (b.hidden = allows(b.dataset.scopeMissing)));
  await loadGalleries();
  showTab("people");
  // Shown only once loaded: a tab chosen while the galleries were loading would be replaced.
  $("#sign-in").hidden = true;
  $("#app").hidden = false;
  $("#who").hidden = false;
}

$("#sign-in-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#sign-in-error").textContent = "";
  try {
    await signIn($("#api-key").value.trim());
  } catch (e) {
    $("#sign-in-error").textContent = e.status === 401 ? "That key is not valid." : e.message;
  }
});

$("#sign-out").addEventListener("click", () => {
  sessionStorage.removeItem("facelens-key");
  location.reload();
});

// -- galleries and tabs ---------------------------------------------------------------------

let galleryInfo = {};

// Which recognizer's templates the chosen gallery answers with (another than the default's
// when it holds none of them: the notice says so and how to add them).
function showGalleryModel() {
  const g = galleryInfo[gallery];
  const label = $("#gallery-model");
  label.textContent = g && g.answers_with ? `answers with ${g.answers_with}${g.notice ? " (!)" : ""}` : "";
  label.title = (g && g.notice) || "";
}

async function loadGalleries() {
  const list = await api("/v1/galleries");
  galleryInfo = Object.fromEntries(list.map((g) => [g.name, g]));
  const sel = $("#gallery-select");
  const names = list.map((g) => g.name);
  if (!names.includes(gallery)) names.unshift(gallery);
  sel.innerHTML = names.map((n) => `<option ${n === gallery ? "selected" : ""}>${esc(n)}</option>`).join("");
  showGalleryModel();
}

$("#gallery-select").addEventListener("change", (ev) => {
  gallery = ev.target.value;
  sessionStorage.setItem("facelens-gallery", gallery);
  showGalleryModel();
  loadPeople();
  if (!$("#tab-archive").hidden) loadClusters(false);
});

$("#new-gallery").addEventListener("click", async () => {
  const name = prompt("Name of the new gallery (letters, digits, _ . -)");
  if (!name) return;
  try {
    await api("/v1/galleries", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name }) });
    gallery = name;
    await loadGalleries();
    loadPeople();
  } catch (e) {
    flash(e.message, true);
  }
});

function showTab(name) {
  hideFlash(); // a message belongs to the page it was shown on
  document.querySelectorAll(".tab").forEach((b) => {
    b.classList.toggle("active", b.dataset.tab === name);
    if (b.dataset.tab === name) b.setAttribute("aria-current", "page"); else b.removeAttribute("aria-current");
  });
  document.querySelectorAll(".tab-panel").forEach((p) => (p.hidden = p.id !== "tab-" + name));
  if (name === "keys") loadKeys();
  if (name === "audit") prepareAudit().then(loadAudit);
  if (name === "people") loadPeople();
  if (name === "live") loadSources();
  if (name === "privacy") loadPrivacy();
  if (name === "alerts") loadAlerts();
  if (name === "archive") loadClusters(false);
  if (name === "live") { loadStreams(); connectLive(); refreshStop(); }
  if (name === "live" && !liveTimer) liveTimer = setInterval(loadStreams, 3000);
  if (name !== "live") closeLiveViews(); // frames are sent only while someone looks at them
}
document.querySelectorAll(".tab").forEach((b) => b.addEventListener("click", () => showTab(b.dataset.tab)));

// -- people ---------------------------------------------------------------------------------

async function loadPeople() {
  const tbody = $("#people-table tbody");
  let people = [];
  try {
    people = await api(`/v1/galleries/${encodeURIComponent(gallery)}/identities`);
  } catch (e) {
    if (e.status !== 404) flash(e.message, true);
  }
  $("#people-count").textContent = `(${people.length})`;
  tbody.innerHTML = people.map((p) => `
    <tr data-id="${esc(p.id)}">
      <td><button class="link person-name" data-id="${esc(p.id)}">${esc(p.name)}</button></td>
      <td>${p.samples}</td>
      <td>${p.consent_valid ? '<span class="known">valid</span>' : '<span class="unknown">lapsed</span>'}</td>
      <td><button class="secondary rename" data-id="${esc(p.id)}" data-name="${esc(p.name)}">Rename</button>
          <button class="danger delete" data-id="${esc(p.id)}" data-name="${esc(p.name)}" data-samples="${p.samples}">Delete</button></td>
    </tr>`).join("") || '<tr><td colspan="4" class="muted">No one is enrolled in this gallery yet.</td></tr>';
  tbody.querySelectorAll(".person-name").forEach((b) => b.addEventListener("click", () => showPerson(b.dataset.id)));
  tbody.querySelectorAll(".rename").forEach((b) => b.addEventListener("click", () => renamePerson(b.dataset.id, b.dataset.name)));
  tbody.querySelectorAll(".delete").forEach((b) => b.addEventListener("click", () => deletePerson(b.dataset.id, b.dataset.name, b.dataset.samples)));
}

async function showPerson(id) {
  const g = encodeURIComponent(gallery);
  const [p, samples] = await Promise.all([api(`/v1/galleries/${g}/identities/${id}`), api(`/v1/galleries/${g}/identities/${id}/samples`)]);
  const consents = p.consents.map((c) => `<li>${esc(c.purpose)}, granted by ${esc(c.granted_by)} on ${esc(c.granted_at.slice(0, 10))}, expires ${esc(c.expires_at ? c.expires_at.slice(0, 10) : "never")}</li>`).join("");
  const rows = samples.map((s) => `<tr><td>${esc(s.created_at.slice(0, 19))}</td><td>${s.quality.inter_eye_px}</td><td>${s.quality.sharpness}</td><td>${s.quality.yaw_deg}</td><td>${s.quality.brightness}</td><td><code>${esc(s.image_sha256.slice(0, 12))}</code></td></tr>`).join("");
  $("#person-detail").innerHTML = `
    <h3>${esc(p.name)}</h3>
    <p class="muted">Enrolled ${esc(p.created_at.slice(0, 10))}. Consent records:</p><ul>${consents}</ul>
    <table class="samples"><thead><tr><th>Sample</th><th>Eyes px</th><th>Sharpness</th><th>Yaw</th><th>Brightness</th><th>Photo hash</th></tr></thead><tbody>${rows}</tbody></table>
    <p class="muted">Photos are never stored: only their hash and the face's embedding.</p>`;
}

async function renamePerson(id, name) {
  const next = prompt("New name", name);
  if (!next || next === name) return;
  try {
    await api(`/v1/galleries/${encodeURIComponent(gallery)}/identities/${id}`, { method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name: next }) });
    flash(`Renamed to ${next}.`);
    loadPeople();
  } catch (e) {
    flash(e.message, true);
  }
}

function confirmDialog(text, ok) {
  return new Promise((resolve) => {
    const d = $("#confirm-dialog");
    $("#confirm-text").textContent = text;
    $("#confirm-ok").textContent = ok;
    d.returnValue = "";
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.showModal();
  });
}

async function deletePerson(id, name, samples) {
  const photos = plural(Number(samples), "enrolled photo");
  if (!(await confirmDialog(`Erase ${name}? The templates of their ${photos} and their consent records are deleted for good.`, "Erase"))) return;
  try {
    const r = await api(`/v1/galleries/${encodeURIComponent(gallery)}/identities/${id}`, { method: "DELETE" });
    flash(`Erased ${r.name}: the templates of ${photos} (${plural(r.samples_deleted, "template")}, one per photo and model), ${plural(r.consents_deleted, "consent record")}. Audit record #${r.audit_seq}.`);
    $("#person-detail").innerHTML = "";
    loadPeople();
  } catch (e) {
    flash(e.message, true);
  }
}

$("#enroll-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const form = new FormData(ev.target);
  if (!form.get("consent_expires_at")) form.delete("consent_expires_at");
  if (!form.get("consent_purpose")) form.delete("consent_purpose");
  if (!form.get("consent_granted_by")) form.delete("consent_granted_by");
  $("#enroll-result").innerHTML = '<p class="muted">Enrolling...</p>';
  try {
    await api("/v1/galleries", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name: gallery }) });
    const r = await api(`/v1/galleries/${encodeURIComponent(gallery)}/identities`, { method: "POST", body: form });
    const rej = r.rejected.map((x) => `<li>${esc(x.image)}: ${esc(x.reasons.join(", "))}</li>`).join("");
    $("#enroll-result").innerHTML = `<p class="known">${r.created ? "Enrolled" : "Updated"} ${esc(r.identity.name)}: ${plural(r.added, "photo")} added.</p>${rej ? "<p>Not used:</p><ul>" + rej + "</ul>" : ""}`;
    ev.target.reset();
    await loadGalleries();
    loadPeople();
  } catch (e) {
    $("#enroll-result").innerHTML = `<p class="error">Not enrolled: ${esc(e.message)}</p>`;
  }
});

// -- who is this? ---------------------------------------------------------------------------

$("#identify-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const file = $("#identify-photo").files[0];
  if (!file) return;
  const form = new FormData();
  form.append("image", file);
  let r;
  try {
    r = read.identify(await api(`/v1/galleries/${encodeURIComponent(gallery)}/identify`, { method: "POST", body: form }));
  } catch (e) {
    flash(e.message, true);
    return;
  }
  const img = await createImageBitmap(file, { imageOrientation: "from-image" });
  const canvas = $("#identify-canvas");
  const scale = r.width / img.width;
  canvas.width = r.width;
  canvas.height = r.height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0, img.width * scale, img.height * scale);
  const line = Math.max(2, r.height / 250);
  ctx.font = `${Math.max(14, r.height / 30)}px system-ui`;
  const names = [];
  for (const f of r.faces) {
    const [x1, y1, x2, y2] = f.box;
    const known = f.name !== null;
    const label = known ? `${f.name} ${f.score.toFixed(2)}` : "unknown";
    ctx.strokeStyle = ctx.fillStyle = known ? "#15803d" : "#c0392b";
    ctx.lineWidth = line;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const h = Math.max(14, r.height / 30) + 6;
    const w = ctx.measureText(label).width + 8;
    ctx.fillRect(x1, Math.max(0, y1 - h), w, h);
    ctx.fillStyle = "#fff";
    ctx.fillText(label, x1 + 4, Math.max(0, y1 - h) + h - 6);
    names.push(`<li class="${known ? "known" : "unknown"}" data-testid="identify-result">${esc(label)}</li>`);
  }
  canvas.hidden = false;
  canvas.dataset.labels = r.faces.map((f) => f.name ?? "unknown").join("|");
  $("#identify-list").innerHTML = names.join("") || '<li class="muted">No face found.</li>';
});

// -- live -----------------------------------------------------------------------------------

async function loadStreams() {
  try {
    const jobs = await api("/v1/streams");
    $("#stream-list").innerHTML = jobs.map((j) => `<li><code>${esc(j.id)}</code> ${esc(j.source)} - ${esc(j.status)}, ${j.frames} frames
      ${j.status === "running" && allows("admin") ? `<button class="secondary stop" data-id="${esc(j.id)}">Stop</button>` : ""}</li>`).join("") || '<li class="muted">None.</li>';
    syncLiveViews(jobs);
    document.querySelectorAll(".stop").forEach((b) => b.addEventListener("click", async () => {
      await api(`/v1/streams/${b.dataset.id}`, { method: "DELETE" });
      loadStreams();
    }));
  } catch (e) {
    flash(e.message, true);
  }
}

$("#stream-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const error = $("#stream-error");
  error.textContent = "";
  try {
    await api("/v1/streams", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ source: f.get("source"), gallery, detect_every: f.get("detect_every") === "auto" ? "auto" : Number(f.get("detect_every")), upsample: Number(f.get("upsample")) }) });
    loadStreams();
  } catch (e) {
    // said where the form is, and kept until the next try
    error.textContent = e.status === 403 && allowedSources.length
      ? `${e.message}. Allowed here: ${allowedSources.join(", ")}`
      : e.message;
  }
});

let allowedSources = [];

async function loadSources() {
  if (!allows("admin")) return;
  try {
    const s = await api("/v1/streams/sources");
    allowedSources = s.patterns;
    $("#stream-files").innerHTML = s.files.map((f) => `<option value="${esc(f)}"></option>`).join("");
    $("#stream-allowed").textContent = s.patterns.length
      ? `Allowed: ${s.patterns.join(", ")}${s.files.length ? ` (${plural(s.files.length, "file")} to choose from)` : ""}`
      : "No source is allowed: start the service with make run ALLOW_SOURCE='/path/to/videos/*' (or facelens serve --allow-source PATTERN).";
  } catch (e) {
    $("#stream-allowed").textContent = e.message;
  }
}

async function connectLive() {
  if (liveAbort) return;
  liveAbort = new AbortController();
  const state = $("#live-state");
  try {
    const res = await fetch("/v1/events", { headers: { Authorization: "Bearer " + key }, signal: liveAbort.signal });
    if (!res.ok) throw new Error(res.statusText);
    state.textContent = "connected";
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const chunk = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = chunk.split("\n").find((l) => l.startsWith("data: "));
        if (data) addEvent(JSON.parse(data.slice(6)));
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") state.textContent = "disconnected";
  } finally {
    liveAbort = null;
  }
}

function addEvent(e) {
  liveEvents.push(e);
  if (liveEvents.length > MAX_LIVE_EVENTS) liveEvents.splice(0, liveEvents.length - MAX_LIVE_EVENTS);
  const tbody = $("#events-table tbody");
  const row = document.createElement("tr");
  row.dataset.type = e.type;
  row.innerHTML = `<td>${esc(e.time.slice(11, 19))}</td><td>${esc(e.type)}</td><td>${esc(e.track_id ?? "")}</td>
    <td class="${e.identity ? "known" : ""}">${esc(e.identity ?? "")}</td><td>${esc(e.score ?? "")}</td>`;
  tbody.prepend(row);
  while (tbody.children.length > 200) tbody.lastChild.remove();
}

// -- live view: each running stream's picture with its faces, and a strip of recent faces --
// GET /v1/streams/{id}/live answers multipart JPEG; each part's X-Facelens-View header says
// what it is (a frame and its faces, or an ended track's best shot). Fetched with the key in
// a header, never in a URL; the boxes and names are drawn here, with the page's fonts.

const liveViews = new Map(); // stream id -> {abort, tile}
const liveEvents = []; // recent events of every stream, for a track's history
const MAX_LIVE_EVENTS = 1000;
const MAX_STRIP = 12;
let liveTimer = null;

function syncLiveViews(jobs) {
  if ($("#tab-live").hidden) return;
  const live = (j) => j.status === "running" || j.status === "starting";
  for (const j of jobs) if (live(j) && !liveViews.has(j.id)) openLiveView(j);
  for (const [id, v] of liveViews) {
    const j = jobs.find((x) => x.id === id);
    v.tile.querySelector(".live-status").textContent = j ? `${j.status}, ${plural(j.frames, "frame")} processed` : "gone";
  }
  $("#live-empty").hidden = liveViews.size > 0;
  $("#live-count").textContent = liveViews.size ? plural(liveViews.size, "stream") : "";
}

function closeLiveViews() {
  clearInterval(liveTimer);
  liveTimer = null;
  for (const v of liveViews.values()) v.abort.abort();
  liveViews.clear();
  $("#live-tiles").innerHTML = "";
  $("#live-empty").hidden = false;
  $("#live-count").textContent = "";
}

function liveTile(job) {
  const tile = document.createElement("figure");
  tile.className = "live-tile";
  tile.dataset.stream = job.id;
  tile.innerHTML = `<canvas width="640" height="360" role="img" aria-label="Live picture of ${esc(job.source)}"></canvas>
    <figcaption><code>${esc(job.id)}</code> ${esc(job.source)} - <span class="live-status">${esc(job.status)}</span>
    <ul class="live-faces" aria-label="Faces in view"></ul></figcaption>`;
  tile.querySelector("canvas").addEventListener("click", (ev) => {
    const c = ev.currentTarget;
    const r = c.getBoundingClientRect();
    const x = (ev.clientX - r.left) * (c.width / r.width), y = (ev.clientY - r.top) * (c.height / r.height);
    const f = (tile.faces || []).find((f) => x >= f.box[0] && x <= f.box[2] && y >= f.box[1] && y <= f.box[3]);
    if (f) showTrack(job.id, f.track);
  });
  $("#live-tiles").append(tile);
  return tile;
}

function bytesIndex(buf, pattern, from = 0) {
  outer: for (let i = from; i <= buf.length - pattern.length; i++) {
    for (let j = 0; j < pattern.length; j++) if (buf[i + j] !== pattern[j]) continue outer;
    return i;
  }
  return -1;
}

const HEAD_END = new TextEncoder().encode("\r\n\r\n");

async function openLiveView(job) {
  const tile = liveTile(job);
  const view = { abort: new AbortController(), tile };
  liveViews.set(job.id, view);
  const status = tile.querySelector(".live-status");
  try {
    const res = await fetch(`/v1/streams/${encodeURIComponent(job.id)}/live`,
      { headers: { Authorization: "Bearer " + key }, signal: view.abort.signal });
    if (!res.ok) {
      const body = await res.json().catch(() => null);
      status.textContent = body ? body.detail : res.statusText;
      return;
    }
    const reader = res.body.getReader();
    let buf = new Uint8Array(0);
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const joined = new Uint8Array(buf.length + value.length);
      joined.set(buf);
      joined.set(value, buf.length);
      buf = joined;
      for (;;) { // every complete part in what has come
        const end = bytesIndex(buf, HEAD_END);
        if (end < 0) break;
        const head = new TextDecoder().decode(buf.subarray(0, end));
        const length = Number((/content-length:\s*(\d+)/i.exec(head) || [])[1] ?? NaN);
        const meta = /x-facelens-view:\s*(.*)/i.exec(head);
        if (!Number.isFinite(length) || !meta) { buf = buf.slice(end + 4); continue; }
        if (buf.length < end + 4 + length) break;
        const body = buf.slice(end + 4, end + 4 + length);
        buf = buf.slice(end + 4 + length);
        await showLivePart(job, tile, JSON.parse(meta[1]), body);
      }
    }
    tile.classList.add("ended");
    status.textContent = "ended";
    tile.querySelector(".live-faces").innerHTML = ""; // their tracks ended with the watch
    loadStreams(); // the list says how it ended
  } catch (e) {
    if (e.name !== "AbortError") status.textContent = `disconnected (${e.message})`;
  }
}

function faceLabel(f) {
  return `#${f.track} ${f.name ?? (f.held ? "awaiting confirmation" : "unknown")}`;
}

async function showLivePart(job, tile, meta, body) {
  if (meta.kind === "track_end") return addToStrip(job, meta, body);
  if (meta.kind !== "frame") return;
  const bitmap = await createImageBitmap(new Blob([body], { type: "image/jpeg" }));
  const canvas = tile.querySelector("canvas");
  if (canvas.width !== meta.width || canvas.height !== meta.height) {
    canvas.width = meta.width;
    canvas.height = meta.height;
  }
  const ctx = canvas.getContext("2d");
  ctx.drawImage(bitmap, 0, 0);
  bitmap.close();
  const size = Math.max(14, Math.round(meta.height / 20));
  ctx.font = `600 ${size}px system-ui, sans-serif`;
  ctx.lineWidth = Math.max(2, size / 6);
  for (const f of meta.faces) {
    const [x1, y1, x2, y2] = f.box;
    const colour = f.name ? "#22c55e" : f.held ? "#60a5fa" : "#f59e0b";
    ctx.strokeStyle = colour;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const text = faceLabel(f);
    const w = ctx.measureText(text).width + 8;
    // above the box, or below it at the top edge; kept inside the picture at the right
    const top = y1 - size - 6 >= 0 ? y1 - size - 6 : Math.min(y2, meta.height - size - 6);
    const left = Math.max(0, Math.min(x1 - ctx.lineWidth / 2, meta.width - w));
    ctx.fillStyle = colour;
    ctx.fillRect(left, top, w, size + 6);
    ctx.fillStyle = "#111827";
    ctx.fillText(text, left + 4, top + size);
  }
  tile.faces = meta.faces;
  canvas.dataset.frame = meta.index;
  canvas.dataset.labels = meta.faces.map(faceLabel).join("|");
  const list = tile.querySelector(".live-faces");
  const items = meta.faces.map((f) => `<li class="${f.name ? "known" : ""}">${esc(faceLabel(f))}</li>`).join("");
  if (list.innerHTML !== items) list.innerHTML = items;
}

function addToStrip(job, meta, body) {
  const strip = $("#face-strip");
  const li = document.createElement("li");
  const url = body.length ? URL.createObjectURL(new Blob([body], { type: "image/jpeg" })) : null;
  const who = meta.name ?? "unknown";
  const when = `track ${meta.track} at ${meta.time.toFixed(1)} s`;
  li.innerHTML = `<button type="button" aria-pressed="false" data-stream="${esc(job.id)}" data-track="${esc(meta.track)}" title="${esc(`${who}, ${when} (${meta.reason}): its events`)}">
    ${url ? `<img src="${url}" alt="best shot of track ${esc(meta.track)}">` : '<span class="no-shot"></span>'}
    <span class="${meta.name ? "known" : ""}">${esc(who)}</span><span class="muted">${esc(when)}</span></button>`;
  li.dataset.url = url ?? "";
  li.querySelector("button").addEventListener("click", () => showTrack(job.id, meta.track));
  strip.prepend(li);
  while (strip.children.length > MAX_STRIP) {
    const old = strip.lastElementChild;
    if (old.dataset.url) URL.revokeObjectURL(old.dataset.url);
    old.remove();
  }
}

function showTrack(stream, track) {
  document.querySelectorAll("#face-strip button").forEach((b) =>
    b.setAttribute("aria-pressed", String(b.dataset.stream === stream && Number(b.dataset.track) === track)));
  const events = liveEvents.filter((e) => e.stream === stream && e.track_id === track);
  const box = $("#track-detail");
  box.innerHTML = `<h3>Track ${esc(track)} of stream <code>${esc(stream)}</code></h3>` + (events.length
    ? `<table><thead><tr><th>Time</th><th>Event</th><th>Who</th><th>Score</th></tr></thead><tbody>${events.map((e) =>
      `<tr><td>${esc(e.time.slice(11, 19))}</td><td>${esc(e.type)}</td><td class="${e.identity ? "known" : ""}">${esc(e.identity ?? "")}</td><td>${esc(e.score ?? "")}</td></tr>`).join("")}</tbody></table>`
    : '<p class="muted">No event of this track reached this page (events are shown from when the page connected).</p>');
  box.hidden = false;
  box.focus();
}

// -- verify: two photos, one face each ---------------------------------------------------

const verifyPick = { a: null, b: null }; // the face chosen in each photo (null: the main one)
const verifyBitmaps = { a: null, b: null };

async function loadVerifyPhoto(side) {
  const file = $(`#verify-${side}`).files[0];
  verifyPick[side] = null;
  $(`#verify-faces-${side}`).innerHTML = "";
  verifyBitmaps[side] = file ? await createImageBitmap(file, { imageOrientation: "from-image" }) : null;
  drawVerify(side, [], 0);
  $("#verify-result").innerHTML = "";
}
["a", "b"].forEach((side) => $(`#verify-${side}`).addEventListener("change", () => loadVerifyPhoto(side)));

// The photo with every face found outlined, the one compared in colour.
function drawVerify(side, boxes, chosen, same = null) {
  const canvas = $(`#verify-canvas-${side}`);
  const img = verifyBitmaps[side];
  if (!img) { canvas.hidden = true; return; }
  const scale = Math.min(1, 480 / img.width);
  canvas.width = Math.round(img.width * scale);
  canvas.height = Math.round(img.height * scale);
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0, canvas.width, canvas.height);
  ctx.lineWidth = Math.max(3, canvas.width / 120);
  const font = Math.max(14, canvas.width / 22);
  ctx.font = `bold ${font}px system-ui`;
  boxes.forEach(([x1, y1, x2, y2], i) => {
    const colour = i !== chosen ? "#4b5563" : same === null ? "#2563eb" : same ? "#15803d" : "#c0392b";
    ctx.strokeStyle = ctx.fillStyle = colour;
    ctx.setLineDash(i === chosen ? [] : [6, 4]);
    ctx.strokeRect(x1 * scale, y1 * scale, (x2 - x1) * scale, (y2 - y1) * scale);
    if (boxes.length > 1) { // the number its button carries
      const label = String(i + 1);
      const w = ctx.measureText(label).width + 8;
      ctx.fillRect(x1 * scale, Math.max(0, y1 * scale - font - 4), w, font + 4);
      ctx.fillStyle = "#fff";
      ctx.fillText(label, x1 * scale + 4, Math.max(font, y1 * scale - 4));
    }
  });
  canvas.dataset.scale = String(scale);
  canvas.dataset.boxes = JSON.stringify(boxes);
  canvas.hidden = false;
}

function pickButtons(side, boxes, chosen) {
  const box = $(`#verify-faces-${side}`);
  if (boxes.length < 2) { box.innerHTML = ""; return; }
  box.innerHTML = `<span class="muted">Compare face:</span> ` + boxes.map((_, i) =>
    `<button type="button" class="secondary pick-face" data-face="${i}" aria-pressed="${i === chosen}">${i + 1}</button>`).join(" ");
  box.querySelectorAll(".pick-face").forEach((b) => b.addEventListener("click", () => {
    verifyPick[side] = Number(b.dataset.face);
    runVerify();
  }));
}

// a click on a face in the picture chooses it too
["a", "b"].forEach((side) => $(`#verify-canvas-${side}`).addEventListener("click", (ev) => {
  const canvas = ev.currentTarget;
  const scale = Number(canvas.dataset.scale || 1);
  const rect = canvas.getBoundingClientRect();
  const x = (ev.clientX - rect.left) * (canvas.width / rect.width) / scale;
  const y = (ev.clientY - rect.top) * (canvas.height / rect.height) / scale;
  const boxes = JSON.parse(canvas.dataset.boxes || "[]");
  const hit = boxes.findIndex(([x1, y1, x2, y2]) => x >= x1 && x <= x2 && y >= y1 && y <= y2);
  if (hit >= 0 && boxes.length > 1) { verifyPick[side] = hit; runVerify(); }
}));

async function runVerify() {
  const a = $("#verify-a").files[0];
  const b = $("#verify-b").files[0];
  if (!a || !b) return;
  const form = new FormData();
  form.append("image_a", a);
  form.append("image_b", b);
  if ($("#verify-threshold").value) form.append("threshold", $("#verify-threshold").value);
  if (verifyPick.a !== null) form.append("face_a", String(verifyPick.a));
  if (verifyPick.b !== null) form.append("face_b", String(verifyPick.b));
  const box = $("#verify-result");
  box.innerHTML = '<p class="muted">Comparing…</p>';
  try {
    const v = read.verify(await api("/v1/verify", { method: "POST", body: form }));
    for (const side of ["a", "b"]) {
      drawVerify(side, v.faces[side], v.chosen[side], v.same);
      pickButtons(side, v.faces[side], v.chosen[side]);
    }
    const rel = v.same ? "at or above" : "below";
    box.innerHTML = `<p class="verdict ${v.same ? "known" : "unknown"}" data-same="${v.same}">${v.same ? "Same person" : "Not the same person"}</p>
      <p>Similarity <strong>${v.similarity.toFixed(2)}</strong>, ${rel} the <strong>${esc(v.thresholdName)}</strong> threshold ${v.threshold.toFixed(2)} (model ${esc(v.model)}).</p>
      ${v.faces.a.length > 1 || v.faces.b.length > 1 ? '<p class="muted">Several faces: choose another with its number, or click it in the photo.</p>' : ""}`;
  } catch (e) {
    box.innerHTML = `<p class="error">${esc(e.message)}</p>`;
  }
}

$("#verify-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  runVerify();
});
$("#verify-threshold").addEventListener("change", () => { if ($("#verify-result").innerHTML) runVerify(); });

// -- audit: people can read it ----------------------------------------------------------------

const auditView = { before: null, stack: [], next: null };
const AUDIT_PAGE = 50;

async function prepareAudit() {
  const sel = $("#audit-action");
  if (sel.options.length <= 1) {
    try {
      const actions = await api("/v1/audit/actions");
      sel.innerHTML = '<option value="">all actions</option>' + Object.entries(actions)
        .map(([a, label]) => `<option value="${esc(a)}">${esc(label)}</option>`).join("");
    } catch (e) { /* the filter still takes any action */ }
  }
  if (allows("admin")) {
    try {
      const keys = await api("/v1/keys");
      keys.forEach((k) => (keyNames[k.id] = k.name));
      $("#audit-keys").innerHTML = keys.map((k) => `<option value="${esc(k.id)}">${esc(k.name)}</option>`).join("");
    } catch (e) { /* typed by hand instead */ }
  }
}

const keyNames = {}; // key id -> its name, where this key may list keys

function auditQuery() {
  const q = new URLSearchParams();
  const f = new FormData($("#audit-filter"));
  if (f.get("action")) q.append("action", f.get("action"));
  if (f.get("key")) q.set("key", f.get("key").trim());
  // the browser's local time, sent as UTC
  if (f.get("since")) q.set("since", new Date(f.get("since")).toISOString());
  if (f.get("until")) q.set("until", new Date(f.get("until")).toISOString());
  return q;
}

function localTime(iso) {
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

async function loadAudit() {
  try {
    const q = auditQuery();
    q.set("order", "desc");
    q.set("limit", String(AUDIT_PAGE));
    if (auditView.before) q.set("before", String(auditView.before));
    const res = await fetch(`/v1/audit?${q}`, { headers: { Authorization: "Bearer " + key } });
    const records = await res.json();
    if (!res.ok) throw new Error(records.detail);
    auditView.next = res.headers.get("X-Next-Before");
    const chain = await api("/v1/audit/verify");
    const badge = $("#audit-status");
    badge.textContent = chain.ok ? `chain verified (${chain.checked} records)` : `chain broken at #${chain.first_bad_seq}: ${chain.problem}`;
    badge.className = "badge " + (chain.ok ? "ok" : "bad");
    $("#audit-table tbody").innerHTML = records.map((r) => `
      <tr data-action="${esc(r.action)}" class="${r.refused ? "refused" : ""}">
        <td class="nowrap"><time datetime="${esc(r.time)}">${esc(localTime(r.time))}</time></td>
        <td class="nowrap">${esc(actorText(r.actor))}</td>
        <td class="sentence">${r.refused ? '<span class="badge bad">refused</span> ' : ""}${esc(r.sentence)}
          <details><summary>record</summary><pre>${esc(JSON.stringify(recordDetail(r), null, 1))}</pre></details></td>
        <td>${r.seq}</td>
      </tr>`).join("") || '<tr><td colspan="4" class="muted">No record matches.</td></tr>';
    $("#audit-older").disabled = !auditView.next;
    $("#audit-newer").disabled = !auditView.stack.length;
    $("#audit-page").textContent = records.length ? `#${records[0].seq} to #${records[records.length - 1].seq}` : "";
  } catch (e) {
    flash(e.message, true);
  }
}

function actorText(a) {
  if (/^[0-9a-f]{16}$/.test(a)) {
    const name = me && a === me.id ? "you" : keyNames[a];
    return name ? `${name} (key ${a})` : `key ${a}`;
  }
  if (a.startsWith("cli:")) return a.slice(4) + " (command line)";
  if (a.startsWith("service:")) return "service (" + a.slice(8) + ")";
  return a;
}

function recordDetail(r) {
  const { sentence, names, refused, ...rest } = r;
  return rest;
}

$("#audit-filter").addEventListener("submit", (ev) => {
  ev.preventDefault();
  Object.assign(auditView, { before: null, stack: [] });
  loadAudit();
});
$("#audit-clear").addEventListener("click", () => {
  $("#audit-filter").reset();
  Object.assign(auditView, { before: null, stack: [] });
  loadAudit();
});
$("#audit-older").addEventListener("click", () => {
  if (!auditView.next) return;
  auditView.stack.push(auditView.before);
  auditView.before = Number(auditView.next);
  loadAudit();
});
$("#audit-newer").addEventListener("click", () => {
  if (!auditView.stack.length) return;
  auditView.before = auditView.stack.pop();
  loadAudit();
});

async function exportAudit(format) {
  const q = auditQuery();
  q.set("format", format);
  try {
    const res = await fetch(`/v1/audit/export?${q}`, { headers: { Authorization: "Bearer " + key } });
    if (!res.ok) throw new Error((await res.json()).detail);
    const name = /filename="([^"]+)"/.exec(res.headers.get("Content-Disposition") || "")?.[1] || `audit.${format}`;
    const url = URL.createObjectURL(await res.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    flash(e.message, true);
  }
}
$("#audit-csv").addEventListener("click", () => exportAudit("csv"));
$("#audit-json").addEventListener("click", () => exportAudit("json"));

// -- keys (admin) -----------------------------------------------------------------------------

const SCOPES = {
  detect: "find faces in photos",
  verify: "compare two photos (1:1)",
  identify: "search galleries, watch live streams",
  candidates: "see who an unknown face looks like",
  enroll: "enrol people, name groups",
  delete: "erase people",
  confirm: "confirm alerts (two-person rule)",
  "audit:read": "read the audit log",
  admin: "everything, keys and streams included",
};

function renderScopes() {
  const box = $("#key-scopes");
  if (box.querySelector("input")) return;
  box.insertAdjacentHTML("beforeend", Object.entries(SCOPES).map(([s, what]) => `
    <div class="check"><input type="checkbox" id="scope-${s.replace(":", "-")}" name="scopes" value="${s}">
    <label for="scope-${s.replace(":", "-")}"><code>${s}</code> ${esc(what)}</label></div>`).join(""));
}

async function loadKeys() {
  renderScopes();
  $("#my-key").value = key;
  try {
    const keys = await api("/v1/keys");
    $("#keys-count").textContent = `(${keys.filter((k) => !k.revoked_at).length} active)`;
    $("#keys-table tbody").innerHTML = keys.slice().reverse().map((k) => `
      <tr data-key="${esc(k.id)}" class="${k.revoked_at ? "revoked" : ""}">
        <td>${esc(k.name) || '<span class="muted">(no name)</span>'}${k.current ? ' <span class="badge ok">you</span>' : ""}</td>
        <td><code>${esc(k.id)}</code></td>
        <td>${k.scopes.map((s) => `<code>${esc(s)}</code>`).join(" ")}</td>
        <td class="nowrap">${esc(localTime(k.created_at))}</td>
        <td class="status">${k.revoked_at ? `revoked ${esc(localTime(k.revoked_at))}` : "active"}</td>
        <td>${k.revoked_at ? "" : `<button type="button" class="danger revoke" data-key="${esc(k.id)}" data-name="${esc(k.name)}"
          ${k.current ? 'disabled title="the key you are using: sign in with another admin key to revoke it"' : ""}>Revoke</button>`}</td>
      </tr>`).join("");
    $("#keys-table").querySelectorAll(".revoke").forEach((b) => b.addEventListener("click", () => revokeKey(b.dataset.key, b.dataset.name)));
  } catch (e) {
    flash(e.message, true);
  }
}

async function revokeKey(id, name) {
  if (!(await confirmDialog(`Revoke key ${id}${name ? ` (${name})` : ""}? Whoever holds it loses access at once.`, "Revoke"))) return;
  try {
    await api(`/v1/keys/${encodeURIComponent(id)}`, { method: "DELETE" });
    flash(`Key ${id} revoked.`);
  } catch (e) {
    flash(e.message, true);
  }
  loadKeys();
}

$("#key-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = new FormData(ev.target);
  const scopes = f.getAll("scopes");
  $("#key-error").textContent = "";
  if (!scopes.length) { $("#key-error").textContent = "Choose at least one thing the key may do."; return; }
  try {
    const r = await api("/v1/keys", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ name: f.get("name"), scopes }) });
    $("#new-key-value").value = r.secret;
    $("#new-key").hidden = false;
    $("#new-key-value").select();
    ev.target.reset();
    loadKeys();
  } catch (e) {
    $("#key-error").textContent = e.message;
  }
});

$("#new-key-copy").addEventListener("click", async () => {
  $("#new-key-value").select();
  try { await navigator.clipboard.writeText($("#new-key-value").value); flash("Copied."); } catch (e) { flash("Select the key and copy it.", true); }
});

$("#my-key-show").addEventListener("click", (ev) => {
  const input = $("#my-key");
  const shown = input.type === "text";
  input.type = shown ? "password" : "text";
  ev.target.textContent = shown ? "Show" : "Hide";
});

// -- alerts: two people confirm an identification before it is acted on ---------------------

const alertUrls = [];

async function imageUrl(path) {
  const res = await fetch(path, { headers: { Authorization: "Bearer " + key } });
  if (!res.ok) return null;
  const url = URL.createObjectURL(await res.blob());
  alertUrls.push(url);
  return url;
}

async function loadAlerts() {
  const box = $("#alerts-list");
  try {
    const alerts = await api("/v1/alerts");
    $("#alerts-count").textContent = alerts.length ? String(alerts.length) : "";
    alertUrls.splice(0).forEach((u) => URL.revokeObjectURL(u));
    if (!alerts.length) {
      box.innerHTML = "<p class='muted'>No alert is waiting.</p>";
      return;
    }
    const cards = await Promise.all(alerts.map(async (a) => {
      const [shot, ref] = await Promise.all([
        imageUrl(`/v1/alerts/${encodeURIComponent(a.id)}/shot`),
        imageUrl(`/v1/alerts/${encodeURIComponent(a.id)}/reference`),
      ]);
      const votes = a.votes.map((v) => `${esc(v.key)} ${esc(v.vote)}ed`).join(", ") || "no vote yet";
      return `<div class="alert-card" data-alert="${esc(a.id)}">
        <div class="pair">
          <figure>${shot ? `<img class="shot" src="${shot}" alt="best shot">` : "<p class='muted'>no shot</p>"}<figcaption>Seen (${esc(a.source)})</figcaption></figure>
          <figure>${ref ? `<img class="reference" src="${ref}" alt="enrolled reference">` : "<p class='muted'>no reference kept</p>"}<figcaption>Enrolled: ${esc(a.identity)}</figcaption></figure>
        </div>
        <p>Score ${esc(a.score)} in ${esc(a.gallery)} at ${esc(a.created_at.slice(0, 19))}; expires ${esc(a.expires_at.slice(11, 19))}. <span class="votes">${votes}</span> (${a.required} needed)</p>
        <button class="confirm">Confirm</button> <button class="reject danger">Reject</button>
      </div>`;
    }));
    box.innerHTML = cards.join("");
    box.querySelectorAll(".alert-card").forEach((card) => {
      const id = card.dataset.alert;
      card.querySelector(".confirm").addEventListener("click", () => voteAlert(id, "confirm"));
      card.querySelector(".reject").addEventListener("click", () => voteAlert(id, "reject"));
    });
  } catch (e) {
    box.innerHTML = `<p class="bad">${esc(e.message)}</p>`;
  }
}

async function voteAlert(id, vote) {
  try {
    const a = await api(`/v1/alerts/${encodeURIComponent(id)}/${vote}`, { method: "POST" });
    flash(a.status === "confirmed" ? `Confirmed by two people: ${a.identity} sent on`
      : a.status === "rejected" ? "Rejected: nothing is sent"
      : "Your confirmation is recorded; a second person must confirm");
  } catch (e) {
    flash(e.message, true);
  }
  loadAlerts();
}
$("#alerts-refresh").addEventListener("click", loadAlerts);

// -- faces in your photos ------------------------------------------------------------------

const faceUrls = [];
let clusterList = [];
let openCluster = null;
const selected = new Set();

async function faceImage(faceId, what = "thumbnail") {
  const res = await fetch(`/v1/galleries/${encodeURIComponent(gallery)}/faces/${encodeURIComponent(faceId)}/${what}`,
    { headers: { Authorization: "Bearer " + key } });
  if (!res.ok) return null;
  const url = URL.createObjectURL(await res.blob());
  faceUrls.push(url);
  return url;
}

function thumbs(urls, ids) {
  return urls.map((u, i) => u ? `<img class="thumb" src="${u}" alt="face" data-face="${esc(ids[i])}">`
    : `<span class="thumb missing" title="photo changed or missing"></span>`).join("");
}

async function loadClusters(refresh) {
  const box = $("#clusters-list");
  box.innerHTML = "<p class='muted'>Loading…</p>";
  try {
    const g = encodeURIComponent(gallery);
    const doc = await api(`/v1/galleries/${g}/clusters${refresh ? "?refresh=true" : ""}`);
    clusterList = doc.clusters;
    selected.clear();
    $("#clusters-merge").disabled = true;
    faceUrls.splice(0).forEach((u) => URL.revokeObjectURL(u));
    $("#archive-count").textContent = `${doc.archive.faces} faces in ${doc.archive.files} files, ${doc.clusters.length} groups`;
    if (!doc.clusters.length) {
      box.innerHTML = "<p class='muted'>No group yet: index your photos with <code>facelens index FOLDER --gallery …</code>.</p>";
      return;
    }
    const rows = await Promise.all(doc.clusters.map(async (c) => {
      const urls = await Promise.all(c.preview.map((f) => faceImage(f)));
      return `<div class="cluster-row" data-cluster="${esc(c.id)}">
        <input type="checkbox" class="pick" aria-label="select ${esc(c.id)}">
        <div class="thumbs">${thumbs(urls, c.preview)}</div>
        <div class="cluster-meta"><code>${esc(c.id)}</code><br>${c.faces} faces in ${c.photos} photos</div>
        <button class="open secondary">Photos</button>
        <button class="name">Name…</button>
      </div>`;
    }));
    box.innerHTML = rows.join("");
    box.querySelectorAll(".cluster-row").forEach((row) => {
      const id = row.dataset.cluster;
      row.querySelector(".open").addEventListener("click", () => showCluster(id));
      row.querySelector(".name").addEventListener("click", () => nameCluster(id));
      row.querySelector(".pick").addEventListener("change", (ev) => {
        if (ev.target.checked) selected.add(id); else selected.delete(id);
        $("#clusters-merge").disabled = selected.size !== 2;
      });
    });
  } catch (e) {
    box.innerHTML = `<p class="bad">${esc(e.message)}</p>`;
  }
}

async function showCluster(id) {
  openCluster = id;
  const box = $("#cluster-detail");
  box.hidden = false;
  try {
    const c = await api(`/v1/galleries/${encodeURIComponent(gallery)}/clusters/${encodeURIComponent(id)}`);
    const urls = await Promise.all(c.faces.map((f) => faceImage(f.face_id)));
    const others = clusterList.filter((x) => x.id !== id)
      .map((x) => `<option value="${esc(x.id)}">${esc(x.id)} (${x.faces})</option>`).join("");
    const faces = c.faces.map((f, i) => `<figure class="face" data-face="${esc(f.face_id)}">
        ${urls[i] ? `<img class="thumb" src="${urls[i]}" alt="face">` : "<span class='thumb missing'></span>"}
        <figcaption><input type="checkbox" class="split-pick" aria-label="select face">
        <button class="not-them link">Not this person</button>
        <select class="move-to"><option value="">Move to…</option>${others}</select></figcaption>
      </figure>`).join("");
    const photos = c.photos.map((p) => `<li>${esc(p)}</li>`).join("");
    box.innerHTML = `<h2>Group <code>${esc(id)}</code></h2>
      <div class="faces">${faces}</div>
      <button id="split-selected" class="secondary">Split selected off</button>
      <h3>In ${c.photos.length} photos</h3><ul id="cluster-photos">${photos}</ul>
      <img id="cluster-photo" alt="a photo of this group" hidden>`;
    box.querySelectorAll("figure.face").forEach((fig) => {
      const face = fig.dataset.face;
      fig.querySelector(".not-them").addEventListener("click", () => moveFace(face, null));
      fig.querySelector(".move-to").addEventListener("change", (ev) => ev.target.value && moveFace(face, ev.target.value));
      fig.querySelector("img")?.addEventListener("click", async () => {
        const url = await faceImage(face, "photo");
        if (url) { $("#cluster-photo").src = url; $("#cluster-photo").hidden = false; }
      });
    });
    $("#split-selected").addEventListener("click", splitSelected);
    box.scrollIntoView({ block: "start" });
    box.focus({ preventScroll: true });
  } catch (e) {
    box.innerHTML = `<p class="bad">${esc(e.message)}</p>`;
  }
}

async function clusterAction(path, body, done) {
  try {
    const r = await api(`/v1/galleries/${encodeURIComponent(gallery)}/${path}`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    flash(done(r));
    $("#cluster-detail").hidden = true;
    await loadClusters(false);
    return r;
  } catch (e) {
    flash(e.message, true);
    return null;
  }
}

function moveFace(face, to) {
  return clusterAction(`faces/${encodeURIComponent(face)}/move`, { to },
    (r) => r.cluster ? `Moved to ${r.cluster}` : "Taken out of the group; kept apart from it");
}

function splitSelected() {
  const faces = [...document.querySelectorAll("#cluster-detail figure.face")]
    .filter((f) => f.querySelector(".split-pick").checked).map((f) => f.dataset.face);
  if (!faces.length) { flash("Select the faces to split off", true); return; }
  return clusterAction(`clusters/${encodeURIComponent(openCluster)}/split`, { faces },
    (r) => `Split into ${r.rest} and ${r.split}`);
}

$("#clusters-merge").addEventListener("click", () => {
  const [a, b] = [...selected];
  clusterAction("clusters/merge", { a, b }, (r) => `Merged into ${r.id}`);
});
$("#clusters-refresh").addEventListener("click", () => loadClusters(true));

function nameCluster(id) {
  const dlg = $("#name-dialog");
  $("#name-error").textContent = "";
  $("#name-form").reset();
  dlg.dataset.cluster = id;
  dlg.showModal();
}

$("#name-ok").addEventListener("click", async (ev) => {
  ev.preventDefault();
  const dlg = $("#name-dialog");
  const purpose = $("#name-purpose").value.trim();
  const body = { name: $("#name-name").value.trim() };
  if (!body.name) { $("#name-error").textContent = "A name is needed."; return; }
  if (purpose) {
    body.consent = { purpose, granted_by: $("#name-by").value.trim() || body.name };
    if ($("#name-expires").value) body.consent.expires_at = $("#name-expires").value;
  }
  try {
    const r = await api(`/v1/galleries/${encodeURIComponent(gallery)}/clusters/${encodeURIComponent(dlg.dataset.cluster)}/name`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
    });
    dlg.close();
    flash(`Enrolled ${r.identity.name} from ${plural(r.faces, "face")} of the group`);
    loadClusters(false);
  } catch (e) {
    $("#name-error").textContent = e.message;
  }
});

// -- privacy report -------------------------------------------------------------------------

// A retention deadline as a sentence, in the right tense.
function deadlineText(d) {
  const day = d.due_at.slice(0, 10);
  const since = (d.since || "").slice(0, 10);
  const past = new Date(d.due_at) <= new Date();
  const why = d.reason === "consent_ended"
    ? `consent ${new Date(d.since) <= new Date() ? "ended" : "ends"} ${since}`
    : d.reason === "idle" ? `unmatched since ${since}` : d.reason;
  return past ? `${day}: ${d.name} was due (${why}); erased at the next purge`
    : `${day}: ${d.name} is erased (${why})`;
}

async function loadPrivacy() {
  const box = $("#privacy-report");
  try {
    const r = await api("/v1/govern/report");
    const badge = $("#privacy-sealed");
    badge.textContent = r.templates_sealed ? `templates sealed (key ${r.key_id})` : "templates NOT sealed";
    badge.className = "badge " + (r.templates_sealed ? "ok" : "bad");
    box.innerHTML = r.galleries.map((g) => {
      const perKey = {};
      g.searches.forEach((s) => {
        const k = s.key.replace(/^key:/, ""); // one key format (older records say key:ID)
        perKey[k] = (perKey[k] || 0) + s.count;
      });
      const searches = Object.entries(perKey).map(([k, n]) => `<li>${esc(k)}: ${n}</li>`).join("") || "<li>none</li>";
      const next = g.next_deadlines.slice(0, 5).map((d) => `<li>${esc(deadlineText(d))}</li>`).join("") || "<li>none</li>";
      const templates = Object.entries(g.templates).map(([m, n]) => `${n} ${esc(m)}`).join(", ") || "none";
      return `<div class="privacy-gallery" data-gallery="${esc(g.gallery)}">
        <h3>${esc(g.gallery)}</h3>
        <table class="facts"><tbody>
          <tr><th>People</th><td class="people">${g.people}</td></tr>
          <tr><th>Templates</th><td>${templates}${g.templates_transformed ? " (transformed per gallery)" : ""}</td></tr>
          <tr><th>Kept chips</th><td>${g.chips}${g.keeps_chips ? "" : " (gallery does not keep chips)"}</td></tr>
          <tr><th>Consent</th><td>${g.consent.valid} valid (${g.consent.no_end} without end, ${g.consent.ending_soon} ending within 30 days), ${g.consent.ended} ended</td></tr>
          <tr><th>Retention</th><td>erase after ${g.retention.max_idle_days} days unmatched; ${g.retention.consent_grace_days} days after consent ends</td></tr>
          <tr><th>Pending purges</th><td class="pending">${g.pending_purges.length}</td></tr>
        </tbody></table>
        <p>Next deadlines</p><ul>${next}</ul>
        <p>Searches per key, last ${r.days} days</p><ul class="searches">${searches}</ul>
      </div>`;
    }).join("") || "<p class='muted'>No galleries yet.</p>";
  } catch (e) {
    box.innerHTML = `<p class="bad">${esc(e.message)}</p>`;
  }
}
$("#privacy-refresh").addEventListener("click", loadPrivacy);

// -- start ----------------------------------------------------------------------------------

if (key) signIn(key).catch(() => sessionStorage.removeItem("facelens-key"));

// -- stop control: halt every identification of this tenant until resumed (admin keys) -----

let stopped = false;

async function refreshStop() {
  try {
    const st = await api("/v1/govern/status");
    stopped = st.stopped;
    $("#stop-state").textContent = st.stopped
      ? `Identification STOPPED since ${st.at}${st.reason ? ": " + st.reason : ""}`
      : "Identification running";
    $("#stop-state").className = st.stopped ? "bad" : "muted";
    $("#stop-toggle").textContent = st.stopped ? "Resume identification" : "Stop all identification";
    $("#stop-toggle").className = st.stopped ? "" : "danger";
  } catch (e) {
    $("#stop-state").textContent = e.message;
  }
}

$("#stop-toggle").addEventListener("click", async () => {
  try {
    if (stopped) {
      await api("/v1/govern/resume", { method: "POST" });
      flash("Identification resumed");
    } else {
      const reason = prompt("Why stop all identification? (kept in the audit log)") ?? "";
      await api("/v1/govern/stop", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ reason }),
      });
      flash("Identification stopped: streams end, identify is refused until resumed");
    }
  } catch (e) {
    flash(e.message, true);
  }
  await refreshStop();
  loadStreams();
});
