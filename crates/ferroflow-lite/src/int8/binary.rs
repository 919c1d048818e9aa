//! int8 `ADD`, `SUB` and `MUL` in one pass.
//!
//! `ADD` and `SUB`: in fixed point as LiteRT's default (XNNPACK) kernel computes them
//! ([`FixedAdd`]); where XNNPACK declines the scales, each side dequantised in float32,
//! combined and rounded half away from zero (the interpreter's general quantised path).
//!
//! `MUL`: as LiteRT's default (XNNPACK) kernel computes it, the product of the
//! zero-point-shifted integers times `a_scale * b_scale / out_scale` in float32, clamped to
//! the activation's range and rounded to nearest even (see [`super::requant`]). Dequantising
//! first rounds differently in about one element in 10^4.
//!
//! Besides equal shapes, one side may broadcast the way models use it: a scalar, or a
//! tensor with the other's shape but ones in a run of middle axes (a squeeze-excite
//! scale `[b, 1, 1, c]` against `[b, h, w, c]`, a per-channel `[c]`).

use super::requant::{activation_range, round_clamped};
use crate::interpreter::{round_half_away, saturate_i8};
use crate::ir::{Activation, BinaryKind};
use ferroflow_core::alloc::overwritable;

/// Quantisation of both inputs and the output, the operation and the fused activation
/// (not tanh).
#[derive(Clone, Debug)]
pub(crate) struct Binary {
    /// `Add`, `Sub` or `Mul`.
    pub(crate) kind: BinaryKind,
    pub(crate) a: (f32, i32),
    pub(crate) b: (f32, i32),
    pub(crate) out: (f32, i32),
    pub(crate) act: Activation,
}

/// How the smaller operand repeats over the output `[outer, mid, inner]`: it holds
/// `[outer, inner]` values, each inner row reused for the `mid` rows between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Repeat {
    outer: usize,
    mid: usize,
    inner: usize,
}

impl Repeat {
    /// How `small` (right-aligned, ones where it repeats) broadcasts to `full`, when its
    /// dimensions match `full`'s except for one run of ones: `None` otherwise (and for
    /// equal shapes, which need no repeat).
    pub(crate) fn of(full: &[usize], small: &[usize]) -> Option<Repeat> {
        if small.len() > full.len() || small == full {
            return None;
        }
        // Left-pad `small` with ones to `full`'s rank.
        let pad = full.len() - small.len();
        let dim = |i: usize| if i < pad { 1 } else { small[i - pad] };
        let differs: Vec<usize> = (0..full.len()).filter(|&i| dim(i) != full[i]).collect();
        let (&first, &last) = (differs.first()?, differs.last()?);
        let ones_between = (first..=last).all(|i| dim(i) == 1);
        if !ones_between {
            return None;
        }
        let product = |r: std::ops::Range<usize>| full[r].iter().product::<usize>();
        Some(Repeat {
            outer: product(0..first),
            mid: product(first..last + 1),
            inner: product(last + 1..full.len()),
        })
    }
}

vectorised!(binary_rows: Binary => rows(a: &[i8], b: &[i8], out: &mut [i8]));
vectorised!(binary_repeat: Binary => repeat(full: &[i8], small: &[i8], r: Repeat, small_first: bool, out: &mut [i8]));

impl Binary {
    /// `a op b`, element by element (equal lengths).
    pub(crate) fn run(&self, a: &[i8], b: &[i8]) -> Vec<i8> {
        let mut out = overwritable::<i8>(a.len().min(b.len()));
        binary_rows(self, a, b, &mut out);
        out
    }

    /// `full op small` (`small op full` when `small_first`), `small` repeating over
    /// `full` as `r` says; `None` when the lengths do not fit `r`.
    pub(crate) fn run_repeated(
        &self,
        full: &[i8],
        small: &[i8],
        r: Repeat,
        small_first: bool,
    ) -> Option<Vec<i8>> {
        let n = r.outer.checked_mul(r.mid)?.checked_mul(r.inner)?;
        if full.len() != n || small.len() != r.outer * r.inner {
            return None;
        }
        let mut out = overwritable::<i8>(n);
        if n > 0 {
            binary_repeat(self, full, small, r, small_first, &mut out);
        }
        Some(out)
    }

    /// `full` and `out` hold `r.outer * r.mid * r.inner` values (not zero), `small`
    /// `r.outer * r.inner`.
    #[inline(always)]
    fn repeat(&self, full: &[i8], small: &[i8], r: Repeat, small_first: bool, out: &mut [i8]) {
        let block = r.mid * r.inner;
        // Rows shorter than a vector are tiled to a run of 64 or more values first.
        let run = if r.inner < 16 {
            r.inner * 64usize.div_ceil(r.inner)
        } else {
            r.inner
        };
        let mut tiled = Vec::with_capacity(run);
        for ((f, o), s) in full
            .chunks_exact(block)
            .zip(out.chunks_exact_mut(block))
            .zip(small.chunks_exact(r.inner))
        {
            let s = if run > r.inner {
                tiled.clear();
                while tiled.len() < run {
                    tiled.extend_from_slice(s);
                }
                &tiled[..]
            } else {
                s
            };
            // `block` is a multiple of `inner`, so every run starts at a row.
            for (f, o) in f.chunks(run).zip(o.chunks_mut(run)) {
                if small_first {
                    self.rows(s, f, o);
                } else {
                    self.rows(f, s, o);
                }
            }
        }
    }

    #[inline(always)]
    fn rows(&self, a: &[i8], b: &[i8], out: &mut [i8]) {
        let (sa, za) = (self.a.0, self.a.1 as f32);
        let (sb, zb) = (self.b.0, self.b.1 as f32);
        let (so, zo) = (self.out.0, self.out.1 as f32);
        let (lo, hi) = match self.act {
            Activation::Relu => (0.0, f32::INFINITY),
            Activation::Relu6 => (0.0, 6.0),
            Activation::ReluN1To1 => (-1.0, 1.0),
            Activation::None | Activation::Tanh => (f32::NEG_INFINITY, f32::INFINITY),
        };
        let out_q = (lo, hi, so, zo);
        let pairs = out.iter_mut().zip(a).zip(b);
        match self.kind {
            BinaryKind::Mul => match activation_range(self.act, so, self.out.1) {
                Some((min, max)) => {
                    let scale = sa * sb / so;
                    let (ia, ib, io) = (self.a.1, self.b.1, self.out.1);
                    let (lo, hi) = ((min - io) as f32, (max - io) as f32);
                    for ((y, &x), &z) in pairs {
                        let acc = (x as i32 - ia) * (z as i32 - ib);
                        *y = round_clamped(acc, scale, lo, hi, io);
                    }
                }
                None => {
                    for ((y, &x), &z) in pairs {
                        *y = requantize(dequantize(x, za, sa) * dequantize(z, zb, sb), out_q);
                    }
                }
            },
            kind => {
                let sub = kind == BinaryKind::Sub;
                match FixedAdd::new(self, sub) {
                    Some(f) => {
                        for ((y, &x), &z) in pairs {
                            *y = f.apply(x, z);
                        }
                    }
                    None if sub => {
                        for ((y, &x), &z) in pairs {
                            *y = requantize(dequantize(x, za, sa) - dequantize(z, zb, sb), out_q);
                        }
                    }
                    None => {
                        for ((y, &x), &z) in pairs {
                            *y = requantize(dequantize(x, za, sa) + dequantize(z, zb, sb), out_q);
                        }
                    }
                }
            }
        }
    }
}

/// int8 addition (and subtraction, as the addition of a negated scale) in fixed point, as
/// XNNPACK's kernels that LiteRT applies by default compute it: each input times an
/// integer multiplier of about 21 bits, summed with a bias that folds in the zero points
/// and half an output step, shifted right.
#[derive(Clone, Copy, Debug)]
struct FixedAdd {
    bias: i32,
    a: i32,
    b: i32,
    shift: u32,
    zero_point: i32,
    min: i32,
    max: i32,
}

impl FixedAdd {
    /// The parameters of `op` (`sub`: `a - b`); `None` where a scale ratio is outside
    /// `[2^-10, 2^8)` (where XNNPACK declines the op) or the activation has no integer form.
    fn new(op: &Binary, sub: bool) -> Option<FixedAdd> {
        let a_ratio = op.a.0 / op.out.0;
        let b_ratio = op.b.0 / op.out.0;
        let valid = |r: f32| (2f32.powi(-10)..256.0).contains(&r);
        if !valid(a_ratio) || !valid(b_ratio) {
            return None;
        }
        let (min, max) = activation_range(op.act, op.out.0, op.out.1)?;
        let exponent = (a_ratio.max(b_ratio).to_bits() >> 23) as i32 - 127;
        let shift = (20 - exponent) as u32;
        // ratio * 2^shift, exactly, rounded to nearest even.
        let multiplier = |r: f32| (r * (shift as f32).exp2()).round_ties_even() as i32;
        let (a, b) = (multiplier(a_ratio), multiplier(b_ratio));
        let b = if sub { -b } else { b };
        let bias = (1i32 << (shift - 1))
            .wrapping_sub(a.wrapping_mul(op.a.1))
            .wrapping_sub(b.wrapping_mul(op.b.1));
        Some(FixedAdd {
            bias,
            a,
            b,
            shift,
            zero_point: op.out.1,
            min,
            max,
        })
    }

    #[inline(always)]
    fn apply(&self, x: i8, z: i8) -> i8 {
        let acc = self
            .bias
            .wrapping_add((x as i32).wrapping_mul(self.a))
            .wrapping_add((z as i32).wrapping_mul(self.b));
        ((acc >> self.shift) + self.zero_point).clamp(self.min, self.max) as i8
    }
}

/// `(x - zero_point) * scale` in float32, as the interpreter dequantises.
// Functions, not closures: a closure is compiled without the target features of the
// kernel it is written in, and is not always inlined (then `trunc` is a libm call).
#[inline(always)]
fn dequantize(x: i8, zero_point: f32, scale: f32) -> f32 {
    (x as f32 - zero_point) * scale
}

/// `v` clamped to the activation's `[lo, hi]`, divided by the output scale, rounded half
/// away from zero, shifted by the zero point and saturated to int8.
#[inline(always)]
fn requantize(v: f32, (lo, hi, scale, zero_point): (f32, f32, f32, f32)) -> i8 {
    let v = if v < lo { lo } else { v };
    let v = if v > hi { hi } else { v };
    saturate_i8(round_half_away(v / scale) + zero_point)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: BinaryKind) -> Binary {
        Binary {
            kind,
            a: (0.5, 0),
            b: (0.25, 4),
            out: (1.0, -1),
            act: Activation::None,
        }
    }

    #[test]
    fn combines_the_inputs_as_litert_rounds_them() {
        let add = op(BinaryKind::Add);
        // 0.5 * 3 + 0.25 * (6 - 4) = 2.0 -> 2 - 1; 0.5 * 1 + 0 = 0.5 -> 1 - 1 (fixed point
        // rounds half up); -0.5 -> 0 - 1.
        assert_eq!(add.run(&[3, 1, -1], &[6, 4, 4]), vec![1, 0, -1]);
        let relu = Binary {
            act: Activation::Relu,
            ..add.clone()
        };
        assert_eq!(relu.run(&[-100], &[4]), vec![-1]);
        assert_eq!(relu.run(&[127], &[127]), vec![93]); // 63.5 + 30.75 = 94.25
                                                        // 1.5 * 0.5 = 0.75 -> 1 - 1; -1.5 * 2.5 = -3.75 -> -4 - 1; saturates at 127.
        assert_eq!(
            op(BinaryKind::Mul).run(&[3, -3, 127], &[6, 14, 127]),
            vec![0, -5, 127]
        );
        // 1.5 - 0.5 = 1 -> 0; 0.5 * 1 - 0.25 * 6 = -1 -> -2.
        assert_eq!(op(BinaryKind::Sub).run(&[3, 1], &[6, 10]), vec![0, -2]);
    }

    #[test]
    fn finds_the_repeat_of_a_broadcast_operand() {
        let r = |outer, mid, inner| Some(Repeat { outer, mid, inner });
        assert_eq!(Repeat::of(&[2, 5, 5, 8], &[2, 1, 1, 8]), r(2, 25, 8));
        assert_eq!(Repeat::of(&[2, 5, 5, 8], &[8]), r(1, 50, 8));
        assert_eq!(Repeat::of(&[2, 5, 5, 8], &[1]), r(1, 400, 1));
        assert_eq!(Repeat::of(&[2, 5, 5, 8], &[]), r(1, 400, 1));
        assert_eq!(Repeat::of(&[2, 5, 5, 8], &[2, 5, 5, 1]), r(50, 8, 1));
        // Ones that are not one run, a dimension that does not fit, equal shapes.
        assert_eq!(Repeat::of(&[2, 5, 5, 8], &[1, 5, 1, 8]), None);
        assert_eq!(Repeat::of(&[2, 5, 5, 8], &[2, 1, 1, 4]), None);
        assert_eq!(Repeat::of(&[2, 5], &[2, 5]), None);
    }

    #[test]
    fn a_repeated_operand_gives_the_broadcast_result() {
        let mul = op(BinaryKind::Sub);
        let full: Vec<i8> = (0..24).map(|i| i * 5 - 60).collect();
        let small: Vec<i8> = vec![7, -9, 30];
        // full [2, 4, 3] against small [1, 1, 3] (and the reverse operand order).
        let r = Repeat::of(&[2, 4, 3], &[1, 1, 3]).unwrap();
        let tiled: Vec<i8> = (0..24).map(|i| small[i % 3]).collect();
        assert_eq!(
            mul.run_repeated(&full, &small, r, false).unwrap(),
            mul.run(&full, &tiled)
        );
        assert_eq!(
            mul.run_repeated(&full, &small, r, true).unwrap(),
            mul.run(&tiled, &full)
        );
        assert_eq!(mul.run_repeated(&full, &small[..2], r, false), None);
    }
}
