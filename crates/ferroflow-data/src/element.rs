//! [`Element`]: one item of a dataset — a tensor, a tuple of elements or a map of named
//! elements (TF's nested structures).

use ferroflow_core::{Error, Result, Tensor};
use std::collections::BTreeMap;

/// A dataset element: a tensor or a nested tuple/map of tensors.
#[derive(Clone, Debug)]
pub enum Element {
    /// One tensor.
    Tensor(Tensor),
    /// A tuple, e.g. `(features, label)`.
    Tuple(Vec<Element>),
    /// Named components, e.g. the features of a `tf.train.Example`.
    Map(BTreeMap<String, Element>),
}

impl From<Tensor> for Element {
    fn from(t: Tensor) -> Self {
        Element::Tensor(t)
    }
}

impl<A: Into<Element>, B: Into<Element>> From<(A, B)> for Element {
    fn from((a, b): (A, B)) -> Self {
        Element::Tuple(vec![a.into(), b.into()])
    }
}

impl<A: Into<Element>, B: Into<Element>, C: Into<Element>> From<(A, B, C)> for Element {
    fn from((a, b, c): (A, B, C)) -> Self {
        Element::Tuple(vec![a.into(), b.into(), c.into()])
    }
}

impl From<Vec<Element>> for Element {
    fn from(v: Vec<Element>) -> Self {
        Element::Tuple(v)
    }
}

impl From<BTreeMap<String, Element>> for Element {
    fn from(m: BTreeMap<String, Element>) -> Self {
        Element::Map(m)
    }
}

impl Element {
    /// The tensor, if this element is one.
    pub fn tensor(&self) -> Result<&Tensor> {
        match self {
            Element::Tensor(t) => Ok(t),
            other => Err(Error::invalid(
                "Element",
                format!("expected a tensor, got {}", other.structure()),
            )),
        }
    }

    /// Component `i` of a tuple.
    pub fn get(&self, i: usize) -> Result<&Element> {
        match self {
            Element::Tuple(v) => v.get(i).ok_or_else(|| {
                Error::invalid(
                    "Element",
                    format!("tuple of {} has no component {i}", v.len()),
                )
            }),
            other => Err(Error::invalid(
                "Element",
                format!("expected a tuple, got {}", other.structure()),
            )),
        }
    }

    /// Component `key` of a map.
    pub fn field(&self, key: &str) -> Result<&Element> {
        match self {
            Element::Map(m) => m.get(key).ok_or_else(|| {
                Error::invalid(
                    "Element",
                    format!(
                        "no component '{key}' (have {:?})",
                        m.keys().collect::<Vec<_>>()
                    ),
                )
            }),
            other => Err(Error::invalid(
                "Element",
                format!("expected a map, got {}", other.structure()),
            )),
        }
    }

    /// The tensors in a fixed depth-first order (map keys sorted).
    pub fn flatten(&self) -> Vec<&Tensor> {
        let mut out = Vec::new();
        self.flatten_into(&mut out);
        out
    }

    fn flatten_into<'a>(&'a self, out: &mut Vec<&'a Tensor>) {
        match self {
            Element::Tensor(t) => out.push(t),
            Element::Tuple(v) => v.iter().for_each(|e| e.flatten_into(out)),
            Element::Map(m) => m.values().for_each(|e| e.flatten_into(out)),
        }
    }

    /// Rebuilds an element of the same structure from tensors in [`Element::flatten`] order.
    pub fn rebuild(&self, tensors: &mut impl Iterator<Item = Tensor>) -> Result<Element> {
        Ok(match self {
            Element::Tensor(_) => Element::Tensor(
                tensors
                    .next()
                    .ok_or_else(|| Error::invalid("Element", "too few tensors to rebuild"))?,
            ),
            Element::Tuple(v) => Element::Tuple(
                v.iter()
                    .map(|e| e.rebuild(tensors))
                    .collect::<Result<_>>()?,
            ),
            Element::Map(m) => Element::Map(
                m.iter()
                    .map(|(k, e)| Ok((k.clone(), e.rebuild(tensors)?)))
                    .collect::<Result<_>>()?,
            ),
        })
    }

    /// Applies `f` to every tensor, keeping the structure.
    pub fn map_tensors(&self, f: &mut impl FnMut(&Tensor) -> Result<Tensor>) -> Result<Element> {
        Ok(match self {
            Element::Tensor(t) => Element::Tensor(f(t)?),
            Element::Tuple(v) => {
                Element::Tuple(v.iter().map(|e| e.map_tensors(f)).collect::<Result<_>>()?)
            }
            Element::Map(m) => Element::Map(
                m.iter()
                    .map(|(k, e)| Ok((k.clone(), e.map_tensors(f)?)))
                    .collect::<Result<_>>()?,
            ),
        })
    }

    /// A short description of the structure and shapes, for errors: `(f32[28,28], i64[])`.
    pub fn structure(&self) -> String {
        match self {
            Element::Tensor(t) => format!("{}{:?}", t.dtype(), t.shape()),
            Element::Tuple(v) => format!(
                "({})",
                v.iter()
                    .map(Element::structure)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Element::Map(m) => format!(
                "{{{}}}",
                m.iter()
                    .map(|(k, e)| format!("{k}: {}", e.structure()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// Whether two elements have the same nesting (ignoring shapes).
    pub fn same_structure(&self, other: &Element) -> bool {
        match (self, other) {
            (Element::Tensor(_), Element::Tensor(_)) => true,
            (Element::Tuple(a), Element::Tuple(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same_structure(y))
            }
            (Element::Map(a), Element::Map(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .zip(b)
                        .all(|((k, x), (l, y))| k == l && x.same_structure(y))
            }
            _ => false,
        }
    }

    /// Approximate size in bytes (for memory budgets).
    pub fn nbytes(&self) -> usize {
        self.flatten()
            .iter()
            .map(|t| t.numel() * t.dtype().size_in_bytes())
            .sum()
    }
}
