//! Tensor-level collectives on top of [`Collective`]'s byte and number operations.

use super::Collective;
use ferroflow_core::autodiff::{Gradient, IndexedSlices};
use ferroflow_core::{DType, Error, Result, Tensor, Variable};

/// Gradient bytes per all-reduce call (PyTorch DDP's `bucket_cap_mb` default, 25 MB).
pub const DEFAULT_BUCKET_BYTES: usize = 25 * 1024 * 1024;

/// How one worker holds a variable's gradient this step.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Held {
    Missing = 0,
    Dense = 1,
    Sparse = 2,
}

/// Sums gradients over the workers, in place.
///
/// Dense gradients go through all-reduce in buckets of at most `bucket_bytes`, filled in
/// reverse variable order (the order the backward pass produces them). Sparse gradients
/// (`IndexedSlices`) whose variable is sparse or missing on every worker are gathered as
/// indices and values, in rank order, never densified; a variable that is dense on some
/// worker is densified everywhere. A variable without a gradient on any worker keeps none;
/// one missing on some workers counts as zero there.
pub fn all_reduce_gradients(
    c: &dyn Collective,
    grads: &mut [Option<Gradient>],
    vars: &[Variable],
    bucket_bytes: usize,
) -> Result<()> {
    if grads.len() != vars.len() {
        return Err(Error::invalid(
            "all_reduce_gradients",
            format!("{} gradients for {} variables", grads.len(), vars.len()),
        ));
    }
    if c.size() == 1 {
        return Ok(());
    }
    let mine: Vec<u8> = grads
        .iter()
        .map(|g| match g {
            None => Held::Missing as u8,
            Some(Gradient::Dense(_)) => Held::Dense as u8,
            Some(Gradient::Sparse(_)) => Held::Sparse as u8,
        })
        .collect();
    let all = c.all_gather(&mine)?;
    if let Some(r) = all.iter().position(|w| w.len() != mine.len()) {
        return Err(Error::invalid(
            "all_reduce_gradients",
            format!(
                "worker {r} has {} gradients where worker {} has {}: the workers built different models",
                all[r].len(),
                c.rank(),
                mine.len()
            ),
        ));
    }
    let held = |i: usize, h: Held| all.iter().any(|w| w[i] == h as u8);
    let mut dense = Vec::new();
    for i in 0..grads.len() {
        if held(i, Held::Dense) {
            if let Some(Gradient::Sparse(s)) = &grads[i] {
                grads[i] = Some(Gradient::Dense(s.to_dense()?));
            }
            dense.push(i);
        } else if held(i, Held::Sparse) {
            grads[i] = Some(Gradient::Sparse(gather_slices(
                c,
                grads[i].take(),
                &vars[i],
            )?));
        }
    }
    dense.reverse();
    reduce_dense(c, grads, vars, &dense, bucket_bytes)
}

/// All-reduces the dense gradients at `order`, packed into f32 (or f64) buckets.
fn reduce_dense(
    c: &dyn Collective,
    grads: &mut [Option<Gradient>],
    vars: &[Variable],
    order: &[usize],
    bucket_bytes: usize,
) -> Result<()> {
    for wide in [false, true] {
        let ids: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| (vars[i].dtype() == DType::F64) == wide)
            .collect();
        let width = if wide { 8 } else { 4 };
        let mut start = 0;
        while start < ids.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < ids.len()
                && (end == start || bytes + numel(&vars[ids[end]]) * width <= bucket_bytes)
            {
                bytes += numel(&vars[ids[end]]) * width;
                end += 1;
            }
            reduce_bucket(c, grads, vars, &ids[start..end], wide)?;
            start = end;
        }
    }
    Ok(())
}

fn dense_or_zeros(g: &Option<Gradient>, v: &Variable, dtype: DType) -> Result<Tensor> {
    let t = match g {
        Some(Gradient::Dense(t)) => t.clone(),
        Some(Gradient::Sparse(s)) => s.to_dense()?,
        None => return Tensor::zeros(v.shape(), dtype),
    };
    if t.dtype() == dtype {
        Ok(t)
    } else {
        t.cast(dtype)
    }
}

fn reduce_bucket(
    c: &dyn Collective,
    grads: &mut [Option<Gradient>],
    vars: &[Variable],
    ids: &[usize],
    wide: bool,
) -> Result<()> {
    if wide {
        reduce_bucket_as::<f64>(grads, vars, ids, DType::F64, |b| c.all_reduce_sum_f64(b))
    } else {
        reduce_bucket_as::<f32>(grads, vars, ids, DType::F32, |b| c.all_reduce_sum_f32(b))
    }
}

/// Packs the gradients at `ids` as `dtype` into one buffer, reduces it, and puts the sums
/// back as dense gradients of each variable's dtype.
fn reduce_bucket_as<T: ferroflow_core::Element>(
    grads: &mut [Option<Gradient>],
    vars: &[Variable],
    ids: &[usize],
    dtype: DType,
    reduce: impl FnOnce(&mut [T]) -> Result<()>,
) -> Result<()> {
    let total = ids.iter().map(|&i| numel(&vars[i])).sum();
    // A cached buffer: a fresh one would fault in its pages at every step.
    let mut scratch = ferroflow_core::alloc::Scratch::<T>::zeroed(total);
    let buf = &mut scratch.0;
    let mut at = 0;
    for &i in ids {
        let t = dense_or_zeros(&grads[i], &vars[i], dtype)?;
        let g = t.data::<T>()?;
        let n = numel(&vars[i]);
        if g.len() != n {
            return Err(Error::invalid(
                "all_reduce_gradients",
                format!(
                    "gradient of shape {:?} for variable '{}' of shape {:?}",
                    t.shape(),
                    vars[i].name(),
                    vars[i].shape()
                ),
            ));
        }
        buf[at..at + n].copy_from_slice(&g);
        at += n;
    }
    reduce(buf)?;
    let mut at = 0;
    for &i in ids {
        let n = numel(&vars[i]);
        let t = Tensor::from_slice(&buf[at..at + n], vars[i].shape())?;
        let want = vars[i].dtype();
        grads[i] = Some(Gradient::Dense(if want.is_float() && want != dtype {
            t.cast(want)?
        } else {
            t
        }));
        at += n;
    }
    Ok(())
}

/// Every worker's slices of one variable's gradient, concatenated in rank order.
fn gather_slices(c: &dyn Collective, g: Option<Gradient>, v: &Variable) -> Result<IndexedSlices> {
    let mine = match g {
        Some(Gradient::Sparse(s)) => vec![s.indices.cast(DType::I64)?, s.values.cast(v.dtype())?],
        _ => Vec::new(),
    };
    let gathered = c.all_gather(&encode(&mine))?;
    let (mut indices, mut values) = (Vec::new(), Vec::new());
    for (r, bytes) in gathered.iter().enumerate() {
        let mut ts = decode(bytes, r)?;
        if ts.len() == 2 {
            values.push(ts.pop().expect("two"));
            indices.push(ts.pop().expect("two"));
        }
    }
    Ok(IndexedSlices {
        indices: Tensor::concat(&indices, 0)?,
        values: Tensor::concat(&values, 0)?,
        dense_shape: v.shape().to_vec(),
    })
}

/// Concatenates each of `tensors` along axis 0 over the workers, in rank order. A worker
/// may pass no tensors (it had no rows); the others' rows are still gathered.
pub fn all_gather_rows(c: &dyn Collective, tensors: &[Tensor]) -> Result<Vec<Tensor>> {
    if c.size() == 1 {
        return Ok(tensors.to_vec());
    }
    let gathered = c.all_gather(&encode(tensors))?;
    let mut per_worker = Vec::new();
    for (r, bytes) in gathered.iter().enumerate() {
        let ts = decode(bytes, r)?;
        if !ts.is_empty() {
            per_worker.push(ts);
        }
    }
    let Some(count) = per_worker.first().map(Vec::len) else {
        return Ok(Vec::new());
    };
    if per_worker.iter().any(|w| w.len() != count) {
        return Err(Error::invalid(
            "all_gather",
            "the workers gathered different numbers of tensors",
        ));
    }
    (0..count)
        .map(|i| {
            let parts: Vec<Tensor> = per_worker.iter().map(|w| w[i].clone()).collect();
            Tensor::concat(&parts, 0)
        })
        .collect()
}

/// Sums a float tensor over the workers.
pub fn all_reduce_tensor(c: &dyn Collective, t: &Tensor) -> Result<Tensor> {
    let mut buf = t.cast(DType::F64)?.to_vec::<f64>()?;
    c.all_reduce_sum_f64(&mut buf)?;
    Tensor::from_vec(buf, t.shape())?.cast(t.dtype())
}

/// Checks that every worker holds the same variables (name, dtype, shape, in order), then
/// gives every worker the chief's values. The error names the first variable that differs.
pub fn sync_variables(c: &dyn Collective, vars: &[Variable]) -> Result<()> {
    if c.size() == 1 {
        return Ok(());
    }
    let describe = |v: &Variable| format!("{} {} {:?}", v.name(), v.dtype().name(), v.shape());
    let mine: Vec<String> = vars.iter().map(describe).collect();
    let all = c.all_gather(mine.join("\n").as_bytes())?;
    let lines = |bytes: &[u8]| -> Vec<String> {
        let text = String::from_utf8_lossy(bytes);
        if text.is_empty() {
            Vec::new()
        } else {
            text.split('\n').map(str::to_string).collect()
        }
    };
    let chief = lines(&all[0]);
    for (r, theirs) in all.iter().enumerate().skip(1) {
        let theirs = lines(theirs);
        if let Some(i) = (0..chief.len().max(theirs.len())).find(|&i| chief.get(i) != theirs.get(i))
        {
            return Err(Error::invalid(
                "MultiWorkerMirroredStrategy",
                format!(
                    "the workers built different models: variable {i} is `{}` on worker 0 but `{}` on worker {r}",
                    chief.get(i).map_or("(none)", String::as_str),
                    theirs.get(i).map_or("(none)", String::as_str)
                ),
            ));
        }
    }
    let mut bytes = if c.rank() == 0 {
        vars.iter()
            .flat_map(|v| v.read_untracked().to_le_bytes())
            .collect()
    } else {
        Vec::new()
    };
    c.broadcast(&mut bytes, 0)?;
    let mut at = 0;
    for v in vars {
        let n = numel(v) * v.dtype().size_in_bytes();
        let chunk = bytes.get(at..at + n).ok_or_else(|| {
            Error::invalid(
                "sync_variables",
                "the chief sent fewer bytes than the variables hold",
            )
        })?;
        if c.rank() != 0 {
            v.assign(&Tensor::from_le_bytes(v.dtype(), v.shape(), chunk)?)?;
        }
        at += n;
    }
    Ok(())
}

/// Tensors as bytes: count, then per tensor its dtype name, shape and little-endian data.
fn encode(tensors: &[Tensor]) -> Vec<u8> {
    let mut out = (tensors.len() as u64).to_le_bytes().to_vec();
    for t in tensors {
        let name = t.dtype().name().as_bytes();
        out.push(name.len() as u8);
        out.extend(name);
        out.push(t.rank() as u8);
        for &d in t.shape() {
            out.extend((d as u64).to_le_bytes());
        }
        let data = t.to_le_bytes();
        out.extend((data.len() as u64).to_le_bytes());
        out.extend(data);
    }
    out
}

/// The tensors [`encode`] wrote; worker `rank`'s bytes are checked against their length.
fn decode(bytes: &[u8], rank: usize) -> Result<Vec<Tensor>> {
    let bad = || {
        Error::invalid(
            "all_gather",
            format!("worker {rank} sent malformed tensor bytes"),
        )
    };
    let mut at = 0usize;
    let mut take = |n: usize| -> Result<&[u8]> {
        let s = bytes
            .get(at..at.checked_add(n).ok_or_else(bad)?)
            .ok_or_else(bad)?;
        at += n;
        Ok(s)
    };
    let u64_at = |s: &[u8]| u64::from_le_bytes(s.try_into().expect("8 bytes"));
    let count = u64_at(take(8)?) as usize;
    let mut out = Vec::with_capacity(count.min(bytes.len()));
    for _ in 0..count {
        let len = take(1)?[0] as usize;
        let name = std::str::from_utf8(take(len)?).map_err(|_| bad())?;
        let dtype = DType::from_name(name).ok_or_else(bad)?;
        let rank_ = take(1)?[0] as usize;
        let mut shape = Vec::with_capacity(rank_);
        for _ in 0..rank_ {
            shape.push(u64_at(take(8)?) as usize);
        }
        let n = u64_at(take(8)?) as usize;
        out.push(Tensor::from_le_bytes(dtype, &shape, take(n)?)?);
    }
    Ok(out)
}

fn numel(v: &Variable) -> usize {
    v.shape().iter().product()
}
