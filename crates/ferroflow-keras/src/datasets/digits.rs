//! The UCI handwritten digits (1,797 8x8 images, pixel values 0-16), shipped with
//! ferroflow (see `crates/ferroflow-keras/data/README.md` for source and licence).

use ferroflow_core::{random, DType, Error, Result, Tensor};
use rand::seq::SliceRandom;
use std::io::Read;

const DATA: &[u8] = include_bytes!("../../data/digits.csv.gz");

/// Number of samples.
pub const SAMPLES: usize = 1797;

/// All samples: pixels `[1797, 64]` (f32, 0-16) and labels `[1797]` (i64, 0-9).
pub fn load() -> Result<(Tensor, Tensor)> {
    let bad = |msg: String| Error::Format {
        path: "digits.csv.gz".into(),
        msg,
    };
    let mut text = String::new();
    flate2::read::GzDecoder::new(DATA)
        .read_to_string(&mut text)
        .map_err(|e| bad(e.to_string()))?;
    let mut pixels = Vec::with_capacity(SAMPLES * 64);
    let mut labels = Vec::with_capacity(SAMPLES);
    for (i, line) in text.lines().enumerate() {
        let vals: Vec<f32> = line
            .split(',')
            .map(|v| v.trim().parse::<f32>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| bad(format!("line {}: {e}", i + 1)))?;
        if vals.len() != 65 {
            return Err(bad(format!(
                "line {}: {} values, expected 65",
                i + 1,
                vals.len()
            )));
        }
        pixels.extend_from_slice(&vals[..64]);
        labels.push(vals[64] as i64);
    }
    let n = labels.len();
    Ok((
        Tensor::from_vec(pixels, &[n, 64])?,
        Tensor::from_vec(labels, &[n])?,
    ))
}

/// A shuffled train/test split: `((x_train, y_train), (x_test, y_test))` with
/// `test_fraction` of the samples held out; `seed` fixes the shuffle.
#[allow(clippy::type_complexity)]
pub fn load_split(test_fraction: f64, seed: u64) -> Result<((Tensor, Tensor), (Tensor, Tensor))> {
    if !(0.0..1.0).contains(&test_fraction) {
        return Err(Error::invalid(
            "digits::load_split",
            format!("test_fraction must be in [0, 1), got {test_fraction}"),
        ));
    }
    let (x, y) = load()?;
    let n = y.shape()[0];
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut random::op_rng(Some(seed)));
    let n_test = (n as f64 * test_fraction).round() as usize;
    let idx =
        |s: &[usize]| Tensor::from_vec(s.iter().map(|&i| i as i64).collect::<Vec<_>>(), &[s.len()]);
    let (test, train) = order.split_at(n_test);
    let (tr, te) = (idx(train)?, idx(test)?);
    Ok((
        (x.gather(&tr, 0)?, y.gather(&tr, 0)?),
        (x.gather(&te, 0)?, y.gather(&te, 0)?),
    ))
}

/// The pixels as images `[n, 8, 8, 1]`.
pub fn as_images(x: &Tensor) -> Result<Tensor> {
    let n = x.shape()[0];
    x.cast(DType::F32)?.reshape_to(&[n, 8, 8, 1])
}
