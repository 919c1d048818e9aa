//! Losses with Keras 3 names, defaults and the `sum_over_batch_size` reduction.

use crate::activations::{logits_of, Squash};
use ferroflow_core::{DType, Error, Result, Tensor};
use serde_json::{json, Value};
use std::sync::Arc;

/// Keras's fuzz factor `backend.epsilon()`.
pub const EPSILON: f64 = 1e-7;

/// How per-sample losses become one number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduction {
    /// Sum divided by the number of values (Keras's default).
    SumOverBatchSize,
    /// Plain sum.
    Sum,
    /// No reduction (the per-sample vector).
    None,
}

/// A Keras loss: per-sample values from `(y_true, y_pred)`, then a reduction.
pub trait Loss: Send + Sync {
    /// The Keras function name (`"sparse_categorical_crossentropy"`).
    fn name(&self) -> &'static str;
    /// The Keras class name (`"SparseCategoricalCrossentropy"`).
    fn class_name(&self) -> &'static str;
    /// The per-sample loss, shape `[batch]` (or the batch shape).
    fn per_sample(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor>;
    /// Keras's config dict of the loss.
    fn config(&self) -> Value;
    /// The reduction.
    fn reduction(&self) -> Reduction {
        Reduction::SumOverBatchSize
    }

    /// The reduced loss with optional per-sample weights.
    fn compute(
        &self,
        y_true: &Tensor,
        y_pred: &Tensor,
        sample_weight: Option<&Tensor>,
    ) -> Result<Tensor> {
        let v = self.per_sample(y_true, y_pred)?;
        let v = match sample_weight {
            Some(w) => {
                let w = w.cast(v.dtype())?;
                let w = if w.rank() < v.rank() {
                    let mut shape = w.shape().to_vec();
                    shape.resize(v.rank(), 1);
                    w.reshape_to(&shape)?
                } else {
                    w
                };
                v.mul(&w)?
            }
            None => v,
        };
        match self.reduction() {
            Reduction::None => Ok(v),
            Reduction::Sum => v.sum(ferroflow_core::Axes::All, false),
            Reduction::SumOverBatchSize => v.mean(ferroflow_core::Axes::All, false),
        }
    }
}

fn float(t: &Tensor) -> Result<Tensor> {
    if t.dtype() == DType::F32 {
        Ok(t.clone())
    } else {
        t.cast(DType::F32)
    }
}

/// `y_true` reshaped like `y_pred` when they differ only by a trailing 1 (Keras squeezes).
fn align(name: &'static str, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
    let yt = float(y_true)?;
    if yt.shape() == y_pred.shape() {
        return Ok(yt);
    }
    if yt.numel() == y_pred.numel() {
        return yt.reshape_to(y_pred.shape());
    }
    Err(Error::shapes(
        name,
        "y_true and y_pred shapes differ",
        y_true.shape(),
        y_pred.shape(),
    ))
}

/// Log-probabilities from probabilities (renormalised and clipped like Keras) or logits;
/// the output of a softmax activation is traced back to its logits, as Keras does.
fn log_probs(y_pred: &Tensor, from_logits: bool) -> Result<Tensor> {
    if from_logits {
        y_pred.log_softmax(-1)
    } else if let Some(z) = logits_of(y_pred, Squash::Softmax) {
        z.log_softmax(-1)
    } else {
        let p = y_pred.div(&y_pred.sum(-1, true)?)?;
        p.clip_scalar(EPSILON, 1.0 - EPSILON)?.log()
    }
}

macro_rules! loss_meta {
    ($name:literal, $class:literal) => {
        fn name(&self) -> &'static str {
            $name
        }
        fn class_name(&self) -> &'static str {
            $class
        }
    };
}

/// Cross-entropy with integer labels (`SparseCategoricalCrossentropy`).
#[derive(Clone, Debug, Default)]
pub struct SparseCategoricalCrossentropy {
    /// Whether `y_pred` holds logits rather than probabilities.
    pub from_logits: bool,
}

impl Loss for SparseCategoricalCrossentropy {
    loss_meta!(
        "sparse_categorical_crossentropy",
        "SparseCategoricalCrossentropy"
    );

    fn per_sample(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
        let classes = *y_pred.shape().last().unwrap_or(&0);
        let batch: usize = y_pred.shape()[..y_pred.rank().saturating_sub(1)]
            .iter()
            .product();
        if y_true.numel() != batch {
            return Err(Error::shapes(
                "sparse_categorical_crossentropy",
                "need one integer label per prediction row",
                y_true.shape(),
                y_pred.shape(),
            ));
        }
        let labels = y_true.cast(DType::I64)?.reshape_to(&[batch])?;
        if let Some(bad) = labels
            .to_vec::<i64>()?
            .into_iter()
            .find(|&l| l < 0 || l as usize >= classes)
        {
            return Err(Error::invalid(
                "sparse_categorical_crossentropy",
                format!("label {bad} out of range for {classes} classes"),
            ));
        }
        let lp = if self.from_logits {
            y_pred.log_softmax(-1)?
        } else if let Some(z) = logits_of(y_pred, Squash::Softmax) {
            z.log_softmax(-1)?
        } else {
            // Keras (TF backend): log of clipped probabilities, then softmax cross-entropy.
            y_pred
                .clip_scalar(EPSILON, 1.0 - EPSILON)?
                .log()?
                .log_softmax(-1)?
        };
        let lp = lp.reshape_to(&[batch, classes])?;
        let picked = lp.take_along_axis(&labels.reshape_to(&[batch, 1])?, 1)?;
        let shape = &y_pred.shape()[..y_pred.rank() - 1];
        picked.neg()?.reshape_to(shape)
    }

    fn config(&self) -> Value {
        json!({"name": self.name(), "reduction": "sum_over_batch_size", "from_logits": self.from_logits, "ignore_class": null})
    }
}

/// Cross-entropy with one-hot labels (`CategoricalCrossentropy`).
#[derive(Clone, Debug, Default)]
pub struct CategoricalCrossentropy {
    /// Whether `y_pred` holds logits.
    pub from_logits: bool,
    /// Label smoothing in `[0, 1]`.
    pub label_smoothing: f64,
}

impl Loss for CategoricalCrossentropy {
    loss_meta!("categorical_crossentropy", "CategoricalCrossentropy");

    fn per_sample(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
        let y = align("categorical_crossentropy", y_true, y_pred)?;
        let c = *y_pred.shape().last().unwrap_or(&1) as f64;
        let y = if self.label_smoothing > 0.0 {
            y.mul_scalar(1.0 - self.label_smoothing)?
                .add_scalar(self.label_smoothing / c)?
        } else {
            y
        };
        y.mul(&log_probs(y_pred, self.from_logits)?)?
            .sum(-1, false)?
            .neg()
    }

    fn config(&self) -> Value {
        json!({"name": self.name(), "reduction": "sum_over_batch_size", "from_logits": self.from_logits, "label_smoothing": self.label_smoothing, "axis": -1})
    }
}

/// Binary cross-entropy, averaged over the last axis (`BinaryCrossentropy`).
#[derive(Clone, Debug, Default)]
pub struct BinaryCrossentropy {
    /// Whether `y_pred` holds logits.
    pub from_logits: bool,
    /// Label smoothing: labels move towards 0.5.
    pub label_smoothing: f64,
}

impl Loss for BinaryCrossentropy {
    loss_meta!("binary_crossentropy", "BinaryCrossentropy");

    fn per_sample(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
        let y = align("binary_crossentropy", y_true, y_pred)?;
        let y = if self.label_smoothing > 0.0 {
            y.mul_scalar(1.0 - self.label_smoothing)?
                .add_scalar(0.5 * self.label_smoothing)?
        } else {
            y
        };
        let logits = if self.from_logits {
            Some(y_pred.clone())
        } else {
            logits_of(y_pred, Squash::Sigmoid)
        };
        let per = if let Some(x) = &logits {
            // max(x, 0) - x*y + log(1 + exp(-|x|))
            x.relu()?
                .sub(&x.mul(&y)?)?
                .add(&x.abs()?.neg()?.exp()?.log1p()?)?
        } else {
            let p = y_pred.clip_scalar(EPSILON, 1.0 - EPSILON)?;
            let one_minus = |t: &Tensor| t.neg()?.add_scalar(1.0);
            y.mul(&p.log()?)?
                .add(&one_minus(&y)?.mul(&one_minus(&p)?.log()?)?)?
                .neg()?
        };
        if per.rank() == 0 {
            return Ok(per);
        }
        per.mean(-1, false)
    }

    fn config(&self) -> Value {
        json!({"name": self.name(), "reduction": "sum_over_batch_size", "from_logits": self.from_logits, "label_smoothing": self.label_smoothing, "axis": -1})
    }
}

macro_rules! simple_loss {
    ($ty:ident, $name:literal, $class:literal, $doc:literal, |$y:ident, $p:ident| $body:expr) => {
        #[doc = $doc]
        #[derive(Clone, Debug, Default)]
        pub struct $ty;

        impl Loss for $ty {
            loss_meta!($name, $class);

            fn per_sample(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
                let $y = align($name, y_true, y_pred)?;
                let $p = y_pred;
                let per: Tensor = $body;
                if per.rank() == 0 {
                    return Ok(per);
                }
                per.mean(-1, false)
            }

            fn config(&self) -> Value {
                json!({"name": self.name(), "reduction": "sum_over_batch_size"})
            }
        }
    };
}

simple_loss!(
    MeanSquaredError,
    "mean_squared_error",
    "MeanSquaredError",
    "Mean of squared errors over the last axis.",
    |y, p| y.squared_difference(p)?
);
simple_loss!(
    MeanAbsoluteError,
    "mean_absolute_error",
    "MeanAbsoluteError",
    "Mean of absolute errors over the last axis.",
    |y, p| y.sub(p)?.abs()?
);
simple_loss!(
    Hinge,
    "hinge",
    "Hinge",
    "`mean(max(1 - y·p, 0))` with labels in {0, 1} mapped to {-1, 1}.",
    |y, p| {
        let s = y.mul_scalar(2.0)?.add_scalar(-1.0)?;
        s.mul(p)?.neg()?.add_scalar(1.0)?.relu()?
    }
);

/// Kullback-Leibler divergence `sum(y · log(y / p))` over the last axis (`KLDivergence`).
#[derive(Clone, Debug, Default)]
pub struct KLDivergence;

impl Loss for KLDivergence {
    loss_meta!("kl_divergence", "KLDivergence");

    fn per_sample(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
        let y = align("kl_divergence", y_true, y_pred)?.clip_scalar(EPSILON, 1.0)?;
        let p = y_pred.clip_scalar(EPSILON, 1.0)?;
        y.mul(&y.div(&p)?.log()?)?.sum(-1, false)
    }

    fn config(&self) -> Value {
        json!({"name": self.name(), "reduction": "sum_over_batch_size"})
    }
}

/// Huber loss with threshold `delta` (Keras default 1.0).
#[derive(Clone, Debug)]
pub struct Huber {
    /// Where the loss turns from quadratic to linear.
    pub delta: f64,
}

impl Default for Huber {
    fn default() -> Self {
        Huber { delta: 1.0 }
    }
}

impl Loss for Huber {
    loss_meta!("huber_loss", "Huber");

    fn per_sample(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
        let y = align("huber_loss", y_true, y_pred)?;
        let err = y_pred.sub(&y)?.abs()?;
        let quad = err.clip_scalar(0.0, self.delta)?;
        let lin = err.sub(&quad)?;
        quad.square()?
            .mul_scalar(0.5)?
            .add(&lin.mul_scalar(self.delta)?)?
            .mean(-1, false)
    }

    fn config(&self) -> Value {
        json!({"name": self.name(), "reduction": "sum_over_batch_size", "delta": self.delta})
    }
}

/// Negative cosine similarity along the last axis (`CosineSimilarity`).
#[derive(Clone, Debug, Default)]
pub struct CosineSimilarity;

impl Loss for CosineSimilarity {
    loss_meta!("cosine_similarity", "CosineSimilarity");

    fn per_sample(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
        let y = align("cosine_similarity", y_true, y_pred)?;
        let l2 = |t: &Tensor| -> Result<Tensor> {
            let n = t
                .square()?
                .sum(-1, true)?
                .maximum(&Tensor::scalar(1e-12f32))?;
            t.mul(&n.rsqrt()?)
        };
        l2(&y)?.mul(&l2(y_pred)?)?.sum(-1, false)?.neg()
    }

    fn config(&self) -> Value {
        json!({"name": self.name(), "reduction": "sum_over_batch_size", "axis": -1})
    }
}

/// A loss with another reduction (`reduction="sum"` or `"none"` in Keras).
pub struct WithReduction {
    inner: Arc<dyn Loss>,
    reduction: Reduction,
}

impl WithReduction {
    /// `inner` reduced with `reduction`.
    pub fn new(inner: Arc<dyn Loss>, reduction: Reduction) -> Self {
        WithReduction { inner, reduction }
    }
}

impl Loss for WithReduction {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn class_name(&self) -> &'static str {
        self.inner.class_name()
    }

    fn per_sample(&self, y_true: &Tensor, y_pred: &Tensor) -> Result<Tensor> {
        self.inner.per_sample(y_true, y_pred)
    }

    fn config(&self) -> Value {
        let mut c = self.inner.config();
        let name = match self.reduction {
            Reduction::SumOverBatchSize => "sum_over_batch_size",
            Reduction::Sum => "sum",
            Reduction::None => "none",
        };
        c["reduction"] = Value::from(name);
        c
    }

    fn reduction(&self) -> Reduction {
        self.reduction
    }
}

/// The loss for a Keras name (`"mse"`, `"sparse_categorical_crossentropy"`...) or class name.
pub fn get(name: &str) -> Result<Arc<dyn Loss>> {
    Ok(match name {
        "sparse_categorical_crossentropy" | "SparseCategoricalCrossentropy" => {
            Arc::new(SparseCategoricalCrossentropy::default())
        }
        "categorical_crossentropy" | "CategoricalCrossentropy" => {
            Arc::new(CategoricalCrossentropy::default())
        }
        "binary_crossentropy" | "BinaryCrossentropy" => Arc::new(BinaryCrossentropy::default()),
        "mse" | "mean_squared_error" | "MeanSquaredError" => Arc::new(MeanSquaredError),
        "mae" | "mean_absolute_error" | "MeanAbsoluteError" => Arc::new(MeanAbsoluteError),
        "huber" | "huber_loss" | "Huber" => Arc::new(Huber::default()),
        "kld" | "kl_divergence" | "KLDivergence" => Arc::new(KLDivergence),
        "cosine_similarity" | "CosineSimilarity" => Arc::new(CosineSimilarity),
        "hinge" | "Hinge" => Arc::new(Hinge),
        other => {
            return Err(Error::invalid(
                "losses::get",
                format!("unknown loss '{other}'"),
            ));
        }
    })
}

/// Rebuilds a loss from Keras's serialised form (a name or `{"class_name", "config"}`).
pub fn from_json(v: &Value) -> Result<Arc<dyn Loss>> {
    match v {
        Value::String(s) => get(s),
        Value::Object(o) => {
            let class = o.get("class_name").and_then(Value::as_str).unwrap_or("");
            let cfg = o.get("config").cloned().unwrap_or(json!({}));
            let reduction = match cfg.get("reduction").and_then(Value::as_str) {
                None | Some("sum_over_batch_size") | Some("auto") | Some("mean") => None,
                Some("sum") => Some(Reduction::Sum),
                Some("none") => Some(Reduction::None),
                Some(other) => {
                    return Err(Error::invalid(
                        "losses::deserialize",
                        format!("{class}: unsupported reduction '{other}'"),
                    ))
                }
            };
            let b = |k: &str| cfg.get(k).and_then(Value::as_bool).unwrap_or(false);
            let f = |k: &str, d: f64| cfg.get(k).and_then(Value::as_f64).unwrap_or(d);
            let loss: Arc<dyn Loss> = match class {
                "SparseCategoricalCrossentropy" => Arc::new(SparseCategoricalCrossentropy {
                    from_logits: b("from_logits"),
                }),
                "CategoricalCrossentropy" => Arc::new(CategoricalCrossentropy {
                    from_logits: b("from_logits"),
                    label_smoothing: f("label_smoothing", 0.0),
                }),
                "BinaryCrossentropy" => Arc::new(BinaryCrossentropy {
                    from_logits: b("from_logits"),
                    label_smoothing: f("label_smoothing", 0.0),
                }),
                "Huber" => Arc::new(Huber {
                    delta: f("delta", 1.0),
                }),
                other => get(other)?,
            };
            Ok(match reduction {
                Some(r) => Arc::new(WithReduction::new(loss, r)),
                None => loss,
            })
        }
        other => Err(Error::invalid(
            "losses::deserialize",
            format!("cannot read a loss from {other}"),
        )),
    }
}

/// Keras's serialised form of a loss.
pub fn to_json(loss: &dyn Loss) -> Value {
    json!({"module": "keras.losses", "class_name": loss.class_name(), "config": loss.config(), "registered_name": null})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activations::Activation;

    #[test]
    fn softmax_outputs_use_their_logits() {
        // A confidently wrong prediction: probabilities clip at 1e-7 (loss 16.1), logits
        // give the true 60 and a gradient, as Keras computes it.
        let z = Tensor::from_vec(vec![30f32, -30.0], &[1, 2]).unwrap();
        let p = Activation::Softmax.apply(&z).unwrap();
        let y = Tensor::from_vec(vec![1i64], &[1]).unwrap();
        let l = SparseCategoricalCrossentropy::default()
            .compute(&y, &p, None)
            .unwrap();
        assert!((l.to_f64_vec()[0] - 60.0).abs() < 1e-3);
        // A probability tensor that did not come from a softmax activation is clipped.
        let q = Tensor::from_vec(vec![1f32, 0.0], &[1, 2]).unwrap();
        let l = SparseCategoricalCrossentropy::default()
            .compute(&y, &q, None)
            .unwrap();
        assert!((l.to_f64_vec()[0] - 16.118).abs() < 1e-2);
        let s = Activation::Sigmoid
            .apply(&Tensor::from_vec(vec![-40f32], &[1, 1]).unwrap())
            .unwrap();
        let one = Tensor::from_vec(vec![1f32], &[1, 1]).unwrap();
        let l = BinaryCrossentropy::default()
            .compute(&one, &s, None)
            .unwrap();
        assert!((l.to_f64_vec()[0] - 40.0).abs() < 1e-3);
    }
}
