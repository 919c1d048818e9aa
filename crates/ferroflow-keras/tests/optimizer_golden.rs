//! Replays Keras 3 optimiser trajectories (tools/gen_optimizer_golden.py): 20 steps of every
//! optimiser, schedule and clipping option on a quadratic, a small MLP and an embedding
//! table with sparse gradients (Keras's default, non-lazy semantics) must match Keras
//! within 1e-5 relative, step by step (relative to the tensor's largest magnitude for values
//! far smaller than it).

mod common;

use common::tensor;
use ferroflow_core::{Axes, GradientTape, Result, Tensor, Variable};
use ferroflow_keras::optimizers::schedules::{
    CosineDecay, ExponentialDecay, PiecewiseConstantDecay,
};
use ferroflow_keras::optimizers::{
    Adagrad, Adam, Ftrl, LearningRate, Optimizer, OptimizerOptions, RMSprop, Sgd,
};
use serde_json::Value;
use std::collections::BTreeMap;

fn f(c: &Value, k: &str) -> Option<f64> {
    c.get(k).and_then(Value::as_f64)
}

fn build(c: &Value) -> Optimizer {
    let lr: LearningRate = match c.get("schedule") {
        None => f(c, "learning_rate").unwrap().into(),
        Some(s) => match s["kind"].as_str().unwrap() {
            "exponential" => ExponentialDecay {
                initial_learning_rate: f(s, "initial").unwrap(),
                decay_steps: f(s, "decay_steps").unwrap(),
                decay_rate: f(s, "rate").unwrap(),
                staircase: s["staircase"].as_bool().unwrap(),
            }
            .into(),
            "cosine" => CosineDecay {
                initial_learning_rate: f(s, "initial").unwrap(),
                decay_steps: f(s, "decay_steps").unwrap(),
                alpha: f(s, "alpha").unwrap(),
                warmup_target: f(s, "warmup_target"),
                warmup_steps: f(s, "warmup_steps").unwrap_or(0.0),
            }
            .into(),
            _ => PiecewiseConstantDecay::new(
                s["boundaries"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| b.as_u64().unwrap())
                    .collect(),
                s["values"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|b| b.as_f64().unwrap())
                    .collect(),
            )
            .unwrap()
            .into(),
        },
    };
    let mut o = OptimizerOptions::new(lr);
    o.clipnorm = f(c, "clipnorm");
    o.clipvalue = f(c, "clipvalue");
    o.global_clipnorm = f(c, "global_clipnorm");
    let rule: Box<dyn Fn(OptimizerOptions) -> Result<Optimizer>> = match c["kind"].as_str().unwrap()
    {
        "sgd" => {
            let r = Sgd {
                momentum: f(c, "momentum").unwrap_or(0.0),
                nesterov: c.get("nesterov").and_then(Value::as_bool).unwrap_or(false),
            };
            Box::new(move |o| Optimizer::new(r.clone(), o))
        }
        "adam" | "adamw" => {
            let r = Adam {
                amsgrad: c.get("amsgrad").and_then(Value::as_bool).unwrap_or(false),
                ..Adam::default()
            };
            Box::new(move |o| Optimizer::new(r.clone(), o))
        }
        "rmsprop" => {
            let r = RMSprop {
                momentum: f(c, "momentum").unwrap_or(0.0),
                centered: c.get("centered").and_then(Value::as_bool).unwrap_or(false),
                ..RMSprop::default()
            };
            Box::new(move |o| Optimizer::new(r.clone(), o))
        }
        "ftrl" => {
            let r = Ftrl {
                learning_rate_power: f(c, "learning_rate_power").unwrap_or(-0.5),
                initial_accumulator_value: f(c, "initial_accumulator_value").unwrap_or(0.1),
                l1: f(c, "l1").unwrap_or(0.0),
                l2: f(c, "l2").unwrap_or(0.0),
                l2_shrinkage: f(c, "l2_shrinkage").unwrap_or(0.0),
                beta: f(c, "beta").unwrap_or(0.0),
            };
            Box::new(move |o| Optimizer::new(r.clone(), o))
        }
        _ => Box::new(|o| Optimizer::new(Adagrad::default(), o)),
    };
    o.weight_decay = f(c, "weight_decay");
    rule(o).unwrap()
}

fn loss(
    problem: &str,
    k: &BTreeMap<String, Tensor>,
    v: &BTreeMap<String, Variable>,
    step: usize,
) -> Result<Tensor> {
    if problem == "embedding" {
        // A sparse gradient: this step's ids gather some rows of the table.
        let ids = k["ids"].shape().to_vec();
        let ids = k["ids"]
            .slice(&[step, 0, 0], &[1, -1, -1])?
            .reshape(&[ids[1] as isize, ids[2] as isize])?
            .cast(ferroflow_core::DType::I64)?;
        let e = v["table"]
            .value()
            .gather(&ids, 0)?
            .mean(Axes::from(1), false)?;
        return e
            .matmul(&k["u"])?
            .sub(&k["y"])?
            .square()?
            .mean(Axes::All, false);
    }
    if problem == "quadratic" {
        let a = k["a"]
            .mul(&v["w"].value().sub(&k["c"])?.square()?)?
            .sum(Axes::All, false)?;
        let b = k["e"]
            .mul(&v["b"].value().sub(&k["d"])?.square()?)?
            .sum(Axes::All, false)?;
        return a.add(&b);
    }
    let h = k["x"]
        .matmul(&v["w1"].value())?
        .add(&v["b1"].value())?
        .tanh()?;
    let out = h.matmul(&v["w2"].value())?.add(&v["b2"].value())?;
    out.sub(&k["y"])?.square()?.mean(Axes::All, false)
}

/// 1e-5 relative to the value, or to the tensor's largest magnitude for values much
/// smaller than their neighbours (f32 rounding there is relative to the tensor's scale).
fn close(got: f64, want: f64, scale: f64) -> bool {
    (got - want).abs() <= 1e-5 * want.abs().max(scale) + 1e-7
}

#[test]
fn trajectories_match_keras() {
    let root: Value = serde_json::from_str(include_str!("fixtures/optimizer_golden.json")).unwrap();
    let runs = root["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3 * root["configs"].as_object().unwrap().len());
    let mut failures = Vec::new();
    for run in runs {
        let (pname, cname) = (
            run["problem"].as_str().unwrap(),
            run["config"].as_str().unwrap(),
        );
        let p = &root["problems"][pname];
        let consts: BTreeMap<String, Tensor> = p["consts"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), tensor(v)))
            .collect();
        let vars: BTreeMap<String, Variable> = p["init"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), Variable::with_options(tensor(v), k, true)))
            .collect();
        let list: Vec<Variable> = vars.values().cloned().collect();
        let mut opt = build(&root["configs"][cname]);
        'steps: for (step, (want_loss, want_vals)) in run["losses"]
            .as_array()
            .unwrap()
            .iter()
            .zip(run["values"].as_array().unwrap())
            .enumerate()
        {
            let tape = GradientTape::new();
            let l = loss(pname, &consts, &vars, step).unwrap();
            let grads = tape.gradient(&l, &list).unwrap();
            opt.apply_gradients(&grads, &list).unwrap();
            let got_loss = l.to_f64_vec()[0];
            if !close(got_loss, want_loss.as_f64().unwrap(), 0.0) {
                failures.push(format!(
                    "{pname}/{cname} step {step}: loss {got_loss} want {want_loss}"
                ));
                break;
            }
            for (name, var) in &vars {
                let want: Vec<f64> = want_vals[name]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| x.as_f64().unwrap())
                    .collect();
                let got = var.read_untracked().to_f64_vec();
                let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
                if let Some(i) = (0..want.len()).find(|&i| !close(got[i], want[i], scale)) {
                    failures.push(format!(
                        "{pname}/{cname} step {step} {name}[{i}]: {} want {}",
                        got[i], want[i]
                    ));
                    break 'steps;
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
