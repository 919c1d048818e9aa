// Batch-1 latency of the same models in ferroflow-wasm and in TF.js's WASM backend, both
// with SIMD, single-threaded and threaded, in one headless Chromium run; and the bytes a
// page downloads for each runtime (gzip). Prints one JSON object. Driven by
// `python3 tools/bench_compare.py web`, which prepares the models:
//
//   node web-tests/bench/bench.mjs --bundle target/ferroflow-web --models DIR [--reps 30]
//
// DIR holds, per model NAME, `NAME.keras` (what ferroflow loads) and `NAME_tfjs/model.json`
// (the tensorflowjs converter's graph model of the same Keras model).

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(
  process.argv.slice(2).reduce((acc, a, i, all) => (a.startsWith('--') ? [...acc, [a.slice(2), all[i + 1]]] : acc), []),
);
const BUNDLE = path.resolve(args.bundle || 'target/ferroflow-web');
const MODELS = path.resolve(args.models);
const REPS = Number(args.reps || 30);
const TFJS = {
  core: path.join(HERE, 'node_modules/@tensorflow/tfjs-core/dist/tf-core.min.js'),
  converter: path.join(HERE, 'node_modules/@tensorflow/tfjs-converter/dist/tf-converter.min.js'),
  wasm: path.join(HERE, 'node_modules/@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js'),
};
const TFJS_DIST = path.join(HERE, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');

const TYPES = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.html': 'text/html' };

/** A static server with the cross-origin isolation headers (threads need them). */
function serve() {
  const roots = { '/ff/': BUNDLE, '/tfjs/': TFJS_DIST, '/models/': MODELS };
  const server = http.createServer((req, res) => {
    const url = decodeURIComponent(req.url.split('?')[0]);
    let file = null;
    if (url === '/') {
      file = null;
    } else if (url === '/tfjs/tf-core.min.js' || url === '/tfjs/tf-converter.min.js') {
      file = url.endsWith('core.min.js') ? TFJS.core : TFJS.converter;
    } else {
      for (const [prefix, dir] of Object.entries(roots)) {
        if (url.startsWith(prefix)) {
          const p = path.resolve(dir, url.slice(prefix.length));
          if (p.startsWith(dir)) file = p;
        }
      }
    }
    const headers = {
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Embedder-Policy': 'require-corp',
      'Cross-Origin-Resource-Policy': 'same-origin',
    };
    if (url === '/') {
      res.writeHead(200, { ...headers, 'Content-Type': 'text/html' });
      res.end('<!doctype html><meta charset="utf-8"><title>bench</title><body>bench</body>');
      return;
    }
    if (!file || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404, headers);
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Type': TYPES[path.extname(file)] || 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/** Median and best of REPS timed calls after warm-up, run in the page. */
async function timeFerroflow(page, model, threads) {
  return page.evaluate(async ({ model, reps, threads }) => {
    const ff = await import('/ff/ferroflow.js');
    const m = await ff.loadModel(`/models/${model}.keras`);
    const shape = [1, ...m.inputs[0].shape.slice(1)];
    const x = Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => Math.random());
    for (let i = 0; i < 3; i++) m.predict(x, shape);
    const times = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      m.predict(x, shape);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    return { median: times[Math.floor(times.length / 2)], best: times[0], threads, isolated: crossOriginIsolated };
  }, { model, reps: REPS, threads });
}

async function timeTfjs(page, model, threads) {
  for (const f of ['tf-core.min.js', 'tf-converter.min.js', 'tf-backend-wasm.min.js']) {
    await page.addScriptTag({ url: `/tfjs/${f}` });
  }
  return page.evaluate(async ({ model, reps, threads }) => {
    const tf = window.tf;
    tf.wasm.setWasmPaths('/tfjs/');
    if (threads === 1) {
      tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', false);
    } else {
      tf.wasm.setThreadsCount(threads);
    }
    await tf.setBackend('wasm');
    await tf.ready();
    const m = await tf.loadGraphModel(`/models/${model}_tfjs/model.json`);
    const shape = [1, ...m.inputs[0].shape.slice(1)];
    const x = tf.randomUniform(shape);
    const run = () => {
      const y = m.predict(x);
      (Array.isArray(y) ? y[0] : y).dataSync();
      tf.dispose(y);
    };
    for (let i = 0; i < 3; i++) run();
    const times = [];
    for (let i = 0; i < reps; i++) {
      const t0 = performance.now();
      run();
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    return {
      median: times[Math.floor(times.length / 2)],
      best: times[0],
      threads: tf.wasm.getThreadsCount ? tf.wasm.getThreadsCount() : threads,
      simd: await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT'),
      multithread: await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT'),
      isolated: crossOriginIsolated,
    };
  }, { model, reps: REPS, threads });
}

const gz = (files) => files.reduce((n, f) => n + zlib.gzipSync(fs.readFileSync(f), { level: 9 }).length, 0);

async function main() {
  const server = await serve();
  const base = `http://127.0.0.1:${server.address().port}/`;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const models = fs.readdirSync(MODELS).filter((f) => f.endsWith('.keras')).map((f) => f.slice(0, -6)).sort();
  const result = { latency: {}, bytes: {} };
  try {
    for (const model of models) {
      for (const [runtime, threads] of [['ferroflow', 1], ['tfjs', 1], ['tfjs', 2]]) {
        const page = await (await browser.newContext()).newPage();
        await page.goto(base);
        const r = runtime === 'ferroflow' ? await timeFerroflow(page, model, threads) : await timeTfjs(page, model, threads);
        result.latency[`${model}_${runtime}_t${threads}`] = r;
        await page.context().close();
        process.stderr.write(`${model} ${runtime} t${threads}: ${r.median.toFixed(2)} ms\n`);
      }
    }
  } finally {
    await browser.close();
    server.close();
  }
  result.bytes.ferroflow = gz(['ferroflow.js', 'ferroflow_wasm.js', 'ferroflow_wasm_bg.wasm'].map((f) => path.join(BUNDLE, f)));
  const tfjsJs = [TFJS.core, TFJS.converter, TFJS.wasm];
  result.bytes.tfjs_simd = gz([...tfjsJs, path.join(TFJS_DIST, 'tfjs-backend-wasm-simd.wasm')]);
  result.bytes.tfjs_threaded_simd = gz([...tfjsJs, path.join(TFJS_DIST, 'tfjs-backend-wasm-threaded-simd.wasm')]);
  console.log(JSON.stringify(result));
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
