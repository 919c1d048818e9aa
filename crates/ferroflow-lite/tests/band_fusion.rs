//! A 1x1 CONV_2D whose output only a DEPTHWISE_CONV_2D reads (a MobileNet block's expansion
//! and depthwise step) runs as one operator, band by band of rows, with the values of the
//! two operators run one after the other (`run_all` keeps every tensor, so it runs them
//! apart); when the expanded tensor is also a model output, the two run apart.

use ferroflow_core::Tensor;
use ferroflow_lite::ir::{Activation, LiteModel, Op, Padding, Window};
use ferroflow_lite::Interpreter;

mod common;
use common::{op, pointwise, tensor, values};

/// x [1, 96, 80, 8] -> CONV_2D 1x1 to 64 channels, RELU6 -> t -> DEPTHWISE_CONV_2D 3x3
/// with `stride`, SAME -> y; t is a model output too when `t_is_output`.
fn model(stride: usize, t_is_output: bool) -> Vec<u8> {
    let (h, w, cin, c) = (96, 80, 8, 64);
    let mut m = LiteModel::default();
    let x = m.add_tensor(tensor("x", &[1, h, w, cin], None));
    let pw = m.add_tensor(tensor(
        "pw",
        &[c, 1, 1, cin],
        Some(values((c * cin) as usize, 1)),
    ));
    let pb = m.add_tensor(tensor("pb", &[c], Some(values(c as usize, 2))));
    let dw = m.add_tensor(tensor("dw", &[1, 3, 3, c], Some(values(9 * c as usize, 3))));
    let db = m.add_tensor(tensor("db", &[c], Some(values(c as usize, 4))));
    let t = m.add_tensor(tensor("t", &[1, h, w, c], None));
    let s = stride as i32;
    let (oh, ow) = ((h + s - 1) / s, (w + s - 1) / s);
    let y = m.add_tensor(tensor("y", &[1, oh, ow, c], None));
    m.ops
        .push(op(pointwise(Activation::Relu6), &[x, pw, pb], t));
    m.ops.push(op(
        Op::DepthwiseConv2d {
            window: Window {
                padding: Padding::Same,
                stride: (stride, stride),
                dilation: (1, 1),
            },
            multiplier: 1,
            act: Activation::None,
        },
        &[t, dw, db],
        y,
    ));
    m.inputs = vec![x];
    m.outputs = if t_is_output { vec![y, t] } else { vec![y] };
    ferroflow_lite::write::to_bytes(&m)
}

#[test]
fn banded_pair_gives_the_values_of_the_two_operators() {
    let x = Tensor::from_vec(values(96 * 80 * 8, 5), &[1, 96, 80, 8]).unwrap();
    for stride in [1, 2] {
        for t_is_output in [false, true] {
            let interp = Interpreter::from_bytes(&model(stride, t_is_output)).unwrap();
            let all = interp.run_all(std::slice::from_ref(&x)).unwrap();
            let want = all[6].as_ref().unwrap().to_vec::<f32>().unwrap();
            let (outs, profile) = interp.run_profiled(std::slice::from_ref(&x)).unwrap();
            for (a, b) in outs[0].to_vec::<f32>().unwrap().iter().zip(&want) {
                assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
            }
            let depthwise_ran = profile.iter().any(|p| p.op == "DEPTHWISE_CONV_2D");
            // Banded, the pair is one entry (the CONV_2D's); with t an output, two.
            assert_eq!(depthwise_ran, t_is_output, "stride {stride}: {profile:?}");
            if t_is_output {
                assert_eq!(
                    outs[1].to_vec::<f32>().unwrap(),
                    all[5].as_ref().unwrap().to_vec::<f32>().unwrap()
                );
            }
        }
    }
}
