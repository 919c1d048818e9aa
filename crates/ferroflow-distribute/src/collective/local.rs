//! Workers as threads of one process: a shared mailbox and a barrier. Used by tests that
//! run a multi-worker strategy without MPI, and by anything that wants worker semantics
//! (separate model copies) inside one process.

use super::Collective;
use ferroflow_core::{Error, Result};
use std::sync::{Arc, Barrier, Mutex};

struct Shared {
    size: usize,
    barrier: Barrier,
    slots: Mutex<Vec<Vec<u8>>>,
}

impl LocalCollective {
    /// The members of a new group of `size` in-process workers, rank 0 first: hand one
    /// to each thread.
    pub fn group(size: usize) -> Result<Vec<LocalCollective>> {
        if size == 0 {
            return Err(Error::invalid(
                "LocalCollective",
                "a group needs at least one worker",
            ));
        }
        let shared = Arc::new(Shared {
            size,
            barrier: Barrier::new(size),
            slots: Mutex::new(vec![Vec::new(); size]),
        });
        Ok((0..size)
            .map(|rank| LocalCollective {
                rank,
                shared: shared.clone(),
            })
            .collect())
    }
}

/// One thread's handle on a [`LocalGroup`].
pub struct LocalCollective {
    rank: usize,
    shared: Arc<Shared>,
}

impl LocalCollective {
    /// Deposits `bytes` in this worker's slot and returns every slot once all have.
    fn exchange(&self, bytes: Vec<u8>) -> Vec<Vec<u8>> {
        self.shared.slots.lock().unwrap_or_else(|e| e.into_inner())[self.rank] = bytes;
        self.shared.barrier.wait();
        let all = self
            .shared
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        // Nobody writes the next round before everyone has read this one.
        self.shared.barrier.wait();
        all
    }
}

fn sum_in_rank_order<T: Copy + std::ops::Add<Output = T>, const N: usize>(
    buf: &mut [T],
    all: &[Vec<u8>],
    decode: impl Fn([u8; N]) -> T,
) {
    for (i, v) in buf.iter_mut().enumerate() {
        let at = |w: &Vec<u8>| decode(w[i * N..(i + 1) * N].try_into().expect("same lengths"));
        *v = all[1..].iter().fold(at(&all[0]), |acc, w| acc + at(w));
    }
}

impl Collective for LocalCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.shared.size
    }

    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        let all = self.exchange(buf.iter().flat_map(|v| v.to_le_bytes()).collect());
        check_lengths(&all, buf.len() * 4)?;
        sum_in_rank_order(buf, &all, f32::from_le_bytes);
        Ok(())
    }

    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        let all = self.exchange(buf.iter().flat_map(|v| v.to_le_bytes()).collect());
        check_lengths(&all, buf.len() * 8)?;
        sum_in_rank_order(buf, &all, f64::from_le_bytes);
        Ok(())
    }

    fn broadcast(&self, buf: &mut Vec<u8>, root: usize) -> Result<()> {
        let mine = if self.rank == root {
            buf.clone()
        } else {
            Vec::new()
        };
        let mut all = self.exchange(mine);
        *buf = std::mem::take(all.get_mut(root).ok_or_else(|| {
            Error::invalid(
                "broadcast",
                format!("root {root} is not in a group of {}", self.size()),
            )
        })?);
        Ok(())
    }

    fn all_gather(&self, local: &[u8]) -> Result<Vec<Vec<u8>>> {
        Ok(self.exchange(local.to_vec()))
    }

    fn barrier(&self) -> Result<()> {
        self.shared.barrier.wait();
        Ok(())
    }
}

fn check_lengths(all: &[Vec<u8>], want: usize) -> Result<()> {
    match all.iter().position(|w| w.len() != want) {
        None => Ok(()),
        Some(r) => Err(Error::invalid(
            "all_reduce",
            format!(
                "worker {r} reduced {} bytes where this worker reduced {want}",
                all[r].len()
            ),
        )),
    }
}
