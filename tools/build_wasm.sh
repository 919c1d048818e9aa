#!/usr/bin/env bash
# Builds ferroflow's browser bundle (crates/ferroflow-wasm) into DIR (default
# target/ferroflow-web): the wasm module, wasm-bindgen's glue, the public ES module
# `ferroflow.js` with its TypeScript types, and the demo page that `ferroflow web` serves.
#
# Needs the wasm32 target (`rustup target add wasm32-unknown-unknown`, done here when
# missing) and wasm-bindgen-cli at the version of the `wasm-bindgen` crate (installed here
# with `cargo install` when missing). binaryen's wasm-opt (version 116 or later) shrinks
# the module when present.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$(mkdir -p "${1:-$ROOT/target/ferroflow-web}" && cd "${1:-$ROOT/target/ferroflow-web}" && pwd)"
cd "$ROOT"
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"

rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown ||
  rustup target add wasm32-unknown-unknown
WB_VERSION="$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' crates/ferroflow-wasm/Cargo.toml)"
if [ "$(wasm-bindgen --version 2>/dev/null | cut -d' ' -f2)" != "$WB_VERSION" ]; then
  echo "installing wasm-bindgen-cli $WB_VERSION (once)" >&2
  cargo install -q wasm-bindgen-cli --version "$WB_VERSION"
fi

# SIMD128 comes from .cargo/config.toml ([target.wasm32-unknown-unknown] rustflags).
cargo build -q --profile wasm-release --target wasm32-unknown-unknown -p ferroflow-wasm
wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section \
  --out-dir "$OUT" \
  "$TARGET_DIR/wasm32-unknown-unknown/wasm-release/ferroflow_wasm.wasm"
# binaryen before version 116 breaks wasm-bindgen's externref table: older ones are skipped.
# (Without wasm-opt the pipeline fails; `|| true` keeps `set -e` from ending the build.)
WASM_OPT_VERSION="$( (wasm-opt --version 2>/dev/null || true) | sed -n 's/.*version \([0-9]*\).*/\1/p')"
if [ "${WASM_OPT_VERSION:-0}" -ge 116 ]; then
  wasm-opt -O3 --enable-simd --enable-bulk-memory --enable-sign-ext \
    --enable-nontrapping-float-to-int --enable-mutable-globals --enable-reference-types \
    --enable-multivalue "$OUT/ferroflow_wasm_bg.wasm" -o "$OUT/ferroflow_wasm_bg.wasm.opt"
  mv "$OUT/ferroflow_wasm_bg.wasm.opt" "$OUT/ferroflow_wasm_bg.wasm"
fi
cp crates/ferroflow-wasm/js/ferroflow.js crates/ferroflow-wasm/js/ferroflow.d.ts "$OUT/"
cp crates/ferroflow-wasm/web/* "$OUT/"
echo "browser bundle in $OUT ($(du -k "$OUT/ferroflow_wasm_bg.wasm" | cut -f1) KiB wasm)" >&2
