//! `tf.train.Example` protobufs: building and encoding them, and parsing them into tensors
//! with a feature spec (`tf.io.parse_single_example`).

use crate::Element;
use ferroflow_core::{DType, Error, Result, Tensor};
use prost::Message;
use std::collections::{BTreeMap, HashMap};

/// `tensorflow.BytesList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BytesList {
    /// The values.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub value: Vec<Vec<u8>>,
}

/// `tensorflow.FloatList`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct FloatList {
    /// The values.
    #[prost(float, repeated, tag = "1")]
    pub value: Vec<f32>,
}

/// `tensorflow.Int64List`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Int64List {
    /// The values.
    #[prost(int64, repeated, tag = "1")]
    pub value: Vec<i64>,
}

/// The value of one feature (`tensorflow.Feature.kind`).
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Kind {
    /// Byte strings.
    #[prost(message, tag = "1")]
    BytesList(BytesList),
    /// Floats.
    #[prost(message, tag = "2")]
    FloatList(FloatList),
    /// Integers.
    #[prost(message, tag = "3")]
    Int64List(Int64List),
}

/// `tensorflow.Feature`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Feature {
    /// The list it holds.
    #[prost(oneof = "Kind", tags = "1, 2, 3")]
    pub kind: Option<Kind>,
}

/// `tensorflow.Features`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Features {
    /// Features by name.
    #[prost(map = "string, message", tag = "1")]
    pub feature: HashMap<String, Feature>,
}

/// `tensorflow.Example`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Example {
    /// The features.
    #[prost(message, optional, tag = "1")]
    pub features: Option<Features>,
}

impl Example {
    /// An empty example.
    pub fn builder() -> Example {
        Example {
            features: Some(Features::default()),
        }
    }

    fn put(mut self, name: &str, kind: Kind) -> Example {
        self.features
            .get_or_insert_with(Features::default)
            .feature
            .insert(name.to_string(), Feature { kind: Some(kind) });
        self
    }

    /// Adds a float feature.
    pub fn floats(self, name: &str, values: &[f32]) -> Example {
        self.put(
            name,
            Kind::FloatList(FloatList {
                value: values.to_vec(),
            }),
        )
    }

    /// Adds an int64 feature.
    pub fn ints(self, name: &str, values: &[i64]) -> Example {
        self.put(
            name,
            Kind::Int64List(Int64List {
                value: values.to_vec(),
            }),
        )
    }

    /// Adds a bytes feature.
    pub fn bytes(self, name: &str, values: Vec<Vec<u8>>) -> Example {
        self.put(name, Kind::BytesList(BytesList { value: values }))
    }

    /// The serialised protobuf.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_to_vec()
    }

    /// Parses a serialised example.
    pub fn decode_bytes(bytes: &[u8]) -> Result<Example> {
        Example::decode(bytes)
            .map_err(|e| Error::invalid("parse_example", format!("not a tf.train.Example: {e}")))
    }
}

/// How to read one feature (`tf.io.FixedLenFeature` / `VarLenFeature`).
#[derive(Clone, Debug)]
pub enum FeatureSpec {
    /// A fixed number of values reshaped to `shape`; `default` fills a missing feature.
    FixedLen {
        /// The tensor shape.
        shape: Vec<usize>,
        /// `F32`, `I64`, `String` (each bytes value one string, as TF's `tf.string`) or
        /// `U8` (a single bytes value as raw bytes).
        dtype: DType,
        /// Value used when the feature is missing.
        default: Option<Tensor>,
    },
    /// Any number of values, as a 1-D tensor.
    VarLen {
        /// `F32`, `I64`, `String` or `U8`.
        dtype: DType,
    },
}

fn values_of(name: &str, f: &Feature, dtype: DType) -> Result<Tensor> {
    match (&f.kind, dtype) {
        (Some(Kind::FloatList(l)), DType::F32) => {
            Tensor::from_vec(l.value.clone(), &[l.value.len()])
        }
        (Some(Kind::Int64List(l)), DType::I64) => {
            Tensor::from_vec(l.value.clone(), &[l.value.len()])
        }
        (Some(Kind::BytesList(l)), DType::String) => {
            Tensor::from_strings(&l.value, &[l.value.len()])
        }
        (Some(Kind::BytesList(l)), DType::U8) => {
            let joined: Vec<u8> = l.value.concat();
            let n = joined.len();
            Tensor::from_vec(joined, &[n])
        }
        (None, _) => Tensor::zeros(&[0], dtype),
        (kind, d) => Err(Error::invalid(
            "parse_example",
            format!(
                "feature '{name}' holds {} but the spec asks for {d}",
                match kind {
                    Some(Kind::FloatList(_)) => "floats",
                    Some(Kind::Int64List(_)) => "int64s",
                    Some(Kind::BytesList(_)) => "bytes",
                    None => "nothing",
                }
            ),
        )),
    }
}

/// Parses a serialised `tf.train.Example` into a map of tensors following `spec`.
pub fn parse_example(bytes: &[u8], spec: &[(&str, FeatureSpec)]) -> Result<Element> {
    let ex = Example::decode_bytes(bytes)?;
    let features = ex.features.unwrap_or_default().feature;
    let mut out = BTreeMap::new();
    for (name, s) in spec {
        let t = match (s, features.get(*name)) {
            (
                FeatureSpec::FixedLen {
                    shape,
                    dtype,
                    default,
                },
                found,
            ) => {
                let v = match (found, default) {
                    (Some(f), _) => values_of(name, f, *dtype)?,
                    (None, Some(d)) => d.clone(),
                    (None, None) => {
                        return Err(Error::invalid(
                            "parse_example",
                            format!("feature '{name}' is missing and has no default"),
                        ))
                    }
                };
                let want: usize = shape.iter().product();
                if v.numel() != want {
                    return Err(Error::invalid(
                        "parse_example",
                        format!("feature '{name}' has {} values, the spec's shape {shape:?} needs {want}", v.numel()),
                    ));
                }
                v.reshape_to(shape)?
            }
            (FeatureSpec::VarLen { dtype }, Some(f)) => values_of(name, f, *dtype)?,
            (FeatureSpec::VarLen { dtype }, None) => Tensor::zeros(&[0], *dtype)?,
        };
        out.insert(name.to_string(), Element::Tensor(t));
    }
    Ok(Element::Map(out))
}
