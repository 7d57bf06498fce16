// The inspection page: upload images or browse the dataset; everything comes from the JSON API.
// Strings from the server (file names, messages) are untrusted: the DOM is built with createElement and
// textContent only, never parsed as HTML, and the Content-Security-Policy forbids inline script and style.
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
