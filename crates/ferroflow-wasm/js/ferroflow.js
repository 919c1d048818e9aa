// ferroflow in the browser: the public ES module.
//
//   import { loadModel } from '/ferroflow.js';
//   const model = await loadModel('/model/');          // a ferroflow model directory
//   const model = await loadModel('/m/model.tflite');  // or a .keras / .h5 / .tflite URL, or bytes
//   const y = model.predict(new Float32Array(64), [1, 64]);   // -> {data, shape, name, dtype}
//
// Errors (bad bytes, wrong shapes) are thrown as JavaScript `Error`s carrying ferroflow's
// message; the page that catches them keeps running.

import init, { WasmModel, installPanicHook, lastPanic } from './ferroflow_wasm.js';

let ready = null;

/** Instantiates the wasm module once (later calls wait for the same promise). */
function boot() {
  if (!ready) {
    const wasmUrl = new URL('./ferroflow_wasm_bg.wasm', import.meta.url);
    ready = init({ module_or_path: wasmUrl }).then(() => installPanicHook());
  }
  return ready;
}

/** Calls into wasm; a Rust panic (a trap) becomes an Error with the panic's message. */
function guarded(f) {
  try {
    return f();
  } catch (e) {
    if (e instanceof WebAssembly.RuntimeError) {
      throw new Error(`ferroflow: internal error: ${lastPanic() || e.message}`);
    }
    throw e instanceof Error ? e : new Error(String(e));
  }
}

async function fetchBytes(url) {
  const r = await fetch(url);
  if (!r.ok) {
    throw new Error(`ferroflow: cannot fetch ${url}: HTTP ${r.status} ${r.statusText}`);
  }
  return new Uint8Array(await r.arrayBuffer());
}

async function asBytes(source) {
  if (source instanceof Uint8Array) return source;
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (ArrayBuffer.isView(source)) {
    return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  }
  if (typeof Blob !== 'undefined' && source instanceof Blob) {
    return new Uint8Array(await source.arrayBuffer());
  }
  throw new TypeError('ferroflow.loadModel: expected a URL, an ArrayBuffer, a typed array or a Blob');
}

/** The files of a ferroflow model directory, fetched from a URL ending in '/'. */
const SAVED_MODEL_FILES = ['config.json', 'model.weights.safetensors'];

/**
 * Loads a model: a URL (a ferroflow model directory when it ends in '/', else a `.keras`,
 * `.h5` or `.tflite` file) or the bytes of a file.
 */
export async function loadModel(source) {
  await boot();
  if (typeof source === 'string' || source instanceof URL) {
    const base = globalThis.location ? globalThis.location.href : undefined;
    const url = new URL(String(source), base);
    if (url.pathname.endsWith('/')) {
      const [config, weights] = await Promise.all(
        SAVED_MODEL_FILES.map((f) => fetchBytes(new URL(f, url))),
      );
      return new Model(guarded(() => WasmModel.fromSavedModel(config, weights)));
    }
    const bytes = await fetchBytes(url);
    return new Model(guarded(() => WasmModel.fromBytes(bytes)));
  }
  const bytes = await asBytes(source);
  return new Model(guarded(() => WasmModel.fromBytes(bytes)));
}

const product = (dims) => dims.reduce((a, b) => a * b, 1);

/** A nested array's shape and its values, flattened in row-major order. */
function flatten(nested) {
  const shape = [];
  for (let a = nested; Array.isArray(a); a = a[0]) shape.push(a.length);
  const flat = nested.flat(Infinity);
  if (flat.length !== product(shape)) {
    throw new Error(`ferroflow: a nested array input is ragged (shape ${JSON.stringify(shape)} but ${flat.length} values)`);
  }
  return { data: flat, shape };
}

/** Whether `x` is one tensor (typed array, nested array or {data, shape}). */
function isTensorLike(x) {
  return ArrayBuffer.isView(x) || Array.isArray(x) ||
    (x !== null && typeof x === 'object' && 'data' in x && 'shape' in x &&
      (ArrayBuffer.isView(x.data) || Array.isArray(x.data)));
}

/** A model loaded by {@link loadModel}. */
export class Model {
  constructor(wasm) {
    this._wasm = wasm;
    const info = JSON.parse(wasm.info());
    /** 'ferroflow_saved_model', 'keras', 'keras_h5' or 'tflite'. */
    this.format = info.format;
    /** Inputs in order: {name, dtype, shape} (null for any size). */
    this.inputs = info.inputs;
    /** Outputs in order: {name, dtype, shape}. */
    this.outputs = info.outputs;
    this._summary = info.summary;
  }

  /** A Keras-style summary of the model. */
  summary() {
    return this._summary;
  }

  /**
   * Runs the model. For one input: `predict(typedArray, shape)`, `predict({data, shape})`
   * or `predict(nestedArray)`; for several: `predict({name: input, ...})` (or an array of
   * inputs in order). A typed array without a shape takes the input's fixed dimensions
   * and as many rows as its length gives. Returns `{data, shape, name, dtype}` for one
   * output, an array of them for several.
   */
  predict(input, shape) {
    const wasm = this._wasm;
    if (!wasm) throw new Error('ferroflow: the model was disposed');
    const given = this._byInput(input, shape);
    this.inputs.forEach((spec, i) => this._stage(i, spec, given[i]));
    const n = guarded(() => wasm.run());
    const outs = [];
    for (let i = 0; i < n; i++) {
      const kind = guarded(() => wasm.outputKind(i));
      const data = guarded(() => (kind === 'float32' ? wasm.outputF32(i) : wasm.outputI32(i)));
      const dims = Array.from(guarded(() => wasm.outputShape(i)));
      const out = this.outputs[i] || {};
      outs.push({ data, shape: dims, name: out.name, dtype: kind });
    }
    return outs.length === 1 ? outs[0] : outs;
  }

  /** Frees the model's memory in the wasm heap. */
  dispose() {
    if (this._wasm) this._wasm.free();
    this._wasm = null;
  }

  _byInput(input, shape) {
    const names = this.inputs.map((s) => s.name);
    const one = shape !== undefined || (names.length === 1 && isTensorLike(input));
    if (one) {
      if (names.length !== 1) {
        throw new Error(`ferroflow: the model takes ${names.length} inputs (${names.join(', ')}); pass {name: input, ...}`);
      }
      return [shape !== undefined ? { data: input, shape } : input];
    }
    if (Array.isArray(input)) {
      if (input.length !== names.length) {
        throw new Error(`ferroflow: the model takes ${names.length} inputs (${names.join(', ')}), got ${input.length}`);
      }
      return input;
    }
    if (input === null || typeof input !== 'object') {
      throw new TypeError('ferroflow: predict takes a typed array with a shape, {data, shape}, a nested array or {name: input}');
    }
    const unknown = Object.keys(input).filter((k) => !names.includes(k));
    if (unknown.length) {
      throw new Error(`ferroflow: unknown input(s) ${unknown.join(', ')}; the model's inputs are ${names.join(', ')}`);
    }
    return names.map((n) => {
      if (!(n in input)) throw new Error(`ferroflow: input '${n}' is missing`);
      return input[n];
    });
  }

  _stage(i, spec, x) {
    if (!isTensorLike(x)) {
      throw new TypeError(`ferroflow: input '${spec.name}' must be a typed array, a nested array or {data, shape}`);
    }
    let data;
    let dims;
    if (Array.isArray(x)) {
      ({ data, shape: dims } = flatten(x));
    } else if (ArrayBuffer.isView(x)) {
      data = x;
      dims = this._rowsShape(spec, x.length);
    } else {
      data = Array.isArray(x.data) ? x.data.flat(Infinity) : x.data;
      dims = Array.from(x.shape);
    }
    if (!dims.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new Error(`ferroflow: input '${spec.name}': bad shape ${JSON.stringify(dims)}`);
    }
    if (data.length !== product(dims)) {
      throw new Error(`ferroflow: input '${spec.name}': ${data.length} values do not fill shape ${JSON.stringify(dims)}`);
    }
    const floatInput = spec.dtype.startsWith('float') || spec.dtype === 'bfloat16';
    const shapeArg = Uint32Array.from(dims);
    if (data instanceof Int32Array || (!floatInput && !(data instanceof Float32Array || data instanceof Float64Array))) {
      const ints = data instanceof Int32Array ? data : Int32Array.from(data, Number);
      guarded(() => this._wasm.setInputI32(i, ints, shapeArg));
    } else {
      const floats = data instanceof Float32Array ? data : Float32Array.from(data, Number);
      guarded(() => this._wasm.setInputF32(i, floats, shapeArg));
    }
  }

  /** The shape of `length` values for an input whose dimensions after the first are fixed. */
  _rowsShape(spec, length) {
    const rest = spec.shape.slice(1);
    if (spec.shape.length === 0 || rest.some((d) => d === null)) {
      throw new Error(`ferroflow: input '${spec.name}' has shape ${JSON.stringify(spec.shape)}; pass the array's shape too`);
    }
    const row = product(rest);
    if (row === 0 || length % row !== 0) {
      throw new Error(`ferroflow: input '${spec.name}': ${length} values are not whole rows of ${JSON.stringify(rest)}`);
    }
    return [length / row, ...rest];
  }
}

export default { loadModel, Model };
