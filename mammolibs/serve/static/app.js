// mammoflow's page: uploads images to POST /v1/predict one at a time (real upload progress), draws the
// findings over each image, and lets a person toggle, zoom, re-threshold and download them.
"use strict";

const OUTLINE = "rgb(255, 40, 40)";
const NOT_CALLED = "rgb(255, 220, 0)";
const CALLED = "rgb(230, 0, 230)";
let summary = null;
const queue = [];
let busy = false;
let done = 0;

const $ = (selector, root = document) => root.querySelector(selector);

function readable(p) {
  if (p < 1e-4) return "<0.01%";
  if (p > 1 - 1e-4) return ">99.99%";
  return `${Number((100 * p).toPrecision(3))}%`;
}

function megabytes(bytes) {
  return `${(bytes / 1048576).toFixed(1)} MB`;
}

function showError(text) {
  const item = document.createElement("li");
  item.textContent = text;
  $("#errors").append(item);
}

function status(text, value, max) {
  $("#progress-box").hidden = false;
  $("#status").textContent = text;
  const bar = $("#progress");
  if (value === null) {
    bar.removeAttribute("value");  // indeterminate: the models are running
  } else {
    bar.max = max;
    bar.value = value;
  }
}

async function loadModels() {
  const response = await fetch("/v1/models");
  summary = await response.json();
  const box = $("#models");
  box.replaceChildren();
  for (const card of summary.models) {
    const figure = document.createElement("dl");
    figure.className = "card";
    const rows = [
      ["Role", card.role], ["Run", card.run || "unknown"], ["Model", card.model_name],
      ["Trained", card.trained_at || "not recorded"],
      ["Trained on", card.trained_on ? Object.entries(card.trained_on.sources || {}).map(([s, n]) => `${s} (${n})`).join(", ") : "not recorded"],
      ["Validation", Object.entries(card.validation || {}).map(([k, v]) => `${k} ${Number(v).toFixed(3)}`).join(", ") || "none"],
    ];
    for (const [term, value] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      figure.append(dt, dd);
    }
    box.append(figure);
  }
  const point = document.createElement("p");
  point.textContent = `Backend ${summary.backend} on ${summary.device}; operating point chosen on ${summary.operating_point.chosen_on || "nothing (0.5 defaults)"}: ` +
    `malignancy threshold ${readable(summary.operating_point.malignancy_threshold)}, detection threshold ${summary.operating_point.unet_threshold}.`;
  box.append(point);
}

function send(body, label, onProgress) {
  // One request; resolves with {status, json}. XMLHttpRequest, for its upload progress events.
  return new Promise((resolve) => {
    const request = new XMLHttpRequest();
    request.open("POST", "/v1/predict?pictures=1");
    if (typeof body === "string") request.setRequestHeader("Content-Type", "application/json");
    request.upload.onprogress = (event) => event.lengthComputable && onProgress(event.loaded, event.total);
    request.upload.onload = () => onProgress(null, null);
    request.onload = () => {
      let json = null;
      try { json = JSON.parse(request.responseText); } catch (err) { json = {error: `the server answered ${request.status} without JSON`}; }
      resolve({status: request.status, json});
    };
    request.onerror = () => resolve({status: 0, json: {error: `${label}: the connection was closed (over the size limit, or the server is down)`}});
    request.send(body);
  });
}

function formFor(file, threshold) {
  const form = new FormData();
  form.append("modality", $("#modality").value);
  if (threshold !== undefined) form.append("threshold", String(threshold));
  form.append("file", file, file.name);
  return form;
}

function jsonFor(url, threshold) {
  const instance = {gcs_uri: url, modality: $("#modality").value};
  if (threshold !== undefined) instance.threshold = threshold;
  return JSON.stringify({instances: [instance]});
}

async function predict(item, threshold) {
  // item: {file} or {url}; returns the prediction, or null after showing why it failed.
  const label = item.file ? item.file.name : item.url;
  if (item.file && summary && item.file.size > summary.max_bytes) {
    showError(`${label}: ${megabytes(item.file.size)} is over the ${megabytes(summary.max_bytes)} upload limit`);
    return null;
  }
  const body = item.file ? formFor(item.file, threshold) : jsonFor(item.url, threshold);
  const answer = await send(body, label, (loaded, total) => {
    if (loaded === null) status(`Running the models on ${label}…`, null);
    else status(`Uploading ${label}: ${Math.round(100 * loaded / total)}%`, loaded, total);
  });
  if (answer.status !== 200) {
    showError(answer.json.error.startsWith(label) ? answer.json.error : `${label}: ${answer.json.error}`);
    return null;
  }
  return answer.json.predictions[0];
}

async function drain() {
  if (busy) return;
  busy = true;
  while (queue.length) {
    const item = queue.shift();
    const prediction = await predict(item);
    if (prediction) await show(item, prediction);
    done += 1;
    status(`${done} of ${done + queue.length} image(s) done`, done, done + queue.length);
  }
  busy = false;
}

function add(items) {
  queue.push(...items);
  drain();
}

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = reject;
    image.src = url;
  });
}

async function show(item, prediction) {
  const article = $("#result-template").content.firstElementChild.cloneNode(true);
  $("#results").prepend(article);
  const state = {item, article, view: null, picture: await loadImage(prediction.pictures.image)};
  article.state = state;
  await update(state, prediction);
  const threshold = $(".malignancy-threshold", article);
  threshold.value = prediction.operating_point.malignancy_threshold;
  const detection = $(".detection-threshold", article);
  detection.value = prediction.operating_point.unet_threshold;
  $(".detection-value", article).textContent = detection.value;
  threshold.addEventListener("input", () => render(state));
  $(".show-overlay", article).addEventListener("change", () => draw(state));
  $(".whole", article).addEventListener("click", () => { state.view = null; draw(state); });
  detection.addEventListener("input", () => { $(".detection-value", article).textContent = detection.value; });
  detection.addEventListener("change", async () => {
    const again = await predict(item, Number(detection.value));
    if (again) await update(state, again);
  });
  $(".download-json", article).addEventListener("click", (event) => {
    event.preventDefault();
    const report = {...state.prediction};
    delete report.pictures;
    download(new Blob([JSON.stringify(report, null, 2)], {type: "application/json"}), `${stem(report.image)}.findings.json`);
  });
  $(".download-png", article).addEventListener("click", (event) => {
    event.preventDefault();
    const canvas = document.createElement("canvas");
    canvas.width = state.picture.naturalWidth;
    canvas.height = state.picture.naturalHeight;
    paint(state, canvas, null, true);
    canvas.toBlob((blob) => download(blob, `${stem(state.prediction.image)}.overlay.png`), "image/png");
  });
}

function stem(name) {
  return name.replace(/\.[^.]*$/, "");
}

function download(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

async function update(state, prediction) {
  state.prediction = prediction;
  state.outline = await loadImage(prediction.pictures.outline);
  $(".name", state.article).textContent = prediction.image;
  const warnings = $(".warnings", state.article);
  warnings.replaceChildren(...prediction.warnings.map((text) => Object.assign(document.createElement("li"), {textContent: text})));
  render(state);
}

function render(state) {
  // The verdict and the table at the current malignancy threshold, then the picture.
  const article = state.article;
  const prediction = state.prediction;
  const threshold = Number($(".malignancy-threshold", article).value || prediction.operating_point.malignancy_threshold);
  $(".malignancy-value", article).textContent = readable(threshold);
  const called = prediction.lesions.length > 0 && prediction.malignancy >= threshold;
  const verdict = $(".verdict", article);
  verdict.dataset.called = String(called);
  verdict.textContent = prediction.lesions.length === 0 ? "No lesion found: not called malignant." :
    `${prediction.lesions.length} finding(s); image malignancy ${readable(prediction.malignancy)}: ` +
    (called ? "suspicious for malignancy" : "not called malignant") + ` at the threshold ${readable(threshold)}.`;
  const rows = prediction.lesions.map((lesion, index) => {
    const row = document.createElement("tr");
    const [x0, y0, x1, y1] = lesion.box;
    const cells = [String(index + 1), `${Math.round((x0 + x1) / 2)}, ${Math.round((y0 + y1) / 2)}`,
      `${lesion.width} × ${lesion.height}`, readable(lesion.probabilities.benign ?? 0),
      readable(lesion.probabilities.malignant ?? 0), lesion.malignancy_text,
      lesion.malignancy >= threshold ? "malignant" : "benign"];
    for (const text of cells) row.append(Object.assign(document.createElement("td"), {textContent: text}));
    const zoom = Object.assign(document.createElement("button"), {type: "button", textContent: `Zoom to ${index + 1}`});
    zoom.addEventListener("click", () => { state.view = lesion.box; draw(state); });
    row.append(Object.assign(document.createElement("td"), {}));
    row.lastChild.append(zoom);
    return row;
  });
  $(".findings tbody", article).replaceChildren(...rows);
  draw(state);
}

function draw(state) {
  const canvas = $(".view", state.article);
  const width = Math.min(900, state.article.clientWidth || 900);
  const picture = state.picture;
  let region = [0, 0, picture.naturalWidth, picture.naturalHeight];
  if (state.view) {
    const scale = picture.naturalWidth / state.prediction.width;
    const [x0, y0, x1, y1] = state.view.map((v) => v * scale);
    // the lesion and some tissue around it, and at least twice as large as the whole image shows it
    const side = Math.min(Math.max(x1 - x0, y1 - y0) * 1.5 + 16, Math.max(picture.naturalWidth, picture.naturalHeight) / 2);
    const [w, h] = [Math.min(side, picture.naturalWidth), Math.min(side, picture.naturalHeight)];
    const clamp = (v, most) => Math.min(Math.max(0, v), most);
    region = [clamp((x0 + x1 - w) / 2, picture.naturalWidth - w), clamp((y0 + y1 - h) / 2, picture.naturalHeight - h), w, h];
  }
  canvas.width = width;
  canvas.height = Math.round(width * region[3] / region[2]);
  paint(state, canvas, region, $(".show-overlay", state.article).checked);
}

function paint(state, canvas, region, findings) {
  // The picture's region (display pixels; null: all) on the canvas, with the findings if asked.
  const picture = state.picture;
  const [sx, sy, sw, sh] = region || [0, 0, picture.naturalWidth, picture.naturalHeight];
  const context = canvas.getContext("2d");
  context.imageSmoothingEnabled = false;
  context.fillStyle = "black";
  context.fillRect(0, 0, canvas.width, canvas.height);
  context.drawImage(picture, sx, sy, sw, sh, 0, 0, canvas.width, canvas.height);
  if (!findings) return;
  const prediction = state.prediction;
  const threshold = Number($(".malignancy-threshold", state.article).value);
  const toDisplay = picture.naturalWidth / prediction.width;
  const scale = canvas.width / sw;
  context.lineWidth = Math.max(2, canvas.width / 400);
  context.font = `${Math.max(12, Math.round(canvas.width / 45))}px sans-serif`;
  prediction.lesions.forEach((lesion, index) => {
    const [x0, y0, x1, y1] = lesion.box.map((v) => v * toDisplay);
    const colour = lesion.malignancy >= threshold ? CALLED : NOT_CALLED;
    context.strokeStyle = colour;
    context.fillStyle = colour;
    const left = (x0 - sx) * scale, top = (y0 - sy) * scale;
    context.strokeRect(left, top, (x1 - x0) * scale, (y1 - y0) * scale);
    context.fillText(`${index + 1}: ${lesion.malignancy_text}`, left, Math.max(12, top - 4));
  });
  context.drawImage(state.outline, sx, sy, sw, sh, 0, 0, canvas.width, canvas.height);  // the shapes over their boxes
}

function setUp() {
  const drop = $("#drop");
  const input = $("#files");
  input.addEventListener("change", () => { add([...input.files].map((file) => ({file}))); input.value = ""; });
  drop.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") { event.preventDefault(); input.click(); }
  });
  drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (event) => {
    event.preventDefault();
    drop.classList.remove("over");
    add([...event.dataTransfer.files].map((file) => ({file})));
  });
  $("#url-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const url = $("#url").value.trim();
    if (url) add([{url}]);
  });
  loadModels().catch((err) => showError(`the models could not be described: ${err}`));
}

document.addEventListener("DOMContentLoaded", setUp);
