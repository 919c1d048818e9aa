//! Finite-difference gradient checks of every layer in the Keras fixture set, with respect
//! to its float inputs and its trainable weights (through the tape, as `fit` uses them).

mod common;

use common::{fixture, tensor};
use ferroflow_core::autodiff::pause_recording;
use ferroflow_core::{random, DType, GradientTape, Tensor, Variable};
use ferroflow_keras::layers::registry;
use ferroflow_keras::{LayerExt, TensorSpec};

/// sum(layer(inputs) · probe): a scalar whose gradient covers every output element.
fn objective(layer: &dyn ferroflow_keras::Layer, inputs: &[Tensor], probes: &[Tensor]) -> Tensor {
    let out = layer.forward(inputs, false).unwrap();
    let mut total = Tensor::scalar(0f32);
    for (o, p) in out.iter().zip(probes) {
        total = total
            .add(
                &o.mul(p)
                    .unwrap()
                    .sum(ferroflow_core::Axes::All, false)
                    .unwrap(),
            )
            .unwrap();
    }
    total
}

fn value(layer: &dyn ferroflow_keras::Layer, inputs: &[Tensor], probes: &[Tensor]) -> f64 {
    let _p = pause_recording();
    objective(layer, inputs, probes).to_f64_vec()[0]
}

/// Central difference at `i` of tensor `t`, perturbed through `set`.
fn fd(t: &Tensor, i: usize, eps: f64, mut eval: impl FnMut(&Tensor) -> f64) -> f64 {
    let mut v = t.to_vec::<f32>().unwrap();
    let orig = v[i];
    v[i] = orig + eps as f32;
    let up = eval(&Tensor::from_vec(v.clone(), t.shape()).unwrap());
    v[i] = orig - eps as f32;
    let down = eval(&Tensor::from_vec(v, t.shape()).unwrap());
    (up - down) / (2.0 * eps)
}

fn tol(a: f64, b: f64) -> f64 {
    2e-2 * a.abs().max(b.abs()) + 2e-3
}

/// Compares the tape's value with central differences at two step sizes; where the two
/// differences disagree the point sits on a kink (ReLU, max-pool tie) and is skipped.
fn check(what: &str, analytic: f64, mut numeric: impl FnMut(f64) -> f64) -> bool {
    let (coarse, fine) = (numeric(1e-2), numeric(2.5e-3));
    if (coarse - fine).abs() > tol(coarse, fine) {
        return false;
    }
    assert!(
        (analytic - coarse).abs() <= tol(analytic, coarse),
        "{what}: tape {analytic}, finite difference {coarse}"
    );
    true
}

#[test]
fn layer_gradients_match_finite_differences() {
    let fx = fixture("keras_layers.json");
    random::set_seed(3);
    let mut checked = 0;
    for c in fx["cases"].as_array().unwrap() {
        let name = c["name"].as_str().unwrap();
        let layer = registry::from_config(c["class_name"].as_str().unwrap(), &c["config"]).unwrap();
        let inputs: Vec<Tensor> = c["inputs"].as_array().unwrap().iter().map(tensor).collect();
        let specs: Vec<_> = inputs.iter().map(TensorSpec::of_batch).collect();
        layer.ensure_built(&specs).unwrap();
        {
            let _p = pause_recording();
            for w in layer.weights() {
                if let Some(src) = c["weights"].as_array().unwrap().iter().find(|s| {
                    w.variable
                        .name()
                        .ends_with(&format!("/{}", s["name"].as_str().unwrap()))
                }) {
                    w.variable
                        .assign(&tensor(&src["value"]).cast(w.variable.dtype()).unwrap())
                        .unwrap();
                }
            }
        }
        let outs = layer.forward(&inputs, false).unwrap();
        let probes: Vec<Tensor> = outs
            .iter()
            .map(|o| random::normal(o.shape(), 0.0, 1.0, DType::F32, None).unwrap())
            .collect();
        // Max pooling and ReLU-like kinks make finite differences unreliable right at ties;
        // inputs are continuous random values so ties do not occur.
        let float_inputs: Vec<usize> = (0..inputs.len())
            .filter(|&i| inputs[i].dtype() == DType::F32)
            .collect();
        let vars: Vec<Variable> = layer.trainable_variables();
        let tape = GradientTape::persistent();
        for &i in &float_inputs {
            tape.watch(&inputs[i]);
        }
        let target = objective(layer.as_ref(), &inputs, &probes);
        let gx = tape
            .gradient(
                &target,
                &float_inputs
                    .iter()
                    .map(|&i| inputs[i].clone())
                    .collect::<Vec<_>>(),
            )
            .unwrap();
        let gw = tape.gradient(&target, &vars).unwrap();
        drop(tape);
        for (k, &i) in float_inputs.iter().enumerate() {
            let g = gx[k]
                .as_ref()
                .unwrap_or_else(|| panic!("{name}: no gradient for input {i}"))
                .to_dense()
                .unwrap()
                .to_f64_vec();
            let n = inputs[i].numel();
            for e in (0..n).step_by((n / 6).max(1)) {
                let ok = check(&format!("{name}: d/dinput{i}[{e}]"), g[e], |eps| {
                    fd(&inputs[i], e, eps, |t| {
                        let mut xs = inputs.clone();
                        xs[i] = t.clone();
                        value(layer.as_ref(), &xs, &probes)
                    })
                });
                checked += ok as usize;
            }
        }
        for (v, g) in vars.iter().zip(&gw) {
            let g = g
                .as_ref()
                .unwrap_or_else(|| panic!("{name}: no gradient for {}", v.name()))
                .to_dense()
                .unwrap()
                .to_f64_vec();
            let orig = v.read_untracked();
            let n = orig.numel();
            for e in (0..n).step_by((n / 6).max(1)) {
                let ok = check(&format!("{name}: d/d{}[{e}]", v.name()), g[e], |eps| {
                    let r = fd(&orig, e, eps, |t| {
                        v.assign(t).unwrap();
                        value(layer.as_ref(), &inputs, &probes)
                    });
                    v.assign(&orig).unwrap();
                    r
                });
                checked += ok as usize;
            }
        }
    }
    assert!(checked > 300, "only {checked} gradient entries checked");
}
