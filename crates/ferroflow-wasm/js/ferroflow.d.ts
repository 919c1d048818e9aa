// TypeScript types of ferroflow's browser API (ferroflow.js).

/** A model input or output. */
export interface TensorSpec {
  name: string;
  /** 'float32', 'int32', 'int64', 'bool', ... (quantised TFLite edges read 'float32'). */
  dtype: string;
  /** Dimensions; null where any size is accepted (usually the batch). */
  shape: (number | null)[];
}

/** Values accepted for one input. */
export type TensorData = Float32Array | Float64Array | Int32Array | Int8Array | Uint8Array |
  Uint8ClampedArray | number[] | NestedArray;
export interface NestedArray extends Array<number | NestedArray> {}
export type TensorInput = TensorData | { data: TensorData; shape: number[] };

/** One output of a prediction. */
export interface Output {
  data: Float32Array | Int32Array;
  shape: number[];
  name: string;
  dtype: 'float32' | 'int32';
}

export class Model {
  readonly format: 'ferroflow_saved_model' | 'keras' | 'keras_h5' | 'tflite';
  readonly inputs: TensorSpec[];
  readonly outputs: TensorSpec[];
  /** A Keras-style summary. */
  summary(): string;
  /** One output for a single-output model, an array for several. */
  predict(input: TensorData, shape: number[]): Output | Output[];
  predict(input: TensorInput | TensorInput[] | Record<string, TensorInput>): Output | Output[];
  /** Frees the model's memory. */
  dispose(): void;
}

/**
 * Loads a ferroflow model directory (a URL ending in '/'), or a `.keras`, `.h5` or
 * `.tflite` file from its URL or bytes.
 */
export function loadModel(source: string | URL | ArrayBuffer | ArrayBufferView | Blob): Promise<Model>;

declare const ferroflow: { loadModel: typeof loadModel; Model: typeof Model };
export default ferroflow;
