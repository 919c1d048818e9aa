//! Compiles `crates/ferroflow-serve/proto/` (TF Serving's and TensorFlow's .proto files)
//! with protox, a pure-Rust protobuf compiler, and writes the prost messages and tonic
//! services into `crates/ferroflow-serve/src/grpc/generated/`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../crates/ferroflow-serve");
    let protos = root.join("proto");
    let out = root.join("src/grpc/generated");
    std::fs::create_dir_all(&out)?;
    let files = [
        "tensorflow_serving/apis/prediction_service.proto",
        "tensorflow_serving/apis/model_service.proto",
    ];
    let fds = protox::compile(files, [&protos])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .codec_path("crate::grpc::codec::ServingCodec")
        .out_dir(&out)
        .compile_fds(fds)?;
    println!("wrote {}", out.display());
    Ok(())
}
