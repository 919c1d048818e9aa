//! Compiles `crates/ferroflow-onnx/proto/onnx.proto` (ONNX's own schema) with protox, a
//! pure-Rust protobuf compiler, and writes the prost messages into
//! `crates/ferroflow-onnx/src/generated/`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/ferroflow-onnx");
    let out = root.join("src/generated");
    std::fs::create_dir_all(&out)?;
    let fds = protox::compile(["onnx.proto"], [root.join("proto")])?;
    prost_build::Config::new().out_dir(&out).compile_fds(fds)?;
    println!("wrote {}", out.display());
    Ok(())
}
