//! A zero PAD of the spatial axes before a VALID convolution (Keras's ZeroPadding2D before
//! a stride-2 DepthwiseConv2D or a VALID stem convolution) runs as the convolution's own
//! padding: the PAD operator does not run, and the outputs equal those of the operators run
//! one by one (`run_all`, which keeps every tensor). PADs that padding cannot express (on the
//! channels, as wide as the window, also a model output, before a SAME convolution) run.

use ferroflow_core::Tensor;
use ferroflow_lite::ir::{Activation, ElementType, LiteModel, LiteTensor, Op, Padding, Window};
use ferroflow_lite::Interpreter;

mod common;
use common::{op, pointwise, tensor, values};

/// A constant int32 tensor.
fn ints(name: &str, shape: &[i32], data: &[i32]) -> LiteTensor {
    LiteTensor {
        name: name.into(),
        shape: shape.to_vec(),
        signature: Vec::new(),
        dtype: ElementType::I32,
        data: Some(data.iter().flat_map(|v| v.to_le_bytes()).collect()),
        quant: None,
    }
}

/// The model under test.
struct Case {
    /// The PAD's [before, after] pairs for the batch, height, width and channel axes.
    paddings: [[i32; 2]; 4],
    /// The convolution after the PAD is a 3x3 depthwise one (else a full 3x3 CONV_2D).
    depthwise: bool,
    /// Its padding mode.
    padding: Padding,
    /// The PAD's output is also a model output.
    pad_is_output: bool,
}

const H: i32 = 22;
const W: i32 = 19;
const CIN: i32 = 5;
const C: i32 = 24;

/// x [2, H, W, CIN] -> CONV_2D 1x1 to C channels, RELU6 -> t -> PAD -> p -> 3x3 convolution
/// at stride 2 (depthwise, or to 16 channels) -> y.
fn model(case: &Case) -> Vec<u8> {
    let mut m = LiteModel::default();
    let x = m.add_tensor(tensor("x", &[2, H, W, CIN], None));
    let pw = m.add_tensor(tensor(
        "pw",
        &[C, 1, 1, CIN],
        Some(values((C * CIN) as usize, 1)),
    ));
    let pb = m.add_tensor(tensor("pb", &[C], Some(values(C as usize, 2))));
    let t = m.add_tensor(tensor("t", &[2, H, W, C], None));
    let flat: Vec<i32> = case.paddings.iter().flatten().copied().collect();
    let paddings = m.add_tensor(ints("paddings", &[4, 2], &flat));
    let padded: Vec<i32> = [2, H, W, C]
        .iter()
        .zip(&case.paddings)
        .map(|(d, [a, b])| d + a + b)
        .collect();
    let p = m.add_tensor(tensor("p", &padded, None));
    let cout = if case.depthwise { padded[3] } else { 16 };
    let out = |d: i32| match case.padding {
        Padding::Valid => (d - 3) / 2 + 1,
        Padding::Same => (d + 1) / 2,
    };
    let y = m.add_tensor(tensor(
        "y",
        &[padded[0], out(padded[1]), out(padded[2]), cout],
        None,
    ));
    let filter_shape = if case.depthwise {
        [1, 3, 3, cout]
    } else {
        [cout, 3, 3, padded[3]]
    };
    let n: i32 = filter_shape.iter().product();
    let f = m.add_tensor(tensor("f", &filter_shape, Some(values(n as usize, 3))));
    let fb = m.add_tensor(tensor("fb", &[cout], Some(values(cout as usize, 4))));
    m.ops
        .push(op(pointwise(Activation::Relu6), &[x, pw, pb], t));
    m.ops.push(op(Op::Pad, &[t, paddings], p));
    let window = Window {
        padding: case.padding,
        stride: (2, 2),
        dilation: (1, 1),
    };
    let conv = if case.depthwise {
        Op::DepthwiseConv2d {
            window,
            multiplier: 1,
            act: Activation::Relu6,
        }
    } else {
        Op::Conv2d {
            window,
            act: Activation::None,
        }
    };
    m.ops.push(op(conv, &[p, f, fb], y));
    m.inputs = vec![x];
    m.outputs = if case.pad_is_output {
        vec![y, p]
    } else {
        vec![y]
    };
    ferroflow_lite::write::to_bytes(&m)
}

/// Runs `case`, checks its outputs against the operators run one by one and returns
/// whether the PAD operator ran.
fn pad_ran(case: &Case) -> bool {
    let x = Tensor::from_vec(
        values((2 * H * W * CIN) as usize, 5),
        &[2, H as usize, W as usize, CIN as usize],
    )
    .unwrap();
    let interp = Interpreter::from_bytes(&model(case)).unwrap();
    let all = interp.run_all(std::slice::from_ref(&x)).unwrap();
    let y = interp.model().outputs[0];
    let want = all[y].as_ref().unwrap().to_vec::<f32>().unwrap();
    let (outs, profile) = interp.run_profiled(std::slice::from_ref(&x)).unwrap();
    let got = outs[0].to_vec::<f32>().unwrap();
    assert_eq!(outs[0].shape(), all[y].as_ref().unwrap().shape());
    for (a, b) in got.iter().zip(&want) {
        assert!((a - b).abs() <= 1e-5 * b.abs().max(1.0), "{a} vs {b}");
    }
    if case.pad_is_output {
        let p = interp.model().outputs[1];
        assert_eq!(
            outs[1].to_vec::<f32>().unwrap(),
            all[p].as_ref().unwrap().to_vec::<f32>().unwrap()
        );
    }
    profile.iter().any(|p| p.op == "PAD")
}

#[test]
fn spatial_zero_pad_before_a_valid_convolution_is_its_padding() {
    // Keras's correct_pad for even sizes, then for odd ones; the widest pads a 3x3 window
    // takes; none on one side.
    for paddings in [
        [[0, 0], [0, 1], [0, 1], [0, 0]],
        [[0, 0], [1, 1], [1, 1], [0, 0]],
        [[0, 0], [2, 2], [2, 0], [0, 0]],
        [[0, 0], [0, 0], [0, 0], [0, 0]],
    ] {
        for depthwise in [true, false] {
            let case = Case {
                paddings,
                depthwise,
                padding: Padding::Valid,
                pad_is_output: false,
            };
            assert!(!pad_ran(&case), "{paddings:?}, depthwise {depthwise}");
        }
    }
}

#[test]
fn pads_that_a_convolution_cannot_take_run_as_operators() {
    let keras = [[0, 0], [0, 1], [0, 1], [0, 0]];
    let cases = [
        // Channels padded.
        ([[0, 0], [0, 1], [0, 1], [1, 0]], Padding::Valid, false),
        // Batch padded.
        ([[1, 0], [0, 1], [0, 1], [0, 0]], Padding::Valid, false),
        // As wide as the window.
        ([[0, 0], [3, 0], [0, 1], [0, 0]], Padding::Valid, false),
        // The padded tensor is also an output.
        (keras, Padding::Valid, true),
        // The convolution pads as well.
        (keras, Padding::Same, false),
    ];
    for (paddings, padding, pad_is_output) in cases {
        for depthwise in [true, false] {
            let case = Case {
                paddings,
                depthwise,
                padding,
                pad_is_output,
            };
            assert!(
                pad_ran(&case),
                "{paddings:?}, {padding:?}, depthwise {depthwise}"
            );
        }
    }
}
