//! `repeat`, `take`, `skip`, `shard`, `enumerate`.

use crate::source::{Cardinality, ElementIter, Source};
use crate::sources::index_element;
use crate::{Dataset, Element};
use ferroflow_core::Result;

pub(crate) struct Repeat {
    pub(crate) input: Dataset,
    pub(crate) count: Option<u64>,
}

impl Source for Repeat {
    fn input(&self) -> Option<&Dataset> {
        Some(&self.input)
    }

    fn with_input(&self, input: Dataset) -> Option<Dataset> {
        Some(Dataset::from_source(Repeat {
            input,
            count: self.count,
        }))
    }

    fn open(&self) -> Result<ElementIter> {
        let input = self.input.clone();
        let count = self.count;
        let mut pass = 0u64;
        let mut current: Option<ElementIter> = None;
        let mut yielded_this_pass = false;
        Ok(Box::new(std::iter::from_fn(move || loop {
            if current.is_none() {
                if count.is_some_and(|c| pass >= c) {
                    return None;
                }
                match input.source().open() {
                    Ok(it) => current = Some(it),
                    Err(e) => {
                        pass = u64::MAX;
                        return Some(Err(e));
                    }
                }
                yielded_this_pass = false;
            }
            match current.as_mut().and_then(Iterator::next) {
                Some(x) => {
                    yielded_this_pass = true;
                    return Some(x);
                }
                None => {
                    current = None;
                    pass += 1;
                    // An empty input repeated forever would spin; stop instead.
                    if !yielded_this_pass {
                        return None;
                    }
                }
            }
        })))
    }

    fn cardinality(&self) -> Cardinality {
        match (self.input.cardinality(), self.count) {
            (Cardinality::Known(0), _) => Cardinality::Known(0),
            (c, Some(k)) => c.map(|n| n * k),
            (Cardinality::Unknown, None) => Cardinality::Unknown,
            (_, None) => Cardinality::Infinite,
        }
    }
}

pub(crate) struct Take {
    pub(crate) input: Dataset,
    pub(crate) count: u64,
}

impl Source for Take {
    fn input(&self) -> Option<&Dataset> {
        Some(&self.input)
    }

    fn with_input(&self, input: Dataset) -> Option<Dataset> {
        Some(Dataset::from_source(Take {
            input,
            count: self.count,
        }))
    }

    fn open(&self) -> Result<ElementIter> {
        Ok(Box::new(
            self.input.source().open()?.take(self.count as usize),
        ))
    }

    fn cardinality(&self) -> Cardinality {
        match self.input.cardinality() {
            Cardinality::Known(n) => Cardinality::Known(n.min(self.count)),
            Cardinality::Infinite => Cardinality::Known(self.count),
            Cardinality::Unknown => Cardinality::Unknown,
        }
    }
}

pub(crate) struct Skip {
    pub(crate) input: Dataset,
    pub(crate) count: u64,
}

impl Source for Skip {
    fn input(&self) -> Option<&Dataset> {
        Some(&self.input)
    }

    fn with_input(&self, input: Dataset) -> Option<Dataset> {
        Some(Dataset::from_source(Skip {
            input,
            count: self.count,
        }))
    }

    fn open(&self) -> Result<ElementIter> {
        Ok(Box::new(
            self.input.source().open()?.skip(self.count as usize),
        ))
    }

    fn cardinality(&self) -> Cardinality {
        self.input
            .cardinality()
            .map(|n| n.saturating_sub(self.count))
    }
}

pub(crate) struct Shard {
    pub(crate) input: Dataset,
    pub(crate) num: u64,
    pub(crate) index: u64,
}

impl Source for Shard {
    fn open(&self) -> Result<ElementIter> {
        let (num, index) = (self.num, self.index);
        Ok(Box::new(
            self.input
                .source()
                .open()?
                .enumerate()
                .filter(move |(i, _)| *i as u64 % num == index)
                .map(|(_, e)| e),
        ))
    }

    fn cardinality(&self) -> Cardinality {
        let (num, index) = (self.num, self.index);
        self.input.cardinality().map(|n| {
            if n > index {
                (n - index).div_ceil(num)
            } else {
                0
            }
        })
    }
}

pub(crate) struct Enumerate {
    pub(crate) input: Dataset,
    pub(crate) start: u64,
}

impl Source for Enumerate {
    fn open(&self) -> Result<ElementIter> {
        let start = self.start;
        Ok(Box::new(self.input.source().open()?.enumerate().map(
            move |(i, e)| e.map(|e| Element::Tuple(vec![index_element(start + i as u64), e])),
        )))
    }

    fn cardinality(&self) -> Cardinality {
        self.input.cardinality()
    }
}
