// CrossPoint viewer: upload a shape, show its normalized points coloured by predicted part,
// the top-5 classes, the model/version and the preprocessing receipt. Talks only to the /v1 API.
import * as THREE from "./vendor/three-bundle.min.js";

const $ = (id) => document.getElementById(id);
const PALETTE = [
  "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4",
  "#f032e6", "#bfef45", "#fabed4", "#469990", "#dcbeff", "#9a6324",
];

let renderer, scene, camera, controls, cloud;

function initView() {
  const canvas = $("canvas");
  // preserveDrawingBuffer lets tests (and users) read the canvas pixels back.
  renderer = new THREE.WebGLRenderer({ canvas, antialias: true, preserveDrawingBuffer: true });
  renderer.setPixelRatio(window.devicePixelRatio || 1);
  scene = new THREE.Scene();
  scene.background = new THREE.Color("#1d2026");
  camera = new THREE.PerspectiveCamera(45, 1, 0.01, 100);
  camera.position.set(1.8, 1.2, 2.2);
  controls = new THREE.OrbitControls(camera, canvas);
  controls.enableDamping = true;
  const axes = new THREE.AxesHelper(0.3);
  axes.position.set(-1.1, -1.1, -1.1);
  scene.add(axes);
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

function showPoints(points, labels, partNames) {
  if (cloud) {
    scene.remove(cloud);
    cloud.geometry.dispose();
  }
  const positions = new Float32Array(points.length * 3);
  const colors = new Float32Array(points.length * 3);
  const used = [...new Set(labels)].sort((a, b) => a - b);
  const colourOf = new Map(used.map((label, i) => [label, new THREE.Color(PALETTE[i % PALETTE.length])]));
  points.forEach((p, i) => {
    positions.set(p, i * 3);
    const c = colourOf.get(labels[i]) || new THREE.Color("#cccccc");
    colors.set([c.r, c.g, c.b], i * 3);
  });
  const geometry = new THREE.BufferGeometry();
  geometry.setAttribute("position", new THREE.BufferAttribute(positions, 3));
  geometry.setAttribute("color", new THREE.BufferAttribute(colors, 3));
  const material = new THREE.PointsMaterial({ size: 0.035, vertexColors: true, sizeAttenuation: true });
  cloud = new THREE.Points(geometry, material);
  scene.add(cloud);
  const counts = new Map();
  labels.forEach((l) => counts.set(l, (counts.get(l) || 0) + 1));
  $("legend").innerHTML = used
    .map((label) => {
      const colour = `#${colourOf.get(label).getHexString()}`;
      const share = ((100 * counts.get(label)) / labels.length).toFixed(0);
      return `<div><span class="swatch" style="background:${colour}"></span>${escapeHtml(partName(label, partNames))} <small>${share}%</small></div>`;
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
  showError("");
  setStatus(`analysing ${file.name}…`);
  const upAxis = $("up-axis").value;
  const category = $("category").value;
  try {
    const segmentParams = { up_axis: upAxis };
    if (category) segmentParams.category = category;
    const [classified, segmented] = await Promise.all([
      post("v1/classify", file, { up_axis: upAxis, top_k: 5 }),
      post("v1/segment", file, segmentParams),
    ]);
    showClasses(classified.predictions);
    showPoints(segmented.points, segmented.point_labels, segmented.part_names);
    $("segment-summary").textContent =
      `${segmented.category} (${segmented.category_source || "given"}), ${segmented.points.length} points` +
      (segmented.vertex_labels ? `, ${segmented.vertex_labels.length} original points labelled` : "");
    showModelInfo(classified, segmented);
    $("receipt").textContent = JSON.stringify(classified.receipt, null, 2);
    setStatus(`${file.name}: done`);
  } catch (err) {
    setStatus("");
    showError(err.message || String(err));
  }
}

function showClasses(predictions) {
  $("top-classes").innerHTML = predictions
    .map((p) => {
      const pct = (100 * p.probability).toFixed(1);
      return `<li><span class="label">${escapeHtml(p.label)}</span> <small>${pct}%</small><div class="bar" style="width:${pct}%"></div></li>`;
    })
    .join("");
}

function showModelInfo(classified, segmented) {
  const rows = [
    ["classifier", `${classified.model} v${classified.version}`],
    ["segmenter", `${segmented.model} v${segmented.version}`],
  ];
  $("model-info").innerHTML = rows.map(([k, v]) => `<dt>${k}</dt><dd>${escapeHtml(v)}</dd>`).join("");
}

async function loadModels() {
  try {
    const response = await fetch("v1/models");
    if (!response.ok) throw new Error(await apiError(response));
    const body = await response.json();
    const models = body.models || body;
    const segment = (Array.isArray(models) ? models : Object.values(models)).find((m) => m.name === "segment");
    const names = (segment && (segment.category_names || (segment.metadata || {}).category_names)) || [];
    for (const name of names) $("category").append(new Option(name, name));
  } catch (err) {
    showError(`Could not reach the API: ${err.message}`);
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

function wireInputs() {
  const zone = $("dropzone");
  const input = $("file-input");
  zone.addEventListener("click", () => input.click());
  zone.addEventListener("keydown", (e) => (e.key === "Enter" || e.key === " ") && input.click());
  input.addEventListener("change", () => input.files[0] && analyse(input.files[0]));
  zone.addEventListener("dragover", (e) => {
    e.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files[0]) analyse(e.dataTransfer.files[0]);
  });
  $("sample-select").addEventListener("change", async (e) => {
    const name = e.target.value;
    if (!name) return;
    const response = await fetch(`static/samples/${name}`);
    if (!response.ok) return showError(`sample ${name} is missing (${response.status})`);
    analyse(new File([await response.blob()], name));
  });
}

initView();
wireInputs();
loadModels();
loadSamples();
