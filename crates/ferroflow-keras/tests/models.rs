//! Sequential, functional and subclassed models: building, shared and nested layers,
//! summaries, configs, and error handling.

use ferroflow_core::{random, DType, Result, Tensor};
use ferroflow_keras::layer::LayerBase;
use ferroflow_keras::layers::{Concatenate, Dense, Embedding, GlobalAveragePooling1D};
use ferroflow_keras::models::serialize::{functional_from_config, layer_json};
use ferroflow_keras::{
    layer_ref, CallContext, Input, Layer, LayerExt, LayerRef, Model, SymbolicCall,
};

/// Layer names and the global seed are process-wide, as in Keras; tests that depend on
/// them run one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn close(a: &Tensor, b: &Tensor) {
    assert_eq!(a.shape(), b.shape());
    for (x, y) in a.to_f64_vec().iter().zip(b.to_f64_vec()) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
}

#[test]
fn functional_multi_input_shared_and_nested() {
    let _serial = serial();
    random::set_seed(1);
    let a = Input::new(&[4]);
    let b = Input::new(&[4]);
    let shared = layer_ref(Dense::new(3).activation("tanh"));
    let ha = (&shared).apply(&a).unwrap();
    let hb = (&shared).apply(&b).unwrap();
    let inner = Model::sequential(Some("inner"));
    inner.add(Dense::new(2)).unwrap();
    let joined = Concatenate::new(-1)
        .call_many(&[ha.clone(), hb])
        .unwrap()
        .remove(0);
    assert_eq!(joined.shape(), &vec![None, Some(6)]);
    let y = inner.as_layer().apply(&joined).unwrap();
    let model = Model::new(&[a, b], &[y, ha]).unwrap();
    // The shared layer's weights are counted once: 4*3+3, inner 6*2+2.
    assert_eq!(model.count_params(), 15 + 14);
    let xa = random::normal(&[5, 4], 0.0, 1.0, DType::F32, None).unwrap();
    let xb = random::normal(&[5, 4], 0.0, 1.0, DType::F32, None).unwrap();
    let out = model.call(&[xa.clone(), xb.clone()], false).unwrap();
    assert_eq!(out[0].shape(), &[5, 2]);
    assert_eq!(out[1].shape(), &[5, 3]);
    // Same computation by hand through the shared layer.
    let manual = shared.forward1(&xa, false).unwrap();
    close(&manual, &out[1]);
    let s = model.summary();
    assert!(
        s.contains("Connected to") && s.contains("inner (Sequential)"),
        "{s}"
    );
    // The config rebuilds the same graph; with the weights copied, the same outputs.
    let cfg = layer_json(model.network().as_ref());
    ferroflow_keras::clear_session();
    let rebuilt = Model::from_network(std::sync::Arc::new(
        functional_from_config(&cfg["config"]).unwrap(),
    ));
    rebuilt.set_weights(&model.get_weights()).unwrap();
    let again = rebuilt.call(&[xa, xb], false).unwrap();
    close(&out[0], &again[0]);
    close(&out[1], &again[1]);
}

#[test]
fn model_errors_name_the_problem_and_change_nothing() {
    let _serial = serial();
    let m = Model::sequential(None);
    m.add(Input::new(&[8])).unwrap();
    m.add(Dense::new(4)).unwrap();
    // A layer that cannot take (None, 4) is refused and not added.
    let err = m
        .add(ferroflow_keras::layers::Conv2D::new(2, &[3]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("Conv2D") && err.contains("rank 4"), "{err}");
    assert_eq!(m.layers().len(), 1);
    // Wrong input shape at call time.
    let x = Tensor::zeros(&[2, 7], DType::F32).unwrap();
    let err = m.call(&[x], false).unwrap_err().to_string();
    assert!(err.contains("expects shape (None, 8), got (2, 7)"), "{err}");
    // set_weights with a wrong shape changes nothing.
    let before = m.get_weights();
    let mut bad = before.clone();
    bad[0] = Tensor::zeros(&[3, 3], DType::F32).unwrap();
    assert!(m.set_weights(&bad).is_err());
    for (a, b) in before.iter().zip(m.get_weights()) {
        close(a, &b);
    }
    // Unknown classes and options in configs are named.
    let err = ferroflow_keras::layers::registry::from_config("Frobnicate", &serde_json::json!({}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("Frobnicate"), "{err}");
    let err = ferroflow_keras::layers::registry::from_config(
        "Dense",
        &serde_json::json!({"units": 3, "foo": 1}),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("Dense") && err.contains("'foo'"), "{err}");
}

#[test]
fn sequential_macro_builds_a_model() {
    let _serial = serial();
    let m = ferroflow_keras::sequential![
        Input::new(&[3]),
        Dense::new(4).activation("relu"),
        Dense::new(1)
    ]
    .unwrap();
    assert_eq!(m.count_params(), 3 * 4 + 4 + 4 + 1);
    assert_eq!(
        m.predict(Tensor::zeros(&[2, 3], DType::F32).unwrap(), 8)
            .unwrap()[0]
            .shape(),
        &[2, 1]
    );
}

#[test]
fn sequential_takes_the_input_spec_from_its_input_layer() {
    let _serial = serial();
    for dt in [DType::F64, DType::I64, DType::U8] {
        let m = Model::sequential(None);
        m.add(Input::with(vec![Some(6), None], dt, None)).unwrap();
        let spec = &m.input_specs().unwrap()[0];
        assert_eq!(
            (spec.dtype, spec.shape.clone()),
            (dt, vec![None, Some(6), None])
        );
    }
}

#[test]
fn unique_names_like_keras() {
    let _serial = serial();
    ferroflow_keras::clear_session();
    let a = Dense::new(1);
    let b = Dense::new(1);
    let c = Dense::new(1).name("head");
    let d = Dense::new(1);
    assert_eq!(
        [
            a.base().name(),
            b.base().name(),
            c.base().name(),
            d.base().name()
        ],
        ["dense", "dense_1", "head", "dense_2"]
    );
    let e = Embedding::new(3, 2);
    let g = GlobalAveragePooling1D::new();
    assert_eq!(e.base().name(), "embedding");
    assert_eq!(g.base().name(), "global_average_pooling1d");
}

/// A subclass-style model: a residual MLP block written by hand.
struct Residual {
    base: LayerBase,
    inner: LayerRef,
    out: LayerRef,
}

impl Layer for Residual {
    fn class_name(&self) -> &'static str {
        "Residual"
    }
    fn base(&self) -> &LayerBase {
        &self.base
    }
    fn call(&self, inputs: &[Tensor], ctx: CallContext) -> Result<Vec<Tensor>> {
        let h = self.inner.forward(inputs, ctx.training)?.remove(0);
        let h = h.add(&inputs[0])?;
        self.out.forward(&[h], ctx.training)
    }
    fn config(&self) -> ferroflow_keras::config::Map {
        Default::default()
    }
    fn sublayers(&self) -> Vec<LayerRef> {
        vec![self.inner.clone(), self.out.clone()]
    }
}

#[test]
fn subclassed_model_trains() {
    let _serial = serial();
    random::set_seed(5);
    let net = Residual {
        base: LayerBase::new("Residual", None),
        inner: layer_ref(Dense::new(4).activation("relu")),
        out: layer_ref(Dense::new(1)),
    };
    let mut model = Model::from_layer(net);
    model
        .compile(
            ferroflow_keras::optimizers::Optimizer::adam(0.05),
            "mse",
            &["mae"],
        )
        .unwrap();
    let x = random::normal(&[64, 4], 0.0, 1.0, DType::F32, None).unwrap();
    let y = x.sum(-1, true).unwrap();
    let opts = ferroflow_keras::FitOptions::new()
        .epochs(30)
        .batch_size(16)
        .verbose(ferroflow_keras::training::progress::Verbosity::Silent);
    let h = model.fit(&x, &y, opts).unwrap();
    let losses = h.get("loss").unwrap();
    assert!(losses[losses.len() - 1] < 0.5 * losses[0], "{losses:?}");
    assert_eq!(model.trainable_variables().len(), 4);
    assert!(model.summary().contains("dense"));
}

/// Every line of a summary table has the same width, however long the names in it.
fn assert_rectangular(s: &str) {
    let table: Vec<&str> = s
        .lines()
        .filter(|l| l.starts_with(['┏', '┃', '┡', '│', '├', '└']))
        .collect();
    let width = table[0].chars().count();
    for l in &table {
        assert_eq!(l.chars().count(), width, "ragged line {l:?} in\n{s}");
        assert!(l.ends_with(['┓', '┃', '┩', '│', '┤', '┘']), "{l:?}");
    }
}

#[test]
fn summaries_stay_rectangular_with_long_names_nesting_and_several_inputs() {
    let _serial = serial();
    random::set_seed(3);
    let tokens = Input::with(
        vec![Some(12)],
        DType::I64,
        Some("a_rather_long_input_name_for_the_token_ids"),
    );
    let extra = Input::new(&[5]);
    let t = Embedding::new(100, 8).apply(&tokens).unwrap();
    let t = GlobalAveragePooling1D::new().apply(&t).unwrap();
    let inner = Model::sequential(Some(
        "nested_projection_block_with_a_name_longer_than_any_column",
    ));
    inner.add(Dense::new(4)).unwrap();
    let e = inner.as_layer().apply(&extra).unwrap();
    let joined = Concatenate::new(-1).call_many(&[t, e]).unwrap().remove(0);
    let y = Dense::new(1).apply(&joined).unwrap();
    let model = Model::named(&[tokens, extra], &[y], "long_names").unwrap();
    let s = model.summary();
    assert!(s.contains("global_average_pooling1d"), "{s}");
    assert!(s.contains("(GlobalAveragePooling1D)"), "{s}");
    assert_rectangular(&s);
    assert_rectangular(&inner.summary());
}

#[test]
fn an_unknown_activation_name_is_an_error_when_the_layer_is_built_not_a_panic() {
    let _serial = serial();
    let m = Model::sequential(None);
    m.add(Input::new(&[4])).unwrap();
    let e = m
        .add(Dense::new(3).activation("rleu"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("layer 'dense") && e.contains("unknown activation 'rleu'") && e.contains("relu"),
        "{e}"
    );
    assert_eq!(m.layers().len(), 0, "nothing was added");
    let x = Input::new(&[6, 6, 1]);
    let conv = ferroflow_keras::layers::Conv2D::new(2, &[3]).activation("nope");
    let e = conv.apply(&x).unwrap_err().to_string();
    assert!(e.contains("unknown activation 'nope'"), "{e}");
}
