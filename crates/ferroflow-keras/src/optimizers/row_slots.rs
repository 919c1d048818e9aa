//! [`RowSlots`]: the slots of a variable whose sparse gradients update rows in place
//! (LazyAdam, Adagrad), stored only for the rows reached so far.
//!
//! A row no step has reached holds its slots' initial values (zeros for Adam's moments,
//! the initial accumulator for Adagrad), so those need no storage. A 10M x 64 embedding
//! table under LazyAdam would otherwise carry two dense moment tables as large as itself
//! from its first step; here the slots cost 4 bytes per table row (the row's position)
//! plus the values of the rows reached. When every row has been reached, that is the dense
//! size plus the positions.

use ferroflow_core::prefetch::{prefetch_row, ROWS_AHEAD};
use ferroflow_core::{Error, Result, Tensor};

/// Rows past a step's own whose slot memory is mapped with it.
const MAP_AHEAD_ROWS: usize = 4096;
/// Steps' worth of new rows whose slot memory is mapped on another thread ahead of them.
const STEPS_AHEAD: usize = 4;

/// The position of a row no step has reached.
const UNREACHED: u32 = u32::MAX;

/// The slots of one variable of `rows` rows of `width` values, kept for reached rows only.
pub(crate) struct RowSlots {
    /// Where each variable row's slot values start in `values` (in rows), or `UNREACHED`.
    position: Vec<u32>,
    /// One buffer per slot: `width` values per reached row, in the order rows were reached.
    values: Vec<Vec<f32>>,
    /// Each slot's initial row: what every unreached row holds.
    initial: Vec<Vec<f32>>,
    width: usize,
    /// Elements at the start of each buffer whose memory is mapped.
    mapped: usize,
    /// Memory past `mapped` being mapped on other threads while steps run (first-touch
    /// zeroing of the pages new rows will take costs about as much as the rest of a sparse
    /// step): up to this element, once the threads are joined.
    ahead: Option<(usize, Vec<std::thread::JoinHandle<()>>)>,
}

impl RowSlots {
    /// Empty slots for a variable of `rows` rows of `width` values, slot `i` starting at
    /// the row `initial[i]`. `None` when the rows are too many to number in 32 bits (the
    /// caller keeps dense slots then).
    pub(crate) fn new(rows: usize, width: usize, initial: Vec<Vec<f32>>) -> Option<Self> {
        if rows >= UNREACHED as usize || initial.iter().any(|r| r.len() != width) {
            return None;
        }
        let mut position = ferroflow_core::alloc::reserve_huge(rows)?;
        // Written now, so that the random rows of the first steps find their pages mapped.
        position.resize(rows, UNREACHED);
        // Room for every row, as address space only: memory is taken as rows are reached,
        // and the buffers never move.
        let values = initial
            .iter()
            .map(|_| ferroflow_core::alloc::reserve_unmapped::<f32>(rows.checked_mul(width)?))
            .collect::<Option<Vec<_>>>()?;
        Some(RowSlots {
            position,
            values,
            initial,
            width,
            mapped: 0,
            ahead: None,
        })
    }

    /// How many rows have slot values of their own.
    pub(crate) fn reached(&self) -> usize {
        self.values
            .first()
            .map_or(0, |v| v.len() / self.width.max(1))
    }

    /// The slot-row position of each of `rows` (each below the variable's row count,
    /// checked by the caller), giving rows reached for the first time their slots'
    /// initial values.
    pub(crate) fn positions(&mut self, rows: &[usize]) -> Vec<usize> {
        // Memory for as many new rows as there may be, mapped in one call per slot rather
        // than a page fault per page as rows are appended.
        let needed = (self.reached() + rows.len()) * self.width;
        if needed > self.mapped {
            self.join_ahead();
        }
        if needed > self.mapped {
            let upto = needed + MAP_AHEAD_ROWS * self.width;
            for buf in &mut self.values {
                ferroflow_core::alloc::map_capacity(buf, self.mapped..upto);
            }
            self.mapped = upto;
        }
        if self.ahead.is_none() {
            // The next steps' worth of rows, mapped meanwhile.
            let upto = self.mapped + rows.len().max(MAP_AHEAD_ROWS) * STEPS_AHEAD * self.width;
            let threads: Vec<_> = self
                .values
                .iter()
                .filter_map(|buf| {
                    ferroflow_core::alloc::map_capacity_in_background(buf, self.mapped..upto)
                })
                .collect();
            if !threads.is_empty() {
                self.ahead = Some((upto, threads));
            }
        }
        let mut out = Vec::with_capacity(rows.len());
        for (k, &r) in rows.iter().enumerate() {
            if let Some(&ahead) = rows.get(k + ROWS_AHEAD) {
                prefetch_row(self.position.as_ptr(), ahead, 1);
            }
            if self.position[r] == UNREACHED {
                // Fewer reached rows than rows, and rows < UNREACHED (see `new`).
                self.position[r] = self.reached() as u32;
                for (buf, init) in self.values.iter_mut().zip(&self.initial) {
                    buf.extend_from_slice(init);
                }
            }
            out.push(self.position[r] as usize);
        }
        out
    }

    /// Waits for the mapping started ahead, if any.
    fn join_ahead(&mut self) {
        if let Some((upto, threads)) = self.ahead.take() {
            for t in threads {
                // A mapping that failed leaves pages to be mapped at their first write.
                let _ = t.join();
            }
            self.mapped = self.mapped.max(upto);
        }
    }

    /// The slot buffers, `width` values per position.
    pub(crate) fn buffers(&mut self) -> &mut [Vec<f32>] {
        &mut self.values
    }

    /// Slot `i` as a dense tensor of the variable's `shape`.
    pub(crate) fn dense(&self, i: usize, shape: &[usize]) -> Result<Tensor> {
        let (Some(init), Some(values)) = (self.initial.get(i), self.values.get(i)) else {
            return Err(Error::invalid("optimizer", format!("no slot {i}")));
        };
        let w = self.width;
        let mut out = ferroflow_core::alloc::overwritable::<f32>(self.position.len() * w);
        for (row, &at) in out.chunks_exact_mut(w.max(1)).zip(&self.position) {
            if at == UNREACHED {
                row.copy_from_slice(init);
            } else {
                let at = at as usize * w;
                row.copy_from_slice(&values[at..at + w]);
            }
        }
        Tensor::from_vec(out, shape)
    }
}

impl Drop for RowSlots {
    fn drop(&mut self) {
        self.join_ahead();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_get_storage_when_first_reached_and_densify_with_initial_values() {
        let mut s = RowSlots::new(5, 2, vec![vec![0.0, 0.0], vec![0.1, 0.1]]).unwrap();
        assert_eq!(s.reached(), 0);
        assert_eq!(s.positions(&[3, 1]), vec![0, 1]);
        assert_eq!(s.positions(&[1, 4, 3]), vec![1, 2, 0]);
        assert_eq!(s.reached(), 3);
        s.buffers()[0][2..4].copy_from_slice(&[7.0, 8.0]); // row 1's first slot
        s.buffers()[1][0] = 5.0; // row 3's second slot
        let m = s.dense(0, &[5, 2]).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(m, [0.0, 0.0, 7.0, 8.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
        let a = s.dense(1, &[5, 2]).unwrap().to_vec::<f32>().unwrap();
        assert_eq!(a, [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 5.0, 0.1, 0.1, 0.1]);
        assert!(s.dense(2, &[5, 2]).is_err());
        assert!(RowSlots::new(5, 2, vec![vec![0.0]]).is_none());
    }
}
