// facelens web UI: plain JavaScript over the /v1 API. The API key lives in sessionStorage
// (this tab only) and is sent as a Bearer token.
"use strict";

const $ = (sel) => document.querySelector(sel);
let key = sessionStorage.getItem("facelens-key") || "";
let gallery = sessionStorage.getItem("facelens-gallery") || "default";
let liveAbort = null;

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
  $("#tenant-label").textContent = "key " + key.split("_")[1];
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
  document.querySelectorAll(".tab").forEach((b) => b.classList.toggle("active", b.dataset.tab === name));
  document.querySelectorAll(".tab-panel").forEach((p) => (p.hidden = p.id !== "tab-" + name));
  if (name === "people") loadPeople();
  if (name === "audit") loadAudit();
  if (name === "privacy") loadPrivacy();
  if (name === "alerts") loadAlerts();
  if (name === "archive") loadClusters(false);
  if (name === "live") { loadStreams(); connectLive(); refreshStop(); }
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
      <td><button class="link person-name" data-id="${esc(p.id)}" style="color:var(--accent)">${esc(p.name)}</button></td>
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

function confirmDialog(text) {
  return new Promise((resolve) => {
    const d = $("#confirm-dialog");
    $("#confirm-text").textContent = text;
    d.returnValue = "";
    d.addEventListener("close", () => resolve(d.returnValue === "ok"), { once: true });
    d.showModal();
  });
}

async function deletePerson(id, name, samples) {
  if (!(await confirmDialog(`Erase ${name}? Their ${samples} sample(s) and consent records are deleted for good.`))) return;
  try {
    const r = await api(`/v1/galleries/${encodeURIComponent(gallery)}/identities/${id}`, { method: "DELETE" });
    flash(`Erased ${r.name}: ${r.samples_deleted} sample(s), ${r.consents_deleted} consent record(s). Audit record #${r.audit_seq}.`);
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
    $("#enroll-result").innerHTML = `<p class="known">${r.created ? "Enrolled" : "Updated"} ${esc(r.identity.name)}: ${r.added} sample(s) added.</p>${rej ? "<p>Not used:</p><ul>" + rej + "</ul>" : ""}`;
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
    r = await api(`/v1/galleries/${encodeURIComponent(gallery)}/identify`, { method: "POST", body: form });
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
    const known = f.identity !== null;
    const label = known ? `${f.identity.name} ${f.identity.score.toFixed(2)}` : "unknown";
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
  canvas.dataset.labels = r.faces.map((f) => (f.identity ? f.identity.name : "unknown")).join("|");
  $("#identify-list").innerHTML = names.join("") || '<li class="muted">No face found.</li>';
});

// -- live -----------------------------------------------------------------------------------

async function loadStreams() {
  try {
    const jobs = await api("/v1/streams");
    $("#stream-list").innerHTML = jobs.map((j) => `<li><code>${esc(j.id)}</code> ${esc(j.source)} - ${esc(j.status)}, ${j.frames} frames
      ${j.status === "running" ? `<button class="secondary stop" data-id="${esc(j.id)}">Stop</button>` : ""}</li>`).join("") || '<li class="muted">None.</li>';
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
  try {
    await api("/v1/streams", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ source: f.get("source"), gallery, detect_every: f.get("detect_every") === "auto" ? "auto" : Number(f.get("detect_every")), upsample: Number(f.get("upsample")) }) });
    loadStreams();
  } catch (e) {
    flash(e.message, true);
  }
});

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
  const tbody = $("#events-table tbody");
  const row = document.createElement("tr");
  row.dataset.type = e.type;
  row.innerHTML = `<td>${esc(e.time.slice(11, 19))}</td><td>${esc(e.type)}</td><td>${esc(e.track_id ?? "")}</td>
    <td class="${e.identity ? "known" : ""}">${esc(e.identity ?? "")}</td><td>${esc(e.score ?? "")}</td>`;
  tbody.prepend(row);
  while (tbody.children.length > 200) tbody.lastChild.remove();
}

// -- audit ----------------------------------------------------------------------------------

async function loadAudit() {
  try {
    const [records, chain] = await Promise.all([api("/v1/audit?limit=1000"), api("/v1/audit/verify")]);
    const badge = $("#audit-status");
    badge.textContent = chain.ok ? `chain verified (${chain.checked} records)` : `chain broken at #${chain.first_bad_seq}: ${chain.problem}`;
    badge.className = "badge " + (chain.ok ? "ok" : "bad");
    $("#audit-table tbody").innerHTML = records.reverse().map((r) => `
      <tr data-action="${esc(r.action)}"><td>${r.seq}</td><td>${esc(r.time.slice(0, 19))}</td><td>${esc(r.action)}</td>
      <td>${esc(r.gallery ?? "")}</td><td><code>${esc(JSON.stringify(r.decision))}</code></td><td>${esc(r.key_id)}</td></tr>`).join("");
  } catch (e) {
    flash(e.message, true);
  }
}
$("#audit-refresh").addEventListener("click", loadAudit);

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
    flash(`Enrolled ${r.identity.name} from ${r.added} templates`);
    loadClusters(false);
  } catch (e) {
    $("#name-error").textContent = e.message;
  }
});

// -- privacy report -------------------------------------------------------------------------

async function loadPrivacy() {
  const box = $("#privacy-report");
  try {
    const r = await api("/v1/govern/report");
    const badge = $("#privacy-sealed");
    badge.textContent = r.templates_sealed ? `templates sealed (key ${r.key_id})` : "templates NOT sealed";
    badge.className = "badge " + (r.templates_sealed ? "ok" : "bad");
    box.innerHTML = r.galleries.map((g) => {
      const perKey = {};
      g.searches.forEach((s) => (perKey[s.key] = (perKey[s.key] || 0) + s.count));
      const searches = Object.entries(perKey).map(([k, n]) => `<li>${esc(k)}: ${n}</li>`).join("") || "<li>none</li>";
      const next = g.next_deadlines.slice(0, 5).map((d) => `<li>${esc(d.due_at.slice(0, 10))} ${esc(d.name)} (${esc(d.reason)})</li>`).join("") || "<li>none</li>";
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
