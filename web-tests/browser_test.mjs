// The browser test of ferroflow-wasm: `ferroflow web` serves each demo model (the MLP and
// the CNN, as saved directories and as int8 .tflite files); Debian's headless Chromium,
// driven by playwright-core, loads the page, feeds held-out digits through the page's
// ferroflow.js API, draws a digit on the canvas, and every prediction is checked against
// native `ferroflow predict` on the same input (float: max difference 1e-5; int8: equal).
// Bad input must raise JavaScript errors with ferroflow's message and leave the page working.
//
//   node web-tests/browser_test.mjs --ff target/release/ferroflow \
//     [--bundle target/ferroflow-web] [--work DIR] [--screenshot docs/web_demo.png]

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { readNpy, writeNpyF32 } from './npy.mjs';

const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const FF = path.resolve(args.ff || 'target/release/ferroflow');
const BUNDLE = args.bundle ? path.resolve(args.bundle) : null;
const WORK = path.resolve(args.work || fs.mkdtempSync(path.join(os.tmpdir(), 'ff-web-')));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const FLOAT_TOL = 1e-5;

let failures = 0;
function check(ok, what) {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures += 1;
}

function run(cmd, argv) {
  const r = spawnSync(cmd, argv, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Native predictions of `model` on `x` ({data, shape}), through `ferroflow predict`. */
function nativePredict(model, x, tag) {
  const inp = path.join(WORK, `${tag}_x.npy`);
  const out = path.join(WORK, `${tag}_y.npy`);
  writeNpyF32(inp, x.data, x.shape);
  run(FF, ['predict', '--model', model, '--input', inp, '--output', out]);
  return readNpy(out);
}

function maxAbsDiff(a, b) {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** Starts `ferroflow web` on a free port; resolves with {url, proc}. */
function serve(model) {
  const argv = ['web', '--model', model, '--port', '0'];
  if (BUNDLE) argv.push('--bundle', BUNDLE);
  const proc = spawn(FF, argv, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`ferroflow web did not start: ${out}`)), 600_000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /at (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1], proc });
      }
    });
    proc.on('exit', (code) => reject(new Error(`ferroflow web exited with ${code}: ${out}`)));
  });
}

/** Draws a 7 on the page's pad with the mouse, as a person would. */
async function drawSeven(page) {
  const box = await page.locator('#pad').boundingBox();
  const at = (fx, fy) => [box.x + fx * box.width, box.y + fy * box.height];
  await page.mouse.move(...at(0.25, 0.2));
  await page.mouse.down();
  await page.mouse.move(...at(0.75, 0.2), { steps: 12 });
  await page.mouse.move(...at(0.42, 0.85), { steps: 16 });
  await page.mouse.up();
}

async function testModel(browser, model, { exact, screenshot }) {
  const label = path.relative(WORK, model);
  const { url, proc } = await serve(model);
  const page = await browser.newPage();
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  try {
    await page.goto(url);
    await page.waitForFunction(() => window.ferroflowPage && (window.ferroflowPage.ready || window.ferroflowPage.failed), null, { timeout: 120_000 });
    const failed = await page.evaluate(() => window.ferroflowPage.failed || null);
    check(!failed, `${label}: the page loads the model${failed ? `: ${failed}` : ''}`);
    if (failed) return;
    const cmp = (a, b) => (exact ? maxAbsDiff(a, b) === 0 : maxAbsDiff(a, b) <= FLOAT_TOL);
    const tol = exact ? 'identical' : `max diff <= ${FLOAT_TOL}`;

    // Held-out digits through the API, as one batch and row by row.
    const dir = fs.statSync(model).isDirectory() ? model : path.dirname(model);
    const samples = readNpy(path.join(dir, 'sample_inputs.npy'));
    const shapeSpec = await page.evaluate(() => window.ferroflowPage.model.inputs[0].shape);
    const rows = samples.shape[0];
    const x = { data: Array.from(samples.data, Number), shape: [rows, ...shapeSpec.slice(1)] };
    const want = nativePredict(model, x, 'batch');
    const got = await page.evaluate(({ data, shape }) => {
      const y = window.ferroflowPage.model.predict(Float32Array.from(data), shape);
      return { data: Array.from(y.data), shape: y.shape };
    }, x);
    const d = maxAbsDiff(got.data, want.data);
    check(cmp(got.data, want.data) && JSON.stringify(got.shape) === JSON.stringify(want.shape),
      `${label}: ${rows} held-out digits as one batch match native ferroflow predict (${tol}; max diff ${d.toExponential(2)})`);
    const perRow = await page.evaluate(({ data, shape }) => {
      const n = shape[0];
      const size = data.length / n;
      const out = [];
      for (let r = 0; r < n; r++) {
        out.push(...window.ferroflowPage.predictDigit(data.slice(r * size, (r + 1) * size)).data);
      }
      return out;
    }, x);
    check(cmp(perRow, want.data), `${label}: the same digits one by one through the page match (max diff ${maxAbsDiff(perRow, want.data).toExponential(2)})`);
    const labels = readNpy(path.join(dir, 'sample_labels.npy')).data;
    const classes = want.shape[1];
    let right = 0;
    for (let r = 0; r < rows; r++) {
      const rowVals = perRow.slice(r * classes, (r + 1) * classes);
      if (rowVals.indexOf(Math.max(...rowVals)) === Number(labels[r])) right += 1;
    }
    console.log(`     ${label}: ${right}/${rows} held-out digits classified correctly in the browser`);

    // A digit drawn on the canvas.
    await page.click('#clear');
    await drawSeven(page);
    await page.waitForFunction(() => window.ferroflowPage.lastInput !== null);
    const drawn = await page.evaluate(() => ({
      input: window.ferroflowPage.lastInput,
      output: window.ferroflowPage.lastOutput,
      shown: document.getElementById('prediction').textContent,
      latency: document.getElementById('latency').textContent,
    }));
    const inkSum = drawn.input.reduce((a, b) => a + b, 0);
    check(drawn.input.length === 64 && inkSum > 0 && drawn.input.every((v) => v >= 0 && v <= 16),
      `${label}: drawing gives an 8x8 input of 0-16 counts (sum ${inkSum})`);
    const nativeDrawn = nativePredict(model, { data: drawn.input, shape: [1, ...shapeSpec.slice(1)] }, 'drawn');
    check(cmp(drawn.output, nativeDrawn.data), `${label}: the drawn digit's prediction matches native (max diff ${maxAbsDiff(drawn.output, nativeDrawn.data).toExponential(2)})`);
    const top = String(nativeDrawn.data.indexOf(Math.max(...nativeDrawn.data)));
    check(drawn.shown === top, `${label}: the page shows class ${drawn.shown} for the drawn digit (native argmax ${top}; ${drawn.latency})`);
    if (screenshot) {
      fs.mkdirSync(path.dirname(screenshot), { recursive: true });
      await page.screenshot({ path: screenshot, fullPage: true });
      console.log(`     screenshot: ${screenshot}`);
    }

    // Bad input: JavaScript errors with ferroflow's message; the page keeps working.
    const bad = await page.evaluate(async () => {
      const m = window.ferroflowPage.model;
      const errors = {};
      try { m.predict(new Float32Array(63), [1, 63]); } catch (e) { errors.shape = `${e.constructor.name}: ${e.message}`; }
      try { await (await import('./ferroflow.js')).loadModel(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])); } catch (e) { errors.bytes = `${e.constructor.name}: ${e.message}`; }
      try {
        const cfg = await (await fetch('./model.json')).json();
        const file = cfg.url.endsWith('/') ? './model/model_int8.tflite' : cfg.url;
        const bytes = new Uint8Array(await (await fetch(file)).arrayBuffer());
        await (await import('./ferroflow.js')).loadModel(bytes.slice(0, Math.floor(bytes.length / 2)));
      } catch (e) { errors.truncated = `${e.constructor.name}: ${e.message}`; }
      const again = m.predict(new Float32Array(64), [1, ...m.inputs[0].shape.slice(1)]);
      return { errors, again: again.data.length };
    });
    check(/expects shape/.test(bad.errors.shape || ''), `${label}: a wrong shape throws (${bad.errors.shape})`);
    check(/not a \.keras, \.h5 or \.tflite/.test(bad.errors.bytes || ''), `${label}: bad bytes throw (${bad.errors.bytes})`);
    check(/^Error: /.test(bad.errors.truncated || '') && !/unreachable/.test(bad.errors.truncated), `${label}: a truncated file throws (${(bad.errors.truncated || '').slice(0, 160)})`);
    check(bad.again === classes, `${label}: the page still predicts after the errors`);
    check(pageErrors.length === 0, `${label}: no uncaught page errors${pageErrors.length ? `: ${pageErrors.join('; ')}` : ''}`);
  } finally {
    await page.close();
    proc.kill('SIGTERM');
  }
}

async function main() {
  for (const m of ['mlp', 'cnn']) {
    const dir = path.join(WORK, `digits_${m}`);
    if (!fs.existsSync(path.join(dir, 'model_int8.tflite'))) {
      run(FF, ['demo', '--model', m, '--epochs', '3', '--save', dir]);
    }
  }
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    await testModel(browser, path.join(WORK, 'digits_mlp'), { exact: false, screenshot: args.screenshot });
    await testModel(browser, path.join(WORK, 'digits_mlp', 'model_int8.tflite'), { exact: true });
    await testModel(browser, path.join(WORK, 'digits_cnn'), { exact: false });
    await testModel(browser, path.join(WORK, 'digits_cnn', 'model_int8.tflite'), { exact: true });
  } finally {
    await browser.close();
  }
  console.log(failures ? `${failures} check(s) failed` : 'all browser checks passed');
  process.exit(failures ? 1 : 0);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
