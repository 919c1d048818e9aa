//! Merge layers: `Concatenate`, `Add`, `Subtract`, `Multiply`, `Average`, `Maximum`,
//! `Minimum`, `Dot`.

use crate::config::{ConfigReader, Map};
use crate::layer::{format_dims, CallContext, Dims, Layer, LayerBase, TensorSpec};
use ferroflow_core::{BinaryOp, DType, Error, Result, Tensor};
use serde_json::Value;

fn need_at_least(class: &'static str, name: &str, n: usize, min: usize) -> Result<()> {
    if n < min {
        return Err(Error::invalid(
            class,
            format!("layer '{name}' needs at least {min} inputs, got {n}"),
        ));
    }
    Ok(())
}

/// Broadcast of two static shapes (Keras allows equal shapes or 1s).
fn broadcast_dims(class: &'static str, name: &str, a: &Dims, b: &Dims) -> Result<Dims> {
    if a.len() != b.len() {
        return Err(Error::invalid(
            class,
            format!(
                "layer '{name}': inputs of different ranks {} and {}",
                format_dims(a),
                format_dims(b)
            ),
        ));
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| match (x, y) {
            (Some(1), d) | (d, Some(1)) => Ok(*d),
            (Some(p), Some(q)) if p == q => Ok(Some(*p)),
            (None, d) | (d, None) => Ok(*d),
            _ => Err(Error::invalid(
                class,
                format!(
                    "layer '{name}': inputs of incompatible shapes {} and {}",
                    format_dims(a),
                    format_dims(b)
                ),
            )),
        })
        .collect()
}

/// Keras's `Merge.compute_mask`: the elementwise OR of the inputs' masks when every input
/// has one, else none.
fn merge_mask(masks: &[Option<Tensor>]) -> Result<Option<Tensor>> {
    let mut out: Option<Tensor> = None;
    for m in masks {
        let Some(m) = m else { return Ok(None) };
        out = Some(match out {
            None => m.clone(),
            Some(o) => o.logical_or(m)?,
        });
    }
    Ok(out)
}

/// The elementwise merges share one implementation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Merge {
    Add,
    Subtract,
    Multiply,
    Average,
    Maximum,
    Minimum,
}

macro_rules! elementwise_merge {
    ($ty:ident, $class:literal, $kind:expr, $doc:literal) => {
        #[doc = $doc]
        pub struct $ty {
            base: LayerBase,
        }

        impl $ty {
            /// A merge layer.
            pub fn new() -> Self {
                $ty {
                    base: LayerBase::new($class, None),
                }
            }

            /// Rebuilds from a Keras config.
            pub fn from_config(config: &Value) -> Result<Self> {
                let r = ConfigReader::new($class, config)?;
                r.finish()?;
                Ok($ty {
                    base: LayerBase::from_reader($class, &r),
                })
            }
        }

        impl Default for $ty {
            fn default() -> Self {
                Self::new()
            }
        }

        super::layer_boilerplate!($ty, $class);

        impl Layer for $ty {
            super::layer_identity!($class);

            fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
                merge_call($class, self.base.name(), $kind, inputs)
            }

            fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
                merge_spec($class, self.base.name(), $kind, inputs)
            }

            fn supports_masking(&self) -> bool {
                true
            }

            fn compute_mask(
                &self,
                _inputs: &[Tensor],
                masks: &[Option<Tensor>],
            ) -> Result<Option<Tensor>> {
                merge_mask(masks)
            }

            fn call_masked(
                &self,
                inputs: &[Tensor],
                masks: &[Option<Tensor>],
                _ctx: CallContext,
            ) -> Result<Vec<Tensor>> {
                merge_call_masked($class, self.base.name(), $kind, inputs, masks)
            }

            fn number_of_inputs(&self) -> Option<usize> {
                if $kind == Merge::Subtract {
                    Some(2)
                } else {
                    None
                }
            }

            fn config(&self) -> Map {
                Map::new()
            }
        }
    };
}

elementwise_merge!(
    Add,
    "Add",
    Merge::Add,
    "Sums its inputs (`keras.layers.Add`)."
);
elementwise_merge!(
    Subtract,
    "Subtract",
    Merge::Subtract,
    "Subtracts the second input from the first (`keras.layers.Subtract`)."
);
elementwise_merge!(
    Multiply,
    "Multiply",
    Merge::Multiply,
    "Multiplies its inputs elementwise (`keras.layers.Multiply`)."
);
elementwise_merge!(
    Average,
    "Average",
    Merge::Average,
    "Averages its inputs (`keras.layers.Average`)."
);
elementwise_merge!(
    Maximum,
    "Maximum",
    Merge::Maximum,
    "Elementwise maximum of its inputs (`keras.layers.Maximum`)."
);
elementwise_merge!(
    Minimum,
    "Minimum",
    Merge::Minimum,
    "Elementwise minimum of its inputs (`keras.layers.Minimum`)."
);

fn merge_call(
    class: &'static str,
    name: &str,
    kind: Merge,
    inputs: &[Tensor],
) -> Result<Vec<Tensor>> {
    let min = if kind == Merge::Subtract { 2 } else { 1 };
    need_at_least(
        class,
        name,
        inputs.len(),
        min.max(if kind == Merge::Add { 1 } else { 2 }),
    )?;
    if kind == Merge::Subtract && inputs.len() != 2 {
        return Err(Error::invalid(
            class,
            format!(
                "layer '{name}' needs exactly 2 inputs, got {}",
                inputs.len()
            ),
        ));
    }
    let op = match kind {
        Merge::Add | Merge::Average => BinaryOp::Add,
        Merge::Subtract => BinaryOp::Sub,
        Merge::Multiply => BinaryOp::Mul,
        Merge::Maximum => BinaryOp::Maximum,
        Merge::Minimum => BinaryOp::Minimum,
    };
    let mut acc = inputs[0].clone();
    for x in &inputs[1..] {
        acc = acc.binary(op, x)?;
    }
    if kind == Merge::Average {
        acc = acc.mul_scalar(1.0 / inputs.len() as f64)?;
    }
    Ok(vec![acc])
}

/// [`merge_call`] with the inputs' step masks, as Keras 3 merges them: `Multiply` reads a
/// masked step of an input as 1 (and, when every input has a mask, writes 0 at the steps
/// that all inputs mask); `Maximum` and `Minimum` take a masked step from the inputs that
/// hold it; the sums and `Average` ignore masks.
fn merge_call_masked(
    class: &'static str,
    name: &str,
    kind: Merge,
    inputs: &[Tensor],
    masks: &[Option<Tensor>],
) -> Result<Vec<Tensor>> {
    if !matches!(kind, Merge::Multiply | Merge::Maximum | Merge::Minimum)
        || masks.iter().all(Option::is_none)
    {
        return merge_call(class, name, kind, inputs);
    }
    need_at_least(class, name, inputs.len(), 2)?;
    // Each mask over its input's last axis too.
    let expanded = inputs
        .iter()
        .enumerate()
        .map(|(i, _)| match masks.get(i).and_then(Option::as_ref) {
            Some(m) => m.expand_dims(-1).map(Some),
            None => Ok(None),
        })
        .collect::<Result<Vec<_>>>()?;
    let scalar = |v: f64| Tensor::full(&[], v, inputs[0].dtype());
    if kind == Merge::Multiply {
        let every = expanded.iter().all(Option::is_some);
        let (mut out, mut kept): (Option<Tensor>, Option<Tensor>) = (None, None);
        for (x, m) in inputs.iter().zip(&expanded) {
            let x = match m {
                Some(m) => {
                    if every {
                        kept = Some(match kept {
                            None => m.clone(),
                            Some(k) => k.logical_or(m)?,
                        });
                    }
                    Tensor::where_(m, x, &scalar(1.0)?)?
                }
                None => x.clone(),
            };
            out = Some(match out {
                None => x,
                Some(o) => o.mul(&x)?,
            });
        }
        let out = out.expect("at least two inputs");
        return Ok(vec![match kept {
            Some(k) => Tensor::where_(&k, &out, &scalar(0.0)?)?,
            None => out,
        }]);
    }
    let op = if kind == Merge::Maximum {
        BinaryOp::Maximum
    } else {
        BinaryOp::Minimum
    };
    let (mut out, mut kept) = (inputs[0].clone(), expanded[0].clone());
    for (x, m) in inputs[1..].iter().zip(&expanded[1..]) {
        let x = match m {
            Some(m) => Tensor::where_(m, x, &out)?,
            None => x.clone(),
        };
        if let Some(k) = &kept {
            out = Tensor::where_(k, &out, &x)?;
        }
        kept = match (kept, m) {
            (Some(k), Some(m)) => Some(k.logical_or(m)?),
            _ => None,
        };
        out = out.binary(op, &x)?;
    }
    Ok(vec![out])
}

fn merge_spec(
    class: &'static str,
    name: &str,
    kind: Merge,
    inputs: &[TensorSpec],
) -> Result<Vec<TensorSpec>> {
    need_at_least(
        class,
        name,
        inputs.len(),
        if kind == Merge::Add { 1 } else { 2 },
    )?;
    let mut shape = inputs[0].shape.clone();
    for s in &inputs[1..] {
        shape = broadcast_dims(class, name, &shape, &s.shape)?;
    }
    Ok(vec![TensorSpec::new(shape, inputs[0].dtype)])
}

/// Concatenates inputs along an axis (`keras.layers.Concatenate`).
pub struct Concatenate {
    base: LayerBase,
    axis: i64,
}

impl Concatenate {
    /// Concatenation along `axis` (Keras's default is -1).
    pub fn new(axis: i64) -> Self {
        Concatenate {
            base: LayerBase::new("Concatenate", None),
            axis,
        }
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("Concatenate", config)?;
        let mut l = Concatenate::new(r.i64_or("axis", -1)?);
        l.base = LayerBase::from_reader("Concatenate", &r);
        r.finish()?;
        Ok(l)
    }
}

impl Default for Concatenate {
    fn default() -> Self {
        Self::new(-1)
    }
}

super::layer_boilerplate!(Concatenate, "Concatenate");

impl Layer for Concatenate {
    super::layer_identity!("Concatenate");

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        need_at_least("Concatenate", self.base.name(), inputs.len(), 1)?;
        Tensor::concat(inputs, self.axis as isize).map(|t| vec![t])
    }

    fn number_of_inputs(&self) -> Option<usize> {
        None
    }

    fn supports_masking(&self) -> bool {
        true
    }

    /// Keras's rule: each input's mask (all true for an input without one, a step mask
    /// repeated over the input's last axis) concatenated as the inputs are, then reduced
    /// with `any` over the last axis. Along the last axis, an unmasked input therefore
    /// unmasks every step; along the steps, the step masks are joined.
    fn compute_mask(&self, inputs: &[Tensor], masks: &[Option<Tensor>]) -> Result<Option<Tensor>> {
        if masks.iter().all(Option::is_none) {
            return Ok(None);
        }
        let parts = inputs
            .iter()
            .enumerate()
            .map(|(i, x)| match masks.get(i).and_then(Option::as_ref) {
                None => Tensor::ones(x.shape(), DType::Bool),
                Some(m) if m.rank() < x.rank() => m.expand_dims(-1)?.broadcast_to(x.shape()),
                Some(m) => Ok(m.clone()),
            })
            .collect::<Result<Vec<_>>>()?;
        Tensor::concat(&parts, self.axis as isize)?
            .any(-1, false)
            .map(Some)
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        Ok(vec![concatenated_spec(
            self.base.name(),
            self.axis,
            inputs,
        )?])
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("axis".into(), Value::from(self.axis));
        m
    }
}

/// Dot product of two inputs along axes (`keras.layers.Dot`), optionally L2-normalised
/// (cosine proximity).
pub struct Dot {
    base: LayerBase,
    axes: (i64, i64),
    /// Whether the config writes `axes` as a pair (Keras keeps the form it was given).
    pair: bool,
    normalize: bool,
}

impl Dot {
    /// Contracts `axes.0` of the first input with `axes.1` of the second.
    pub fn new(axes: (i64, i64), normalize: bool) -> Self {
        Dot {
            base: LayerBase::new("Dot", None),
            axes,
            pair: axes.0 != axes.1,
            normalize,
        }
    }

    /// Rebuilds from a Keras config.
    pub fn from_config(config: &Value) -> Result<Self> {
        let r = ConfigReader::new("Dot", config)?;
        let axes = r
            .i64_list("axes")?
            .ok_or_else(|| Error::invalid("Dot", "option 'axes': missing"))?;
        let axes = match axes.as_slice() {
            [a] => (*a, *a),
            [a, b] => (*a, *b),
            _ => return Err(Error::invalid("Dot", "option 'axes': one or two ints")),
        };
        let pair = matches!(r.raw("axes"), Some(Value::Array(a)) if a.len() == 2);
        let mut l = Dot::new(axes, r.bool_or("normalize", false)?);
        l.pair = pair;
        l.base = LayerBase::from_reader("Dot", &r);
        r.finish()?;
        Ok(l)
    }

    fn axis(a: i64, rank: usize) -> usize {
        if a < 0 {
            (a + rank as i64).max(0) as usize
        } else {
            a as usize
        }
    }
}

super::layer_boilerplate!(Dot, "Dot");

impl Layer for Dot {
    super::layer_identity!("Dot");

    fn number_of_inputs(&self) -> Option<usize> {
        Some(2)
    }

    fn call(&self, inputs: &[Tensor], _ctx: CallContext) -> Result<Vec<Tensor>> {
        crate::layer::expect_inputs(self, inputs, 2)?;
        let (mut a, mut b) = (inputs[0].clone(), inputs[1].clone());
        let ax = Dot::axis(self.axes.0, a.rank());
        let bx = Dot::axis(self.axes.1, b.rank());
        if self.normalize {
            let l2 = |t: &Tensor, axis: usize| -> Result<Tensor> {
                let n = t
                    .square()?
                    .sum(axis as isize, true)?
                    .maximum(&t.scalar_like(1e-12)?)?;
                t.mul(&n.rsqrt()?)
            };
            a = l2(&a, ax)?;
            b = l2(&b, bx)?;
        }
        // Batched contraction: move the axis last in `a` and second-last in `b`, batch
        // dimension first, then one batched matmul.
        let move_last = |t: &Tensor, axis: usize| -> Result<Tensor> {
            let mut perm: Vec<usize> = (0..t.rank()).filter(|&i| i != axis).collect();
            perm.push(axis);
            t.transpose(&perm)
        };
        let a2 = move_last(&a, ax)?;
        let b2 = move_last(&b, bx)?;
        let n = a2.shape()[0];
        let (ka, kb) = (a2.shape()[a2.rank() - 1], b2.shape()[b2.rank() - 1]);
        if ka != kb {
            return Err(Error::invalid(
                "Dot",
                format!(
                    "layer '{}': contracted dims differ: {:?} axis {} vs {:?} axis {}",
                    self.base.name(),
                    a.shape(),
                    self.axes.0,
                    b.shape(),
                    self.axes.1
                ),
            ));
        }
        let ra: Vec<usize> = a2.shape()[1..a2.rank() - 1].to_vec();
        let rb: Vec<usize> = b2.shape()[1..b2.rank() - 1].to_vec();
        let ma: usize = ra.iter().product();
        let mb: usize = rb.iter().product();
        let a3 = a2.contiguous().reshape_to(&[n, ma, ka])?;
        let b3 = b2.contiguous().reshape_to(&[n, mb, kb])?;
        let y = a3.matmul_t(&b3, false, true)?;
        let mut shape = vec![n];
        shape.extend(ra);
        shape.extend(rb);
        if shape.len() == 1 {
            shape.push(1);
        }
        Ok(vec![y.reshape_to(&shape)?])
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        if !self.pair {
            m.insert("axes".into(), Value::from(self.axes.0));
        } else {
            m.insert("axes".into(), serde_json::json!([self.axes.0, self.axes.1]));
        }
        m.insert("normalize".into(), Value::from(self.normalize));
        m
    }
}

/// The spec of `inputs` concatenated along `axis` (Keras's checks: one rank, equal sizes
/// outside the axis where both are known), for the Concatenate layer `name` or the
/// operation of that name that a Keras mask computation writes.
pub(crate) fn concatenated_spec(
    name: &str,
    axis: i64,
    inputs: &[TensorSpec],
) -> Result<TensorSpec> {
    need_at_least("Concatenate", name, inputs.len(), 1)?;
    let rank = inputs[0].shape.len();
    let at = if axis < 0 { axis + rank as i64 } else { axis };
    if at < 0 || at as usize >= rank {
        return Err(Error::invalid(
            "Concatenate",
            format!(
                "layer '{}': axis {} out of range for rank {rank}",
                name, axis
            ),
        ));
    }
    let at = at as usize;
    let mut shape = inputs[0].shape.clone();
    for s in &inputs[1..] {
        let ok = s.shape.len() == rank
            && s.shape
                .iter()
                .zip(&shape)
                .enumerate()
                .all(|(i, (a, b))| i == at || a.is_none() || b.is_none() || a == b);
        if !ok {
            return Err(Error::invalid(
                "Concatenate",
                format!(
                    "layer '{}': shapes {} and {} differ outside axis {}",
                    name,
                    format_dims(&inputs[0].shape),
                    format_dims(&s.shape),
                    axis
                ),
            ));
        }
        shape[at] = match (shape[at], s.shape[at]) {
            (Some(a), Some(b)) => Some(a + b),
            _ => None,
        };
        for (i, d) in shape.iter_mut().enumerate() {
            if i != at && d.is_none() {
                *d = s.shape[i];
            }
        }
    }
    Ok(TensorSpec::new(shape, inputs[0].dtype))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferroflow_core::CmpOp;

    /// A `[rows.len(), steps]` bool mask from 0/1 rows.
    fn mask(rows: &[&[u8]]) -> Tensor {
        let steps = rows[0].len();
        let v: Vec<f32> = rows
            .iter()
            .flat_map(|r| r.iter().map(|&b| b as f32))
            .collect();
        Tensor::from_vec(v, &[rows.len(), steps])
            .unwrap()
            .compare(CmpOp::NotEqual, &Tensor::scalar(0.0f32))
            .unwrap()
    }

    fn bits(m: Option<Tensor>) -> Vec<u8> {
        let m = m.expect("a mask");
        assert_eq!(m.dtype(), DType::Bool);
        m.cast(DType::F32)
            .unwrap()
            .to_vec::<f32>()
            .unwrap()
            .iter()
            .map(|&v| v as u8)
            .collect()
    }

    #[test]
    fn merges_combine_masks_as_keras_does() {
        let x = |steps: usize| Tensor::zeros(&[2, steps, 4], DType::F32).unwrap();
        let (a, b) = (
            mask(&[&[1, 1, 0], &[1, 0, 0]]),
            mask(&[&[0, 1, 1], &[1, 0, 0]]),
        );
        // Elementwise merges: OR when every input has a mask, else none.
        let add = Add::new();
        let both = add.compute_mask(&[x(3), x(3)], &[Some(a.clone()), Some(b.clone())]);
        assert_eq!(bits(both.unwrap()), [1, 1, 1, 1, 0, 0]);
        let one = add.compute_mask(&[x(3), x(3)], &[Some(a.clone()), None]);
        assert!(one.unwrap().is_none());
        // Along the steps, the masks are joined.
        let steps = Concatenate::new(1);
        let c = mask(&[&[0, 1], &[1, 1]]);
        let joined = steps.compute_mask(&[x(3), x(2)], &[Some(a.clone()), Some(c)]);
        assert_eq!(bits(joined.unwrap()), [1, 1, 0, 0, 1, 1, 0, 0, 1, 1]);
        let half = steps.compute_mask(&[x(3), x(2)], &[Some(a.clone()), None]);
        assert_eq!(bits(half.unwrap()), [1, 1, 0, 1, 1, 1, 0, 0, 1, 1]);
        // Along the features, ORed; an input without a mask unmasks every step.
        let features = Concatenate::default();
        let ored = features.compute_mask(&[x(3), x(3)], &[Some(a.clone()), Some(b)]);
        assert_eq!(bits(ored.unwrap()), [1, 1, 1, 1, 0, 0]);
        let open = features.compute_mask(&[x(3), x(3)], &[Some(a), None]);
        assert_eq!(bits(open.unwrap()), [1; 6]);
        assert!(features
            .compute_mask(&[x(3), x(3)], &[None, None])
            .unwrap()
            .is_none());
    }
}
