//! Branch-free f32 transcendental functions that the compiler vectorises.
//!
//! Range reduction and minimax polynomials follow the classic Cephes constants; every
//! function is accurate to about 2 ulp over its whole domain and handles NaN, infinities
//! and denormal results. Selecting with `if` on values (not control flow) keeps the loops
//! they are inlined into free of branches.

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// Adding then subtracting 1.5 * 2^23 rounds an f32 to the nearest integer.
const ROUND_MAGIC: f32 = 12_582_912.0;

#[inline(always)]
fn pow2i(k: i32) -> f32 {
    f32::from_bits(((k + 127) as u32) << 23)
}

/// `(n, y)` with `e^x = 2^n · y`: `n` the integer nearest `x · log2(e)` (as an f32) and
/// `y` the minimax polynomial for `e^r` on the reduced `r = x - n · ln 2`. `x` must be a
/// number whose `n` fits an i32.
#[inline(always)]
fn exp_reduced(x: f32) -> (f32, f32) {
    let n = (x * LOG2E + ROUND_MAGIC) - ROUND_MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_2e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    (n, p * r * r + r + 1.0)
}

/// e^x for f32.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    // The negated comparison sends NaN to the lower bound (NaN is returned at the end), so
    // the integer conversion below only ever sees a number.
    let xc = if x >= -104.0 { x } else { -104.0 };
    let xc = if xc > 88.8 { 88.8 } else { xc };
    let (n, y) = exp_reduced(xc);
    // SAFETY: `xc` is a number in [-104, 88.8], so `n` is an integer in [-151, 129]: it
    // fits an i32 and is finite. The unchecked conversion avoids the saturating one, which
    // blocks vectorisation.
    let ni: i32 = unsafe { n.to_int_unchecked() };
    let n1 = ni >> 1;
    let v = y * pow2i(n1) * pow2i(ni - n1);
    let v = if x > 88.722_84 { f32::INFINITY } else { v };
    let v = if x < -103.972_08 { 0.0 } else { v };
    if x.is_nan() {
        x
    } else {
        v
    }
}

/// Natural logarithm for f32.
#[inline(always)]
pub fn ln_f32(x: f32) -> f32 {
    let denormal = x < f32::MIN_POSITIVE;
    let xs = if denormal { x * 8_388_608.0 } else { x };
    let bits = xs.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    if denormal {
        e -= 23;
    }
    let m = f32::from_bits((bits & 0x807f_ffff) | 0x3f00_0000);
    let small = m < std::f32::consts::FRAC_1_SQRT_2;
    let e = if small { e - 1 } else { e } as f32;
    let m = if small { m + m - 1.0 } else { m - 1.0 };
    let z = m * m;
    let mut y = 7.037_683_6e-2_f32;
    y = y * m - 1.151_461e-1;
    y = y * m + 1.167_699_9e-1;
    y = y * m - 1.242_014_1e-1;
    y = y * m + 1.424_932_3e-1;
    y = y * m - 1.666_805_8e-1;
    y = y * m + 2.000_071_4e-1;
    y = y * m - 2.499_999_4e-1;
    y = y * m + 3.333_333e-1;
    y = y * m * z;
    y += LN2_LO * e;
    y -= 0.5 * z;
    let v = m + y + LN2_HI * e;
    let v = if x == f32::INFINITY { x } else { v };
    let v = if x == 0.0 { f32::NEG_INFINITY } else { v };
    if x < 0.0 || x.is_nan() {
        f32::NAN
    } else {
        v
    }
}

/// ln(1 + x) for f32, accurate for small x.
#[inline(always)]
pub fn ln_1p_f32(x: f32) -> f32 {
    let u = 1.0 + x;
    let d = u - 1.0;
    let v = ln_f32(u) * (x / if d == 0.0 { 1.0 } else { d });
    let v = if d == 0.0 { x } else { v };
    if u == f32::INFINITY {
        u
    } else {
        v
    }
}

/// Hyperbolic tangent for f32.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let a = x.abs();
    let t = exp_f32(-2.0 * a);
    let big = (1.0 - t) / (1.0 + t);
    let z = x * x;
    // Taylor series for |x| < 0.1, where 1 - e^-2x would cancel.
    let small =
        x * (1.0 + z * (-1.0 / 3.0 + z * (2.0 / 15.0 + z * (-17.0 / 315.0 + z * (62.0 / 2835.0)))));
    let v = if a < 0.1 { small } else { big.copysign(x) };
    if x.is_nan() {
        x
    } else {
        v
    }
}

/// Logistic sigmoid for f32: from `e = e^-|x|`, which never overflows, as `1 / (1 + e)`
/// or `e / (1 + e)` by the sign; fewer steps than through [`exp_f32`] (one power of two,
/// no infinities to select), as activations run it over whole feature maps. Below
/// -87.3, where the result is under `f32::MIN_POSITIVE`, it gives 0.
#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    // `min` sends NaN to the bound, so the integer conversion below only sees a number.
    let a = x.abs().min(87.0);
    let (n, y) = exp_reduced(-a);
    // SAFETY: `a` is a number in [0, 87], so `n` is an integer in [-126, 0].
    let ni: i32 = unsafe { n.to_int_unchecked() };
    let e = y * pow2i(ni);
    let num = if x >= 0.0 { 1.0 } else { e };
    let s = num / (1.0 + e);
    let s = if x < -87.3 { 0.0 } else { s };
    if x.is_nan() {
        x
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f32, b: f64) -> f64 {
        if b == 0.0 {
            a.abs() as f64
        } else {
            ((a as f64 - b) / b).abs()
        }
    }

    #[test]
    fn exp_matches_f64_over_range() {
        let mut x = -87.0f32;
        while x < 88.7 {
            assert!(rel(exp_f32(x), (x as f64).exp()) < 3e-7, "exp({x})");
            x += 0.0173;
        }
        // Denormal results: within one denormal step.
        for x in [-88.0f32, -95.0, -100.0, -103.0] {
            assert!(
                (exp_f32(x) as f64 - (x as f64).exp()).abs() < 2e-45,
                "exp({x})"
            );
        }
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(100.0), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(0.0), 1.0);
    }

    #[test]
    fn ln_matches_f64_over_range() {
        for &x in &[
            1e-40f32, 1e-30, 1e-5, 0.3, 0.7, 0.9999, 1.0, 1.0001, 2.0, 1e10, 3e38,
        ] {
            let expect = (x as f64).ln();
            let got = ln_f32(x);
            assert!(
                (got as f64 - expect).abs() <= 3e-7 * expect.abs().max(1e-7),
                "ln({x})"
            );
        }
        assert!(ln_f32(-1.0).is_nan());
        assert_eq!(ln_f32(0.0), f32::NEG_INFINITY);
        assert_eq!(ln_f32(f32::INFINITY), f32::INFINITY);
        assert!(rel(ln_1p_f32(1e-8), 1e-8) < 1e-6);
        assert!(rel(ln_1p_f32(0.5), 1.5f64.ln()) < 3e-7);
        assert_eq!(ln_1p_f32(-1.0), f32::NEG_INFINITY);
    }

    #[test]
    fn tanh_and_sigmoid() {
        let mut x = -12.0f32;
        while x < 12.0 {
            assert!(rel(tanh_f32(x), (x as f64).tanh()) < 5e-7, "tanh({x})");
            let s = 1.0 / (1.0 + (-(x as f64)).exp());
            assert!(rel(sigmoid_f32(x), s) < 5e-7, "sigmoid({x})");
            x += 0.0137;
        }
        for (x, s) in [
            (0.0f32, 0.5),
            (-87.0, 1.645_811_4e-38),
            (-90.0, 0.0),
            (90.0, 1.0),
        ] {
            assert!(
                (sigmoid_f32(x) - s).abs() <= 1e-6 * s,
                "sigmoid({x}) = {}",
                sigmoid_f32(x)
            );
        }
        assert_eq!(sigmoid_f32(f32::INFINITY), 1.0);
        assert_eq!(sigmoid_f32(f32::NEG_INFINITY), 0.0);
        assert!(sigmoid_f32(f32::NAN).is_nan());
        assert_eq!(tanh_f32(1e-30), 1e-30);
        assert_eq!(tanh_f32(50.0), 1.0);
        assert_eq!(tanh_f32(-50.0), -1.0);
    }
}
