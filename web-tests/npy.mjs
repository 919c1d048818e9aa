// Just enough of NumPy's .npy format for the browser tests: little-endian float32 and
// int8/int32 arrays, C order.

import fs from 'node:fs';

const TYPES = {
  '<f4': Float32Array,
  '<i4': Int32Array,
  '|i1': Int8Array,
  '<f8': Float64Array,
  '<i8': BigInt64Array,
};

/** Reads an .npy file: {data (typed array), shape}. */
export function readNpy(path) {
  const buf = fs.readFileSync(path);
  if (buf.toString('latin1', 0, 6) !== '\x93NUMPY') throw new Error(`${path}: not an .npy file`);
  const major = buf[6];
  const headerLen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  const header = buf.toString('latin1', start, start + headerLen);
  const descr = /'descr':\s*'([^']+)'/.exec(header)[1];
  if (/'fortran_order':\s*True/.test(header)) throw new Error(`${path}: Fortran order`);
  const shape = /'shape':\s*\(([^)]*)\)/.exec(header)[1].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
  const T = TYPES[descr];
  if (!T) throw new Error(`${path}: dtype ${descr} not supported by the test reader`);
  const body = buf.subarray(start + headerLen);
  const copy = new Uint8Array(body.length);
  copy.set(body);
  let data = new T(copy.buffer, 0, body.length / T.BYTES_PER_ELEMENT);
  if (data instanceof BigInt64Array) data = Float64Array.from(data, Number);
  return { data, shape };
}

/** Writes float32 values with a shape as an .npy file. */
export function writeNpyF32(path, values, shape) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const total = 10 + header.length + 1;
  header += ' '.repeat((64 - (total % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const data = Buffer.from(Float32Array.from(values).buffer);
  fs.writeFileSync(path, Buffer.concat([head, Buffer.from(header, 'latin1'), data]));
}
