//! Keras config plumbing: the JSON shapes Keras 3 uses for layer configs and serialised
//! objects, and a reader that rejects unknown or unsupported options by name.

use ferroflow_core::{Error, Result};
use serde_json::Value;
use std::cell::RefCell;
use std::collections::HashSet;

/// A JSON object (Keras config dict).
pub type Map = serde_json::Map<String, Value>;

/// Keras 3's dtype policy object for a layer config: `{"module": "keras", "class_name":
/// "DTypePolicy", "config": {"name": "float32"}, "registered_name": null}`.
pub fn dtype_policy(name: &str) -> Value {
    serialized("keras", "DTypePolicy", obj([("name", Value::from(name))]))
}

/// Keras's `serialize_keras_object` envelope.
pub fn serialized(module: &str, class_name: &str, config: Map) -> Value {
    Value::Object(obj([
        ("module", Value::from(module)),
        ("class_name", Value::from(class_name)),
        ("config", Value::Object(config)),
        ("registered_name", Value::Null),
    ]))
}

/// The class name and config of a serialised object, or a bare string name with no config.
pub fn class_and_config(v: &Value) -> (&str, Option<&Value>) {
    match v {
        Value::String(s) => (s.as_str(), None),
        Value::Object(m) => (
            m.get("class_name").and_then(Value::as_str).unwrap_or(""),
            m.get("config"),
        ),
        _ => ("", None),
    }
}

/// A JSON object from key/value pairs.
pub fn obj<const N: usize>(pairs: [(&str, Value); N]) -> Map {
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A JSON array of integers.
pub fn ints(v: &[usize]) -> Value {
    Value::Array(v.iter().map(|&x| Value::from(x)).collect())
}

/// A JSON array of optional integers (`null` for unknown dims).
pub fn dims_json(v: &[Option<usize>]) -> Value {
    Value::Array(
        v.iter()
            .map(|x| x.map_or(Value::Null, Value::from))
            .collect(),
    )
}

/// Reads a layer config, remembering which keys were used, so that leftover keys can be
/// reported (`Dense: unknown option 'foo'`) instead of silently ignored.
pub struct ConfigReader<'a> {
    class: &'static str,
    map: &'a Map,
    used: RefCell<HashSet<String>>,
}

impl<'a> ConfigReader<'a> {
    /// A reader over `config` for class `class`; the base keys (name, trainable, dtype) are
    /// taken as used.
    pub fn new(class: &'static str, config: &'a Value) -> Result<Self> {
        Self::with_dtypes(class, config, &["float32"])
    }

    /// [`ConfigReader::new`] for a layer whose dtype policy may be any of `dtypes`.
    pub fn with_dtypes(class: &'static str, config: &'a Value, dtypes: &[&str]) -> Result<Self> {
        let map = config.as_object().ok_or_else(|| {
            Error::invalid(class, format!("config must be a JSON object, got {config}"))
        })?;
        let r = ConfigReader {
            class,
            map,
            used: RefCell::new(HashSet::new()),
        };
        for k in ["trainable", "dtype", "name"] {
            r.used.borrow_mut().insert(k.to_string());
        }
        if let Some(d) = map.get("dtype") {
            let name = d
                .get("config")
                .and_then(|c| c.get("name"))
                .or(Some(d))
                .and_then(Value::as_str);
            if let Some(n) = name {
                if !dtypes.contains(&n) {
                    return Err(r.bad(
                        "dtype",
                        &format!("only {} supported, got {n}", dtypes.join(" or ")),
                    ));
                }
            }
        }
        Ok(r)
    }

    /// The class this config belongs to.
    pub fn class(&self) -> &'static str {
        self.class
    }

    fn bad(&self, key: &str, what: &str) -> Error {
        Error::invalid(self.class, format!("option '{key}': {what}"))
    }

    /// The raw value of `key`, if present and not null.
    pub fn raw(&self, key: &str) -> Option<&'a Value> {
        self.used.borrow_mut().insert(key.to_string());
        self.map.get(key).filter(|v| !v.is_null())
    }

    /// The layer name, if the config has one.
    pub fn name(&self) -> Option<String> {
        self.map
            .get("name")
            .and_then(Value::as_str)
            .map(String::from)
    }

    /// The dtype policy's name, if the config has one.
    pub fn dtype_name(&self) -> Option<&'a str> {
        let d = self.map.get("dtype")?;
        d.get("config")
            .and_then(|c| c.get("name"))
            .or(Some(d))
            .and_then(Value::as_str)
    }

    /// The trainable flag (default true).
    pub fn trainable(&self) -> bool {
        self.map
            .get("trainable")
            .and_then(Value::as_bool)
            .unwrap_or(true)
    }

    /// A float option.
    pub fn f64_or(&self, key: &str, default: f64) -> Result<f64> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| self.bad(key, &format!("expected a number, got {v}"))),
        }
    }

    /// An optional float option.
    pub fn f64_opt(&self, key: &str) -> Result<Option<f64>> {
        match self.raw(key) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.bad(key, &format!("expected a number, got {v}"))),
        }
    }

    /// A non-negative integer option.
    pub fn usize_or(&self, key: &str, default: usize) -> Result<usize> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => self.as_usize(key, v),
        }
    }

    /// A required non-negative integer option.
    pub fn usize_req(&self, key: &str) -> Result<usize> {
        match self.raw(key) {
            None => Err(self.bad(key, "missing")),
            Some(v) => self.as_usize(key, v),
        }
    }

    fn as_usize(&self, key: &str, v: &Value) -> Result<usize> {
        v.as_u64()
            .map(|x| x as usize)
            .ok_or_else(|| self.bad(key, &format!("expected a non-negative integer, got {v}")))
    }

    /// An integer option that may be negative (an axis).
    pub fn i64_or(&self, key: &str, default: i64) -> Result<i64> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => v
                .as_i64()
                .ok_or_else(|| self.bad(key, &format!("expected an integer, got {v}"))),
        }
    }

    /// A boolean option.
    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool> {
        match self.raw(key) {
            None => Ok(default),
            Some(v) => v
                .as_bool()
                .ok_or_else(|| self.bad(key, &format!("expected true/false, got {v}"))),
        }
    }

    /// A string option.
    pub fn str_or(&self, key: &str, default: &str) -> Result<String> {
        match self.raw(key) {
            None => Ok(default.to_string()),
            Some(v) => v
                .as_str()
                .map(String::from)
                .ok_or_else(|| self.bad(key, &format!("expected a string, got {v}"))),
        }
    }

    /// A tuple option given as an int or a list of `n` ints (`kernel_size`, `strides`).
    pub fn tuple_or(&self, key: &str, n: usize, default: &[usize]) -> Result<Vec<usize>> {
        match self.raw(key) {
            None => Ok(default.to_vec()),
            Some(Value::Array(a)) if a.len() == n => {
                a.iter().map(|x| self.as_usize(key, x)).collect()
            }
            Some(v @ Value::Number(_)) => Ok(vec![self.as_usize(key, v)?; n]),
            Some(v) => Err(self.bad(key, &format!("expected an int or {n} ints, got {v}"))),
        }
    }

    /// A list of integers (may be negative), or a single integer.
    pub fn i64_list(&self, key: &str) -> Result<Option<Vec<i64>>> {
        match self.raw(key) {
            None => Ok(None),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_i64()
                        .ok_or_else(|| self.bad(key, &format!("expected integers, got {x}")))
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            Some(v) => v
                .as_i64()
                .map(|x| Some(vec![x]))
                .ok_or_else(|| self.bad(key, &format!("expected integers, got {v}"))),
        }
    }

    /// Requires an option to be absent, null or equal to `expected` (an option ferroflow
    /// does not support in other settings).
    pub fn require(&self, key: &str, expected: &Value) -> Result<()> {
        match self.raw(key) {
            None => Ok(()),
            Some(v) if v == expected => Ok(()),
            Some(v) => Err(self.bad(key, &format!("unsupported value {v} (only {expected})"))),
        }
    }

    /// Errors on any key that no accessor read.
    pub fn finish(&self) -> Result<()> {
        let used = self.used.borrow();
        let mut unknown: Vec<&String> = self.map.keys().filter(|k| !used.contains(*k)).collect();
        unknown.sort();
        match unknown.first() {
            None => Ok(()),
            Some(k) => Err(Error::invalid(
                self.class,
                format!("unsupported option '{k}' = {}", self.map[*k]),
            )),
        }
    }
}
