//! Datasets made from data: tensor slices, whole tensors, ranges, generators, and the
//! combinations `zip` and `concatenate`.

use crate::source::{Cardinality, ElementIter, Source};
use crate::{Dataset, Element};
use ferroflow_core::{Error, Result, Tensor};
use std::sync::Arc;

/// The slices of a structure of tensors along their first dimension.
pub(crate) struct Slices {
    pub(crate) element: Element,
    pub(crate) len: usize,
}

impl Slices {
    pub(crate) fn new(element: Element) -> Result<Self> {
        let tensors = element.flatten();
        let first = tensors
            .first()
            .ok_or_else(|| Error::invalid("from_tensor_slices", "no tensors given"))?;
        if first.rank() == 0 {
            return Err(Error::invalid(
                "from_tensor_slices",
                "tensors need a first dimension to slice",
            ));
        }
        let len = first.shape()[0];
        if let Some(bad) = tensors
            .iter()
            .find(|t| t.rank() == 0 || t.shape()[0] != len)
        {
            return Err(Error::invalid(
                "from_tensor_slices",
                format!(
                    "all components need the same first dimension: {} vs {:?}",
                    len,
                    bad.shape()
                ),
            ));
        }
        // Contiguous copies so that every slice is a cheap view.
        let element = element.map_tensors(&mut |t| Ok(t.contiguous()))?;
        Ok(Slices { element, len })
    }
}

/// Row `i` of `t` as a view.
pub(crate) fn row(t: &Tensor, i: usize) -> Result<Tensor> {
    let mut begin = vec![0; t.rank()];
    begin[0] = i;
    let mut size: Vec<isize> = vec![-1; t.rank()];
    size[0] = 1;
    t.slice(&begin, &size)?.squeeze(&[0])
}

impl Source for Slices {
    fn open(&self) -> Result<ElementIter> {
        let element = self.element.clone();
        Ok(Box::new(
            (0..self.len).map(move |i| element.map_tensors(&mut |t| row(t, i))),
        ))
    }

    fn cardinality(&self) -> Cardinality {
        Cardinality::Known(self.len as u64)
    }
}

/// One element, the whole structure (`from_tensors`).
pub(crate) struct Single(pub(crate) Element);

impl Source for Single {
    fn open(&self) -> Result<ElementIter> {
        Ok(Box::new(std::iter::once(Ok(self.0.clone()))))
    }

    fn cardinality(&self) -> Cardinality {
        Cardinality::Known(1)
    }
}

/// `range(start, stop, step)` as int64 scalars.
pub(crate) struct Range {
    pub(crate) start: i64,
    pub(crate) stop: i64,
    pub(crate) step: i64,
}

impl Range {
    fn count(&self) -> u64 {
        if self.step > 0 && self.stop > self.start {
            ((self.stop - self.start + self.step - 1) / self.step) as u64
        } else if self.step < 0 && self.stop < self.start {
            ((self.start - self.stop - self.step - 1) / -self.step) as u64
        } else {
            0
        }
    }
}

impl Source for Range {
    fn open(&self) -> Result<ElementIter> {
        let (start, step, n) = (self.start, self.step, self.count());
        Ok(Box::new((0..n).map(move |k| {
            Ok(Element::Tensor(Tensor::scalar(start + k as i64 * step)))
        })))
    }

    fn cardinality(&self) -> Cardinality {
        Cardinality::Known(self.count())
    }
}

/// A generator: a factory of iterators, called once per pass.
pub(crate) struct Generator {
    pub(crate) make: Arc<dyn Fn() -> ElementIter + Send + Sync>,
}

impl Source for Generator {
    fn open(&self) -> Result<ElementIter> {
        Ok((self.make)())
    }

    fn cardinality(&self) -> Cardinality {
        Cardinality::Unknown
    }
}

/// Elements of several datasets side by side, as tuples (`Dataset.zip`).
pub(crate) struct Zip(pub(crate) Vec<Dataset>);

impl Source for Zip {
    fn open(&self) -> Result<ElementIter> {
        let mut iters = self
            .0
            .iter()
            .map(|d| d.source().open())
            .collect::<Result<Vec<_>>>()?;
        Ok(Box::new(std::iter::from_fn(move || {
            let mut parts = Vec::with_capacity(iters.len());
            for it in iters.iter_mut() {
                match it.next()? {
                    Ok(e) => parts.push(e),
                    Err(e) => return Some(Err(e)),
                }
            }
            Some(Ok(Element::Tuple(parts)))
        })))
    }

    fn cardinality(&self) -> Cardinality {
        let cs: Vec<Cardinality> = self.0.iter().map(Dataset::cardinality).collect();
        if let Some(n) = cs.iter().filter_map(|c| c.known()).min() {
            return Cardinality::Known(n);
        }
        if cs.iter().all(|c| *c == Cardinality::Infinite) {
            Cardinality::Infinite
        } else {
            Cardinality::Unknown
        }
    }
}

/// One dataset after another (`concatenate`).
pub(crate) struct Concat(pub(crate) Dataset, pub(crate) Dataset);

impl Source for Concat {
    fn open(&self) -> Result<ElementIter> {
        let first = self.0.source().open()?;
        let second = self.1.clone();
        let mut tail: Option<ElementIter> = None;
        let mut first = Some(first);
        Ok(Box::new(std::iter::from_fn(move || {
            if let Some(f) = first.as_mut() {
                if let Some(x) = f.next() {
                    return Some(x);
                }
                first = None;
                match second.source().open() {
                    Ok(t) => tail = Some(t),
                    Err(e) => return Some(Err(e)),
                }
            }
            tail.as_mut()?.next()
        })))
    }

    fn cardinality(&self) -> Cardinality {
        match (self.0.cardinality(), self.1.cardinality()) {
            (Cardinality::Known(a), Cardinality::Known(b)) => Cardinality::Known(a + b),
            (Cardinality::Infinite, _) | (_, Cardinality::Infinite) => Cardinality::Infinite,
            _ => Cardinality::Unknown,
        }
    }
}

/// A scalar int64 element.
pub(crate) fn index_element(i: u64) -> Element {
    Element::Tensor(Tensor::scalar(i as i64))
}
