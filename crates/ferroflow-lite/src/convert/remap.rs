//! A traced remap (output index `i` reads input `maps[axis][i]`, or the fill where that is
//! `None`) as TFLite operators: each axis that moves is recognised as zero padding, a
//! reversal, a tiling or a nearest-neighbour upsampling of height and width, and
//! anything else is a GATHER of constant indices.

use super::registry::Lowering;
use super::Builder;
use crate::ir::Op;
use ferroflow_core::{Error, Result};
use ferroflow_graph::export::ValueMeta;

/// What one axis's map does.
#[derive(Clone, Debug, PartialEq)]
enum AxisMap {
    Identity,
    /// `before` fills, the input, `after` fills.
    Pad(usize, usize),
    Reverse,
    /// The input `k` times.
    Tile(usize),
    /// Each element `k` times.
    Repeat(usize),
    /// Anything else: input indices, `n` (one past the end) for a fill.
    Gather(Vec<i32>),
}

fn classify(map: &[Option<usize>], n: usize) -> AxisMap {
    let len = map.len();
    if len == n && map.iter().enumerate().all(|(i, &m)| m == Some(i)) {
        return AxisMap::Identity;
    }
    let before = map.iter().take_while(|m| m.is_none()).count();
    let after = map.iter().rev().take_while(|m| m.is_none()).count();
    if before + after < len
        && len - before - after == n
        && map[before..len - after]
            .iter()
            .enumerate()
            .all(|(i, &m)| m == Some(i))
    {
        return AxisMap::Pad(before, after);
    }
    if n > 0 && !map.contains(&None) {
        if len == n && map.iter().enumerate().all(|(i, &m)| m == Some(n - 1 - i)) {
            return AxisMap::Reverse;
        }
        if len.is_multiple_of(n) && map.iter().enumerate().all(|(i, &m)| m == Some(i % n)) {
            return AxisMap::Tile(len / n);
        }
        if len.is_multiple_of(n)
            && map
                .iter()
                .enumerate()
                .all(|(i, &m)| m == Some(i / (len / n)))
        {
            return AxisMap::Repeat(len / n);
        }
    }
    AxisMap::Gather(map.iter().map(|m| m.unwrap_or(n) as i32).collect())
}

/// Lowers a remap of input 0 of `l`.
pub(super) fn lower(
    b: &mut Builder,
    maps: &[Vec<Option<usize>>],
    fill: f64,
    l: &Lowering,
) -> Result<Vec<usize>> {
    let from = l.inputs[0].meta.clone();
    let unsupported =
        |why: String| Error::invalid("tflite export", format!("op '{}': {why}", l.op));
    let axes: Vec<AxisMap> = maps
        .iter()
        .enumerate()
        .map(|(a, m)| classify(m, from.shape[a]))
        .collect();
    for (a, m) in axes.iter().enumerate() {
        if *m != AxisMap::Identity && (from.dynamic[a] || l.outputs[0].dynamic[a]) {
            return Err(unsupported(format!(
                "padding, tiling or reversing axis {a}, whose size follows the batch, needs a fixed batch"
            )));
        }
    }
    if fill != 0.0 && maps.iter().any(|m| m.contains(&None)) {
        return Err(unsupported(format!(
            "padding with {fill} (not zero) has no TFLite builtin here"
        )));
    }
    let mut x = l.x(b, 0)?;
    let mut cur = from.clone();
    let rank = axes.len();
    // Nearest-neighbour upsampling of height and width (UpSampling2D).
    let is_repeat = |m: &AxisMap| matches!(m, AxisMap::Repeat(_));
    let mut axes = axes;
    if rank == 4
        && (is_repeat(&axes[1]) || is_repeat(&axes[2]))
        && [&axes[1], &axes[2]]
            .iter()
            .all(|m| is_repeat(m) || **m == AxisMap::Identity)
    {
        let size = [1, 2].map(|a| l.outputs[0].shape[a] as i32);
        let s = b.const_i32("size", &[2], &size);
        let mut meta = cur.clone();
        meta.shape[1] = size[0] as usize;
        meta.shape[2] = size[1] as usize;
        let y = b.value_tensor(&format!("{}/resize", l.op), &meta)?;
        let op = Op::Resize {
            bilinear: false,
            align_corners: false,
            half_pixel_centers: false,
        };
        b.op(op, &[x, s as i32], &[y]);
        x = y as i32;
        cur = meta;
        axes[1] = AxisMap::Identity;
        axes[2] = AxisMap::Identity;
    }
    // All zero padding in one PAD.
    let pads: Vec<(usize, usize)> = axes
        .iter()
        .map(|m| match m {
            AxisMap::Pad(p, q) => (*p, *q),
            _ => (0, 0),
        })
        .collect();
    if pads.iter().any(|&p| p != (0, 0)) {
        let flat: Vec<i32> = pads
            .iter()
            .flat_map(|&(p, q)| [p as i32, q as i32])
            .collect();
        let p = b.const_i32("paddings", &[rank as i32, 2], &flat);
        let mut meta = cur.clone();
        for (a, &(p, q)) in pads.iter().enumerate() {
            meta.shape[a] += p + q;
        }
        let y = b.value_tensor(&format!("{}/pad", l.op), &meta)?;
        b.op(Op::Pad, &[x, p as i32], &[y]);
        x = y as i32;
        cur = meta;
    }
    let reversed: Vec<i32> = (0..rank)
        .filter(|&a| axes[a] == AxisMap::Reverse)
        .map(|a| a as i32)
        .collect();
    if !reversed.is_empty() {
        let r = b.const_i32("axes", &[reversed.len() as i32], &reversed);
        let y = b.value_tensor(&format!("{}/reverse", l.op), &cur)?;
        b.op(Op::Reverse, &[x, r as i32], &[y]);
        x = y as i32;
    }
    let multiples: Vec<i32> = axes
        .iter()
        .map(|m| match m {
            AxisMap::Tile(k) => *k as i32,
            _ => 1,
        })
        .collect();
    if multiples.iter().any(|&k| k != 1) {
        let m = b.const_i32("multiples", &[rank as i32], &multiples);
        let mut meta = cur.clone();
        for (a, &k) in multiples.iter().enumerate() {
            meta.shape[a] *= k as usize;
        }
        let y = b.value_tensor(&format!("{}/tile", l.op), &meta)?;
        b.op(Op::Tile, &[x, m as i32], &[y]);
        x = y as i32;
        cur = meta;
    }
    for (a, m) in axes.iter().enumerate() {
        let idx: Vec<i32> = match m {
            AxisMap::Repeat(k) => (0..cur.shape[a] * k).map(|i| (i / k) as i32).collect(),
            AxisMap::Gather(g) => g.clone(),
            _ => continue,
        };
        if idx.iter().any(|&i| i as usize == cur.shape[a]) {
            // Fills: one zero appended, which the fill entries index.
            let mut flat = vec![0i32; 2 * rank];
            flat[2 * a + 1] = 1;
            let p = b.const_i32("paddings", &[rank as i32, 2], &flat);
            let mut meta = cur.clone();
            meta.shape[a] += 1;
            let y = b.value_tensor(&format!("{}/pad", l.op), &meta)?;
            b.op(Op::Pad, &[x, p as i32], &[y]);
            x = y as i32;
            cur = meta;
        }
        let i = b.const_i32("indices", &[idx.len() as i32], &idx);
        let mut meta: ValueMeta = cur.clone();
        meta.shape[a] = idx.len();
        let y = b.value_tensor(&format!("{}/gather", l.op), &meta)?;
        b.op(Op::Gather { axis: a }, &[x, i as i32], &[y]);
        x = y as i32;
        cur = meta;
    }
    Ok(vec![x as usize])
}
