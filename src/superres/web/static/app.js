// The superres page: send each dropped image to /api/jobs, follow its progress, show the result against
// the input with a before/after slider, and offer it for download (one by one, or all as a zip).
"use strict";

const $ = (id) => document.getElementById(id);
const results = [];          // {name, blob} of every finished image, for the zip
const pending = new Set();   // job ids not finished, cancelled if the page closes
const MAX_IN_FLIGHT = 3;     // uploads waiting at the server at once; the rest wait here
let inFlight = 0;
const waitingHere = [];

async function loadInfo() {
  const info = await (await fetch("/api/info")).json();
  const select = $("model");
  for (const m of info.models.filter((m) => !info.models.some((o) => o.photo === m.name))) {
    const option = new Option(m.name + (m.default ? " (default)" : ""), m.name, m.default, m.default);
    option.dataset.photo = m.photo || "";
    select.add(option);
  }
  const denoiseShown = () => { $("denoise-box").hidden = !select.selectedOptions[0]?.dataset.photo; };
  select.addEventListener("change", denoiseShown);
  denoiseShown();
  $("drop-help").dataset.maxBytes = info.max_upload_bytes;
}

function options() {
  const form = new FormData();
  form.set("model", $("model").value);
  if ($("size-kind").value === "scale") form.set("scale", $("scale").value);
  else form.set("size", $("size").value.trim());
  if (!$("denoise-box").hidden) form.set("denoise", $("denoise").value);
  form.set("self_ensemble", $("self-ensemble").checked ? "true" : "false");
  return form;
}

function addFiles(files) {
  for (const file of files) {
    const card = newCard(file);
    const form = options();
    waitingHere.push(() => send(file, card, form).catch((e) => fail(card, `failed: ${e.message || e}`)));
  }
  pump();
}

// an answer's JSON, or {error} from its status where the body is not JSON
async function json(response) {
  try {
    return await response.json();
  } catch {
    return { error: `the server answered ${response.status} ${response.statusText}` };
  }
}

function pump() {
  while (inFlight < MAX_IN_FLIGHT && waitingHere.length) {
    inFlight++;
    waitingHere.shift()().finally(() => { inFlight--; pump(); });
  }
}

function newCard(file) {
  const card = $("card").content.firstElementChild.cloneNode(true);
  card.querySelector(".name").textContent = file.name;
  card.querySelector(".status").textContent = "waiting";
  $("results").append(card);
  return card;
}

function setStatus(card, text, state) {
  card.querySelector(".status").textContent = text;
  if (state) card.className = "card " + state;
}

// POST the file; the upload's own progress is the first tenth of the bar
function upload(file, card, form) {
  return new Promise((resolve) => {
    form.set("image", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/jobs");
    xhr.responseType = "json";
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) card.querySelector(".progress").value = 0.1 * e.loaded / e.total;
    };
    xhr.onload = () => resolve({ status: xhr.status, body: xhr.response || {}, retry: xhr.getResponseHeader("Retry-After") });
    xhr.onerror = () => resolve({ status: 0, body: { error: "the server cannot be reached" } });
    setStatus(card, "uploading");
    xhr.send(form);
  });
}

async function send(file, card, form) {
  let answer;
  for (;;) {
    answer = await upload(file, card, form);
    if (answer.status !== 503) break;
    setStatus(card, "the server is busy; trying again shortly");
    await new Promise((r) => setTimeout(r, 1000 * Number(answer.retry || 2)));
  }
  if (answer.status !== 202) return fail(card, answer.body.error || `error ${answer.status}`);
  const id = answer.body.id;
  pending.add(id);
  const started = performance.now();
  let job = answer.body;
  while (job.state === "queued" || job.state === "running") {
    setStatus(card, job.state === "queued" ? "in the queue" : `upscaling: ${Math.round(job.progress * 100)}%`);
    card.querySelector(".progress").value = 0.1 + 0.9 * job.progress;
    await new Promise((r) => setTimeout(r, 250));
    const response = await fetch(`/api/jobs/${id}`);
    job = await json(response);
    if (!response.ok) return fail(card, job.error || `error ${response.status}`);
  }
  const response = await fetch(`/api/jobs/${id}/result`);
  pending.delete(id);
  if (!response.ok) return fail(card, (await json(response)).error || `error ${response.status}`);
  const blob = await response.blob();
  const name = filenameOf(response) || file.name;
  results.push({ name, blob });
  $("zip").disabled = false;
  setStatus(card, `${job.width} x ${job.height}, ${job.seconds.toFixed(2)} s on the server` +
    ` (${((performance.now() - started) / 1000).toFixed(1)} s in all)`, "done");
  show(card, file, blob, name);
  summary();
}

function fail(card, message) {
  setStatus(card, message, "failed");
  card.querySelector(".status").setAttribute("role", "alert");
  summary();
}

function filenameOf(response) {
  const header = response.headers.get("Content-Disposition") || "";
  const star = header.match(/filename\*=utf-8''([^;]+)/i);
  if (star) return decodeURIComponent(star[1]);
  const plain = header.match(/filename="?([^";]+)"?/i);
  return plain ? plain[1] : null;
}

function summary() {
  const cards = [...document.querySelectorAll(".card")];
  const done = cards.filter((c) => c.classList.contains("done")).length;
  const failed = cards.filter((c) => c.classList.contains("failed")).length;
  $("summary").textContent = `${done} done` + (failed ? `, ${failed} failed` : "") + ` of ${cards.length}`;
}

// the result, with the input on top of it clipped at the slider
function show(card, file, blob, name) {
  const view = card.querySelector(".view"), box = card.querySelector(".compare");
  const after = card.querySelector(".after"), before = card.querySelector(".before");
  const slider = card.querySelector(".slider"), divider = card.querySelector(".divider");
  const link = card.querySelector(".download");
  after.src = URL.createObjectURL(blob);
  before.src = URL.createObjectURL(file);
  link.href = after.src;
  link.download = name;
  view.hidden = false;
  const layout = () => {
    before.style.width = after.offsetWidth + "px";
    before.style.height = after.offsetHeight + "px";
    divider.style.height = after.offsetHeight + "px";
    const v = Number(slider.value);
    before.style.clipPath = `inset(0 ${100 - v}% 0 0)`;
    divider.style.left = (after.offsetWidth * v / 100) + "px";
  };
  after.onload = layout;
  before.onload = layout;
  window.addEventListener("resize", layout);
  slider.addEventListener("input", layout);
  const enlarge = () => box.classList.toggle("nearest", $("enlarge").value === "nearest");
  $("enlarge").addEventListener("change", enlarge);
  enlarge();
  const drag = (e) => {
    const rect = after.getBoundingClientRect();
    slider.value = Math.max(0, Math.min(100, 100 * (e.clientX - rect.left) / rect.width));
    layout();
  };
  box.addEventListener("pointerdown", (e) => { box.setPointerCapture(e.pointerId); drag(e); });
  box.addEventListener("pointermove", (e) => { if (box.hasPointerCapture(e.pointerId)) drag(e); });
  const zoom = card.querySelector(".zoom");
  zoom.addEventListener("click", () => {
    const fit = box.classList.toggle("fit");
    zoom.textContent = fit ? "100%" : "fit";
    zoom.setAttribute("aria-pressed", String(!fit));
    layout();
  });
}

function setUp() {
  const drop = $("drop"), input = $("file");
  drop.addEventListener("click", () => input.click());
  drop.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") { e.preventDefault(); input.click(); }
  });
  input.addEventListener("change", () => { addFiles([...input.files]); input.value = ""; });
  for (const kind of ["dragenter", "dragover"]) {
    drop.addEventListener(kind, (e) => { e.preventDefault(); drop.classList.add("over"); });
  }
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    addFiles([...e.dataTransfer.files]);
  });
  $("size-kind").addEventListener("change", () => {
    const bySize = $("size-kind").value === "size";
    $("size-box").hidden = !bySize;
    $("scale-box").hidden = bySize;
  });
  $("zip").addEventListener("click", async () => {
    const used = new Set();
    const unique = (name) => {  // a second astronaut_x2.png becomes astronaut_x2 (2).png
      let candidate = name;
      for (let k = 2; used.has(candidate); k++) candidate = name.replace(/(\.[^.]*)?$/, ` (${k})$1`);
      used.add(candidate);
      return candidate;
    };
    const files = await Promise.all(results.map(async (r) => ({ name: unique(r.name), bytes: new Uint8Array(await r.blob.arrayBuffer()) })));
    if (files.reduce((n, f) => n + f.bytes.length, 0) >= 2 ** 32 - 2 ** 20) {
      $("summary").textContent = "too large for one zip (4 GB); download the results one by one";
      return;
    }
    const link = document.createElement("a");
    link.href = URL.createObjectURL(makeZip(files));
    link.download = "superres.zip";
    link.click();
  });
  // a closed tab stops its jobs (the server also drops jobs nobody asks about for a while)
  window.addEventListener("pagehide", () => {
    for (const id of pending) navigator.sendBeacon(`/api/jobs/${id}/cancel`);
  });
  loadInfo().catch(() => { $("summary").textContent = "the server cannot be reached"; });
}

setUp();
