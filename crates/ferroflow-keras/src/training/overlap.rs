//! Gradients summed over the workers while the backward pass still runs (PyTorch DDP's
//! buckets, Horovod's fusion buffer): each dense f32 gradient joins a bucket the moment the
//! tape finishes it, and a full bucket's all-reduce starts at once in the background. The
//! start and finish are traced ops ([`OpKind::Collective`]), so a compiled train step
//! overlaps the same way at every call.

use crate::distribution::Replicas;
use ferroflow_core::autodiff::{pause_recording, Gradient};
use ferroflow_core::trace::{self, OpKind};
use ferroflow_core::{DType, Error, Result, Tensor};
use std::sync::Arc;

/// A sum started in the background: which gradients it holds, their shapes, its ticket.
struct Started {
    ids: Vec<usize>,
    shapes: Vec<Vec<usize>>,
    ticket: Tensor,
}

/// The buckets of one backward pass.
pub(crate) struct Overlap {
    replicas: Arc<dyn Replicas>,
    cap: usize,
    pending: Vec<(usize, Tensor)>,
    bytes: usize,
    started: Vec<Started>,
}

impl Overlap {
    /// Buckets of `cap` bytes, summed over `replicas`' workers.
    pub(crate) fn new(replicas: Arc<dyn Replicas>, cap: usize) -> Self {
        Overlap {
            replicas,
            cap: cap.max(1),
            pending: Vec::new(),
            bytes: 0,
            started: Vec::new(),
        }
    }

    /// Whether gradient `g` goes through the buckets (dense f32 ones do; the others are
    /// summed after the pass).
    pub(crate) fn takes(g: &Gradient) -> bool {
        matches!(g, Gradient::Dense(t) if t.dtype() == DType::F32)
    }

    /// The tape finished variable `i`'s gradient.
    pub(crate) fn ready(&mut self, i: usize, g: Gradient) -> Result<Gradient> {
        if let (true, Gradient::Dense(t)) = (Self::takes(&g), &g) {
            self.bytes += t.numel() * 4;
            self.pending.push((i, t.clone()));
            if self.bytes >= self.cap {
                self.flush()?;
            }
        }
        Ok(g)
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let (ids, tensors): (Vec<usize>, Vec<Tensor>) =
            std::mem::take(&mut self.pending).into_iter().unzip();
        self.bytes = 0;
        let shapes = tensors.iter().map(|t| t.shape().to_vec()).collect();
        let ticket = start(&self.replicas, &tensors)?;
        self.started.push(Started {
            ids,
            shapes,
            ticket,
        });
        Ok(())
    }

    /// Starts the last bucket, waits for every sum and puts them in `grads`.
    pub(crate) fn finish(mut self, grads: &mut [Option<Gradient>]) -> Result<()> {
        self.flush()?;
        for s in std::mem::take(&mut self.started) {
            let sums = finish(&self.replicas, &s.ticket, s.shapes)?;
            for (i, t) in s.ids.into_iter().zip(sums) {
                grads[i] = Some(Gradient::Dense(t));
            }
        }
        Ok(())
    }
}

/// Starts summing `tensors` (packed in one buffer) and returns the ticket as a scalar.
fn start(replicas: &Arc<dyn Replicas>, tensors: &[Tensor]) -> Result<Tensor> {
    let r = replicas.clone();
    let run = move |ts: &[Tensor]| -> Result<Tensor> {
        let mut buf = r.sum_buffer();
        buf.reserve(ts.iter().map(Tensor::numel).sum());
        for t in ts {
            buf.extend_from_slice(&t.data::<f32>()?);
        }
        Ok(Tensor::scalar(r.start_sum(buf)? as i64))
    };
    let ticket = {
        let _pause = pause_recording();
        run(tensors)?
    };
    let inputs: Vec<&Tensor> = tensors.iter().collect();
    let n = tensors.len();
    trace::record(
        "all_reduce_start",
        OpKind::Collective,
        || format!("tensors={n}"),
        &inputs,
        &ticket,
        run,
    );
    Ok(ticket)
}

/// Waits for the sum behind `ticket` and unpacks it into tensors of `shapes`.
fn finish(
    replicas: &Arc<dyn Replicas>,
    ticket: &Tensor,
    shapes: Vec<Vec<usize>>,
) -> Result<Vec<Tensor>> {
    let r = replicas.clone();
    let run = move |ts: &[Tensor]| -> Result<Vec<Tensor>> {
        let id = ts[0].to_vec::<i64>()?[0] as u64;
        let sum = r.finish_sum(id)?;
        let mut at = 0;
        let mut out = Vec::with_capacity(shapes.len());
        for shape in &shapes {
            let n: usize = shape.iter().product();
            let part = sum.get(at..at + n).ok_or_else(|| {
                Error::invalid(
                    "all_reduce",
                    "a background sum came back shorter than its bucket",
                )
            })?;
            out.push(Tensor::from_slice(part, shape)?);
            at += n;
        }
        r.recycle_sum_buffer(sum);
        Ok(out)
    };
    let sums = {
        let _pause = pause_recording();
        run(std::slice::from_ref(ticket))?
    };
    let refs: Vec<&Tensor> = sums.iter().collect();
    trace::record_many(
        "all_reduce_finish",
        OpKind::Collective,
        || "wait".to_string(),
        &[ticket],
        &refs,
        run,
    );
    Ok(sums)
}
