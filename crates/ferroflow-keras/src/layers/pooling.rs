//! Pooling layers: max/average over windows (1-D and 2-D) and global pooling.

use super::common::{padding_name, read_padding, require_channels_last, window_output};
use crate::config::{ints, ConfigReader, Map};
use crate::layer::{format_dims, LayerBase, TensorSpec};
use ferroflow_core::ops::conv::Padding;
use ferroflow_core::{Error, Result, Tensor};
use serde_json::Value;

/// Window pooling shared by the four windowed layers.
struct Pool {
    base: LayerBase,
    class: &'static str,
    max: bool,
    rank: usize,
    pool_size: Vec<usize>,
    strides: Vec<usize>,
    padding: Padding,
}

impl Pool {
    fn new(class: &'static str, max: bool, rank: usize, pool_size: &[usize]) -> Self {
        let ps = if pool_size.len() == 1 {
            vec![pool_size[0]; rank]
        } else {
            pool_size.to_vec()
        };
        Pool {
            base: LayerBase::new(class, None),
            class,
            max,
            rank,
            strides: ps.clone(),
            pool_size: ps,
            padding: Padding::Valid,
        }
    }

    fn from_config(class: &'static str, max: bool, rank: usize, config: &Value) -> Result<Self> {
        let r = ConfigReader::new(class, config)?;
        let ps = r.tuple_or("pool_size", rank, &vec![2; rank])?;
        let mut p = Pool::new(class, max, rank, &ps);
        p.base = LayerBase::from_reader(class, &r);
        p.strides = r.tuple_or("strides", rank, &ps)?;
        p.padding = read_padding(&r)?;
        require_channels_last(&r)?;
        r.finish()?;
        if p.pool_size.contains(&0) || p.strides.contains(&0) {
            return Err(Error::invalid(
                class,
                "pool_size and strides must be positive",
            ));
        }
        Ok(p)
    }
}

impl super::Inner for Pool {
    fn class(&self) -> &'static str {
        self.class
    }

    fn base(&self) -> &LayerBase {
        &self.base
    }

    fn call(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() != self.rank + 2 {
            return Err(Error::invalid(
                self.class,
                format!(
                    "layer '{}' expects inputs of rank {}, got {:?}",
                    self.base.name(),
                    self.rank + 2,
                    x.shape()
                ),
            ));
        }
        match (self.rank, self.max) {
            (1, true) => x.max_pool1d(self.pool_size[0], self.strides[0], self.padding),
            (1, false) => x.avg_pool1d(self.pool_size[0], self.strides[0], self.padding),
            (_, true) => x.max_pool2d(
                (self.pool_size[0], self.pool_size[1]),
                (self.strides[0], self.strides[1]),
                self.padding,
            ),
            (_, false) => x.avg_pool2d(
                (self.pool_size[0], self.pool_size[1]),
                (self.strides[0], self.strides[1]),
                self.padding,
            ),
        }
    }

    fn spec(&self, input: &TensorSpec) -> Result<Vec<TensorSpec>> {
        let s = &input.shape;
        if s.len() != self.rank + 2 {
            return Err(Error::invalid(
                self.class,
                format!(
                    "layer '{}' expects inputs of rank {}, got {}",
                    self.base.name(),
                    self.rank + 2,
                    format_dims(s)
                ),
            ));
        }
        let mut out = vec![s[0]];
        for i in 0..self.rank {
            out.push(window_output(
                s[i + 1],
                self.pool_size[i],
                self.strides[i],
                1,
                self.padding,
            ));
        }
        out.push(s[self.rank + 1]);
        Ok(vec![TensorSpec::new(out, input.dtype)])
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("pool_size".into(), ints(&self.pool_size));
        m.insert("padding".into(), Value::from(padding_name(self.padding)));
        m.insert("strides".into(), ints(&self.strides));
        m.insert("data_format".into(), Value::from("channels_last"));
        m
    }
}

macro_rules! pool_layer {
    ($ty:ident, $class:literal, $max:expr, $rank:expr, $doc:literal) => {
        #[doc = $doc]
        pub struct $ty(Pool);

        impl $ty {
            /// A pooling layer with this window; strides default to the window.
            pub fn new(pool_size: &[usize]) -> Self {
                $ty(Pool::new($class, $max, $rank, pool_size))
            }

            /// Sets the strides.
            pub fn strides(mut self, s: &[usize]) -> Self {
                self.0.strides = if s.len() == 1 {
                    vec![s[0]; $rank]
                } else {
                    s.to_vec()
                };
                self
            }

            /// `"valid"` (default) or `"same"` padding.
            pub fn padding(mut self, p: Padding) -> Self {
                self.0.padding = p;
                self
            }

            /// Gives the layer a name.
            pub fn name(mut self, name: &str) -> Self {
                self.0.base.set_name(name);
                self
            }

            /// Rebuilds from a Keras config.
            pub fn from_config(config: &Value) -> Result<Self> {
                Ok($ty(Pool::from_config($class, $max, $rank, config)?))
            }
        }

        super::newtype_layer!($ty);
    };
}

pool_layer!(
    MaxPooling1D,
    "MaxPooling1D",
    true,
    1,
    "Max pooling over steps (`keras.layers.MaxPooling1D`)."
);
pool_layer!(
    MaxPooling2D,
    "MaxPooling2D",
    true,
    2,
    "Max pooling over NHWC windows (`keras.layers.MaxPooling2D`)."
);
pool_layer!(
    AveragePooling1D,
    "AveragePooling1D",
    false,
    1,
    "Average pooling over steps (`keras.layers.AveragePooling1D`)."
);
pool_layer!(
    AveragePooling2D,
    "AveragePooling2D",
    false,
    2,
    "Average pooling over NHWC windows, padding excluded from the count (`keras.layers.AveragePooling2D`)."
);

/// Global pooling over all spatial axes.
struct Global {
    base: LayerBase,
    class: &'static str,
    max: bool,
    rank: usize,
    keepdims: bool,
}

impl Global {
    fn from_config(class: &'static str, max: bool, rank: usize, config: &Value) -> Result<Self> {
        let r = ConfigReader::new(class, config)?;
        require_channels_last(&r)?;
        let g = Global {
            base: LayerBase::from_reader(class, &r),
            class,
            max,
            rank,
            keepdims: r.bool_or("keepdims", false)?,
        };
        r.finish()?;
        Ok(g)
    }
}

impl super::Inner for Global {
    fn class(&self) -> &'static str {
        self.class
    }

    fn base(&self) -> &LayerBase {
        &self.base
    }

    fn call(&self, x: &Tensor) -> Result<Tensor> {
        if x.rank() != self.rank + 2 {
            return Err(Error::invalid(
                self.class,
                format!(
                    "layer '{}' expects inputs of rank {}, got {:?}",
                    self.base.name(),
                    self.rank + 2,
                    x.shape()
                ),
            ));
        }
        let axes: Vec<isize> = (1..=self.rank as isize).collect();
        if self.max {
            x.max(axes, self.keepdims)
        } else {
            x.mean(axes, self.keepdims)
        }
    }

    /// Average pooling over steps counts only the steps the mask keeps (as Keras's
    /// `GlobalAveragePooling1D`; a row with none is 0/0); other global poolings ignore it.
    fn call_masked(&self, x: &Tensor, mask: &Tensor) -> Result<Tensor> {
        if self.max || self.rank != 1 || x.rank() != 3 || mask.shape() != &x.shape()[..2] {
            return self.call(x);
        }
        let m =
            mask.cast(x.dtype())?
                .reshape(&[x.shape()[0] as isize, x.shape()[1] as isize, 1])?;
        x.mul(&m)?
            .sum(1, self.keepdims)?
            .div(&m.sum(1, self.keepdims)?)
    }

    fn spec(&self, input: &TensorSpec) -> Result<Vec<TensorSpec>> {
        let s = &input.shape;
        if s.len() != self.rank + 2 {
            return Err(Error::invalid(
                self.class,
                format!(
                    "layer '{}' expects inputs of rank {}, got {}",
                    self.base.name(),
                    self.rank + 2,
                    format_dims(s)
                ),
            ));
        }
        let out = if self.keepdims {
            let mut o = vec![s[0]];
            o.extend(std::iter::repeat_n(Some(1), self.rank));
            o.push(s[self.rank + 1]);
            o
        } else {
            vec![s[0], s[self.rank + 1]]
        };
        Ok(vec![TensorSpec::new(out, input.dtype)])
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert("data_format".into(), Value::from("channels_last"));
        m.insert("keepdims".into(), Value::from(self.keepdims));
        m
    }
}

macro_rules! global_layer {
    ($ty:ident, $class:literal, $max:expr, $rank:expr, $doc:literal) => {
        #[doc = $doc]
        pub struct $ty(Global);

        impl $ty {
            /// A global pooling layer (`keepdims=False`).
            pub fn new() -> Self {
                $ty(Global {
                    base: LayerBase::new($class, None),
                    class: $class,
                    max: $max,
                    rank: $rank,
                    keepdims: false,
                })
            }

            /// Keeps the pooled axes with size 1.
            pub fn keepdims(mut self, on: bool) -> Self {
                self.0.keepdims = on;
                self
            }

            /// Gives the layer a name.
            pub fn name(mut self, name: &str) -> Self {
                self.0.base.set_name(name);
                self
            }

            /// Rebuilds from a Keras config.
            pub fn from_config(config: &Value) -> Result<Self> {
                Ok($ty(Global::from_config($class, $max, $rank, config)?))
            }
        }

        impl Default for $ty {
            fn default() -> Self {
                Self::new()
            }
        }

        super::newtype_layer!($ty);
    };
}

global_layer!(
    GlobalAveragePooling1D,
    "GlobalAveragePooling1D",
    false,
    1,
    "Mean over steps (`keras.layers.GlobalAveragePooling1D`)."
);
global_layer!(
    GlobalAveragePooling2D,
    "GlobalAveragePooling2D",
    false,
    2,
    "Mean over rows and columns (`keras.layers.GlobalAveragePooling2D`)."
);
global_layer!(
    GlobalMaxPooling1D,
    "GlobalMaxPooling1D",
    true,
    1,
    "Max over steps (`keras.layers.GlobalMaxPooling1D`)."
);
global_layer!(
    GlobalMaxPooling2D,
    "GlobalMaxPooling2D",
    true,
    2,
    "Max over rows and columns (`keras.layers.GlobalMaxPooling2D`)."
);
