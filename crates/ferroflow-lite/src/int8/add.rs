//! int8 `ADD` of two tensors of one shape, in one pass: each side dequantised in float32,
//! summed, the fused activation applied, and the sum rounded half away from zero to the
//! output's parameters. These are the float operations of the interpreter's general
//! quantised path, fused, so results are the same bytes (and LiteRT's on the fixtures).

use crate::interpreter::round_half_away;
use crate::ir::Activation;

/// Quantisation of both inputs and the output, and the fused activation (not tanh).
#[derive(Clone, Debug)]
pub(crate) struct Add {
    pub(crate) a: (f32, i32),
    pub(crate) b: (f32, i32),
    pub(crate) out: (f32, i32),
    pub(crate) act: Activation,
}

vectorised!(add_rows: Add => rows(a: &[i8], b: &[i8], out: &mut [i8]));

impl Add {
    /// `a + b`, element by element.
    pub(crate) fn run(&self, a: &[i8], b: &[i8]) -> Vec<i8> {
        let mut out = vec![0i8; a.len().min(b.len())];
        add_rows(self, a, b, &mut out);
        out
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
        for ((y, &x), &z) in out.iter_mut().zip(a).zip(b) {
            let v = (x as f32 - za) * sa + (z as f32 - zb) * sb;
            let v = if v < lo { lo } else { v };
            let v = if v > hi { hi } else { v };
            let r = round_half_away(v / so) + zo;
            let r = if r < -128.0 { -128.0 } else { r };
            let r = if r > 127.0 { 127.0 } else { r };
            *y = r as i8;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_dequantised_values_and_rounds_half_away() {
        let add = Add {
            a: (0.5, 0),
            b: (0.25, 4),
            out: (1.0, -1),
            act: Activation::None,
        };
        // 0.5 * 3 + 0.25 * (6 - 4) = 2.0 -> 2 - 1; 0.5 * 1 + 0 = 0.5 -> 1 - 1 (half away);
        // -0.5 -> -1 - 1.
        assert_eq!(add.run(&[3, 1, -1], &[6, 4, 4]), vec![1, 0, -2]);
        let relu = Add {
            act: Activation::Relu,
            ..add
        };
        assert_eq!(relu.run(&[-100], &[4]), vec![-1]);
        assert_eq!(relu.run(&[127], &[127]), vec![93]); // 63.5 + 30.75 = 94.25
    }
}
