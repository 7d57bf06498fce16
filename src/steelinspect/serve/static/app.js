// The inspection station's page: inspect uploads, browse the dataset, review the REVIEW band, search the history,
// see a coil; everything comes from the JSON API.
// Strings from the server (file names, coils, messages) are untrusted: the DOM is built with createElement,
// textContent and setAttribute only, never parsed as HTML, and the Content-Security-Policy forbids inline script
// and style (pictures of coils are SVG whose geometry is attributes and whose colours come from the stylesheet).
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);

// An element with a class and text (as text, never HTML), and children.
function el(tag, className = "", text = "", ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== "") node.textContent = text;
  node.append(...children);
  return node;
}

// A colour swatch of a class: the colour comes from the stylesheet (.swatch.c1 ...), not a style attribute.
const swatch = (cls) => el("span", `swatch c${cls}`);

function row(cells) {
  return el("tr", "", "", ...cells.map((text) => el("td", "", String(text))));
}

function legend() {
  $("#legend").replaceChildren(...[1, 2, 3, 4].map((c) => el("span", "", "", swatch(c), `class ${c}`)));
}

async function health() {
  const response = await fetch("/api/health");
  const info = await response.json();
  const parts = [info.segmentation ? "classifier + segmenter" : "classifier only (no masks)"];
  if (info.dataset) {
    parts.push(`dataset: ${info.dataset.images} images`);
    $("#tab-browse").hidden = false;
  }
  if (info.log && info.log.enabled) {
    parts.push(`log: ${info.log.db}`);
    for (const id of ["#tab-review", "#tab-history", "#tab-coil"]) $(id).hidden = false;
  }
  if (info.writes === false) parts.push("read only (no --token-file)");
  $("#status").textContent = parts.join(" · ");
}

// One result card: verdict, image with a toggleable layer per class, probabilities, defects.
function card(result) {
  const node = $("#card-template").content.firstElementChild.cloneNode(true);
  $(".name", node).textContent = result.image_id;
  const verdict = $(".verdict", node);
  if (result.error) {
    verdict.textContent = "error";
    verdict.className = "verdict error";
    $(".viewer", node).remove();
    $(".details", node).replaceChildren(el("p", "error-text", result.error));
    return node;
  }
  verdict.textContent = result.has_defect ? `defect: class ${result.classes.join(", ")}` : "clean";
  verdict.className = `verdict ${result.has_defect ? "defect" : "clean"}`;
  $(".base", node).src = result.image;
  const viewer = $(".viewer", node);
  const toggles = $(".toggles", node);
  for (const [cls, url] of Object.entries(result.layers || {})) {
    const layer = document.createElement("img");
    layer.className = "layer";
    layer.dataset.cls = cls;
    layer.src = url;
    layer.alt = `class ${cls} mask`;
    viewer.appendChild(layer);
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = true;
    box.dataset.cls = cls;
    box.addEventListener("change", (e) => { layer.hidden = !e.target.checked; });
    toggles.appendChild(el("label", "", "", box, " ", swatch(cls), `class ${cls}`));
  }
  if (!Object.keys(result.layers || {}).length) {
    toggles.textContent = result.overlay === null && !result.layers ? "" : "no defect masks";
  }
  const p = result.p_class;
  $(".probs tbody", node).replaceChildren(row([result.p_defect, p[1], p[2], p[3], p[4]].map((x) => x.toFixed(3))));
  const none = el("tr", "", "", el("td", "", "no defect regions"));
  none.firstChild.colSpan = 3;
  $(".defects tbody", node).replaceChildren(
    ...(result.defects.length ? result.defects.map((d) => row([d.class, d.area_px, d.bbox.join(", ")])) : [none]));
  $(".notice", node).textContent = (result.notices || []).join("; ");
  return node;
}

async function upload(files) {
  if (!files.length) return;
  const results = $("#results");
  const pending = document.createElement("p");
  pending.textContent = `Inspecting ${files.length} image(s)…`;
  results.prepend(pending);
  const form = new FormData();
  for (const file of files) form.append("files", file);
  // With an inspection log the server records uploads, a write: it needs the reviewer's token.
  const response = await fetch("/api/predict", { method: "POST", body: form, headers: authHeaders() });
  pending.remove();
  if (!response.ok) {
    const body = await response.json().catch(() => ({ detail: response.statusText }));
    const p = document.createElement("p");
    p.className = "error-text";
    p.textContent = `Upload refused: ${body.detail}`;
    results.prepend(p);
    return;
  }
  for (const result of (await response.json()).reverse()) results.prepend(card(result));
}

function setupUpload() {
  const drop = $("#drop");
  $("#files").addEventListener("change", (e) => upload([...e.target.files]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    upload([...e.dataTransfer.files]);
  });
}

async function browse(event) {
  if (event) event.preventDefault();
  const form = new FormData($("#filters"));
  const params = new URLSearchParams({ limit: "500" });
  if (form.get("cls")) params.set("cls", form.get("cls"));
  if (form.get("verdict")) params.set("verdict", form.get("verdict"));
  if (form.get("disagree")) params.set("disagree", "true");
  const data = await (await fetch(`/api/dataset?${params}`)).json();
  const failed = data.failed ? `; ${data.failed} cannot be predicted` : "";
  $("#browse-count").textContent = `${data.total} image(s); predictions ready for ${data.predicted} of ${data.images}${failed}`;
  const list = $("#image-list");
  list.replaceChildren();
  for (const item of data.items) {
    const truth = item.truth.join(" ") || "clean";
    const pred = item.error ? "error" : item.predicted === null ? "…" : item.predicted.join(" ") || "clean";
    const li = el("li", "", "", el("span", "image-id", item.image_id),
      el("span", truth === pred ? "" : "mismatch", `${truth} / ${pred}`));
    li.title = item.error ? `cannot be predicted: ${item.error}` : "true classes / predicted classes";
    li.addEventListener("click", () => { for (const x of list.children) x.classList.remove("selected"); li.classList.add("selected"); detail(item.image_id); });
    list.appendChild(li);
  }
}

async function detail(imageId) {
  const target = $("#browse-detail");
  target.textContent = "Loading…";
  const response = await fetch(`/api/dataset/${encodeURIComponent(imageId)}`);
  const data = await response.json();
  if (!response.ok) { target.replaceChildren(el("p", "error-text", String(data.detail))); return; }
  target.replaceChildren();
  const truth = { ...data.truth, image_id: `${imageId}: ground truth`, has_defect: data.truth.classes.length > 0,
    classes: data.truth.classes, p_defect: NaN, p_class: { 1: NaN, 2: NaN, 3: NaN, 4: NaN }, defects: [] };
  const truthCard = card(truth);
  $(".details", truthCard).remove();
  const predCard = card({ ...data.prediction, image_id: `${imageId}: prediction` });
  target.append(truthCard, predCard);
}


// --- the reviewer's token and JSON calls ------------------------------------------------------------------------

const TOKEN_KEY = "steelinspect.token";  // sessionStorage: gone when the tab closes, never sent to other sites
const token = () => $("#token").value.trim();
const authHeaders = () => (token() ? { Authorization: `Bearer ${token()}` } : {});

class ApiError extends Error {
  constructor(status, detail) {
    super(`${detail} (HTTP ${status})`);
    this.status = status;
    this.detail = detail;
  }
}

// GET or POST JSON; a refusal becomes an ApiError carrying the server's one-line detail.
async function api(url, options = {}) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => ({ detail: response.statusText }));
  if (!response.ok) {
    throw new ApiError(response.status, typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail));
  }
  return body;
}

function say(target, text, isError = false) {
  const node = $(target);
  node.textContent = text;
  node.classList.toggle("error-text", isError);
}

async function whoami() {
  if (!token()) { say("#token-status", "no token: read only"); return; }
  try {
    say("#token-status", `reviewer: ${(await api("/api/auth/whoami", { headers: authHeaders() })).reviewer}`);
    if ($("#review-message").classList.contains("error-text")) say("#review-message", "");  // the 401 is past
  } catch (err) {
    say("#token-status", err.status === 401 ? "token not accepted" : err.message, true);
  }
}

function setupToken() {
  const field = $("#token");
  field.value = sessionStorage.getItem(TOKEN_KEY) || "";
  field.addEventListener("input", () => sessionStorage.setItem(TOKEN_KEY, field.value.trim()));
  field.addEventListener("change", whoami);
}

// --- one logged inspection ------------------------------------------------------------------------------------

const classText = (classes) => (classes && classes.length ? `class ${classes.join(", ")}` : "no defect");
const when = (iso) => (iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace(/(\+00:00|Z)$/, "") : "");

// GET /api/log/inspection/{id} as a card: picture with its regions, probabilities, decided classes, reviews.
function inspectionCard(data) {
  const p = data.p_class;
  const pics = data.pictures || {};
  const node = card({
    image_id: data.image_id, has_defect: data.classes.length > 0, classes: data.classes,
    image: pics.image, layers: pics.layers || {}, overlay: pics.overlay === undefined ? null : pics.overlay,
    p_defect: data.p_defect, p_class: { 1: p[0], 2: p[1], 3: p[2], 4: p[3] },
    defects: (data.defects || []).map((d) => ({ class: d.class_id, area_px: d.area, bbox: [d.x, d.y, d.width, d.height] })),
    notices: data.image_missing ? [`no picture: ${data.image_problem || "the image file is not where it was inspected"}`] : [],
  });
  node.dataset.inspectionId = String(data.id);
  if (data.image_missing) { $(".viewer", node).remove(); $(".toggles", node).remove(); }
  const verdict = $(".verdict", node);
  verdict.textContent = `${data.band} · decided: ${classText(data.classes)}`;
  verdict.classList.add(`band-${data.band}`);
  const where = [`#${data.id}`, data.coil ? `coil ${data.coil}` : "",
    data.frame !== null && data.frame !== undefined ? `frame ${data.frame}` : "",
    when(data.inspected_at), `uncertainty ${Number(data.uncertainty || 0).toFixed(2)}`].filter(Boolean);
  $(".card-head", node).after(el("p", "meta", where.join(" · ")));
  const reviews = data.reviews || [];
  const body = reviews.map((r) => row([r.reviewer, when(r.reviewed_at), r.verdict,
    r.classes === null || r.classes === undefined ? "" : classText(r.classes), r.note || ""]));
  const head = el("tr", "", "",
    ...["reviewer", "reviewed (UTC)", "verdict", "classes", "note"].map((h) => el("th", "", h)));
  $(".details", node).append(reviews.length
    ? el("table", "reviews", "", el("thead", "", "", head), el("tbody", "", "", ...body))
    : el("p", "note", "not reviewed yet"));
  return node;
}

// --- Review: the REVIEW band, most uncertain first ------------------------------------------------------------

const review = { queue: [], index: 0, current: null, picked: new Set(), busy: false, shown: 0 };

async function reviewCount() {
  try {
    const summary = await api("/api/log/summary");
    $("#review-count").textContent = `${summary.to_review} frame(s) left to review`;
  } catch (err) {
    $("#review-count").textContent = err.message;
  }
}

async function loadQueue() {
  try {
    review.queue = (await api("/api/log/review?limit=200")).entries;
  } catch (err) {
    review.queue = [];
    say("#review-message", `Cannot read the review queue: ${err.message}`, true);
  }
  review.index = 0;
  await Promise.all([showReview(), reviewCount()]);
}

function renderPicks() {
  const picks = $("#review-classes");
  picks.replaceChildren(el("span", "", "true classes: "));
  for (const c of [1, 2, 3, 4]) {
    const button = el("button", `pick${review.picked.has(c) ? " on" : ""}`, "", swatch(c), String(c));
    button.type = "button";
    button.dataset.cls = String(c);
    button.setAttribute("aria-pressed", String(review.picked.has(c)));
    button.addEventListener("click", () => togglePick(c));
    picks.append(button);
  }
}

function togglePick(c) {
  if (!review.current) return;
  if (review.picked.has(c)) review.picked.delete(c); else review.picked.add(c);
  renderPicks();
}

async function showReview() {
  const frame = $("#review-frame");
  const ticket = ++review.shown;  // a later N/P wins over a slower earlier fetch
  const entry = review.queue[review.index];
  if (!entry) {
    review.current = null;
    frame.removeAttribute("data-inspection-id");
    frame.replaceChildren(el("p", "note", "Nothing left to review."));
    review.picked = new Set();
    renderPicks();
    return;
  }
  let data;
  try {
    data = await api(`/api/log/inspection/${entry.id}`);
  } catch (err) {
    if (ticket === review.shown) frame.replaceChildren(el("p", "error-text", `Inspection ${entry.id}: ${err.message}`));
    return;
  }
  if (ticket !== review.shown) return;
  review.current = data;
  // The choice starts from what the model decided: 1-4 then add or remove a class.
  review.picked = new Set(data.classes);
  frame.replaceChildren(el("p", "position", `${review.index + 1} of ${review.queue.length} in this queue`),
    inspectionCard(data));
  frame.dataset.inspectionId = String(data.id);
  renderPicks();
}

function step(delta) {
  if (!review.queue.length) return;
  review.index = Math.min(review.queue.length - 1, Math.max(0, review.index + delta));
  showReview();
}

async function submitReview(verdict, classes) {
  const current = review.current;
  if (!current || review.busy) return;
  review.busy = true;
  const body = { verdict };
  if (verdict === "correct") body.classes = [...classes].sort();
  try {
    const answer = await api(`/api/log/inspection/${current.id}/review`, {
      method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json", ...authHeaders() },
    });
    const what = verdict === "confirm" ? "confirmed" : `corrected to ${classText(body.classes)}`;
    say("#review-message", `Inspection ${current.id} (${current.image_id}) ${what}: review ${answer.review_id}.`);
    review.queue = review.queue.filter((e) => e.id !== current.id);
    review.index = Math.min(review.index, Math.max(0, review.queue.length - 1));
    if (!review.queue.length) await loadQueue(); else await Promise.all([showReview(), reviewCount()]);
  } catch (err) {
    if (err.status === 401) {
      say("#review-message", `Not saved (401, not authorised): ${err.detail}. Paste your reviewer token (from ` +
        "`steelinspect token add NAME`) into the Reviewer token field at the top, then try again.", true);
    } else {
      say("#review-message", `Not saved: ${err.message}`, true);
    }
  } finally {
    review.busy = false;
  }
}

// Keys act on the Review tab only, and never while the reviewer types in a field.
function reviewKeys(event) {
  if ($("#review").hidden || event.ctrlKey || event.metaKey || event.altKey) return;
  const target = event.target;
  const typing = ["INPUT", "TEXTAREA", "SELECT"];
  if (target instanceof HTMLElement && (target.isContentEditable || typing.includes(target.tagName))) return;
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  if (key === "a") submitReview("confirm");
  else if (key === "x") submitReview("correct", []);
  else if (["1", "2", "3", "4"].includes(key)) togglePick(Number(key));
  else if (key === "Enter") submitReview("correct", review.picked);
  else if (key === "n" || key === "ArrowRight") step(1);
  else if (key === "p" || key === "ArrowLeft") step(-1);
  else return;
  event.preventDefault();  // e.g. Enter on a focused button must not click it as well
}

function setupReview() {
  document.addEventListener("keydown", reviewKeys);
  $("#review-confirm").addEventListener("click", () => submitReview("confirm"));
  $("#review-clear").addEventListener("click", () => submitReview("correct", []));
  $("#review-correct").addEventListener("click", () => submitReview("correct", review.picked));
  $("#review-prev").addEventListener("click", () => step(-1));
  $("#review-next").addEventListener("click", () => step(1));
}

// --- the tuned bands' precision-recall curves ---------------------------------------------------------------

const colour = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

function nearest(curve, threshold) {
  let best = 0;
  curve.threshold.forEach((t, i) => {
    if (Math.abs(t - threshold) < Math.abs(curve.threshold[best] - threshold)) best = i;
  });
  return { recall: curve.recall[best], precision: curve.precision[best] };
}

function drawBands(data) {
  const canvas = $("#bands-canvas");
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, L = 50, R = 150, T = 15, B = 40;
  const x = (recall) => L + recall * (W - L - R);
  const y = (precision) => H - B - precision * (H - T - B);
  ctx.clearRect(0, 0, W, H);
  ctx.font = "12px system-ui, sans-serif";
  ctx.strokeStyle = "#ccc";
  ctx.fillStyle = "#444";
  ctx.lineWidth = 1;
  for (let v = 0; v <= 1.0001; v += 0.2) {
    ctx.beginPath();
    ctx.moveTo(x(v), y(0)); ctx.lineTo(x(v), y(1)); ctx.moveTo(x(0), y(v)); ctx.lineTo(x(1), y(v));
    ctx.stroke();
    ctx.textAlign = "center"; ctx.fillText(v.toFixed(1), x(v), H - B + 15);
    ctx.textAlign = "right"; ctx.fillText(v.toFixed(1), L - 6, y(v) + 4);
  }
  ctx.textAlign = "center"; ctx.fillText("recall", x(0.5), H - 6);
  ctx.save(); ctx.translate(14, y(0.5)); ctx.rotate(-Math.PI / 2); ctx.fillText("precision", 0, 0); ctx.restore();
  const curves = [["step 1 (defect)", colour("--step1") || "#263238", data.step1]];
  for (const [cls, spec] of Object.entries(data.classes || {})) curves.push([`class ${cls}`, colour(`--c${cls}`), spec]);
  const notes = [];
  curves.forEach(([name, stroke, spec], k) => {
    if (!spec || !spec.curve || !spec.curve.recall || !spec.curve.recall.length) return;
    const curve = spec.curve;
    ctx.strokeStyle = stroke; ctx.fillStyle = stroke; ctx.lineWidth = k === 0 ? 2.5 : 1.5;
    ctx.beginPath();
    curve.recall.forEach((r, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, x(r), y(curve.precision[i])));
    ctx.stroke();
    ctx.textAlign = "left";
    ctx.fillRect(W - R + 15, T + 18 * k + 2, 14, 4);
    ctx.fillStyle = "#222"; ctx.fillText(name, W - R + 35, T + 18 * k + 8);
    const points = [];
    for (const [label, t] of [["T1", spec.t1], ["T2", spec.t2]]) {
      if (t === null || t === undefined) continue;
      const at = nearest(curve, t);
      ctx.fillStyle = stroke; ctx.strokeStyle = "#222"; ctx.lineWidth = 1;
      ctx.beginPath(); ctx.arc(x(at.recall), y(at.precision), 5, 0, 2 * Math.PI); ctx.fill(); ctx.stroke();
      ctx.fillStyle = "#222"; ctx.fillText(label, x(at.recall) + 7, y(at.precision) - 6);
      const where = `precision ${at.precision.toFixed(3)}, recall ${at.recall.toFixed(3)}`;
      points.push(`${label} = ${Number(t).toFixed(3)} (${where})`);
    }
    notes.push(`${name}: ${points.join(", ")}`);
  });
  return notes;
}

async function loadBands() {
  const canvas = $("#bands-canvas");
  try {
    const data = await api("/api/log/bands");
    if (!data.available) {
      canvas.hidden = true;
      say("#bands-note", "No bands tuned: the runs have no bands.json (steelinspect tune-bands writes it).");
      return;
    }
    canvas.hidden = false;
    say("#bands-note", drawBands(data).join(" · "));
  } catch (err) {
    canvas.hidden = true;
    say("#bands-note", `Cannot read the bands: ${err.message}`, true);
  }
}

// --- History: filters, pages of 50 (keyset: next_after), one inspection with its reviews -------------------------

const hist = { afters: [null], next: null };

function historyParams() {
  const form = new FormData($("#history-filters"));
  const params = new URLSearchParams({ limit: "50" });
  for (const name of ["coil", "class_id", "band", "reviewed"]) {
    const value = String(form.get(name) || "").trim();
    if (value) params.set(name, value);
  }
  // Dates are whole UTC days; "to" includes its day (the API's until is exclusive).
  if (form.get("since")) params.set("since", `${form.get("since")}T00:00:00Z`);
  if (form.get("until")) {
    const end = new Date(`${form.get("until")}T00:00:00Z`);
    end.setUTCDate(end.getUTCDate() + 1);
    params.set("until", end.toISOString());
  }
  const after = hist.afters[hist.afters.length - 1];
  if (after !== null) params.set("after", String(after));
  return params;
}

async function loadHistory() {
  const tbody = $("#history-table tbody");
  let data;
  try {
    data = await api(`/api/log/history?${historyParams()}`);
  } catch (err) {
    tbody.replaceChildren();
    say("#history-message", err.message, true);
    return;
  }
  say("#history-message", data.entries.length ? "" : "No inspection matches these filters.");
  tbody.replaceChildren(...data.entries.map((e) => {
    const tr = row([e.id, when(e.inspected_at), e.image_id, e.coil ?? "", e.frame ?? "", e.band,
      e.p_defect.toFixed(3), e.classes.join(" ") || "–", e.reviewed ? "yes" : "no"]);
    tr.dataset.inspectionId = String(e.id);
    tr.classList.add(`band-${e.band}`);
    tr.addEventListener("click", () => {
      for (const other of tbody.children) other.classList.toggle("selected", other === tr);
      historyDetail(e.id);
    });
    return tr;
  }));
  hist.next = data.next_after;
  $("#history-next").disabled = data.next_after === null || data.next_after === undefined;
  $("#history-prev").disabled = hist.afters.length < 2;
  $("#history-page").textContent = `page ${hist.afters.length}`;
}

async function historyDetail(id) {
  const target = $("#history-detail");
  target.replaceChildren(el("p", "note", "Loading…"));
  try {
    target.replaceChildren(inspectionCard(await api(`/api/log/inspection/${id}`)));
  } catch (err) {
    target.replaceChildren(el("p", "error-text", err.message));
  }
}

function setupHistory() {
  $("#history-filters").addEventListener("submit", (e) => {
    e.preventDefault();
    hist.afters = [null];
    loadHistory();
  });
  $("#history-next").addEventListener("click", () => { hist.afters.push(hist.next); loadHistory(); });
  $("#history-prev").addEventListener("click", () => { if (hist.afters.length > 1) hist.afters.pop(); loadHistory(); });
}

// --- Coil: its frames in order as one strip, defects placed along it ------------------------------------------

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  return node;
}

async function loadCoils() {
  const select = $("#coil-select");
  const before = select.value;
  let data;
  try {
    data = await api("/api/log/coils?limit=100");
  } catch (err) {
    say("#coil-message", err.message, true);
    return;
  }
  select.replaceChildren(...data.coils.map((c) => {
    const frames = `${c.frames} frame${c.frames === 1 ? "" : "s"}`;
    const option = el("option", "", `${c.coil} (${frames}, last ${when(c.last_at)})`);
    option.value = c.coil;
    return option;
  }));
  if (!data.coils.length) {
    say("#coil-message", "No coil in the log yet (inspections recorded with a coil name).");
    return;
  }
  if (data.coils.some((c) => c.coil === before)) select.value = before;
  loadCoil(select.value);
}

async function loadCoil(coil) {
  const base = `/api/log/coil/${encodeURIComponent(coil)}`;
  let data;
  try {
    data = await api(base);
  } catch (err) {
    say("#coil-message", err.message, true);
    return;
  }
  say("#coil-message", `${data.frames.length} frame(s), left to right in frame order (numbered at their foot); the plate ` +
    "is grey when OK, sand when REVIEW, pink when NG; hover a frame for its details, click it to open it.");
  for (const [id, file] of [["#coil-report-csv", "report.csv"], ["#coil-report-html", "report.html"]]) {
    $(id).setAttribute("href", `${base}/${file}`);
    $(id).hidden = false;
  }
  $("#coil-counts").replaceChildren(...[1, 2, 3, 4].map((c) => {
    const count = el("span", "count", "", swatch(c), `class ${c}: ${data.counts[String(c)] || 0}`);
    count.dataset.cls = String(c);
    return count;
  }));
  $("#coil-strip").replaceChildren(...data.frames.map((f) => {
    const frame = svg("svg", { class: `coil-frame band-${f.band}`, viewBox: "0 0 1600 256", preserveAspectRatio: "none",
      "data-frame": f.frame ?? "", "data-inspection-id": f.id, role: "img" });
    const title = svg("title", {});
    title.textContent = `frame ${f.frame ?? "?"} · ${f.image_id} · ${f.band} · ${classText(f.classes)}`;
    const label = svg("text", { class: "coil-label", x: 12, y: 244 });
    label.textContent = String(f.frame ?? "?");
    frame.append(title, svg("rect", { class: "coil-plate", x: 0, y: 0, width: 1600, height: 256 }), label);
    for (const d of f.defects) {
      frame.append(svg("rect", { class: `coil-defect c${d.class_id}`, "data-cls": d.class_id,
        x: d.x, y: d.y, width: Math.max(d.width, 8), height: Math.max(d.height, 8) }));
    }
    frame.addEventListener("click", () => coilDetail(f.id));
    return frame;
  }));
}

async function coilDetail(id) {
  const target = $("#coil-detail");
  try {
    target.replaceChildren(inspectionCard(await api(`/api/log/inspection/${id}`)));
  } catch (err) {
    target.replaceChildren(el("p", "error-text", err.message));
  }
}

// --- tabs -----------------------------------------------------------------------------------------------------

const PANELS = ["upload", "browse", "review", "history", "coil"];
const ON_OPEN = {
  browse: () => browse(),
  review: () => { loadQueue(); loadBands(); },
  history: () => { hist.afters = [null]; loadHistory(); },
  coil: () => loadCoils(),
};

function setupTabs() {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => {
      for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t === tab);
      for (const panel of PANELS) $(`#${panel}`).hidden = tab.dataset.tab !== panel;
      tab.blur();  // so that the review keys (Enter) do not land on the tab button
      if (ON_OPEN[tab.dataset.tab]) ON_OPEN[tab.dataset.tab]();
    });
  }
  $("#filters").addEventListener("submit", browse);
  $("#coil-select").addEventListener("change", (e) => loadCoil(e.target.value));
}

legend();
setupToken();
setupUpload();
setupReview();
setupHistory();
setupTabs();
health();
whoami();
