// The inspection page: upload images or browse the dataset; everything comes from the JSON API.
"use strict";

const COLOURS = { 1: "var(--c1)", 2: "var(--c2)", 3: "var(--c3)", 4: "var(--c4)" };
const $ = (sel, root = document) => root.querySelector(sel);

function legend() {
  $("#legend").innerHTML = [1, 2, 3, 4]
    .map((c) => `<span><span class="swatch" style="background:${COLOURS[c]}"></span>class ${c}</span>`)
    .join("");
}

async function health() {
  const response = await fetch("/api/health");
  const info = await response.json();
  const parts = [info.segmentation ? "classifier + segmenter" : "classifier only (no masks)"];
  if (info.dataset) {
    parts.push(`dataset: ${info.dataset.images} images`);
    $("#tab-browse").hidden = false;
  }
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
    $(".details", node).innerHTML = `<p class="error-text">${result.error}</p>`;
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
    const label = document.createElement("label");
    label.innerHTML = `<input type="checkbox" checked data-cls="${cls}"> <span class="swatch" style="background:${COLOURS[cls]}"></span>class ${cls}`;
    label.querySelector("input").addEventListener("change", (e) => { layer.hidden = !e.target.checked; });
    toggles.appendChild(label);
  }
  if (!Object.keys(result.layers || {}).length) {
    toggles.textContent = result.overlay === null && !result.layers ? "" : "no defect masks";
  }
  const p = result.p_class;
  $(".probs tbody", node).innerHTML =
    `<tr><td>${result.p_defect.toFixed(3)}</td>${[1, 2, 3, 4].map((c) => `<td>${p[c].toFixed(3)}</td>`).join("")}</tr>`;
  $(".defects tbody", node).innerHTML = result.defects.length
    ? result.defects.map((d) => `<tr><td>${d.class}</td><td>${d.area_px}</td><td>${d.bbox.join(", ")}</td></tr>`).join("")
    : `<tr><td colspan="3">no defect regions</td></tr>`;
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
  const response = await fetch("/api/predict", { method: "POST", body: form });
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
  $("#browse-count").textContent = `${data.total} image(s); predictions ready for ${data.predicted} of ${data.images}`;
  const list = $("#image-list");
  list.innerHTML = "";
  for (const item of data.items) {
    const li = document.createElement("li");
    const truth = item.truth.join(" ") || "clean";
    const pred = item.predicted === null ? "…" : item.predicted.join(" ") || "clean";
    li.innerHTML = `<span>${item.image_id}</span><span class="${truth === pred ? "" : "mismatch"}">${truth} / ${pred}</span>`;
    li.title = "true classes / predicted classes";
    li.addEventListener("click", () => { for (const x of list.children) x.classList.remove("selected"); li.classList.add("selected"); detail(item.image_id); });
    list.appendChild(li);
  }
}

async function detail(imageId) {
  const target = $("#browse-detail");
  target.textContent = "Loading…";
  const response = await fetch(`/api/dataset/${encodeURIComponent(imageId)}`);
  const data = await response.json();
  if (!response.ok) { target.innerHTML = `<p class="error-text">${data.detail}</p>`; return; }
  target.innerHTML = "";
  const truth = { ...data.truth, image_id: `${imageId}: ground truth`, has_defect: data.truth.classes.length > 0,
    classes: data.truth.classes, p_defect: NaN, p_class: { 1: NaN, 2: NaN, 3: NaN, 4: NaN }, defects: [] };
  const truthCard = card(truth);
  $(".details", truthCard).remove();
  const predCard = card({ ...data.prediction, image_id: `${imageId}: prediction` });
  target.append(truthCard, predCard);
}

function setupTabs() {
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => {
      for (const t of document.querySelectorAll(".tab")) t.classList.toggle("active", t === tab);
      $("#upload").hidden = tab.dataset.tab !== "upload";
      $("#browse").hidden = tab.dataset.tab !== "browse";
      if (tab.dataset.tab === "browse") browse();
    });
  }
  $("#filters").addEventListener("submit", browse);
}

legend();
setupUpload();
setupTabs();
health();
