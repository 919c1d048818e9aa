//! Generic elementwise kernels: map one tensor, or zip two with broadcasting.
//!
//! Op files describe *what* to compute per element; this file decides *how*: contiguous
//! fast paths, scalar operands, strided/broadcast walks, thread splitting and SIMD dispatch.

use crate::layout::{collapse, for_each_run};
use crate::parallel::{par_chunks, with_best_isa};
use crate::shape::{broadcast_shapes, contiguous_strides, numel};
use crate::{Element, Result, Tensor};
use std::mem::MaybeUninit;

/// Allocates `n` elements, lets `fill` write every one of them, and returns the vector.
pub(crate) fn fill_vec<T: Send>(n: usize, fill: impl FnOnce(&mut [MaybeUninit<T>])) -> Vec<T> {
    let mut v = crate::alloc::with_capacity(n);
    fill(&mut v.spare_capacity_mut()[..n]);
    // SAFETY: every caller's `fill` writes all `n` slots (each kernel covers its whole range).
    unsafe { v.set_len(n) };
    v
}

/// Applies `f` to every element of `x` (any layout), producing a contiguous tensor.
/// `cost` is the relative work per element (1 = a memory-bound op like `neg`).
pub(crate) fn map<A: Element, O: Element>(
    x: &Tensor,
    cost: usize,
    f: impl Fn(A) -> O + Sync + Copy,
) -> Result<Tensor> {
    let src = x.contiguous_data::<A>()?;
    let out = fill_vec(src.len(), |out| {
        par_chunks(out, cost, |start, chunk| {
            let s = &src[start..start + chunk.len()];
            // `move` (here and below): the kernel owns a copy of `f`'s captures, which LLVM
            // keeps in registers; read through a reference they are reloaded per element
            // (relu6's bounds became a masked gather, 4x slower).
            with_best_isa(
                #[inline(always)]
                move || {
                    for (d, &v) in chunk.iter_mut().zip(s) {
                        d.write(f(v));
                    }
                },
            )
        })
    });
    Tensor::from_vec(out, x.shape())
}

/// Applies `f` to pairs of elements of `a` and `b` broadcast together (NumPy rules).
pub(crate) fn zip<A: Element, B: Element, O: Element>(
    op: &'static str,
    a: &Tensor,
    b: &Tensor,
    cost: usize,
    f: impl Fn(A, B) -> O + Sync + Copy,
) -> Result<Tensor> {
    let shape = broadcast_shapes(op, a.shape(), b.shape())?;
    let n = numel(&shape);
    let (abuf, bbuf) = (a.buffer::<A>()?, b.buffer::<B>()?);
    let (al, bl) = (a.layout(), b.layout());

    // Same shape, both contiguous: a straight zip.
    if a.shape() == b.shape() && al.is_contiguous() && bl.is_contiguous() {
        let (sa, sb) = (
            &abuf[al.offset()..al.offset() + n],
            &bbuf[bl.offset()..bl.offset() + n],
        );
        let out = fill_vec(n, |out| {
            par_chunks(out, cost, |start, chunk| {
                let (x, y) = (
                    &sa[start..start + chunk.len()],
                    &sb[start..start + chunk.len()],
                );
                with_best_isa(
                    #[inline(always)]
                    move || {
                        for ((d, &p), &q) in chunk.iter_mut().zip(x).zip(y) {
                            d.write(f(p, q));
                        }
                    },
                )
            })
        });
        return Tensor::from_vec(out, &shape);
    }

    // General case: walk the broadcast iteration space in runs.
    let sa = al.broadcast_strides(op, &shape)?;
    let sb = bl.broadcast_strides(op, &shape)?;
    let so = contiguous_strides(&shape);
    let (cshape, [_, csa, csb]) = collapse(&shape, [&so, &sa, &sb]);
    let (ia, ib) = (
        csa.last().copied().unwrap_or(0),
        csb.last().copied().unwrap_or(0),
    );
    let strides = [csa, csb];
    let (cshape, strides) = (&cshape[..], &strides);
    let out = fill_vec(n, |out| {
        par_chunks(out, cost, |start, chunk| {
            with_best_isa(
                #[inline(always)]
                move || {
                    for_each_run(
                        cshape,
                        strides,
                        [al.offset(), bl.offset()],
                        start,
                        start + chunk.len(),
                        |[oa, ob], pos, len| {
                            let dst = &mut chunk[pos - start..pos - start + len];
                            run_pair(dst, abuf, oa, ia, bbuf, ob, ib, &f);
                        },
                    )
                },
            )
        })
    });
    Tensor::from_vec(out, &shape)
}

/// One run of a broadcast zip, specialised for unit and zero inner strides.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn run_pair<A: Copy, B: Copy, O>(
    dst: &mut [MaybeUninit<O>],
    a: &[A],
    oa: usize,
    ia: usize,
    b: &[B],
    ob: usize,
    ib: usize,
    f: &impl Fn(A, B) -> O,
) {
    let len = dst.len();
    match (ia, ib) {
        (1, 1) => {
            for ((d, &p), &q) in dst.iter_mut().zip(&a[oa..oa + len]).zip(&b[ob..ob + len]) {
                d.write(f(p, q));
            }
        }
        (1, 0) => {
            let q = b[ob];
            for (d, &p) in dst.iter_mut().zip(&a[oa..oa + len]) {
                d.write(f(p, q));
            }
        }
        (0, 1) => {
            let p = a[oa];
            for (d, &q) in dst.iter_mut().zip(&b[ob..ob + len]) {
                d.write(f(p, q));
            }
        }
        _ => {
            for (i, d) in dst.iter_mut().enumerate() {
                d.write(f(a[oa + i * ia], b[ob + i * ib]));
            }
        }
    }
}

/// Applies `f` to triples broadcast together (used by `where`/`select` and `clip`).
pub(crate) fn zip3<A: Element, B: Element, C: Element, O: Element>(
    op: &'static str,
    a: &Tensor,
    b: &Tensor,
    c: &Tensor,
    f: impl Fn(A, B, C) -> O + Sync,
) -> Result<Tensor> {
    let shape = broadcast_shapes(op, &broadcast_shapes(op, a.shape(), b.shape())?, c.shape())?;
    let n = numel(&shape);
    let (abuf, bbuf, cbuf) = (a.buffer::<A>()?, b.buffer::<B>()?, c.buffer::<C>()?);
    let sa = a.layout().broadcast_strides(op, &shape)?;
    let sb = b.layout().broadcast_strides(op, &shape)?;
    let sc = c.layout().broadcast_strides(op, &shape)?;
    let so = contiguous_strides(&shape);
    let (cshape, [_, csa, csb, csc]) = collapse(&shape, [&so, &sa, &sb, &sc]);
    let inner = [
        csa.last().copied().unwrap_or(0),
        csb.last().copied().unwrap_or(0),
        csc.last().copied().unwrap_or(0),
    ];
    let strides = [csa, csb, csc];
    let base = [
        a.layout().offset(),
        b.layout().offset(),
        c.layout().offset(),
    ];
    let out = fill_vec(n, |out| {
        par_chunks(out, 2, |start, chunk| {
            for_each_run(
                &cshape,
                &strides,
                base,
                start,
                start + chunk.len(),
                |[oa, ob, oc], pos, len| {
                    for (i, d) in chunk[pos - start..pos - start + len].iter_mut().enumerate() {
                        d.write(f(
                            abuf[oa + i * inner[0]],
                            bbuf[ob + i * inner[1]],
                            cbuf[oc + i * inner[2]],
                        ));
                    }
                },
            )
        })
    });
    Tensor::from_vec(out, &shape)
}
