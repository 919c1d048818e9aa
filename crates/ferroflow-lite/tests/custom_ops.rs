//! Custom operators: a model with a custom op runs with a kernel the application
//! registers (TFLite's op resolver), and without one it is refused at load, naming it.

use ferroflow_core::{Result, Tensor};
use ferroflow_lite::ir::{ElementType, LiteModel, LiteOp, LiteTensor, Op};
use ferroflow_lite::Interpreter;

fn activation(name: &str) -> LiteTensor {
    LiteTensor {
        name: name.into(),
        shape: vec![2, 3],
        signature: Vec::new(),
        dtype: ElementType::F32,
        data: None,
        quant: None,
    }
}

/// `y = TimesK(x)` with k as the custom option byte, then `z = Unknown(y)` when asked.
fn model(with_unknown: bool) -> Vec<u8> {
    let mut m = LiteModel::default();
    let x = m.add_tensor(activation("x"));
    let y = m.add_tensor(activation("y"));
    m.ops.push(LiteOp {
        op: Op::Custom {
            name: "TimesK".into(),
            options: vec![3],
        },
        inputs: vec![x as i32],
        outputs: vec![y as i32],
    });
    m.inputs = vec![x];
    m.outputs = vec![y];
    if with_unknown {
        let z = m.add_tensor(activation("z"));
        m.ops.push(LiteOp {
            op: Op::Custom {
                name: "Unknown".into(),
                options: Vec::new(),
            },
            inputs: vec![y as i32],
            outputs: vec![z as i32],
        });
        m.outputs = vec![z];
    }
    ferroflow_lite::write::to_bytes(&m)
}

fn times_k(inputs: &[Option<Tensor>], options: &[u8], _: &[&LiteTensor]) -> Result<Vec<Tensor>> {
    let x = inputs[0].as_ref().expect("one input");
    Ok(vec![x.mul_scalar(options[0] as f64)?])
}

#[test]
fn a_registered_kernel_runs_the_custom_op() {
    let interp = Interpreter::builder()
        .custom_op("TimesK", times_k)
        .from_bytes(&model(false))
        .unwrap();
    let x = Tensor::from_vec(vec![1f32, 2., 3., 4., 5., 6.], &[2, 3]).unwrap();
    let y = interp.run(&[x]).unwrap().remove(0);
    assert_eq!(y.to_vec::<f32>().unwrap(), vec![3., 6., 9., 12., 15., 18.]);
}

#[test]
fn custom_ops_without_a_kernel_are_named_at_load() {
    let e = Interpreter::from_bytes(&model(true))
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("'TimesK'") && e.contains("'Unknown'") && e.contains("custom_op"),
        "{e}"
    );
    let e = Interpreter::builder()
        .custom_op("TimesK", times_k)
        .from_bytes(&model(true))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("'Unknown'") && !e.contains("'TimesK'"), "{e}");
    let v = ferroflow_lite::inspect::inspect(&model(true)).unwrap();
    assert_eq!(
        v["unsupported_ops"],
        serde_json::json!(["CUSTOM(TimesK)", "CUSTOM(Unknown)"])
    );
}
