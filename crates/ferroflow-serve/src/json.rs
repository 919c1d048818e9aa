//! Request bodies as the decoder keeps them: a JSON tree whose lists of numbers are packed
//! (8 bytes a number instead of a full tree node), built under a memory budget.
//!
//! A request body of `n` bytes may ask for far more than `n` bytes once decoded (every
//! `0,` becomes a tree node; a `context` is copied into every example). Every node,
//! packed number and string byte is charged to a [`Budget`] as it is made, so a hostile
//! body is refused with `RESOURCE_EXHAUSTED` before it can allocate past the limit.

use crate::error::{Code, ServeError, ServeResult};
use serde::de::{DeserializeSeed, Deserializer, Error as _, MapAccess, SeqAccess, Visitor};
use std::cell::Cell;
use std::fmt;

/// A JSON value.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integral number that fits in an `i64`.
    Int(i64),
    /// Any other number, and the bare `NaN` / `Infinity` / `-Infinity` tokens.
    Float(f64),
    /// A string.
    Str(String),
    /// A non-empty list of integers only.
    Ints(Vec<i64>),
    /// A non-empty list of numbers, at least one of them not an [`Json::Int`].
    Floats(Vec<f64>),
    /// Any other list (empty, nested, or mixed).
    List(Vec<Json>),
    /// An object, its keys in the order written (no key twice).
    Object(Vec<(String, Json)>),
}

/// A JSON object's entries in order.
pub type Object = Vec<(String, Json)>;

/// Removes and returns `key`'s value from an object.
pub fn take(obj: &mut Object, key: &str) -> Option<Json> {
    let i = obj.iter().position(|(k, _)| k == key)?;
    Some(obj.remove(i).1)
}

/// Memory a request may still use while it is decoded.
#[derive(Debug)]
pub struct Budget {
    left: Cell<usize>,
    limit: usize,
}

impl Budget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Budget {
            left: Cell::new(limit),
            limit,
        }
    }

    /// Takes `bytes` from the budget, or fails naming the limit.
    pub fn charge(&self, bytes: usize) -> ServeResult<()> {
        match self.left.get().checked_sub(bytes) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => Err(self.exhausted()),
        }
    }

    /// Takes `items` times `size` bytes.
    pub fn charge_n(&self, items: usize, size: usize) -> ServeResult<()> {
        self.charge(items.checked_mul(size).ok_or_else(|| self.exhausted())?)
    }

    fn exhausted(&self) -> ServeError {
        ServeError::new(
            Code::ResourceExhausted,
            format!(
                "decoding the request needs more than its memory limit of {} bytes ({} times --rest_api_max_body_bytes)",
                self.limit, MEMORY_PER_BODY_BYTE
            ),
        )
    }
}

/// How many bytes of memory one byte of body may take while it is decoded. A dense list
/// of one-digit numbers (`0,` per number) packs to 8 bytes a number in a buffer that may
/// be twice its length (8x the body), then becomes a tensor of up to 8 bytes an element
/// (4x): a body of the largest allowed size still decodes.
pub const MEMORY_PER_BODY_BYTE: usize = 16;

/// The bytes a node costs beyond its own slot.
const NODE: usize = std::mem::size_of::<Json>();

/// Markers that bare non-finite tokens become before parsing: strings no client sends.
pub(crate) const NAN: &str = "\u{0}NaN";
pub(crate) const INF: &str = "\u{0}Infinity";
pub(crate) const NEG_INF: &str = "\u{0}-Infinity";

fn marker_value(s: &str) -> Option<f64> {
    match s {
        NAN => Some(f64::NAN),
        INF => Some(f64::INFINITY),
        NEG_INF => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

impl Json {
    /// Parses a request body under `budget`. Bare `NaN`, `Infinity` and `-Infinity`
    /// tokens, which standard JSON lacks but TF Serving accepts, are read as those floats.
    pub fn parse(body: &[u8], budget: &Budget) -> ServeResult<Json> {
        match parse_strict(body, budget) {
            Ok(v) => Ok(v),
            Err(first) if first.code == Code::ResourceExhausted => Err(first),
            Err(first) => {
                let text = std::str::from_utf8(body)
                    .map_err(|_| ServeError::invalid("the request body is not UTF-8 text"))?;
                // The rewritten text is at most a few bytes per token longer than the body.
                budget.charge(text.len())?;
                let quoted = quote_non_finite(text).ok_or(first.clone())?;
                parse_strict(quoted.as_bytes(), budget).map_err(|e| {
                    if e.code == Code::ResourceExhausted {
                        e
                    } else {
                        first
                    }
                })
            }
        }
    }

    /// The value at `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The number as a float (numbers and the non-finite tokens).
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Json::Int(i) => Some(i as f64),
            Json::Float(f) => Some(f),
            _ => None,
        }
    }

    /// The number as an integer: integral numbers only.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Json::Int(i) => Some(i),
            Json::Float(f) => float_as_int(f),
            _ => None,
        }
    }

    /// Whether this is a list (packed or not).
    pub fn is_list(&self) -> bool {
        matches!(self, Json::List(_) | Json::Ints(_) | Json::Floats(_))
    }

    /// The length of a list.
    pub fn list_len(&self) -> Option<usize> {
        match self {
            Json::List(v) => Some(v.len()),
            Json::Ints(v) => Some(v.len()),
            Json::Floats(v) => Some(v.len()),
            _ => None,
        }
    }

    /// Element `i` of a list (packed numbers come out as scalars).
    pub fn item(&self, i: usize) -> Option<Json> {
        match self {
            Json::List(v) => v.get(i).cloned(),
            Json::Ints(v) => v.get(i).map(|&x| Json::Int(x)),
            Json::Floats(v) => v.get(i).map(|&x| Json::Float(x)),
            _ => None,
        }
    }

    /// The elements of a list as values, moving them out (packed numbers unpacked, so
    /// the caller charges for the nodes).
    pub fn into_items(self) -> Option<Vec<Json>> {
        match self {
            Json::List(v) => Some(v),
            Json::Ints(v) => Some(v.into_iter().map(Json::Int).collect()),
            Json::Floats(v) => Some(v.into_iter().map(Json::Float).collect()),
            _ => None,
        }
    }

    /// Splits a list into `n` lists of `stride` elements each (packed numbers stay
    /// packed); `None` when this is not a list of `n * stride` elements.
    pub fn split_list(self, n: usize, stride: usize) -> Option<Vec<Json>> {
        if self.list_len() != Some(n.checked_mul(stride)?) {
            return None;
        }
        if stride == 0 {
            return Some(vec![Json::List(Vec::new()); n]);
        }
        Some(match self {
            Json::Ints(v) => v.chunks(stride).map(|c| Json::Ints(c.to_vec())).collect(),
            Json::Floats(v) => v.chunks(stride).map(|c| Json::Floats(c.to_vec())).collect(),
            Json::List(v) => {
                let mut it = v.into_iter();
                (0..n)
                    .map(|_| Json::List(it.by_ref().take(stride).collect()))
                    .collect()
            }
            _ => return None,
        })
    }

    /// Describes the value for an error message.
    pub fn kind(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "a boolean",
            Json::Int(_) => "a number",
            Json::Float(f) if f.is_finite() => "a number",
            Json::Float(_) => "a non-finite number",
            Json::Str(_) => "a string",
            Json::Ints(_) | Json::Floats(_) | Json::List(_) => "a list",
            Json::Object(o) if o.iter().any(|(k, _)| k == "b64") => {
                "a base64 ({\"b64\": ...}) value"
            }
            Json::Object(_) => "an object",
        }
    }

    /// The bytes a copy of this value holds (what cloning it costs the budget).
    pub fn footprint(&self) -> usize {
        NODE + match self {
            Json::Str(s) => s.len(),
            Json::Ints(v) => v.len() * 8,
            Json::Floats(v) => v.len() * 8,
            Json::List(v) => v.iter().map(Json::footprint).sum(),
            Json::Object(m) => m.iter().map(|(k, v)| k.len() + v.footprint()).sum(),
            _ => 0,
        }
    }
}

/// An integral float in `i64`'s range as that integer.
pub(crate) fn float_as_int(f: f64) -> Option<i64> {
    (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
}

fn parse_strict(body: &[u8], budget: &Budget) -> ServeResult<Json> {
    let failure = Cell::new(None);
    let mut de = serde_json::Deserializer::from_slice(body);
    let seed = Seed {
        budget,
        failure: &failure,
    };
    let parsed = seed.deserialize(&mut de).and_then(|v| de.end().map(|_| v));
    parsed.map_err(|e| {
        failure
            .take()
            .unwrap_or_else(|| ServeError::invalid(format!("JSON Parse error: {e}")))
    })
}

/// Rewrites bare `NaN`/`Infinity`/`-Infinity` outside strings as marker strings;
/// `None` when there are none (the parse error was something else).
fn quote_non_finite(text: &str) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 16);
    let mut found = false;
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let token = [("NaN", NAN), ("-Infinity", NEG_INF), ("Infinity", INF)]
            .into_iter()
            .find(|(t, _)| rest.starts_with(t));
        if let Some((t, marker)) = token {
            found = true;
            out.push_str(&serde_json::to_string(marker).ok()?);
            rest = &rest[t.len()..];
            continue;
        }
        if c == '"' {
            in_string = true;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    found.then_some(out)
}

/// Deserialises one value, charging the budget; a charge that fails is kept in
/// `failure` (serde's error type cannot carry our code).
#[derive(Clone, Copy)]
struct Seed<'b> {
    budget: &'b Budget,
    failure: &'b Cell<Option<ServeError>>,
}

impl Seed<'_> {
    fn charge<E: serde::de::Error>(&self, bytes: usize) -> Result<(), E> {
        self.budget.charge(bytes).map_err(|e| {
            self.failure.set(Some(e));
            E::custom("memory limit")
        })
    }
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Json;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Json, D::Error> {
        d.deserialize_any(self)
    }
}

/// A list being read: packed while every element is a number.
enum ListBuilder {
    Ints(Vec<i64>),
    Floats(Vec<f64>),
    Values(Vec<Json>),
}

impl ListBuilder {
    /// Adds `v`, unpacking the list when `v` is not a number.
    fn push(&mut self, v: Json) {
        match (&mut *self, v) {
            (ListBuilder::Ints(xs), Json::Int(x)) => xs.push(x),
            (ListBuilder::Ints(xs), Json::Float(f)) => {
                let mut floats = Vec::with_capacity(xs.capacity());
                floats.extend(xs.iter().map(|&x| x as f64));
                floats.push(f);
                *self = ListBuilder::Floats(floats);
            }
            (ListBuilder::Floats(xs), v @ (Json::Int(_) | Json::Float(_))) => {
                xs.push(v.as_f64().unwrap_or(f64::NAN))
            }
            (ListBuilder::Values(xs), v) => xs.push(v),
            (packed, v) => {
                let items = std::mem::replace(packed, ListBuilder::Values(Vec::new())).finish();
                let mut values = items.into_items().unwrap_or_default();
                values.push(v);
                *self = ListBuilder::Values(values);
            }
        }
    }

    /// The bytes the list's buffer holds (its capacity, not its length).
    fn allocated(&self) -> usize {
        match self {
            ListBuilder::Ints(v) => v.capacity() * 8,
            ListBuilder::Floats(v) => v.capacity() * 8,
            ListBuilder::Values(v) => v.capacity() * NODE,
        }
    }

    fn finish(self) -> Json {
        match self {
            ListBuilder::Ints(v) if !v.is_empty() => Json::Ints(v),
            ListBuilder::Floats(v) => Json::Floats(v),
            ListBuilder::Values(v) => Json::List(v),
            ListBuilder::Ints(_) => Json::List(Vec::new()),
        }
    }
}

/// What a growing buffer has been charged: its capacity, as it grows. (While a buffer
/// grows the old one lives until the copy is done: the allocator's peak can pass the
/// budget by that half-size buffer.)
struct Growth {
    charged: usize,
}

impl Growth {
    fn track<E: serde::de::Error>(&mut self, allocated: usize, seed: &Seed) -> Result<(), E> {
        if allocated > self.charged {
            seed.charge(allocated - self.charged)?;
            self.charged = allocated;
        }
        Ok(())
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<Json, E> {
        Ok(Json::Bool(b))
    }

    fn visit_i64<E: serde::de::Error>(self, i: i64) -> Result<Json, E> {
        Ok(Json::Int(i))
    }

    fn visit_u64<E: serde::de::Error>(self, u: u64) -> Result<Json, E> {
        Ok(i64::try_from(u).map_or(Json::Float(u as f64), Json::Int))
    }

    fn visit_f64<E: serde::de::Error>(self, f: f64) -> Result<Json, E> {
        Ok(Json::Float(f))
    }

    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Json, E> {
        if let Some(f) = marker_value(s) {
            return Ok(Json::Float(f));
        }
        self.charge(s.len())?;
        Ok(Json::Str(s.to_string()))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut list = ListBuilder::Ints(Vec::new());
        let mut growth = Growth { charged: 0 };
        while let Some(v) = seq.next_element_seed(self)? {
            list.push(v);
            growth.track(list.allocated(), &self)?;
        }
        Ok(list.finish())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        const ENTRY: usize = std::mem::size_of::<(String, Json)>();
        let mut entries: Vec<(String, Json)> = Vec::new();
        let mut growth = Growth { charged: 0 };
        // Keys seen, once an object is large enough for a linear search to cost.
        let mut seen: Option<std::collections::HashSet<String>> = None;
        while let Some(key) = map.next_key::<String>()? {
            // The key's bytes, and their copy in `seen` for large objects.
            self.charge(2 * key.len() + 24)?;
            let twice = match &mut seen {
                Some(set) => !set.insert(key.clone()),
                None if entries.len() < 16 => entries.iter().any(|(k, _)| *k == key),
                None => {
                    let mut set: std::collections::HashSet<String> =
                        entries.iter().map(|(k, _)| k.clone()).collect();
                    self.charge(set.capacity() * (24 + 8))?;
                    let twice = !set.insert(key.clone());
                    seen = Some(set);
                    twice
                }
            };
            if twice {
                self.failure.set(Some(ServeError::invalid(format!(
                    "JSON Parse error: the key '{key}' appears twice in one object"
                ))));
                return Err(A::Error::custom("duplicate key"));
            }
            let v = map.next_value_seed(self)?;
            entries.push((key, v));
            growth.track(entries.capacity() * ENTRY, &self)?;
        }
        Ok(Json::Object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Json {
        Json::parse(s.as_bytes(), &Budget::new(1 << 20)).unwrap()
    }

    #[test]
    fn lists_of_numbers_are_packed() {
        assert_eq!(parse("[1, 2, 3]"), Json::Ints(vec![1, 2, 3]));
        assert_eq!(parse("[1, 2.5]"), Json::Floats(vec![1.0, 2.5]));
        assert_eq!(parse("[2.5, 1]"), Json::Floats(vec![2.5, 1.0]));
        assert_eq!(parse("[]"), Json::List(vec![]));
        assert_eq!(
            parse("[1, \"a\"]"),
            Json::List(vec![Json::Int(1), Json::Str("a".into())])
        );
        assert_eq!(
            parse("[[1], []]"),
            Json::List(vec![Json::Ints(vec![1]), Json::List(vec![])])
        );
        assert_eq!(
            parse("18446744073709551615"),
            Json::Float(18446744073709551615.0)
        );
    }

    #[test]
    fn non_finite_tokens_are_read_outside_strings() {
        let v = parse(r#"{"s": "NaN Infinity", "x": [NaN, Infinity, -Infinity, 1]}"#);
        assert_eq!(v.get("s"), Some(&Json::Str("NaN Infinity".into())));
        let Some(Json::Floats(x)) = v.get("x") else {
            panic!("{v:?}")
        };
        assert!(x[0].is_nan() && x[1] == f64::INFINITY && x[2] == f64::NEG_INFINITY);
        let e = Json::parse(b"{\"x\": [1,]}", &Budget::new(1 << 20)).unwrap_err();
        assert!(e.message.contains("JSON Parse error"), "{}", e.message);
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let e = Json::parse(br#"{"a": 1, "a": 2}"#, &Budget::new(1 << 20)).unwrap_err();
        assert!(e.message.contains("'a' appears twice"), "{}", e.message);
    }

    #[test]
    fn the_budget_bounds_what_a_body_may_allocate() {
        let body = format!("[{}]", vec!["[]"; 10_000].join(","));
        let e = Json::parse(body.as_bytes(), &Budget::new(100_000)).unwrap_err();
        assert_eq!(e.code, Code::ResourceExhausted);
        assert!(
            e.message.contains("memory limit of 100000 bytes"),
            "{}",
            e.message
        );
        let numbers = format!("[{}]", vec!["0"; 10_000].join(","));
        let budget = Budget::new(numbers.len() * MEMORY_PER_BODY_BYTE);
        assert!(Json::parse(numbers.as_bytes(), &budget).is_ok());
    }
}
