//! Random tensors with TensorFlow's seeding rules.
//!
//! As with `tf.random.set_seed`: when a global seed is set, every random op without its own
//! seed draws a fresh, deterministic op seed from a counter, so a program that sets the
//! global seed repeats exactly. An op seed alone is deterministic too. With neither, the
//! stream is seeded from the clock.

use crate::{DType, Error, Result, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use std::sync::Mutex;

/// TF's default graph-level seed, used when only an op seed is given.
const DEFAULT_GLOBAL_SEED: u64 = 87_654_321;

struct SeedState {
    global: Option<u64>,
    counter: u64,
}

static STATE: Mutex<SeedState> = Mutex::new(SeedState {
    global: None,
    counter: 0,
});

/// Where the op-seed counter stands (to run a traced step again from the same point).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RngSnapshot {
    global: Option<u64>,
    counter: u64,
}

/// The current seeding state.
pub fn snapshot() -> RngSnapshot {
    let s = STATE.lock().unwrap_or_else(|e| e.into_inner());
    RngSnapshot {
        global: s.global,
        counter: s.counter,
    }
}

/// Takes back the op seeds drawn since `snap` (when the global seed is still the same),
/// so that work done again draws the same numbers. Draws of other threads in between
/// are not undone twice: only the difference is subtracted.
pub fn rewind_to(snap: RngSnapshot) {
    let mut s = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if s.global == snap.global && s.counter >= snap.counter {
        s.counter = snap.counter;
    }
}

impl RngSnapshot {
    /// The global seed (if set) and the op-seed counter, to store in a checkpoint.
    pub fn parts(&self) -> (Option<u64>, u64) {
        (self.global, self.counter)
    }

    /// A snapshot from [`RngSnapshot::parts`].
    pub fn from_parts(global: Option<u64>, counter: u64) -> RngSnapshot {
        RngSnapshot { global, counter }
    }
}

/// Puts the seeding state back to `snap` (global seed and op-seed counter), as when a
/// job resumes from a checkpoint: the ops that follow draw what they drew the first time.
pub fn restore(snap: RngSnapshot) {
    let mut s = STATE.lock().unwrap_or_else(|e| e.into_inner());
    s.global = snap.global;
    s.counter = snap.counter;
}

/// Sets the global seed (`tf.random.set_seed`) and restarts the op-seed counter.
pub fn set_seed(seed: u64) {
    let mut s = STATE.lock().unwrap_or_else(|e| e.into_inner());
    s.global = Some(seed);
    s.counter = 0;
}

/// Mixes two seeds into one stream key (SplitMix64 finaliser).
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The generator for one random op, following the seeding rules above.
pub fn op_rng(op_seed: Option<u64>) -> ChaCha8Rng {
    let mut s = STATE.lock().unwrap_or_else(|e| e.into_inner());
    let key = match (s.global, op_seed) {
        (Some(g), Some(o)) => mix(g, o),
        (None, Some(o)) => mix(DEFAULT_GLOBAL_SEED, o),
        (Some(g), None) => {
            s.counter += 1;
            mix(g, s.counter.wrapping_add(1 << 40))
        }
        (None, None) => {
            s.counter += 1;
            mix(clock_entropy(), s.counter)
        }
    };
    ChaCha8Rng::seed_from_u64(key)
}

/// Entropy for unseeded streams: the wall clock. A browser (`wasm32-unknown-unknown`) has
/// no clock in `std`, where it panics; there the address of a fresh allocation stands in
/// (the per-call counter keeps streams apart either way).
#[cfg(not(target_arch = "wasm32"))]
fn clock_entropy() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(target_arch = "wasm32")]
fn clock_entropy() -> u64 {
    let probe = Box::new(0u8);
    &*probe as *const u8 as u64
}

fn float_dtype(op: &'static str, dtype: DType) -> Result<()> {
    if dtype.is_float() {
        Ok(())
    } else {
        Err(Error::UnsupportedDType { op, dtype })
    }
}

/// Collects f64 samples straight into float32 storage when that is the dtype (no f64
/// copy of a large tensor), else through f64. The buffer comes from the kernels'
/// allocator, so a large one (an embedding table's initial values) is backed by huge
/// pages from its first write: rows later read at random then cost no TLB miss each.
fn collect_as(values: impl Iterator<Item = f64>, shape: &[usize], dtype: DType) -> Result<Tensor> {
    let n = crate::shape::numel(shape);
    if dtype == DType::F32 {
        let mut out = crate::alloc::with_capacity::<f32>(n);
        out.extend(values.map(|v| v as f32));
        Tensor::from_vec(out, shape)
    } else {
        let mut out = crate::alloc::with_capacity::<f64>(n);
        out.extend(values);
        Tensor::from_vec(out, shape)?.cast(dtype)
    }
}

/// Samples from a normal distribution (`tf.random.normal`).
pub fn normal(shape: &[usize], a: f64, b: f64, dtype: DType, seed: Option<u64>) -> Result<Tensor> {
    let guard = crate::trace::suppress();
    let out = normal_draw(shape, a, b, dtype, seed)?;
    drop(guard);
    let sh = shape.to_vec();
    crate::trace::record(
        "random_normal",
        crate::trace::OpKind::Random,
        || format!("shape={shape:?}, params=({a}, {b}), dtype={dtype}, seed={seed:?}"),
        &[],
        &out,
        move |_| normal_draw(&sh, a, b, dtype, seed),
    );
    Ok(out)
}

fn normal_draw(
    shape: &[usize],
    mean: f64,
    stddev: f64,
    dtype: DType,
    seed: Option<u64>,
) -> Result<Tensor> {
    float_dtype("random_normal", dtype)?;
    let mut rng = op_rng(seed);
    let n = crate::shape::numel(shape);
    let v = (0..n).map(|_| {
        let z: f64 = StandardNormal.sample(&mut rng);
        mean + stddev * z
    });
    collect_as(v, shape, dtype)
}

/// Samples uniformly from `[minval, maxval)` (`tf.random.uniform`); integer dtypes draw
/// integers in that range.
pub fn uniform(shape: &[usize], a: f64, b: f64, dtype: DType, seed: Option<u64>) -> Result<Tensor> {
    let guard = crate::trace::suppress();
    let out = uniform_draw(shape, a, b, dtype, seed)?;
    drop(guard);
    let sh = shape.to_vec();
    crate::trace::record(
        "random_uniform",
        crate::trace::OpKind::Random,
        || format!("shape={shape:?}, params=({a}, {b}), dtype={dtype}, seed={seed:?}"),
        &[],
        &out,
        move |_| uniform_draw(&sh, a, b, dtype, seed),
    );
    Ok(out)
}

fn uniform_draw(
    shape: &[usize],
    minval: f64,
    maxval: f64,
    dtype: DType,
    seed: Option<u64>,
) -> Result<Tensor> {
    if maxval <= minval || !minval.is_finite() || !maxval.is_finite() {
        return Err(Error::invalid(
            "random_uniform",
            format!("need minval < maxval, got [{minval}, {maxval})"),
        ));
    }
    let mut rng = op_rng(seed);
    let n = crate::shape::numel(shape);
    if dtype.is_int() {
        let (lo, hi) = (minval.ceil() as i64, maxval.ceil() as i64);
        let v: Vec<i64> = (0..n).map(|_| rng.random_range(lo..hi)).collect();
        return Tensor::from_vec(v, shape)?.cast(dtype);
    }
    float_dtype("random_uniform", dtype)?;
    let v = (0..n).map(|_| minval + (maxval - minval) * rng.random::<f64>());
    collect_as(v, shape, dtype)
}

/// Normal samples redrawn until within two standard deviations (`tf.random.truncated_normal`).
pub fn truncated_normal(
    shape: &[usize],
    a: f64,
    b: f64,
    dtype: DType,
    seed: Option<u64>,
) -> Result<Tensor> {
    let guard = crate::trace::suppress();
    let out = truncated_normal_draw(shape, a, b, dtype, seed)?;
    drop(guard);
    let sh = shape.to_vec();
    crate::trace::record(
        "truncated_normal",
        crate::trace::OpKind::Random,
        || format!("shape={shape:?}, params=({a}, {b}), dtype={dtype}, seed={seed:?}"),
        &[],
        &out,
        move |_| truncated_normal_draw(&sh, a, b, dtype, seed),
    );
    Ok(out)
}

fn truncated_normal_draw(
    shape: &[usize],
    mean: f64,
    stddev: f64,
    dtype: DType,
    seed: Option<u64>,
) -> Result<Tensor> {
    float_dtype("truncated_normal", dtype)?;
    let mut rng = op_rng(seed);
    let n = crate::shape::numel(shape);
    let v = (0..n).map(|_| loop {
        let z: f64 = StandardNormal.sample(&mut rng);
        if z.abs() <= 2.0 {
            break mean + stddev * z;
        }
    });
    collect_as(v, shape, dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_make_streams_repeat() {
        let a = normal(&[100], 0.0, 1.0, DType::F32, Some(7))
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        let b = normal(&[100], 0.0, 1.0, DType::F32, Some(7))
            .unwrap()
            .to_vec::<f32>()
            .unwrap();
        assert_eq!(a, b);
        let m = a.iter().map(|&x| x as f64).sum::<f64>() / 100.0;
        assert!(m.abs() < 0.4);
        let t = truncated_normal(&[1000], 1.0, 0.5, DType::F64, Some(3))
            .unwrap()
            .to_vec::<f64>()
            .unwrap();
        assert!(t.iter().all(|&x| (0.0..=2.0).contains(&x)));
        let u = uniform(&[1000], -2.0, 3.0, DType::I32, Some(1))
            .unwrap()
            .to_vec::<i32>()
            .unwrap();
        assert!(u.iter().all(|&x| (-2..3).contains(&x)));
        assert!(uniform(&[1], 1.0, 1.0, DType::F32, None).is_err());
        assert!(normal(&[1], 0.0, 1.0, DType::I32, None).is_err());
    }
}
