//! `interleave` (round-robin over datasets made from input elements, optionally with a
//! background producer per open dataset) and `window`.

use crate::source::{Cardinality, ElementIter, Source};
use crate::transforms::batch::stack;
use crate::{Dataset, Element};
use ferroflow_core::Result;
use std::collections::VecDeque;
use std::sync::Arc;

/// Makes the dataset for one input element.
pub type InterleaveFn = Arc<dyn Fn(Element) -> Result<Dataset> + Send + Sync>;

pub(crate) struct Interleave {
    pub(crate) input: Dataset,
    pub(crate) f: InterleaveFn,
    pub(crate) cycle_length: usize,
    pub(crate) block_length: usize,
    /// Prefetch depth per open dataset (0: none, produced on the consumer's thread).
    pub(crate) prefetch: usize,
}

impl Source for Interleave {
    fn open(&self) -> Result<ElementIter> {
        let mut inputs = self.input.source().open()?;
        let f = self.f.clone();
        let (cycle, block, prefetch) = (
            self.cycle_length.max(1),
            self.block_length.max(1),
            self.prefetch,
        );
        let mut open: VecDeque<ElementIter> = VecDeque::new();
        let mut inputs_done = false;
        let mut in_block = 0usize;
        Ok(Box::new(std::iter::from_fn(move || loop {
            // Keep `cycle` datasets open while inputs last.
            while !inputs_done && open.len() < cycle {
                match inputs.next() {
                    None => inputs_done = true,
                    Some(Err(e)) => return Some(Err(e)),
                    Some(Ok(e)) => {
                        let ds = match f(e) {
                            Ok(d) => d,
                            Err(err) => return Some(Err(err)),
                        };
                        let ds = if prefetch > 0 {
                            ds.prefetch(prefetch)
                        } else {
                            ds
                        };
                        match ds.iter() {
                            Ok(it) => open.push_back(it),
                            Err(err) => return Some(Err(err)),
                        }
                    }
                }
            }
            let current = open.front_mut()?;
            match current.next() {
                Some(x) => {
                    in_block += 1;
                    if in_block >= block {
                        in_block = 0;
                        open.rotate_left(1);
                    }
                    return Some(x);
                }
                None => {
                    open.pop_front();
                    in_block = 0;
                }
            }
        })))
    }

    fn cardinality(&self) -> Cardinality {
        match self.input.cardinality() {
            Cardinality::Known(0) => Cardinality::Known(0),
            Cardinality::Infinite => Cardinality::Infinite,
            _ => Cardinality::Unknown,
        }
    }
}

pub(crate) struct Window {
    pub(crate) input: Dataset,
    pub(crate) size: usize,
    pub(crate) shift: usize,
    pub(crate) stride: usize,
    pub(crate) drop_remainder: bool,
}

impl Source for Window {
    fn open(&self) -> Result<ElementIter> {
        let mut upstream = self.input.source().open()?;
        let (size, shift, stride, drop_remainder) = (
            self.size,
            self.shift.max(1),
            self.stride.max(1),
            self.drop_remainder,
        );
        let span = (size - 1) * stride + 1;
        let mut buf: VecDeque<Element> = VecDeque::new();
        let mut done = false;
        Ok(Box::new(std::iter::from_fn(move || loop {
            while !done && buf.len() < span {
                match upstream.next() {
                    Some(Ok(e)) => buf.push_back(e),
                    Some(Err(e)) => return Some(Err(e)),
                    None => done = true,
                }
            }
            if buf.is_empty() {
                return None;
            }
            let items: Vec<Element> = buf.iter().step_by(stride).take(size).cloned().collect();
            if items.len() < size && drop_remainder {
                return None;
            }
            for _ in 0..shift.min(buf.len()) {
                buf.pop_front();
            }
            if shift > span {
                // Skip the elements between windows.
                for _ in 0..shift - span {
                    match upstream.next() {
                        Some(Ok(_)) => {}
                        Some(Err(e)) => return Some(Err(e)),
                        None => {
                            done = true;
                            break;
                        }
                    }
                }
            }
            if items.is_empty() {
                continue;
            }
            return Some(stack(&items, None));
        })))
    }

    fn cardinality(&self) -> Cardinality {
        let (size, shift, stride) = (
            self.size as u64,
            self.shift.max(1) as u64,
            self.stride.max(1) as u64,
        );
        let span = (size - 1) * stride + 1;
        let drop = self.drop_remainder;
        self.input.cardinality().map(|n| {
            if drop {
                if n < span {
                    0
                } else {
                    (n - span) / shift + 1
                }
            } else {
                n.div_ceil(shift)
            }
        })
    }
}
