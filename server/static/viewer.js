// CrossPoint viewer: upload a shape, show its normalized points coloured by predicted part,
// the top-5 classes, the model/version and the preprocessing receipt. Talks only to the /v1 API.
import * as THREE from "./vendor/three-bundle.min.js";

const $ = (id) => document.getElementById(id);
const PALETTE = [
  "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4",
  "#f032e6", "#bfef45", "#fabed4", "#469990", "#dcbeff", "#9a6324",
];

let renderer, scene, camera, controls, cloud, disc;
let latest = 0; // the newest analysis; answers to older ones are dropped
let lastFile = null; // searched again when another collection is chosen

function initView() {
  const canvas = $("canvas");
  // preserveDrawingBuffer lets tests (and users) read the canvas pixels back.
  renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  scene = new THREE.Scene();
  scene.background = new THREE.Color("#1d2026");
  camera = new THREE.PerspectiveCamera(45, 1, 0.01, 100);
  camera.position.set(2.0, 1.3, 2.5);
  controls = new THREE.OrbitControls(camera, canvas);
  controls.enableDamping = true;
  // The model frame: y up, the shape inside the unit sphere; a floor grid at y = -1 and the axes at its corner.
  const grid = new THREE.GridHelper(2, 8, "#3a404a", "#2a2e36");
  grid.position.y = -1;
  scene.add(grid);
  const axes = new THREE.AxesHelper(0.3);
  axes.position.set(-1, -1, -1);
  scene.add(axes);
  disc = discTexture();
  const resize = () => {
    const { clientWidth: w, clientHeight: h } = canvas;
    renderer.setSize(w, h, false);
    camera.aspect = w / Math.max(h, 1);
    camera.updateProjectionMatrix();
  };
  new ResizeObserver(resize).observe(canvas);
  resize();
  const loop = () => {
    controls.update();
    renderer.render(scene, camera);
    requestAnimationFrame(loop);
  };
  loop();
}

function discTexture() {
  const size = 64;
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#ffffff";
  ctx.beginPath();
  ctx.arc(size / 2, size / 2, size / 2 - 1, 0, 2 * Math.PI);
  ctx.fill();
  return new THREE.CanvasTexture(canvas);
}

// A part keeps its colour from shape to shape: the colour follows its index in part_names.
function partColour(label) {
  return label >= 0 ? PALETTE[label % PALETTE.length] : "#cccccc";
}

function removeCloud() {
  if (!cloud || !scene) return;
  scene.remove(cloud);
  cloud.geometry.dispose();
  cloud.material.dispose();
  cloud = null;
}

function showPoints(points, labels, partNames) {
  removeCloud();
  const positions = new Float32Array(points.length * 3);
  const colors = new Float32Array(points.length * 3);
  const used = [...new Set(labels)].sort((a, b) => a - b);
  const colourOf = new Map(used.map((label) => [label, new THREE.Color(partColour(label))]));
  points.forEach((p, i) => {
    positions.set(p, i * 3);
    const c = colourOf.get(labels[i]);
    colors.set([c.r, c.g, c.b], i * 3);
  });
  const geometry = new THREE.BufferGeometry();
  geometry.setAttribute("position", new THREE.BufferAttribute(positions, 3));
  geometry.setAttribute("color", new THREE.BufferAttribute(colors, 3));
  // fewer points, bigger dots: about the same covered area for 256 or 2048 points
  const size = Math.min(0.05, Math.max(0.015, 0.9 / Math.sqrt(points.length)));
  const material = new THREE.PointsMaterial({ size, vertexColors: true, map: disc, alphaTest: 0.5 });
  cloud = new THREE.Points(geometry, material);
  if (scene) scene.add(cloud);
  const counts = new Map();
  labels.forEach((l) => counts.set(l, (counts.get(l) || 0) + 1));
  $("legend").innerHTML = used
    .map((label) => {
      const colour = `#${colourOf.get(label).getHexString()}`;
      const share = ((100 * counts.get(label)) / labels.length).toFixed(0);
      return `<div class="legend-row"><span class="swatch" style="background:${colour}"></span><span class="part">${escapeHtml(partName(label, partNames))}</span> <small>${share}%</small></div>`;
    })
    .join("");
}

function partName(label, partNames) {
  if (partNames && label >= 0 && label < partNames.length) return partNames[label];
  return `part ${label}`;
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function setStatus(text) {
  $("status").textContent = text;
}

function showError(message) {
  const box = $("error");
  box.hidden = !message;
  box.textContent = message || "";
}

async function apiError(response) {
  let code = `http_${response.status}`;
  let message = response.statusText;
  try {
    const body = await response.json();
    if (body && body.error) ({ code, message } = body.error);
  } catch (_) {
    /* a non-JSON body: keep the status text */
  }
  if (response.status === 413) return `The file is too large for this server (${message}).`;
  if (response.status === 503 || response.status === 429) {
    const retry = response.headers.get("Retry-After");
    return `The server is busy${retry ? `; try again in ${retry} s` : ""}. (${message})`;
  }
  if (response.status === 401 || response.status === 403) return `Not authorised: ${message}`;
  return `${message} [${code}]`;
}

async function post(path, file, params) {
  const form = new FormData();
  form.append("file", file, file.name);
  const query = new URLSearchParams(params).toString();
  const response = await fetch(`${path}?${query}`, { method: "POST", body: form });
  if (!response.ok) throw new Error(await apiError(response));
  return response.json();
}

async function analyse(file) {
  const run = ++latest;
  showError("");
  clearResults();
  setStatus(`analysing ${file.name}…`);
  const upAxis = $("up-axis").value;
  const category = $("category").value;
  try {
    const segmentParams = { up_axis: upAxis };
    if (category) segmentParams.category = category;
    const [classified, segmented, embedded] = await Promise.all([
      post("v1/classify", file, { up_axis: upAxis, top_k: 5 }),
      post("v1/segment", file, segmentParams),
      post("v1/embed", file, { up_axis: upAxis }),
    ]);
    if (run !== latest) return;
    showClasses(classified.predictions);
    showVerdict(classified);
    showPoints(segmented.points, segmented.point_labels, segmented.part_names);
    $("segment-summary").textContent =
      `${segmented.category} (${segmented.category_source === "given" ? "given" : "predicted"}), ` +
      `${segmented.points.length} points` +
      (segmented.vertex_labels ? `, ${segmented.vertex_labels.length} original vertices labelled` : "");
    showModelInfo(embedded, classified, segmented);
    showReceipt(classified.receipt);
    lastFile = file;
    showSimilar(file, run);
    $("shape-name").textContent = file.name;
    setStatus(`${file.name}: done`);
  } catch (err) {
    if (run !== latest) return;
    setStatus(`${file.name}: failed`);
    showError(err.message || String(err));
  }
}

function clearResults() {
  removeCloud();
  for (const id of ["legend", "top-classes", "model-info", "receipt-summary"]) $(id).innerHTML = "";
  $("ood-verdict").textContent = "";
  $("ood-verdict").className = "";
  $("segment-summary").textContent = "–";
  $("receipt").textContent = "";
  $("shape-name").textContent = "";
}

function showClasses(predictions) {
  $("top-classes").innerHTML = predictions
    .map((p) => {
      const pct = (100 * p.probability).toFixed(1);
      return `<li><span class="label">${escapeHtml(p.label)}</span> <span class="probability">${pct}%</span><div class="track"><div class="bar" style="width:${pct}%"></div></div></li>`;
    })
    .join("");
}

// The OOD verdict: top classes of a shape unlike anything the model was trained on mean little.
function showVerdict(answer) {
  const el = $("ood-verdict");
  if (answer.in_distribution == null) {
    el.textContent = "no OOD statistics for this model version";
    el.className = "";
    return;
  }
  const score = answer.ood_score.toFixed(2);
  el.textContent = answer.in_distribution
    ? `in distribution (ood_score ${score})`
    : `out of distribution (ood_score ${score}): unlike the ModelNet40 training shapes, so these classes are unreliable`;
  el.className = answer.in_distribution ? "ood-in" : "ood-out";
}

function showModelInfo(embedded, classified, segmented) {
  showRows("model-info", [
    ["embedding", `${embedded.model} v${embedded.version} (${embedded.embedding.length}-d)`],
    ["classes", `${classified.model} v${classified.version}`],
    ["parts", `${segmented.model} v${segmented.version}`],
  ]);
}

function showReceipt(receipt) {
  const fixed = (v, digits) => (typeof v === "number" ? v.toFixed(digits) : String(v));
  const source = [receipt.source_format, receipt.source_vertices != null && `${receipt.source_vertices} vertices`,
    receipt.source_faces ? `${receipt.source_faces} faces` : null].filter(Boolean).join(", ");
  showRows("receipt-summary", [
    ["source", source],
    ["points", `${receipt.num_points} of ${receipt.requested_points} (${receipt.sampling}, seed ${receipt.seed})`],
    ["up axis", receipt.up_axis_scores ? `${receipt.up_axis} (auto: the most upright of 6)` : receipt.up_axis],
    ["centroid", (receipt.centroid || []).map((v) => fixed(v, 3)).join(", ")],
    ["scale", fixed(receipt.scale, 4)],
    ["dropped", `${receipt.dropped_nonfinite} non-finite, ${receipt.duplicates_removed} duplicates`],
  ]);
  $("receipt").textContent = JSON.stringify(receipt, null, 2);
}

function showRows(id, rows) {
  $(id).innerHTML = rows.map(([k, v]) => `<dt>${k}</dt><dd>${escapeHtml(v)}</dd>`).join("");
}

async function loadModels() {
  try {
    const response = await fetch("v1/models");
    if (!response.ok) throw new Error(await apiError(response));
    const { models } = await response.json();
    const segment = models.find((m) => m.name === "segment");
    // up_axis=auto needs the OOD statistics of embed and classify: make it the default when served.
    const calibrated = ["embed", "classify"].every((n) => models.some((m) => m.name === n && m.calibration));
    if (calibrated) $("up-axis").value = "auto";
    else $("up-axis").querySelector('option[value="auto"]').disabled = true;
    for (const name of (segment && segment.category_names) || []) $("category").append(new Option(name, name));
    $("served").textContent = models.map((m) => `${m.name} v${m.version}`).join(" · ");
  } catch (err) {
    showError(`Could not reach the API: ${err.message}`);
  }
}

// "Similar shapes": the nearest items of the chosen collection (its own version answers; an error,
// e.g. a collection waiting for `crosspoint collections reembed`, is shown in the panel only).
async function showSimilar(file, run) {
  const name = $("collection").value;
  const list = $("similar");
  list.innerHTML = "";
  if (!name || !file) return;
  try {
    const found = await post(`v1/collections/${encodeURIComponent(name)}/search`, file, {
      up_axis: $("up-axis").value,
      k: 5,
    });
    if (run !== latest) return;
    list.innerHTML =
      found.matches
        .map(
          (m) =>
            `<li><span class="label">${escapeHtml(m.id)}</span>${m.label ? ` (${escapeHtml(m.label)})` : ""} ` +
            `<span class="probability">${m.score.toFixed(3)}</span></li>`,
        )
        .join("") || "<li>the collection is empty</li>";
  } catch (err) {
    if (run === latest) list.innerHTML = `<li class="error">${escapeHtml(err.message || String(err))}</li>`;
  }
}

async function loadCollections() {
  try {
    const response = await fetch("v1/collections");
    if (!response.ok) return;
    for (const c of (await response.json()).collections) {
      $("collection").append(new Option(`${c.name} (${c.count} items, ${c.model} v${c.version})`, c.name));
    }
  } catch (_) {
    /* collections are optional */
  }
}

async function loadSamples() {
  try {
    const response = await fetch("static/samples/index.json");
    if (!response.ok) return;
    for (const sample of await response.json()) {
      $("sample-select").append(new Option(sample.title, sample.file));
    }
  } catch (_) {
    /* samples are optional */
  }
}

// An uploaded file replaces the chosen sample, so picking that sample again reloads it.
function analyseUpload(file) {
  $("sample-select").value = "";
  analyse(file);
}

function wireInputs() {
  const zone = $("dropzone");
  const input = $("file-input");
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (e) => (e.key === "Enter" || e.key === " ") && input.click());
  input.addEventListener("change", () => {
    if (input.files[0]) analyseUpload(input.files[0]);
    input.value = ""; // picking the same file again still fires "change"
  });
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files[0]) analyseUpload(e.dataTransfer.files[0]);
  });
  $("collection").addEventListener("change", () => showSimilar(lastFile, latest));
  $("sample-select").addEventListener("change", async (e) => {
    const name = e.target.value;
    if (!name) return;
    const response = await fetch(`static/samples/${encodeURIComponent(name)}`);
    if (!response.ok) return showError(`sample ${name} is missing (${response.status})`);
    analyse(new File([await response.blob()], name));
  });
}

try {
  initView();
} catch (err) {
  scene = null; // results are still listed, without the 3D view
  showError(`This browser cannot show the 3D view (WebGL: ${err.message}).`);
}
wireInputs();
loadModels();
loadCollections();
loadSamples();
