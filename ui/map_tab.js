// The Map tab's scatter (js_on_load of a gr.HTML; see ui/map_tab.py). Self-written, no
// library: every dot is written straight into one ImageData buffer, so 100,000 dots cost a
// few milliseconds per frame and no DOM element each. Wheel zooms, drag pans; Box and Lasso
// select; a click runs a search (trigger('click', {index, token}) -> Python); hovering asks
// the server for the thumbnail and path of the dot under the cursor.
// Globals given by Gradio: element, trigger, props, server.
const PALETTE = [
  "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf",
  "#bcbd22", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd", "#e6550d",
  "#31a354", "#756bb1", "#636363", "#9c9ede",
];
const NOISE_COLOUR = "#b4b4b4";
const UNLABELLED_COLOUR = "#5a5a5a";
const DIM_COLOUR = "#e4e4e4";
const SELECTED_COLOUR = "#000000";
const PICK_RADIUS = 7; // px
const GRID = 256; // hit-test grid cells per side

function colourOf(label) {
  if (label === -1) return NOISE_COLOUR;
  if (label < -1) return UNLABELLED_COLOUR;
  return PALETTE[label % PALETTE.length];
}

function packed(hex) { // "#rrggbb" -> ABGR uint32 (ImageData is RGBA bytes, little endian)
  const v = parseInt(hex.slice(1), 16);
  return (255 << 24 | (v & 255) << 16 | (v >> 8 & 255) << 8 | v >> 16) >>> 0;
}

function decode(b64, Type) {
  const bytes = Uint8Array.from(atob(b64), (ch) => ch.charCodeAt(0));
  return new Type(bytes.buffer);
}

const root = element.querySelector(".simimg-map") || element;
root.innerHTML = `
  <div class="map-toolbar">
    <span class="map-modes">
      <button type="button" data-mode="pan" class="active" title="Drag to pan, wheel to zoom">Pan</button>
      <button type="button" data-mode="box" title="Drag a rectangle to select">Box</button>
      <button type="button" data-mode="lasso" title="Draw around dots to select">Lasso</button>
    </span>
    <select class="map-filter" title="Show one cluster"></select>
    <button type="button" class="map-export" disabled>Export selection (CSV)</button>
    <button type="button" class="map-clear" disabled>Clear selection</button>
    <button type="button" class="map-reload" title="Read the map again">Reload</button>
    <span class="map-status">loading the map…</span>
  </div>
  <div class="map-stage">
    <canvas class="map-canvas"></canvas>
    <canvas class="map-overlay"></canvas>
    <div class="map-tip" hidden><img alt=""><div class="map-tip-text"></div></div>
  </div>
  <div class="map-legend"></div>`;
const stage = root.querySelector(".map-stage");
const canvas = root.querySelector(".map-canvas");
const overlay = root.querySelector(".map-overlay");
const tip = root.querySelector(".map-tip");
const status = root.querySelector(".map-status");
const filterBox = root.querySelector(".map-filter");
const exportButton = root.querySelector(".map-export");
const clearButton = root.querySelector(".map-clear");
const legend = root.querySelector(".map-legend");

const state = {
  data: null, // {token, n, x, y, c, legend}
  view: { scale: 1, dx: 0, dy: 0 }, // screen = (data * side) * scale + d
  mode: "pan",
  filter: null, // cluster label shown, or null for all
  selected: null, // Uint8Array(n) or null
  grid: null,
  hover: -1,
  tips: new Map(),
};

function side() { return Math.max(50, Math.min(canvas.width, canvas.height) - 20); }
function toScreen(i) {
  const s = side() * state.view.scale;
  return [state.data.x[i] / 65535 * s + state.view.dx, state.data.y[i] / 65535 * s + state.view.dy];
}
function toData(px, py) {
  const s = side() * state.view.scale;
  return [(px - state.view.dx) / s, (py - state.view.dy) / s];
}

function fitView() {
  const s = side();
  state.view = { scale: 1, dx: (canvas.width - s) / 2, dy: (canvas.height - s) / 2 };
}

function buildGrid() {
  const { n, x, y } = state.data;
  const counts = new Uint32Array(GRID * GRID + 1);
  const cell = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const c = Math.min(GRID - 1, (x[i] * GRID) >> 16) * GRID + Math.min(GRID - 1, (y[i] * GRID) >> 16);
    cell[i] = c;
    counts[c + 1]++;
  }
  for (let c = 0; c < GRID * GRID; c++) counts[c + 1] += counts[c];
  const order = new Uint32Array(n);
  const fill = counts.slice(0, GRID * GRID);
  for (let i = 0; i < n; i++) order[fill[cell[i]]++] = i;
  state.grid = { start: counts, order };
}

function visible(i) { return state.filter === null || state.data.c[i] === state.filter; }

function nearest(px, py) {
  if (!state.data || !state.grid) return -1;
  const s = side() * state.view.scale;
  const [gx, gy] = toData(px, py);
  const r = PICK_RADIUS / s;
  const lo = (v) => Math.max(0, Math.floor((v - r) * GRID));
  const hi = (v) => Math.min(GRID - 1, Math.floor((v + r) * GRID));
  let best = -1, bestD = PICK_RADIUS * PICK_RADIUS;
  for (let cx = lo(gx); cx <= hi(gx); cx++) {
    for (let cy = lo(gy); cy <= hi(gy); cy++) {
      const c = cx * GRID + cy;
      for (let k = state.grid.start[c]; k < state.grid.start[c + 1]; k++) {
        const i = state.grid.order[k];
        if (!visible(i)) continue;
        const [sx, sy] = toScreen(i);
        const d = (sx - px) ** 2 + (sy - py) ** 2;
        if (d <= bestD) { bestD = d; best = i; }
      }
    }
  }
  return best;
}

function draw() {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  if (!w || !h) return;
  const image = ctx.createImageData(w, h);
  const pixels = new Uint32Array(image.data.buffer);
  pixels.fill(packed("#ffffff"));
  if (state.data) {
    const { n, x, y, c } = state.data;
    const s = side() * state.view.scale / 65535, dx = state.view.dx, dy = state.view.dy;
    const dot = n > 30000 ? 2 : n > 3000 ? 3 : 6;
    const half = Math.floor(dot / 2);
    const dim = packed(DIM_COLOUR), sel = packed(SELECTED_COLOUR);
    const colours = new Map();
    const plot = (i, colour) => {
      const px = Math.round(x[i] * s + dx) - half, py = Math.round(y[i] * s + dy) - half;
      if (px < 0 || py < 0 || px + dot > w || py + dot > h) return;
      for (let a = 0; a < dot; a++) {
        const row = (py + a) * w + px;
        for (let b = 0; b < dot; b++) pixels[row + b] = colour;
      }
    };
    if (state.filter !== null) for (let i = 0; i < n; i++) if (c[i] !== state.filter) plot(i, dim);
    for (let i = 0; i < n; i++) {
      if (!visible(i)) continue;
      let colour = colours.get(c[i]);
      if (colour === undefined) { colour = packed(colourOf(c[i])); colours.set(c[i], colour); }
      plot(i, colour);
    }
    if (state.selected) for (let i = 0; i < n; i++) if (state.selected[i]) plot(i, sel);
  }
  ctx.putImageData(image, 0, 0);
  if (state.data && state.hover >= 0) {
    const [hx, hy] = toScreen(state.hover);
    ctx.strokeStyle = "#000";
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.arc(hx, hy, 7, 0, 2 * Math.PI);
    ctx.stroke();
  }
  root.dataset.drawn = state.data ? String(state.data.n) : "0";
}

function resize() {
  const width = Math.max(200, stage.clientWidth), height = Math.max(200, stage.clientHeight);
  if (canvas.width === width && canvas.height === height) return;
  const first = !canvas.width || canvas.width < 2;
  canvas.width = overlay.width = width;
  canvas.height = overlay.height = height;
  if (first || !state.data) fitView();
  draw();
}

function describe() {
  if (!state.data) return;
  const { n, unplaced } = state.data;
  const chosen = state.selected ? state.selected.reduce((a, b) => a + b, 0) : 0;
  let text = `${n.toLocaleString()} images on the map`;
  if (state.filter !== null) {
    const entry = state.data.legend.find((e) => e.cluster === state.filter);
    text += ` · showing ${entry ? entry.title : "cluster " + state.filter}`;
  }
  if (unplaced) text += ` · ${unplaced.toLocaleString()} not placed yet (run simimg-admin map)`;
  if (chosen) text += ` · ${chosen.toLocaleString()} selected`;
  status.textContent = text;
  exportButton.disabled = clearButton.disabled = !chosen;
}

function setFilter(value) {
  const label = value === null || value === "" || value === "all" ? null : Number(value);
  state.filter = Number.isNaN(label) ? null : label;
  filterBox.value = state.filter === null ? "all" : String(state.filter);
  root.dataset.filter = filterBox.value;
  window.__simimgMapFilter = filterBox.value;
  describe();
  draw();
}

function showLegend() {
  filterBox.innerHTML = `<option value="all">All clusters</option>` + state.data.legend.map(
    (e) => `<option value="${e.cluster}">${e.title} (${e.size})</option>`).join("");
  legend.innerHTML = state.data.legend.map((e) =>
    `<button type="button" class="map-key" data-cluster="${e.cluster}">` +
    `<i style="background:${colourOf(e.cluster)}"></i>${e.title} (${e.size})</button>`).join("");
}

async function load(reload = false) {
  status.textContent = "loading the map…";
  const answer = await server.map_data(reload);
  if (answer.message) {
    state.data = null;
    status.textContent = answer.message;
    draw();
    return;
  }
  state.data = {
    token: answer.token, n: answer.n, unplaced: answer.unplaced, legend: answer.legend,
    x: decode(answer.x, Uint16Array), y: decode(answer.y, Uint16Array),
    c: decode(answer.c, Int32Array),
  };
  state.selected = null;
  state.tips.clear();
  buildGrid();
  showLegend();
  fitView();
  setFilter(window.__simimgMapFilter ?? (state.filter === null ? null : String(state.filter)));
}

// -- interaction -------------------------------------------------------------------

let drag = null; // {x, y, moved, path, view}

function position(event) {
  const box = canvas.getBoundingClientRect();
  return [event.clientX - box.left, event.clientY - box.top];
}

function drawOverlay() {
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  if (!drag || !drag.moved || state.mode === "pan") return;
  ctx.strokeStyle = "#111";
  ctx.setLineDash([5, 4]);
  ctx.fillStyle = "rgba(30, 120, 220, 0.08)";
  ctx.beginPath();
  if (state.mode === "box") {
    const [x0, y0] = drag.path[0], [x1, y1] = drag.path[drag.path.length - 1];
    ctx.rect(Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0));
  } else {
    drag.path.forEach(([px, py], k) => (k ? ctx.lineTo(px, py) : ctx.moveTo(px, py)));
    ctx.closePath();
  }
  ctx.fill();
  ctx.stroke();
}

function inPolygon(px, py, polygon) {
  let inside = false;
  for (let a = 0, b = polygon.length - 1; a < polygon.length; b = a++) {
    const [xa, ya] = polygon[a], [xb, yb] = polygon[b];
    if ((ya > py) !== (yb > py) && px < (xb - xa) * (py - ya) / (yb - ya) + xa) inside = !inside;
  }
  return inside;
}

function select(path) {
  const { n } = state.data;
  const chosen = state.selected && drag.add ? state.selected : new Uint8Array(n);
  let polygon = path;
  if (state.mode === "box") {
    const [x0, y0] = path[0], [x1, y1] = path[path.length - 1];
    polygon = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
  }
  const xs = polygon.map((p) => p[0]), ys = polygon.map((p) => p[1]);
  const minX = Math.min(...xs), maxX = Math.max(...xs), minY = Math.min(...ys), maxY = Math.max(...ys);
  for (let i = 0; i < n; i++) {
    if (!visible(i)) continue;
    const [sx, sy] = toScreen(i);
    if (sx < minX || sx > maxX || sy < minY || sy > maxY) continue;
    if (state.mode === "box" || inPolygon(sx, sy, polygon)) chosen[i] = 1;
  }
  state.selected = chosen.some((v) => v) ? chosen : null;
  describe();
  draw();
}

canvas.addEventListener("pointerdown", (event) => {
  if (!state.data) return;
  canvas.setPointerCapture(event.pointerId);
  const p = position(event);
  drag = { x: p[0], y: p[1], moved: false, path: [p], view: { ...state.view }, add: event.shiftKey };
});

canvas.addEventListener("pointermove", (event) => {
  const [px, py] = position(event);
  if (drag) {
    if (Math.abs(px - drag.x) + Math.abs(py - drag.y) > 4) drag.moved = true;
    if (state.mode === "pan") {
      state.view.dx = drag.view.dx + px - drag.x;
      state.view.dy = drag.view.dy + py - drag.y;
      draw();
    } else {
      drag.path.push([px, py]);
      drawOverlay();
    }
    return;
  }
  hover(px, py, event);
});

canvas.addEventListener("pointerup", (event) => {
  if (!drag) return;
  const [px, py] = position(event);
  const done = drag;
  if (!done.moved) {
    const index = nearest(px, py);
    if (index >= 0) trigger("click", { index, token: state.data.token });
  } else if (state.mode !== "pan") {
    done.path.push([px, py]);
    select(done.path);
  }
  drag = null;
  drawOverlay();
});

canvas.addEventListener("wheel", (event) => {
  if (!state.data) return;
  event.preventDefault();
  const [px, py] = position(event);
  const factor = Math.exp(-event.deltaY * 0.0015);
  const scale = Math.min(400, Math.max(0.5, state.view.scale * factor));
  const applied = scale / state.view.scale;
  state.view.dx = px - (px - state.view.dx) * applied;
  state.view.dy = py - (py - state.view.dy) * applied;
  state.view.scale = scale;
  draw();
}, { passive: false });

canvas.addEventListener("pointerleave", () => {
  tip.hidden = true;
  state.hover = -1;
  draw();
});

let hoverTimer = null;
function hover(px, py, event) {
  const index = nearest(px, py);
  canvas.style.cursor = index >= 0 ? "pointer" : (state.mode === "pan" ? "grab" : "crosshair");
  if (index !== state.hover) {
    state.hover = index;
    draw();
  }
  if (index < 0) {
    tip.hidden = true;
    return;
  }
  const box = stage.getBoundingClientRect();
  tip.style.left = `${Math.min(event.clientX - box.left + 14, stage.clientWidth - 190)}px`;
  tip.style.top = `${Math.max(0, event.clientY - box.top - 30)}px`;
  clearTimeout(hoverTimer);
  const known = state.tips.get(index);
  if (known) return showTip(known);
  hoverTimer = setTimeout(async () => {
    const token = state.data.token;
    const info = await server.map_point(token, index);
    if (!state.data || token !== state.data.token) return;
    state.tips.set(index, info);
    if (state.hover === index) showTip(info);
  }, 60);
}

function showTip(info) {
  const image = tip.querySelector("img");
  image.hidden = !info.thumbnail;
  image.src = info.thumbnail || "";
  tip.querySelector(".map-tip-text").textContent = `${info.path}${info.cluster ? " · " + info.cluster : ""}`;
  tip.hidden = false;
}

root.querySelectorAll(".map-modes button").forEach((button) => {
  button.addEventListener("click", () => {
    state.mode = button.dataset.mode;
    root.querySelectorAll(".map-modes button").forEach((b) => b.classList.toggle("active", b === button));
    canvas.style.cursor = state.mode === "pan" ? "grab" : "crosshair";
  });
});
filterBox.addEventListener("change", () => setFilter(filterBox.value));
legend.addEventListener("click", (event) => {
  const key = event.target.closest(".map-key");
  if (key) setFilter(String(state.filter) === key.dataset.cluster ? null : key.dataset.cluster);
});
clearButton.addEventListener("click", () => { state.selected = null; describe(); draw(); });
root.querySelector(".map-reload").addEventListener("click", () => load(true));
exportButton.addEventListener("click", async () => {
  const indices = [];
  state.selected.forEach((v, i) => v && indices.push(i));
  const csv = await server.map_export(state.data.token, indices);
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
  link.download = "simimg-map-selection.csv";
  document.body.appendChild(link);
  link.click();
  link.remove();
});
// The Clusters tab asks for one cluster ("Show on the map"); remembered for a later load.
window.addEventListener("simimg-map-filter", (event) => {
  window.__simimgMapFilter = event.detail;
  if (state.data) setFilter(event.detail);
});

// For tests and the benchmark: where dot i is drawn (page coordinates), and how many dots.
root.simimgMap = {
  dots: () => (state.data ? state.data.n : 0),
  redrawMs: () => { const t = performance.now(); draw(); return performance.now() - t; },
  pagePosition: (i) => {
    const [sx, sy] = toScreen(i);
    const box = canvas.getBoundingClientRect();
    return [box.left + sx, box.top + sy];
  },
};

new ResizeObserver(() => resize()).observe(stage);
resize();
load();
