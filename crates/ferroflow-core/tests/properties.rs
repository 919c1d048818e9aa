//! Property tests: broadcasting binary ops and view ops against a naive index-by-index
//! reference on random shapes, strides and values.

use ferroflow_core::ops::slice::SliceArg;
use ferroflow_core::Tensor;
use proptest::prelude::*;

/// Row-major multi-index of flat position `i` in `shape`.
fn unravel(mut i: usize, shape: &[usize]) -> Vec<usize> {
    let mut idx = vec![0; shape.len()];
    for d in (0..shape.len()).rev() {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
    idx
}

fn ravel(idx: &[usize], shape: &[usize]) -> usize {
    idx.iter().zip(shape).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// Naive broadcast read of `data` (shape `s`) at output index `idx`.
fn bread(data: &[f32], s: &[usize], idx: &[usize]) -> f32 {
    let lead = idx.len() - s.len();
    let own: Vec<usize> = s
        .iter()
        .enumerate()
        .map(|(k, &d)| if d == 1 { 0 } else { idx[lead + k] })
        .collect();
    data[ravel(&own, s)]
}

/// Two shapes that broadcast: each dim of the shorter one is the other's size or 1.
fn broadcastable() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    prop::collection::vec(1usize..5, 0..5)
        .prop_flat_map(|out| {
            let n = out.len();
            (
                Just(out),
                0..=n,
                prop::collection::vec(any::<bool>(), n),
                prop::collection::vec(any::<bool>(), n),
            )
        })
        .prop_map(|(out, drop, ones_a, ones_b)| {
            let a: Vec<usize> = out
                .iter()
                .zip(&ones_a)
                .map(|(&d, &o)| if o { 1 } else { d })
                .collect();
            let b: Vec<usize> = out[drop..]
                .iter()
                .zip(&ones_b[drop..])
                .map(|(&d, &o)| if o { 1 } else { d })
                .collect();
            (a, b)
        })
}

fn values(n: usize) -> impl Strategy<Value = Vec<f32>> {
    prop::collection::vec(-100.0f32..100.0, n)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn binary_ops_broadcast_like_numpy(((sa, sb), seed) in (broadcastable(), any::<u64>())) {
        let na: usize = sa.iter().product();
        let nb: usize = sb.iter().product();
        let va: Vec<f32> = (0..na).map(|i| ((i as u64 * 31 + seed) % 97) as f32 - 48.0).collect();
        let vb: Vec<f32> = (0..nb).map(|i| ((i as u64 * 17 + seed / 3) % 89) as f32 - 44.0).collect();
        let a = Tensor::from_vec(va.clone(), &sa).unwrap();
        let b = Tensor::from_vec(vb.clone(), &sb).unwrap();
        for (res, f) in [
            (a.add(&b).unwrap(), (|x: f32, y: f32| x + y) as fn(f32, f32) -> f32),
            (b.sub(&a).unwrap(), |x, y| y - x),
            (a.mul(&b).unwrap(), |x, y| x * y),
            (a.maximum(&b).unwrap(), f32::max),
        ] {
            let out = res.shape().to_vec();
            let got = res.to_vec::<f32>().unwrap();
            for (i, g) in got.iter().enumerate() {
                let idx = unravel(i, &out);
                prop_assert_eq!(*g, f(bread(&va, &sa, &idx), bread(&vb, &sb, &idx)));
            }
        }
    }

    #[test]
    fn transposed_and_broadcast_views_read_correctly(shape in prop::collection::vec(1usize..5, 1..5), seed in any::<u64>()) {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|i| (i as u64 ^ seed) as f32).collect();
        let t = Tensor::from_vec(v.clone(), &shape).unwrap();
        // Reverse permutation.
        let perm: Vec<usize> = (0..shape.len()).rev().collect();
        let tt = t.transpose(&perm).unwrap();
        let got = tt.to_vec::<f32>().unwrap();
        for (i, g) in got.iter().enumerate() {
            let idx = unravel(i, tt.shape());
            let src: Vec<usize> = (0..shape.len()).map(|d| idx[perm.iter().position(|&p| p == d).unwrap()]).collect();
            prop_assert_eq!(*g, v[ravel(&src, &shape)]);
        }
        // A strided view feeds an elementwise op and a reduction like its contiguous copy.
        let c = tt.contiguous();
        prop_assert_eq!(tt.neg().unwrap().to_vec::<f32>().unwrap(), c.neg().unwrap().to_vec::<f32>().unwrap());
        prop_assert_eq!(tt.sum(0, false).unwrap().to_vec::<f32>().unwrap(), c.sum(0, false).unwrap().to_vec::<f32>().unwrap());
        // Broadcasting a new leading axis repeats the tensor.
        let mut big = vec![3];
        big.extend_from_slice(&shape);
        let b = t.broadcast_to(&big).unwrap().to_vec::<f32>().unwrap();
        prop_assert_eq!(&b[..n], &v[..]);
        prop_assert_eq!(&b[2 * n..], &v[..]);
    }

    #[test]
    fn slices_match_naive_indexing(dims in prop::collection::vec(1usize..6, 1..4), picks in prop::collection::vec((any::<i8>(), any::<i8>(), -3isize..4), 3), vals in values(216)) {
        let n: usize = dims.iter().product();
        let t = Tensor::from_vec(vals[..n].to_vec(), &dims).unwrap();
        let args: Vec<SliceArg> = dims.iter().zip(&picks).map(|(_, &(s, e, st))| {
            let step = if st == 0 { 1 } else { st };
            SliceArg::Range(Some(s as isize % 7), Some(e as isize % 7), step)
        }).collect();
        let got = t.strided_slice(&args).unwrap();
        // Naive: per axis, the list of source positions the Python slice picks.
        let lists: Vec<Vec<usize>> = dims.iter().zip(&args).map(|(&d, a)| {
            let SliceArg::Range(Some(s), Some(e), st) = *a else { unreachable!() };
            let d = d as isize;
            let norm = |v: isize, lo: isize, hi: isize| (if v < 0 { v + d } else { v }).clamp(lo, hi);
            let mut out = vec![];
            if st > 0 {
                let (mut i, e) = (norm(s, 0, d), norm(e, 0, d));
                while i < e { out.push(i as usize); i += st; }
            } else {
                let (mut i, e) = (norm(s, -1, d - 1), norm(e, -1, d - 1));
                while i > e { out.push(i as usize); i += st; }
            }
            out
        }).collect();
        let shape: Vec<usize> = lists.iter().map(Vec::len).collect();
        prop_assert_eq!(got.shape(), &shape[..]);
        let g = got.to_vec::<f32>().unwrap();
        for (i, v) in g.iter().enumerate() {
            let idx = unravel(i, &shape);
            let src: Vec<usize> = idx.iter().zip(&lists).map(|(&k, l)| l[k]).collect();
            prop_assert_eq!(*v, vals[ravel(&src, &dims)]);
        }
    }
}
