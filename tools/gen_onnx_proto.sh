#!/usr/bin/env bash
# Regenerates crates/ferroflow-onnx/src/generated/ from crates/ferroflow-onnx/proto/onnx.proto.
set -euo pipefail
cd "$(dirname "$0")/gen_onnx_proto"
cargo run -q --release
cd ../.. && rustfmt --edition 2021 crates/ferroflow-onnx/src/generated/*.rs
