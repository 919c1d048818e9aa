//! Shape-changing views: reshape, transpose, expand_dims, squeeze, broadcast_to.

use crate::autodiff::record::Recorder;
use crate::layout::Layout;
use crate::shape::{normalize_axes, normalize_axis, numel};
use crate::trace::OpKind;
use crate::{Error, Result, Tensor};

impl Tensor {
    /// Gives the elements a new shape (`tf.reshape`); one dimension may be `-1` (inferred).
    ///
    /// A view when the tensor is contiguous, a copy otherwise.
    pub fn reshape(&self, shape: &[isize]) -> Result<Tensor> {
        let n = self.numel();
        let mut out = Vec::with_capacity(shape.len());
        let mut infer = None;
        for (i, &d) in shape.iter().enumerate() {
            match d {
                -1 if infer.is_none() => {
                    infer = Some(i);
                    out.push(1);
                }
                d if d >= 0 => out.push(d as usize),
                _ => {
                    return Err(Error::invalid(
                        "reshape",
                        format!("invalid target shape {shape:?}"),
                    ))
                }
            }
        }
        let known = numel(&out);
        if let Some(i) = infer {
            if known == 0 || !n.is_multiple_of(known) {
                return Err(Error::invalid(
                    "reshape",
                    format!(
                        "cannot reshape {:?} ({n} elements) into {shape:?}",
                        self.shape()
                    ),
                ));
            }
            out[i] = n / known;
        }
        if numel(&out) != n {
            return Err(Error::invalid(
                "reshape",
                format!(
                    "cannot reshape {:?} ({n} elements) into {shape:?}",
                    self.shape()
                ),
            ));
        }
        self.reshape_to(&out)
    }

    /// [`Tensor::reshape`] with a fully known shape.
    pub fn reshape_to(&self, shape: &[usize]) -> Result<Tensor> {
        if numel(shape) != self.numel() {
            return Err(Error::shapes(
                "reshape",
                "element counts differ",
                self.shape(),
                shape,
            ));
        }
        let src = if self.is_contiguous() {
            self.clone()
        } else {
            self.contiguous()
        };
        let layout = Layout::new(
            shape.to_vec(),
            crate::shape::contiguous_strides(shape),
            src.layout().offset(),
        );
        Ok(reshaped(&src, src.with_layout(layout)))
    }

    /// Reorders dimensions (`tf.transpose(x, perm)`); a view.
    pub fn transpose(&self, perm: &[usize]) -> Result<Tensor> {
        let r = self.rank();
        let mut seen = vec![false; r];
        if perm.len() != r
            || perm
                .iter()
                .any(|&p| p >= r || std::mem::replace(&mut seen[p], true))
        {
            return Err(Error::invalid(
                "transpose",
                format!(
                    "{perm:?} is not a permutation of the {r} dimensions of {:?}",
                    self.shape()
                ),
            ));
        }
        let out = self.with_layout(self.layout().permute(perm));
        if let Some(r) = Recorder::new(&[self]) {
            let mut inverse = vec![0; perm.len()];
            for (i, &p) in perm.iter().enumerate() {
                inverse[p] = i;
            }
            r.finish(&out, move |g, _| Ok(vec![Some(g.transpose(&inverse)?)]));
        }
        let p = perm.to_vec();
        crate::trace::record(
            "transpose",
            OpKind::Transpose(p.clone()),
            || format!("perm={perm:?}"),
            &[self],
            &out,
            move |t| t[0].transpose(&p),
        );
        Ok(out)
    }

    /// Swaps the last two dimensions (matrix transpose of each batch item).
    pub fn t(&self) -> Result<Tensor> {
        let r = self.rank();
        if r < 2 {
            return Err(Error::invalid(
                "t",
                format!("needs rank >= 2, got {:?}", self.shape()),
            ));
        }
        let mut perm: Vec<usize> = (0..r).collect();
        perm.swap(r - 1, r - 2);
        self.transpose(&perm)
    }

    /// Inserts a dimension of size 1 at `axis` (`tf.expand_dims`; `-1` appends).
    pub fn expand_dims(&self, axis: isize) -> Result<Tensor> {
        let a = normalize_axis("expand_dims", axis, self.rank() + 1)?;
        let mut shape = self.shape().to_vec();
        let mut strides = self.layout().strides().to_vec();
        let stride = if a < strides.len() {
            strides[a] * shape[a]
        } else {
            1
        };
        shape.insert(a, 1);
        strides.insert(a, stride);
        Ok(reshaped(
            self,
            self.with_layout(Layout::new(shape, strides, self.layout().offset())),
        ))
    }

    /// Removes dimensions of size 1: all of them when `axes` is empty (`tf.squeeze`).
    pub fn squeeze(&self, axes: &[isize]) -> Result<Tensor> {
        let axes = normalize_axes("squeeze", axes, self.rank())?;
        for &a in &axes {
            if self.shape()[a] != 1 {
                return Err(Error::invalid(
                    "squeeze",
                    format!(
                        "cannot squeeze axis {a} of size {} in {:?}",
                        self.shape()[a],
                        self.shape()
                    ),
                ));
            }
        }
        let keep = |i: usize| {
            if axes.is_empty() {
                self.shape()[i] != 1
            } else {
                !axes.contains(&i)
            }
        };
        let (shape, strides) = (0..self.rank())
            .filter(|&i| keep(i))
            .map(|i| (self.shape()[i], self.layout().strides()[i]))
            .unzip();
        Ok(reshaped(
            self,
            self.with_layout(Layout::new(shape, strides, self.layout().offset())),
        ))
    }

    /// Broadcasts to `shape` (`tf.broadcast_to`); a view with zero strides.
    pub fn broadcast_to(&self, shape: &[usize]) -> Result<Tensor> {
        let out = self.with_layout(self.layout().broadcast_to("broadcast_to", shape)?);
        if let Some(r) = Recorder::new(&[self]) {
            let from = self.shape().to_vec();
            r.finish(&out, move |g, _| Ok(vec![Some(g.sum_to_shape(&from)?)]));
        }
        let to = shape.to_vec();
        crate::trace::record(
            "broadcast_to",
            OpKind::BroadcastTo,
            || format!("shape={shape:?}"),
            &[self],
            &out,
            move |t| t[0].broadcast_to(&to),
        );
        Ok(out)
    }

    /// Collapses all dimensions after the first (`keras.layers.Flatten`).
    pub fn flatten_from(&self, axis: usize) -> Result<Tensor> {
        if axis > self.rank() {
            return Err(Error::invalid(
                "flatten",
                format!("axis {axis} beyond rank of {:?}", self.shape()),
            ));
        }
        let mut shape = self.shape()[..axis].to_vec();
        shape.push(numel(&self.shape()[axis..]));
        self.reshape_to(&shape)
    }
}

/// Records `out`, a view of `src` with another shape but the same element order.
fn reshaped(src: &Tensor, out: Tensor) -> Tensor {
    let to = out.shape().to_vec();
    crate::trace::record(
        "reshape",
        OpKind::Reshape,
        || format!("shape={:?}", out.shape()),
        &[src],
        &out,
        move |t| t[0].reshape_to(&to),
    );
    if let Some(r) = Recorder::new(&[src]) {
        let from = src.shape().to_vec();
        r.finish(&out, move |g, _| Ok(vec![Some(g.reshape_to(&from)?)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_share_storage() {
        let x = Tensor::from_vec((0..6).map(|v| v as f32).collect(), &[2, 3]).unwrap();
        let t = x.transpose(&[1, 0]).unwrap();
        assert!(t.shares_storage_with(&x));
        assert_eq!(
            t.to_vec::<f32>().unwrap(),
            vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
        );
        let r = x.reshape(&[3, -1]).unwrap();
        assert!(r.shares_storage_with(&x));
        assert_eq!(r.shape(), &[3, 2]);
        let rt = t.reshape(&[6]).unwrap();
        assert_eq!(
            rt.to_vec::<f32>().unwrap(),
            vec![0.0, 3.0, 1.0, 4.0, 2.0, 5.0]
        );
        assert_eq!(x.expand_dims(1).unwrap().shape(), &[2, 1, 3]);
        assert_eq!(
            x.expand_dims(-1).unwrap().squeeze(&[]).unwrap().shape(),
            &[2, 3]
        );
        assert!(x.squeeze(&[0]).is_err());
        let b = Tensor::from_vec(vec![1i32, 2], &[2, 1])
            .unwrap()
            .broadcast_to(&[2, 3])
            .unwrap();
        assert_eq!(b.to_vec::<i32>().unwrap(), vec![1, 1, 1, 2, 2, 2]);
        assert!(x.reshape(&[4, -1]).is_err());
        assert!(x.transpose(&[0, 0]).is_err());
    }
}
