//! Runs a `.tflite` file on one input and writes every tensor's value as `.npy`, named by
//! tensor index, to compare op by op with LiteRT's `experimental_preserve_all_tensors`.
//!
//!     cargo run --release -p ferroflow-lite --example dump_tensors -- MODEL INPUT.npy OUT_DIR
//!
//! The input is fed as it is (an int8 model takes an int8 array).

use ferroflow_core::npy::{read_npy, write_npy};
use ferroflow_lite::Interpreter;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, model, input, out] = &args[..] else {
        eprintln!("usage: dump_tensors MODEL INPUT.npy OUT_DIR");
        std::process::exit(2);
    };
    let interp = Interpreter::from_file(model)?;
    let x = read_npy(input)?;
    let values = interp.run_all(&[x])?;
    std::fs::create_dir_all(out)?;
    for (i, v) in values.iter().enumerate() {
        if let Some(v) = v {
            write_npy(format!("{out}/{i}.npy"), v)?;
        }
    }
    println!("wrote {} tensors to {out}", values.iter().flatten().count());
    Ok(())
}
