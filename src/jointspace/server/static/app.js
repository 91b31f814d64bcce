"use strict";
// The search page: text, file (image / sound) and "more like this" queries against /api.
const $ = (id) => document.getElementById(id);
const state = { info: null };

function setStatus(text, isError) {
  const el = $("status");
  el.textContent = text;
  el.className = isError ? "error" : "";
}

async function apiError(resp) {
  let detail = "";
  try { detail = (await resp.json()).detail; } catch (e) { detail = ""; }
  if (resp.status >= 500) return "Server error: " + (detail || resp.statusText) + ". Please try again.";
  if (resp.status === 413) return "File too large: " + detail;
  if (resp.status === 415) return "Unsupported file: " + detail;
  return detail || ("Request failed (" + resp.status + ")");
}

function params() {
  const p = new URLSearchParams();
  p.set("k", $("k").value || "12");
  if ($("label").value) p.set("label", $("label").value);
  if ($("modality").value) p.set("modality", $("modality").value);
  return p;
}

function render(body, what) {
  const grid = $("results");
  grid.innerHTML = "";
  for (const r of body.results) {
    const card = document.createElement("div");
    card.className = "card";
    card.dataset.id = r.id;
    if (r.media_url && !/\.(wav|flac|ogg)/.test(r.media_url) && r.modality !== "audio") {
      const img = document.createElement("img");
      img.src = r.media_url;
      img.alt = r.title || r.text || ("item " + r.id);
      img.loading = "lazy";
      card.appendChild(img);
    } else if (r.media_url) {
      const audio = document.createElement("audio");
      audio.controls = true;
      audio.src = r.media_url;
      card.appendChild(audio);
    } else {
      const t = document.createElement("div");
      t.className = "textonly";
      t.textContent = r.text || ("item " + r.id);
      card.appendChild(t);
    }
    const title = document.createElement("div");
    title.className = "title";
    title.textContent = r.title || r.text || ("item " + r.id);
    title.title = r.text || "";
    card.appendChild(title);
    const meta = document.createElement("div");
    meta.className = "meta";
    const lab = document.createElement("span");
    lab.textContent = r.label || "";
    const sc = document.createElement("span");
    sc.className = "score";
    sc.textContent = r.score.toFixed(3);
    meta.append(lab, sc);
    card.appendChild(meta);
    const more = document.createElement("button");
    more.className = "secondary more";
    more.type = "button";
    more.textContent = "More like this";
    more.addEventListener("click", () => similar(r.id, r.modality, r.title || r.text));
    card.appendChild(more);
    grid.appendChild(card);
  }
  const n = body.results.length;
  const t = body.timings || {};
  const parts = [n + " result" + (n === 1 ? "" : "s") + " for " + what, "in " + body.took_ms.toFixed(1) + " ms"];
  if (t.cached) parts.push("(query embedding cached)");
  setStatus(n ? parts.join(" ") : "No results for " + what + (params().get("label") ? " with this label" : ""), false);
}

async function run(url, options, what) {
  setStatus("Searching…", false);
  try {
    const resp = await fetch(url, options);
    if (!resp.ok) { failed(await apiError(resp)); return; }
    render(await resp.json(), what);
  } catch (e) {
    failed("Cannot reach the server: " + e.message);
  }
}

// A refused query shows no results: those of the query before would pass for its own.
function failed(message) {
  $("results").innerHTML = "";
  setStatus(message, true);
}

function searchText(fromLink) {
  const text = $("query").value.trim();
  $("query-preview").innerHTML = "";
  if (!text) { failed("Type some words to search, or drop a file."); return; }
  const p = params();
  p.set("text", text);
  if (!fromLink) shareable(text);
  run("/api/search?" + p.toString(), {}, "“" + text + "”");
}

// The page's own URL says the search (?q=...&k=...&label=...&modality=...), so it can be shared as a link.
function shareable(text) {
  const u = new URLSearchParams();
  u.set("q", text);
  const p = params();
  for (const key of ["k", "label", "modality"]) if (p.get(key)) u.set(key, p.get(key));
  const url = location.pathname + "?" + u.toString();
  if (location.pathname + location.search !== url) history.pushState({ q: text }, "", url);
}

function setSelect(sel, value) {
  if (value && [...sel.options].some((o) => o.value === value)) sel.value = value;
}

// A link with ?q= runs its search once the page knows the indexes and labels.
async function searchFromLink() {
  const u = new URLSearchParams(location.search);
  const q = (u.get("q") || "").trim();
  if (u.get("k") && /^[0-9]+$/.test(u.get("k"))) $("k").value = u.get("k");
  setSelect($("modality"), u.get("modality"));
  if (u.get("modality")) await loadLabels();
  setSelect($("label"), u.get("label"));
  $("query").value = q;
  if (q) {
    searchText(true);
  } else {   // back to the page before any search: no results of a later one
    $("results").innerHTML = "";
    $("query-preview").innerHTML = "";
    setStatus("", false);
  }
}

function searchFile(file) {
  if (!file) return;
  const maxBytes = state.info ? state.info.max_upload_bytes : 10 * 1024 * 1024;
  if (file.type === "image/svg+xml" || /\.svgz?$/i.test(file.name)) {
    failed("Unsupported file: " + file.name + " is an SVG drawing; search with a PNG or JPEG rendering of it.");
    return;
  }
  // a file of no type (none registered for its suffix) by the suffixes the server takes
  const okType = /^(image|audio)\//.test(file.type) ||
                 /\.(png|jpe?g|gif|webp|bmp|tiff?|wav|flac|ogg|mp3|aiff?)$/i.test(file.name);
  if (!okType) { failed("Unsupported file: " + file.name + " is not an image or a sound file."); return; }
  if (file.size > maxBytes) {
    failed("File too large: " + file.name + " is " + (file.size / 1048576).toFixed(1) + " MB; the limit is " +
           (maxBytes / 1048576).toFixed(0) + " MB.");
    return;
  }
  const prev = $("query-preview");
  prev.innerHTML = "";
  if (file.type.startsWith("image/")) {
    const img = document.createElement("img");
    img.src = URL.createObjectURL(file);
    img.onload = img.onerror = () => URL.revokeObjectURL(img.src);
    img.alt = "query image";
    prev.appendChild(img);
  }
  const form = new FormData();
  form.append("file", file, file.name);
  const p = params();
  for (const [key, value] of p.entries()) form.append(key, value);
  run("/api/search", { method: "POST", body: form }, file.name);
}

function similar(id, modality, text) {
  const p = params();
  if (modality) { p.set("target", p.get("modality") || modality); p.set("modality", modality); }
  $("query-preview").innerHTML = "";
  run("/api/items/" + encodeURIComponent(id) + "/similar?" + p.toString(), {}, "items like “" + (text || id) + "”");
}

async function loadInfo() {
  try {
    const resp = await fetch("/api/info");
    if (!resp.ok) { setStatus(await apiError(resp), true); return; }
    const info = await resp.json();
    state.info = info;
    $("k").max = String(info.max_k);
    const mods = Object.keys(info.indexes);
    for (const m of mods) {
      const o = document.createElement("option");
      o.value = m; o.textContent = m + " (" + info.indexes[m].ntotal + ")";
      $("modality").appendChild(o);
    }
    const raw = info.model.raw_query_modalities;
    const files = raw.filter((m) => m !== "text");
    if (!raw.includes("text")) {
      $("query").placeholder = files.length ? "This model takes no text queries; drop a file instead"
                                            : "This model takes no text or file queries";
    }
    $("drop").style.display = files.length ? "" : "none";
    // image/* would offer SVG drawings, which the server does not render
    $("file").accept = files.map((m) => m === "image" ? "image/png,image/jpeg,image/gif,image/webp,image/bmp,image/tiff"
                                                      : m + "/*").join(",");
    await loadLabels();
    const lines = ["model: " + (info.model.display_name || info.model.name) + " (" + info.model.modalities.join(", ") + ")",
                   "queries: " + (raw.join(", ") || "items only")];
    for (const m of mods) {
      const ix = info.indexes[m];
      lines.push(m + " index: " + ix.ntotal + " items, " + ix.dim + "-d, " + ix.spec + ", " + ix.metric +
                 (ix.info.dataset ? ", " + ix.info.dataset + "/" + (ix.info.split || "") : ""));
    }
    $("about-info").textContent = lines.join("\n");
    for (const name of info.plots) {
      const img = document.createElement("img");
      img.src = "/api/plots/" + name + ".png";
      img.alt = name + " plot";
      $("plots").appendChild(img);
    }
  } catch (e) {
    setStatus("Cannot reach the server: " + e.message, true);
  }
}

async function loadLabels() {
  const sel = $("label");
  sel.length = 1;
  const m = $("modality").value;
  const resp = await fetch("/api/labels" + (m ? "?modality=" + encodeURIComponent(m) : ""));
  if (!resp.ok) return;
  for (const l of (await resp.json()).labels) {
    const o = document.createElement("option");
    o.value = l; o.textContent = l;
    sel.appendChild(o);
  }
}

$("search-form").addEventListener("submit", (ev) => { ev.preventDefault(); searchText(); });
$("file").addEventListener("change", (ev) => { searchFile(ev.target.files[0]); ev.target.value = ""; });
$("modality").addEventListener("change", loadLabels);
window.addEventListener("popstate", searchFromLink);
const drop = $("drop");
drop.addEventListener("dragover", (ev) => { ev.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
// the drop zone takes the keyboard focus: Enter or Space there picks a file, as a click on its link does
drop.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); $("file").click(); }
});
drop.addEventListener("drop", (ev) => {
  ev.preventDefault();
  drop.classList.remove("over");
  if (ev.dataTransfer.files.length) searchFile(ev.dataTransfer.files[0]);
});
loadInfo().then(searchFromLink);
