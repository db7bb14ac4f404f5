// The API reference: /openapi.json rendered by the service's own script (no third-party
// host, no inline script: the page works offline and under the service's CSP).
"use strict";

const METHODS = ["get", "post", "put", "patch", "delete"];

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

function slug(s) {
  return String(s).toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-|-$/g, "");
}

function resolve(spec, schema) {
  let s = schema || {};
  for (let i = 0; s.$ref && i < 10; i++) s = spec.components.schemas[s.$ref.split("/").pop()] || {};
  return s;
}

function typeName(spec, schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  const alts = schema.anyOf || schema.oneOf;
  if (alts) return alts.map((a) => typeName(spec, a)).join(" | ");
  if (schema.type === "array") return `array of ${typeName(spec, schema.items)}`;
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  return schema.format ? `${schema.type} (${schema.format})` : schema.type || "any";
}

// An object's fields as a nested list (depth-limited: schemas refer to each other).
function fields(spec, schema, depth = 0) {
  const s = resolve(spec, schema.type === "array" ? schema.items : schema);
  if (!s.properties || depth > 2) return "";
  const required = new Set(s.required || []);
  const items = Object.entries(s.properties).map(([name, p]) => {
    const inner = resolve(spec, p.type === "array" ? p.items : (p.anyOf || [p]).find((a) => a.$ref || a.properties) || p);
    const nested = inner.properties ? fields(spec, inner, depth + 1) : "";
    return `<li><code>${esc(name)}</code> <span class="type">${esc(typeName(spec, p))}</span>${required.has(name) ? ' <span class="req">required</span>' : ""}${p.description ? ` - ${esc(p.description)}` : ""}${nested}</li>`;
  });
  return `<ul class="fields">${items.join("")}</ul>`;
}

// The key every route takes is said once, at the top; code in descriptions shown as code.
const AUTH = new Set(["authorization", "x-api-key"]);

function prose(text) {
  return esc(text).replace(/``?([^`]+)``?/g, "<code>$1</code>");
}

function parameters(spec, op) {
  const params = (op.parameters || []).filter((p) => !(p.in === "header" && AUTH.has(p.name.toLowerCase())));
  if (!params.length) return "";
  const rows = params.map((p) => `<tr><td><code>${esc(p.name)}</code></td><td>${esc(p.in)}</td>
    <td>${esc(typeName(spec, p.schema))}</td><td>${p.required ? "yes" : ""}</td><td>${esc(p.description || p.schema?.description || "")}</td></tr>`);
  return `<h4>Parameters</h4><table><thead><tr><th>Name</th><th>In</th><th>Type</th><th>Required</th><th>Description</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

function body(spec, op) {
  const content = op.requestBody?.content;
  if (!content) return "";
  return Object.entries(content).map(([type, c]) => `<h4>Body <span class="type">${esc(type)}</span></h4>${fields(spec, c.schema || {}) || `<p>${esc(typeName(spec, c.schema))}</p>`}`).join("");
}

function responses(spec, op) {
  const rows = Object.entries(op.responses || {}).map(([code, r]) => {
    const schema = r.content?.["application/json"]?.schema;
    const shape = schema ? `<span class="type">${esc(typeName(spec, schema))}</span>${fields(spec, schema)}` : "";
    return `<li><strong>${esc(code)}</strong> ${esc(r.description || "")} ${shape}</li>`;
  });
  return `<h4>Answers</h4><ul class="responses">${rows.join("")}</ul>`;
}

function operation(spec, path, method, op) {
  const id = slug(`${method} ${path}`);
  return `<details class="op" id="${id}">
    <summary><span class="method ${method}">${method.toUpperCase()}</span> <code>${esc(path)}</code> <span class="muted">${esc(op.summary || "")}</span></summary>
    ${op.description ? `<p class="description">${prose(op.description)}</p>` : ""}
    ${parameters(spec, op)}${body(spec, op)}${responses(spec, op)}
  </details>`;
}

async function render() {
  const box = document.getElementById("api-operations");
  let spec;
  try {
    const res = await fetch("/openapi.json");
    spec = await res.json();
  } catch (e) {
    box.innerHTML = `<p class="error">Could not read /openapi.json: ${esc(e.message)}</p>`;
    return;
  }
  document.getElementById("api-title").textContent = `${spec.info.title} ${spec.info.version}`;
  document.getElementById("api-description").innerHTML = prose(spec.info.description || "");
  const byTag = new Map();
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const method of METHODS) {
      if (!item[method]) continue;
      const tag = (item[method].tags || ["other"])[0];
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operation(spec, path, method, item[method]));
    }
  }
  document.getElementById("api-tags").innerHTML = [...byTag.keys()]
    .map((t) => `<a href="#tag-${slug(t)}">${esc(t)}</a>`).join(" ");
  box.innerHTML = [...byTag.entries()].map(([tag, ops]) => `<section class="card" id="tag-${slug(tag)}" aria-labelledby="h-${slug(tag)}">
      <h2 id="h-${slug(tag)}">${esc(tag)}</h2>${ops.join("")}</section>`).join("");
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
}

render();
