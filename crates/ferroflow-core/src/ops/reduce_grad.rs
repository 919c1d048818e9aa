//! Gradient rules of the reductions.

use crate::autodiff::record::pause_recording;
use crate::dispatch::with_float;
use crate::ops::reduce::ReduceOp;
use crate::{Numeric, Result, Tensor};

/// dL/dx of `y = reduce(x)`; `kept` is the output shape with reduced axes kept as 1.
pub(crate) fn reduce_gradient(
    op: ReduceOp,
    x: &Tensor,
    y: &Tensor,
    kept: &[usize],
    g: &Tensor,
) -> Result<Tensor> {
    let gk = g.reshape_to(kept)?;
    match op {
        ReduceOp::Sum => gk.broadcast_to(x.shape()),
        ReduceOp::Max | ReduceOp::Min => {
            // Ties share the gradient equally, as in TF.
            let ind = x.equal(&y.reshape_to(kept)?)?.cast(x.dtype())?;
            let count = ind.sum_to_shape(kept)?;
            gk.div(&count)?.mul(&ind)
        }
        ReduceOp::Prod => gk.mul(&product_of_others(x, kept)?),
    }
}

/// For each element, the product of the other elements of its reduction group (exact
/// with zeros: prefix and suffix products, no division).
fn product_of_others(x: &Tensor, kept: &[usize]) -> Result<Tensor> {
    let _p = pause_recording();
    let rank = x.rank();
    let reduced: Vec<usize> = (0..rank)
        .filter(|&i| kept[i] == 1 && x.shape()[i] != 1)
        .collect();
    let perm: Vec<usize> = (0..rank)
        .filter(|i| !reduced.contains(i))
        .chain(reduced.iter().copied())
        .collect();
    let mut inverse = vec![0; rank];
    for (i, &p) in perm.iter().enumerate() {
        inverse[p] = i;
    }
    let moved = x.transpose(&perm)?;
    let r: usize = reduced.iter().map(|&a| x.shape()[a]).product();
    let out = with_float!(x.dtype(), "prod", T => {
        let data = moved.contiguous_data::<T>()?;
        let mut out = vec![T::ZERO; data.len()];
        if r > 0 {
            for (row, dst) in data.chunks(r).zip(out.chunks_mut(r)) {
                let mut acc = T::ONE;
                for (d, &v) in dst.iter_mut().zip(row) {
                    *d = acc;
                    acc *= v;
                }
                let mut acc = T::ONE;
                for (d, &v) in dst.iter_mut().zip(row).rev() {
                    *d *= acc;
                    acc *= v;
                }
            }
        }
        Tensor::from_vec(out, moved.shape())?
    });
    let k = kept.to_vec();
    crate::trace::record_other(
        "product_of_others",
        || format!("kept={kept:?}"),
        &[x],
        &out,
        move |t| product_of_others(&t[0], &k)?.transpose(&perm),
    );
    out.transpose(&inverse)
}
