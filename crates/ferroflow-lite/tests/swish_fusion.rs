//! Swish written as `MUL(t, LOGISTIC(t))` runs fused (in the convolution's epilogue when a
//! convolution makes `t` for nothing else, else as one pass) with the unfused values, and
//! `run_all`, which keeps every tensor, still gives each tensor its own value.

use ferroflow_core::Tensor;
use ferroflow_lite::ir::{Activation, BinaryKind, LiteModel, Op, Padding, UnaryKind, Window};
use ferroflow_lite::Interpreter;

mod common;
use common::{op, tensor};

/// x -> CONV_2D (1x1, 2 -> 3 channels) -> t; y = t * LOGISTIC(t) (`sigmoid_first`: the
/// operands swapped); with `t_is_output`, t is a model output too (then the convolution
/// cannot apply swish itself).
fn model(sigmoid_first: bool, t_is_output: bool) -> Vec<u8> {
    let mut m = LiteModel::default();
    let x = m.add_tensor(tensor("x", &[1, 4, 4, 2], None));
    let w: Vec<f32> = (0..6).map(|i| i as f32 * 0.7 - 2.0).collect();
    let w = m.add_tensor(tensor("w", &[3, 1, 1, 2], Some(w)));
    let b = m.add_tensor(tensor("b", &[3], Some(vec![0.5, -0.25, 0.0])));
    let t = m.add_tensor(tensor("t", &[1, 4, 4, 3], None));
    let s = m.add_tensor(tensor("s", &[1, 4, 4, 3], None));
    let y = m.add_tensor(tensor("y", &[1, 4, 4, 3], None));
    let window = Window {
        padding: Padding::Valid,
        stride: (1, 1),
        dilation: (1, 1),
    };
    m.ops.push(op(
        Op::Conv2d {
            window,
            act: Activation::None,
        },
        &[x, w, b],
        t,
    ));
    m.ops.push(op(Op::Unary(UnaryKind::Logistic), &[t], s));
    let operands = if sigmoid_first { [s, t] } else { [t, s] };
    m.ops.push(op(
        Op::Binary {
            kind: BinaryKind::Mul,
            act: Activation::None,
        },
        &operands,
        y,
    ));
    m.inputs = vec![x];
    m.outputs = if t_is_output { vec![y, t] } else { vec![y] };
    ferroflow_lite::write::to_bytes(&m)
}

#[test]
fn fused_swish_gives_the_unfused_values_and_run_all_keeps_every_tensor() {
    let x = Tensor::from_vec(
        (0..32).map(|i| (i as f32 - 16.0) / 5.0).collect(),
        &[1, 4, 4, 2],
    )
    .unwrap();
    for (sigmoid_first, t_is_output) in [(false, false), (true, false), (false, true)] {
        let interp = Interpreter::from_bytes(&model(sigmoid_first, t_is_output)).unwrap();
        let all = interp.run_all(std::slice::from_ref(&x)).unwrap();
        // Unfused, every tensor holds its own value: t the convolution, s its logistic.
        let t = all[3].as_ref().unwrap();
        let s = all[4].as_ref().unwrap();
        assert_eq!(
            s.to_vec::<f32>().unwrap(),
            t.sigmoid().unwrap().to_vec::<f32>().unwrap()
        );
        let want = all[5].as_ref().unwrap().to_vec::<f32>().unwrap();
        let silu = t.silu().unwrap().to_vec::<f32>().unwrap();
        for (a, b) in want.iter().zip(&silu) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
        }
        let outs = interp.run(std::slice::from_ref(&x)).unwrap();
        for (a, b) in outs[0].to_vec::<f32>().unwrap().iter().zip(&want) {
            assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
        }
        if t_is_output {
            assert_eq!(outs[1].to_vec::<f32>().unwrap(), t.to_vec::<f32>().unwrap());
        }
        // The profile has no LOGISTIC: it was fused away.
        let (_, profile) = interp.run_profiled(std::slice::from_ref(&x)).unwrap();
        assert!(profile.iter().all(|p| p.op != "LOGISTIC"), "{profile:?}");
    }
}
