//! Joining and splitting along an axis: concat, stack, split, unstack.

use crate::autodiff::record::Recorder;
use crate::dispatch::with_stored;
use crate::shape::{normalize_axis, numel};
use crate::{Error, Result, Tensor};

impl Tensor {
    /// Joins tensors along an existing `axis` (`tf.concat`); other dimensions must agree.
    pub fn concat(tensors: &[Tensor], axis: isize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::invalid("concat", "needs at least one tensor"))?;
        let a = normalize_axis("concat", axis, first.rank())?;
        for t in tensors {
            if t.dtype() != first.dtype() {
                return Err(Error::DTypeMismatch {
                    op: "concat",
                    lhs: first.dtype(),
                    rhs: t.dtype(),
                });
            }
            let same = t.rank() == first.rank()
                && t.shape()
                    .iter()
                    .zip(first.shape())
                    .enumerate()
                    .all(|(i, (x, y))| i == a || x == y);
            if !same {
                return Err(Error::shapes(
                    "concat",
                    "shapes differ outside the concat axis",
                    first.shape(),
                    t.shape(),
                ));
            }
        }
        let mut shape = first.shape().to_vec();
        shape[a] = tensors.iter().map(|t| t.shape()[a]).sum();
        let outer = numel(&shape[..a]);
        let inner = numel(&shape[a + 1..]);
        let out = with_stored!(first.dtype(), T => {
            let parts: Vec<_> = tensors.iter().map(|t| t.contiguous_data::<T>()).collect::<Result<_>>()?;
            let mut out: Vec<T> = crate::alloc::with_capacity(numel(&shape));
            for o in 0..outer {
                for (p, t) in parts.iter().zip(tensors) {
                    let block = t.shape()[a] * inner;
                    out.extend_from_slice(&p[o * block..(o + 1) * block]);
                }
            }
            Tensor::from_vec(out, &shape)
        })?;
        let refs: Vec<&Tensor> = tensors.iter().collect();
        if let Some(r) = Recorder::new(&refs) {
            let sizes: Vec<usize> = tensors.iter().map(|t| t.shape()[a]).collect();
            r.finish(&out, move |g, needs| {
                let mut begin = vec![0usize; g.rank()];
                let mut grads = Vec::with_capacity(sizes.len());
                for (&s, &need) in sizes.iter().zip(needs) {
                    let mut size: Vec<isize> = g.shape().iter().map(|&d| d as isize).collect();
                    size[a] = s as isize;
                    grads.push(need.then(|| g.slice(&begin, &size)).transpose()?);
                    begin[a] += s;
                }
                Ok(grads)
            });
        }
        crate::trace::record(
            "concat",
            crate::trace::OpKind::Concat(a),
            move || format!("axis={axis}"),
            &refs,
            &out,
            move |x| Tensor::concat(x, axis),
        );
        Ok(out)
    }

    /// Stacks same-shaped tensors along a new `axis` (`tf.stack`).
    pub fn stack(tensors: &[Tensor], axis: isize) -> Result<Tensor> {
        let first = tensors
            .first()
            .ok_or_else(|| Error::invalid("stack", "needs at least one tensor"))?;
        for t in tensors {
            if t.shape() != first.shape() {
                return Err(Error::shapes(
                    "stack",
                    "shapes differ",
                    first.shape(),
                    t.shape(),
                ));
            }
        }
        let expanded: Vec<Tensor> = tensors
            .iter()
            .map(|t| t.expand_dims(axis))
            .collect::<Result<_>>()?;
        Tensor::concat(&expanded, axis)
    }

    /// Splits along `axis` into pieces of the given sizes (`tf.split` with sizes; one size
    /// may be -1 for the rest). The pieces are views.
    pub fn split(&self, sizes: &[isize], axis: isize) -> Result<Vec<Tensor>> {
        let a = normalize_axis("split", axis, self.rank())?;
        let dim = self.shape()[a] as isize;
        let known: isize = sizes.iter().filter(|&&s| s >= 0).sum();
        let unknown = sizes.iter().filter(|&&s| s == -1).count();
        if sizes.iter().any(|&s| s < -1)
            || unknown > 1
            || (unknown == 0 && known != dim)
            || known > dim
        {
            return Err(Error::invalid(
                "split",
                format!(
                    "sizes {sizes:?} do not add up to dimension {a} of {:?}",
                    self.shape()
                ),
            ));
        }
        let mut begin = vec![0usize; self.rank()];
        let mut out = Vec::with_capacity(sizes.len());
        for &s in sizes {
            let s = if s == -1 {
                (dim - known) as usize
            } else {
                s as usize
            };
            let mut size: Vec<isize> = self.shape().iter().map(|&d| d as isize).collect();
            size[a] = s as isize;
            out.push(self.slice(&begin, &size)?);
            begin[a] += s;
        }
        Ok(out)
    }

    /// Splits along `axis` into `num` equal pieces (`tf.split` with a count).
    pub fn split_even(&self, num: usize, axis: isize) -> Result<Vec<Tensor>> {
        let a = normalize_axis("split", axis, self.rank())?;
        if num == 0 || !self.shape()[a].is_multiple_of(num) {
            return Err(Error::invalid(
                "split",
                format!(
                    "dimension {a} of {:?} does not split into {num} equal parts",
                    self.shape()
                ),
            ));
        }
        self.split(&vec![(self.shape()[a] / num) as isize; num], axis)
    }

    /// The slices along `axis`, each without that axis (`tf.unstack`).
    pub fn unstack(&self, axis: isize) -> Result<Vec<Tensor>> {
        let a = normalize_axis("unstack", axis, self.rank())?;
        let parts = self.split(&vec![1; self.shape()[a]], axis)?;
        parts.iter().map(|p| p.squeeze(&[a as isize])).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    #[test]
    fn concat_stack_split() {
        let a = Tensor::from_vec(vec![1i32, 2, 3, 4], &[2, 2]).unwrap();
        let b = Tensor::from_vec(vec![5i32, 6], &[2, 1]).unwrap();
        let c = Tensor::concat(&[a.clone(), b.clone()], 1).unwrap();
        assert_eq!(c.to_vec::<i32>().unwrap(), vec![1, 2, 5, 3, 4, 6]);
        assert_eq!(
            Tensor::concat(&[a.clone(), b.clone()], 0)
                .unwrap_err()
                .to_string(),
            "concat: shapes differ outside the concat axis: [2, 2] x [2, 1]"
        );
        let s = Tensor::stack(&[a.clone(), a.clone()], 1).unwrap();
        assert_eq!(s.shape(), &[2, 2, 2]);
        assert_eq!(s.to_vec::<i32>().unwrap(), vec![1, 2, 1, 2, 3, 4, 3, 4]);
        let p = c.split(&[1, -1], 1).unwrap();
        assert_eq!(p[1].to_vec::<i32>().unwrap(), vec![2, 5, 4, 6]);
        assert!(c.split(&[1, 1], 1).is_err());
        let u = a.unstack(0).unwrap();
        assert_eq!(u[1].to_vec::<i32>().unwrap(), vec![3, 4]);
        assert!(Tensor::concat(&[a, Tensor::zeros(&[2, 2], DType::F32).unwrap()], 0).is_err());
    }
}
