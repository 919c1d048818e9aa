#!/usr/bin/env bash
# Regenerates crates/ferroflow-serve/src/grpc/generated/ from crates/ferroflow-serve/proto/.
set -euo pipefail
cd "$(dirname "$0")/gen_serving_protos"
cargo run -q --release
cd ../.. && rustfmt --edition 2021 crates/ferroflow-serve/src/grpc/generated/*.rs
