//! A zero pad of the spatial axes that only a convolution reads (Keras's ZeroPadding2D
//! before a VALID stride-2 DepthwiseConv2D) runs as the convolution's own padding in a
//! compiled function, with the eager results; pads a convolution cannot take (on the
//! channels, reflected, as wide as the window, also returned) stay pad nodes.

use ferroflow_core::ops::conv::Padding;
use ferroflow_core::ops::remap::PadMode;
use ferroflow_core::{random, DType, Result, Tensor};

mod common;
use common::compiled_matches_eager;

fn normal(shape: &[usize], seed: u64) -> Tensor {
    random::normal(shape, 0.0, 1.0, DType::F32, Some(seed)).unwrap()
}

/// The pad and the convolution after it.
struct Case {
    /// Pairs per axis (NHWC).
    paddings: [(usize, usize); 4],
    mode: PadMode,
    /// Depthwise 3x3 (else a full 3x3 convolution to 16 channels).
    depthwise: bool,
    padding: Padding,
    /// Also return the padded tensor.
    padded_out: bool,
}

const KERAS: Case = Case {
    paddings: [(0, 0), (0, 1), (0, 1), (0, 0)],
    mode: PadMode::Constant(0.0),
    depthwise: true,
    padding: Padding::Valid,
    padded_out: false,
};

/// Runs `case` eagerly and compiled (twice); returns whether the compiled function still
/// has a pad node.
fn pad_remains(case: Case) -> bool {
    let c = 12;
    let f_dw = normal(&[3, 3, c, 1], 1);
    let f_full = normal(&[3, 3, c + case.paddings[3].0 + case.paddings[3].1, 16], 2);
    let bias = normal(&[1], 3);
    let f = move |x: &[Tensor]| -> Result<Vec<Tensor>> {
        let p = x[0].pad(&case.paddings, case.mode)?;
        let y = if case.depthwise && case.paddings[3] == (0, 0) {
            p.depthwise_conv2d(&f_dw, (2, 2), case.padding, (1, 1))?
        } else {
            p.conv2d(&f_full, (2, 2), case.padding, (1, 1))?
        };
        let y = y.add(&bias)?;
        Ok(if case.padded_out { vec![y, p] } else { vec![y] })
    };
    let x = normal(&[2, 17, 14, c], 5);
    let mut compiled = compiled_matches_eager(f, &x);
    let dump = compiled.concrete_function(&[x]).unwrap().dump(true);
    dump.contains("remap_axes")
}

#[test]
fn spatial_zero_pads_become_the_convolutions_padding() {
    assert!(!pad_remains(KERAS));
    for paddings in [
        [(0, 0), (1, 1), (1, 1), (0, 0)],
        [(0, 0), (2, 0), (0, 2), (0, 0)],
    ] {
        for depthwise in [true, false] {
            let case = Case {
                paddings,
                depthwise,
                ..KERAS
            };
            assert!(!pad_remains(case), "{paddings:?}, depthwise {depthwise}");
        }
    }
    // On top of the convolution's own SAME padding, while the sum stays narrower than the
    // window.
    let case = Case {
        paddings: [(0, 0), (1, 0), (1, 0), (0, 0)],
        padding: Padding::Same,
        ..KERAS
    };
    assert!(!pad_remains(case));
}

#[test]
fn pads_a_convolution_cannot_take_stay() {
    let cases = [
        Case {
            paddings: [(0, 0), (0, 1), (0, 1), (1, 0)],
            depthwise: false,
            ..KERAS
        },
        Case {
            paddings: [(0, 0), (3, 0), (0, 1), (0, 0)],
            ..KERAS
        },
        Case {
            paddings: [(0, 0), (1, 1), (1, 1), (0, 0)],
            mode: PadMode::Reflect,
            ..KERAS
        },
        Case {
            paddings: [(0, 0), (0, 1), (0, 1), (0, 0)],
            mode: PadMode::Constant(1.0),
            ..KERAS
        },
        Case {
            padded_out: true,
            ..KERAS
        },
    ];
    for case in cases {
        let what = format!(
            "{:?} {:?} out {}",
            case.paddings, case.mode, case.padded_out
        );
        assert!(pad_remains(case), "{what}");
    }
}
