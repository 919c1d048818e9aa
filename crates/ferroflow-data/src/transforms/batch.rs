//! `batch`, `padded_batch`, `unbatch` and `rebatch`.

use crate::source::{Cardinality, ElementIter, Source};
use crate::sources::row;
use crate::{Dataset, Element};
use ferroflow_core::ops::remap::PadMode;
use ferroflow_core::{Error, Result, Tensor};

/// Stacks `elements` (same structure) component by component; with `pad`, first pads every
/// component to the largest shape in the batch (or `pad_to` where given) with `pad_value`.
pub(crate) fn stack(
    elements: &[Element],
    pad: Option<(&Option<Vec<Option<usize>>>, f64)>,
) -> Result<Element> {
    let first = &elements[0];
    for e in elements {
        if !e.same_structure(first) {
            return Err(Error::invalid(
                "batch",
                format!(
                    "elements differ in structure: {} vs {}",
                    first.structure(),
                    e.structure()
                ),
            ));
        }
    }
    let columns: Vec<Vec<&Tensor>> = {
        let flat: Vec<Vec<&Tensor>> = elements.iter().map(Element::flatten).collect();
        (0..flat[0].len())
            .map(|k| flat.iter().map(|f| f[k]).collect())
            .collect()
    };
    let mut stacked = Vec::with_capacity(columns.len());
    for col in columns {
        let rank = col[0].rank();
        if col
            .iter()
            .any(|t| t.rank() != rank || t.dtype() != col[0].dtype())
        {
            return Err(Error::invalid(
                "batch",
                format!(
                    "components differ in rank or dtype: {:?} {} vs {:?} {}",
                    col[0].shape(),
                    col[0].dtype(),
                    col.iter()
                        .find(|t| t.rank() != rank || t.dtype() != col[0].dtype())
                        .map(|t| t.shape().to_vec()),
                    col[0].dtype()
                ),
            ));
        }
        let parts: Vec<Tensor> = match pad {
            None => {
                if let Some(t) = col.iter().find(|t| t.shape() != col[0].shape()) {
                    return Err(Error::invalid(
                        "batch",
                        format!(
                            "cannot batch components of shapes {:?} and {:?} (use padded_batch)",
                            col[0].shape(),
                            t.shape()
                        ),
                    ));
                }
                col.iter().map(|t| (*t).clone()).collect()
            }
            Some((shape, value)) => {
                let mut target: Vec<usize> = (0..rank)
                    .map(|d| col.iter().map(|t| t.shape()[d]).max().unwrap_or(0))
                    .collect();
                if let Some(s) = shape {
                    if s.len() != rank {
                        return Err(Error::invalid(
                            "padded_batch",
                            format!("padded shape {s:?} for components of rank {rank}"),
                        ));
                    }
                    for (d, want) in s.iter().enumerate() {
                        if let Some(w) = want {
                            if *w < target[d] {
                                return Err(Error::invalid("padded_batch", format!("a component of size {} does not fit padded size {w} on axis {d}", target[d])));
                            }
                            target[d] = *w;
                        }
                    }
                }
                col.iter()
                    .map(|t| {
                        let p: Vec<(usize, usize)> = t
                            .shape()
                            .iter()
                            .zip(&target)
                            .map(|(&have, &want)| (0, want - have))
                            .collect();
                        t.pad(&p, PadMode::Constant(value))
                    })
                    .collect::<Result<_>>()?
            }
        };
        stacked.push(Tensor::stack(&parts, 0)?);
    }
    first.rebuild(&mut stacked.into_iter())
}

pub(crate) struct Batch {
    pub(crate) input: Dataset,
    pub(crate) size: usize,
    pub(crate) drop_remainder: bool,
    pub(crate) padding: Option<(Option<Vec<Option<usize>>>, f64)>,
}

impl Source for Batch {
    fn input(&self) -> Option<&Dataset> {
        Some(&self.input)
    }

    fn with_input(&self, input: Dataset) -> Option<Dataset> {
        Some(Dataset::from_source(Batch {
            input,
            size: self.size,
            drop_remainder: self.drop_remainder,
            padding: self.padding.clone(),
        }))
    }

    fn open(&self) -> Result<ElementIter> {
        let mut upstream = self.input.source().open()?;
        let (size, drop_remainder, padding) =
            (self.size, self.drop_remainder, self.padding.clone());
        Ok(Box::new(std::iter::from_fn(move || {
            let mut items = Vec::with_capacity(size);
            while items.len() < size {
                match upstream.next() {
                    Some(Ok(e)) => items.push(e),
                    Some(Err(e)) => return Some(Err(e)),
                    None => break,
                }
            }
            if items.is_empty() || (drop_remainder && items.len() < size) {
                return None;
            }
            Some(stack(&items, padding.as_ref().map(|(s, v)| (s, *v))))
        })))
    }

    fn cardinality(&self) -> Cardinality {
        let n = self.size as u64;
        if self.drop_remainder {
            self.input.cardinality().map(|c| c / n)
        } else {
            self.input.cardinality().map(|c| c.div_ceil(n))
        }
    }
}

/// Splits every element along its first dimension (`unbatch`).
pub(crate) struct Unbatch(pub(crate) Dataset);

/// The rows of a batched element.
pub(crate) fn rows(e: &Element) -> Result<Vec<Element>> {
    let tensors = e.flatten();
    let n = tensors
        .first()
        .map_or(0, |t| t.shape().first().copied().unwrap_or(0));
    if tensors.iter().any(|t| t.rank() == 0 || t.shape()[0] != n) {
        return Err(Error::invalid(
            "unbatch",
            format!(
                "components need a common first dimension: {}",
                e.structure()
            ),
        ));
    }
    (0..n).map(|i| e.map_tensors(&mut |t| row(t, i))).collect()
}

impl Source for Unbatch {
    fn open(&self) -> Result<ElementIter> {
        let upstream = self.0.source().open()?;
        Ok(Box::new(upstream.flat_map(|e| -> Vec<Result<Element>> {
            match e.and_then(|e| rows(&e)) {
                Ok(v) => v.into_iter().map(Ok).collect(),
                Err(err) => vec![Err(err)],
            }
        })))
    }

    fn cardinality(&self) -> Cardinality {
        match self.0.cardinality() {
            Cardinality::Infinite => Cardinality::Infinite,
            _ => Cardinality::Unknown,
        }
    }
}
