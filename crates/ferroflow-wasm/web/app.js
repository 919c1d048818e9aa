// The demo page of `ferroflow web`: loads the served model with ferroflow.js, shows its
// summary and, for the digits models (8x8 inputs, 10 classes), a pad to draw a digit on
// with live class probabilities and the latency of each prediction.

import { loadModel } from './ferroflow.js';

const $ = (id) => document.getElementById(id);

/** The 8x8 digits: 32x32 bitmaps counted in 4x4 blocks, 0-16 per pixel (UCI optdigits). */
const GRID = 32;
const BLOCK = 4;

function showError(e) {
  $('error').textContent = String(e && e.message ? e.message : e);
}

function isDigitsModel(model) {
  const inp = model.inputs;
  const out = model.outputs;
  if (inp.length !== 1 || out.length !== 1) return false;
  const rest = inp[0].shape.slice(1);
  const size = rest.reduce((a, b) => a * (b ?? NaN), 1);
  return size === 64 && out[0].shape[out[0].shape.length - 1] === 10;
}

/** Probabilities from a model's outputs: a softmax unless they already sum to 1. */
function probabilities(values) {
  const v = Array.from(values);
  const sum = v.reduce((a, b) => a + b, 0);
  if (v.every((x) => x >= 0) && Math.abs(sum - 1) < 1e-3) return v;
  const m = Math.max(...v);
  const e = v.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

/**
 * The drawing as the data set encodes digits: the ink's bounding box scaled (aspect kept)
 * to fill a 32x32 bitmap, centred, thresholded, then the set pixels of each 4x4 block
 * counted (0-16). Returns 64 values, or null for an empty pad.
 */
function digitPixels(pad) {
  const { width, height } = pad;
  const img = pad.getContext('2d').getImageData(0, 0, width, height).data;
  let [x0, y0, x1, y1] = [width, height, -1, -1];
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (img[(y * width + x) * 4] > 127) {
        x0 = Math.min(x0, x); x1 = Math.max(x1, x);
        y0 = Math.min(y0, y); y1 = Math.max(y1, y);
      }
    }
  }
  if (x1 < 0) return null;
  const side = Math.max(x1 - x0 + 1, y1 - y0 + 1);
  const scratch = document.createElement('canvas');
  scratch.width = GRID;
  scratch.height = GRID;
  const ctx = scratch.getContext('2d');
  ctx.fillStyle = '#000';
  ctx.fillRect(0, 0, GRID, GRID);
  const w = ((x1 - x0 + 1) / side) * GRID;
  const h = ((y1 - y0 + 1) / side) * GRID;
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(pad, x0, y0, x1 - x0 + 1, y1 - y0 + 1, (GRID - w) / 2, (GRID - h) / 2, w, h);
  const bits = ctx.getImageData(0, 0, GRID, GRID).data;
  const out = new Float32Array(64);
  for (let y = 0; y < GRID; y++) {
    for (let x = 0; x < GRID; x++) {
      if (bits[(y * GRID + x) * 4] > 127) out[Math.floor(y / BLOCK) * 8 + Math.floor(x / BLOCK)] += 1;
    }
  }
  return out;
}

function drawPreview(pixels) {
  const ctx = $('preview').getContext('2d');
  const img = ctx.createImageData(8, 8);
  for (let i = 0; i < 64; i++) {
    const v = Math.round((pixels[i] / 16) * 255);
    img.data.set([v, v, v, 255], i * 4);
  }
  ctx.putImageData(img, 0, 0);
}

function drawBars(probs) {
  const top = probs.indexOf(Math.max(...probs));
  $('bars').innerHTML = probs.map((p, k) => `
    <div class="bar${k === top ? ' top' : ''}"><span>${k}</span>
      <div class="track"><div class="fill" style="width:${(p * 100).toFixed(1)}%"></div></div>
      <span>${p.toFixed(3)}</span></div>`).join('');
  $('prediction').textContent = String(top);
}

/** The page's state, also the handle the browser tests use. */
const page = { model: null, lastInput: null, lastOutput: null, lastLatencyMs: null };
window.ferroflowPage = page;

/** Predicts one digit (64 pixel values, 0-16) and updates the bars and latency. */
page.predictDigit = (pixels) => {
  const t0 = performance.now();
  const shape = [1, ...page.model.inputs[0].shape.slice(1)];
  const y = page.model.predict(Float32Array.from(pixels), shape);
  const ms = performance.now() - t0;
  page.lastInput = Array.from(pixels);
  page.lastOutput = Array.from(y.data);
  page.lastLatencyMs = ms;
  drawBars(probabilities(y.data));
  $('latency').textContent = `latency: ${ms.toFixed(2)} ms`;
  return y;
};

function setUpPad() {
  const pad = $('pad');
  const ctx = pad.getContext('2d');
  const clear = () => {
    ctx.fillStyle = '#000';
    ctx.fillRect(0, 0, pad.width, pad.height);
  };
  clear();
  let drawing = false;
  let last = null;
  const at = (e) => {
    const r = pad.getBoundingClientRect();
    return [(e.clientX - r.left) * (pad.width / r.width), (e.clientY - r.top) * (pad.height / r.height)];
  };
  const update = () => {
    const pixels = digitPixels(pad);
    if (!pixels) return;
    drawPreview(pixels);
    try {
      page.predictDigit(pixels);
    } catch (e) {
      showError(e);
    }
  };
  pad.addEventListener('pointerdown', (e) => {
    drawing = true;
    last = at(e);
    pad.setPointerCapture(e.pointerId);
  });
  pad.addEventListener('pointermove', (e) => {
    if (!drawing) return;
    const p = at(e);
    ctx.strokeStyle = '#fff';
    ctx.lineWidth = 18;
    ctx.lineCap = 'round';
    ctx.beginPath();
    ctx.moveTo(...last);
    ctx.lineTo(...p);
    ctx.stroke();
    last = p;
    update();
  });
  const stop = () => {
    if (drawing) update();
    drawing = false;
  };
  pad.addEventListener('pointerup', stop);
  pad.addEventListener('pointercancel', stop);
  $('clear').addEventListener('click', () => {
    clear();
    $('bars').innerHTML = '';
    $('prediction').textContent = '–';
  });
}

/** For models other than the digits ones: one prediction on random inputs. */
function setUpRandom(model) {
  $('random-card').hidden = false;
  $('random').addEventListener('click', () => {
    try {
      const inputs = {};
      for (const spec of model.inputs) {
        const shape = spec.shape.map((d) => d ?? 1);
        const n = shape.reduce((a, b) => a * b, 1);
        const data = spec.dtype.startsWith('float')
          ? Float32Array.from({ length: n }, () => Math.random())
          : Int32Array.from({ length: n }, () => 0);
        inputs[spec.name] = { data, shape };
      }
      const t0 = performance.now();
      const y = model.predict(inputs);
      const ms = performance.now() - t0;
      const outs = Array.isArray(y) ? y : [y];
      $('random-out').textContent = `${ms.toFixed(2)} ms\n` + outs
        .map((o) => `${o.name}: shape ${JSON.stringify(o.shape)}, first values ${Array.from(o.data.slice(0, 5)).map((v) => v.toFixed(4)).join(', ')}`)
        .join('\n');
    } catch (e) {
      showError(e);
    }
  });
}

async function main() {
  const cfg = await (await fetch('./model.json')).json();
  $('model-name').innerHTML = `<b>${cfg.name}</b>`;
  const t0 = performance.now();
  const model = await loadModel(cfg.url);
  page.model = model;
  $('status').textContent = `Loaded ${cfg.name} (${model.format}) in ${(performance.now() - t0).toFixed(0)} ms.`;
  $('summary').textContent = model.summary();
  if (isDigitsModel(model)) {
    $('draw-card').hidden = false;
    $('result-card').hidden = false;
    setUpPad();
  } else {
    setUpRandom(model);
  }
  page.ready = true;
}

main().catch((e) => {
  showError(e);
  $('status').textContent = 'Failed to load the model.';
  page.failed = String(e && e.message ? e.message : e);
});
