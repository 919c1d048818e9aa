//! `.tflite` flatbuffers: the validating reader, then one run of the interpreter on
//! zeros of the declared input shapes.
#![no_main]
use ferroflow as ff;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(interp) = ff::lite::Interpreter::from_bytes(data) else {
        return;
    };
    let inputs: Option<Vec<ff::Tensor>> = interp
        .inputs()
        .iter()
        .map(|t| {
            let shape: Vec<usize> = t.shape.iter().map(|&d| d.max(1) as usize).collect();
            let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d))?;
            (n <= 1 << 16).then(|| ff::Tensor::zeros(&shape, ff::lite::core_dtype(t.dtype)).ok())?
        })
        .collect();
    if let Some(inputs) = inputs {
        let _ = interp.run(&inputs);
    }
});
