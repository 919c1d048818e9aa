//! A reader for protobuf text format, the syntax of TF Serving's `--model_config_file`
//! and `--batching_parameters_file`.
//!
//! It parses the syntax only (fields, nested messages, scalars, lists, comments) into a
//! [`Message`]; the callers map field names to their schema and reject unknown fields.

use std::fmt;

/// A scalar value as written: a quoted string (unescaped) or a bare token (number,
/// identifier, `true`/`false`).
#[derive(Clone, Debug, PartialEq)]
pub enum Scalar {
    /// A quoted string, with escapes resolved.
    Str(String),
    /// A bare token: a number or an identifier.
    Token(String),
}

/// One field's value.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `name: scalar`.
    Scalar(Scalar),
    /// `name { ... }` or `name: < ... >`.
    Message(Message),
}

/// A message: its fields in file order; repeated fields appear once per value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message {
    /// `(field name, value, line)` in order.
    pub fields: Vec<(String, Value, usize)>,
}

/// A syntax or schema error with its line number.
#[derive(Clone, Debug, PartialEq)]
pub struct TextError {
    /// 1-based line.
    pub line: usize,
    /// What is wrong.
    pub msg: String,
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

impl std::error::Error for TextError {}

/// Parses a whole text-format document.
pub fn parse(text: &str) -> Result<Message, TextError> {
    let mut p = Parser {
        chars: text.chars().collect(),
        pos: 0,
        line: 1,
        depth: 0,
    };
    let msg = p.message(None)?;
    p.skip_space();
    if p.pos < p.chars.len() {
        return Err(p.err(format!("unexpected '{}'", p.chars[p.pos])));
    }
    Ok(msg)
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
    line: usize,
    /// Messages open around the current position.
    depth: usize,
}

/// The deepest nesting of messages accepted (TF Serving's configs use four levels): the
/// parser recurses per level, and a file of a million `{` must not overflow its stack.
const MAX_DEPTH: usize = 64;

impl Parser {
    fn err(&self, msg: impl Into<String>) -> TextError {
        TextError {
            line: self.line,
            msg: msg.into(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    /// Skips whitespace and `#` comments.
    fn skip_space(&mut self) {
        while let Some(c) = self.peek() {
            if c == '#' {
                while self.peek().is_some_and(|c| c != '\n') {
                    self.bump();
                }
            } else if c.is_whitespace() {
                self.bump();
            } else {
                break;
            }
        }
    }

    /// Fields until `close` (or the end of input at the top level).
    fn message(&mut self, close: Option<char>) -> Result<Message, TextError> {
        let mut msg = Message::default();
        loop {
            self.skip_space();
            match self.peek() {
                None if close.is_none() => return Ok(msg),
                None => return Err(self.err(format!("missing '{}'", close.unwrap_or('}')))),
                Some(c) if Some(c) == close => {
                    self.bump();
                    return Ok(msg);
                }
                Some(_) => {}
            }
            let line = self.line;
            let name = self.ident()?;
            self.skip_space();
            let colon = self.peek() == Some(':');
            if colon {
                self.bump();
                self.skip_space();
            }
            match self.peek() {
                Some(open @ ('{' | '<')) => {
                    self.bump();
                    if self.depth == MAX_DEPTH {
                        return Err(self.err(format!("messages nested more than {MAX_DEPTH} deep")));
                    }
                    self.depth += 1;
                    let inner = self.message(Some(if open == '{' { '}' } else { '>' }))?;
                    self.depth -= 1;
                    msg.fields.push((name, Value::Message(inner), line));
                }
                Some('[') if colon => {
                    self.bump();
                    loop {
                        self.skip_space();
                        if self.peek() == Some(']') {
                            self.bump();
                            break;
                        }
                        let v = self.scalar()?;
                        msg.fields.push((name.clone(), Value::Scalar(v), line));
                        self.skip_space();
                        if self.peek() == Some(',') {
                            self.bump();
                        }
                    }
                }
                _ if colon => {
                    let v = self.scalar()?;
                    msg.fields.push((name, Value::Scalar(v), line));
                }
                _ => return Err(self.err(format!("expected ':' or '{{' after '{name}'"))),
            }
            self.skip_space();
            if matches!(self.peek(), Some(',' | ';')) {
                self.bump();
            }
        }
    }

    fn ident(&mut self) -> Result<String, TextError> {
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            self.bump();
        }
        if self.pos == start {
            return Err(match self.peek() {
                Some(c) => self.err(format!("expected a field name, found '{c}'")),
                None => self.err("expected a field name"),
            });
        }
        Ok(self.chars[start..self.pos].iter().collect())
    }

    fn scalar(&mut self) -> Result<Scalar, TextError> {
        match self.peek() {
            Some(q @ ('"' | '\'')) => {
                self.bump();
                let mut s = String::new();
                loop {
                    match self.bump() {
                        None | Some('\n') => return Err(self.err("unterminated string")),
                        Some(c) if c == q => break,
                        Some('\\') => s.push(self.escape()?),
                        Some(c) => s.push(c),
                    }
                }
                // Adjacent string literals concatenate, as in C.
                self.skip_space();
                if matches!(self.peek(), Some('"' | '\'')) {
                    if let Scalar::Str(more) = self.scalar()? {
                        s.push_str(&more);
                    }
                }
                Ok(Scalar::Str(s))
            }
            _ => {
                let start = self.pos;
                while self
                    .peek()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || "_.-+".contains(c))
                {
                    self.bump();
                }
                if self.pos == start {
                    return Err(self.err("expected a value"));
                }
                Ok(Scalar::Token(self.chars[start..self.pos].iter().collect()))
            }
        }
    }

    fn escape(&mut self) -> Result<char, TextError> {
        Ok(match self.bump() {
            Some('n') => '\n',
            Some('t') => '\t',
            Some('r') => '\r',
            Some(c @ ('\\' | '\'' | '"')) => c,
            Some(c) => return Err(self.err(format!("unsupported escape '\\{c}'"))),
            None => return Err(self.err("unterminated string")),
        })
    }
}

impl Message {
    /// Fails on the first field whose name is not in `known`, naming `what` and the
    /// fields it does accept.
    pub fn check_fields(&self, what: &str, known: &[&str]) -> Result<(), TextError> {
        for (name, _, line) in &self.fields {
            if !known.contains(&name.as_str()) {
                return Err(TextError {
                    line: *line,
                    msg: format!(
                        "unknown field '{name}' in {what} (known: {})",
                        known.join(", ")
                    ),
                });
            }
        }
        Ok(())
    }

    /// The values of field `name`, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = (&'a Value, usize)> + 'a {
        self.fields
            .iter()
            .filter(move |(n, _, _)| n == name)
            .map(|(_, v, l)| (v, *l))
    }

    /// The last value of field `name` (protobuf's rule for a repeated singular field).
    pub fn last(&self, name: &str) -> Option<(&Value, usize)> {
        self.fields
            .iter()
            .rev()
            .find(|(n, _, _)| n == name)
            .map(|(_, v, l)| (v, *l))
    }

    /// Field `name` as a string, if present.
    pub fn string(&self, name: &str) -> Result<Option<String>, TextError> {
        match self.last(name) {
            None => Ok(None),
            Some((Value::Scalar(Scalar::Str(s)), _)) => Ok(Some(s.clone())),
            Some((_, line)) => Err(TextError {
                line,
                msg: format!("'{name}' must be a quoted string"),
            }),
        }
    }

    /// Field `name` as an unsigned integer, if present.
    pub fn uint(&self, name: &str) -> Result<Option<u64>, TextError> {
        self.last(name)
            .map(|(v, line)| as_uint(v, name, line))
            .transpose()
    }

    /// Field `name` as a boolean, if present.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, TextError> {
        match self.last(name) {
            None => Ok(None),
            Some((Value::Scalar(Scalar::Token(t)), line)) => match t.as_str() {
                "true" | "True" | "t" | "1" => Ok(Some(true)),
                "false" | "False" | "f" | "0" => Ok(Some(false)),
                _ => Err(TextError {
                    line,
                    msg: format!("'{name}' must be true or false, not '{t}'"),
                }),
            },
            Some((_, line)) => Err(TextError {
                line,
                msg: format!("'{name}' must be true or false"),
            }),
        }
    }

    /// Field `name` as a nested message, if present.
    pub fn message(&self, name: &str) -> Result<Option<&Message>, TextError> {
        match self.last(name) {
            None => Ok(None),
            Some((Value::Message(m), _)) => Ok(Some(m)),
            Some((_, line)) => Err(TextError {
                line,
                msg: format!("'{name}' must be a message ({name} {{ ... }})"),
            }),
        }
    }

    /// A `google.protobuf.Int64Value`-style wrapper: `name { value: N }`.
    pub fn wrapped_uint(&self, name: &str) -> Result<Option<u64>, TextError> {
        match self.message(name)? {
            None => Ok(None),
            Some(m) => {
                m.check_fields(name, &["value"])?;
                Ok(Some(m.uint("value")?.unwrap_or(0)))
            }
        }
    }
}

/// A scalar token as an unsigned integer.
pub fn as_uint(v: &Value, name: &str, line: usize) -> Result<u64, TextError> {
    match v {
        Value::Scalar(Scalar::Token(t)) => t.parse().map_err(|_| TextError {
            line,
            msg: format!("'{name}' must be a non-negative integer, not '{t}'"),
        }),
        _ => Err(TextError {
            line,
            msg: format!("'{name}' must be a non-negative integer"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_messages_lists_comments_and_strings() {
        let m = parse(
            "# models\nmodel_config_list {\n  config { name: 'a' base_path: \"/m/a\" # trailing\n    model_version_policy: < specific { versions: [1, 2] } >\n  }\n  config: { name: \"b\" \"c\", base_path: '/m/b'; }\n}\n",
        )
        .unwrap();
        let list = m.message("model_config_list").unwrap().unwrap();
        let configs: Vec<_> = list.all("config").collect();
        assert_eq!(configs.len(), 2);
        let Value::Message(a) = configs[0].0 else {
            panic!()
        };
        assert_eq!(a.string("name").unwrap().as_deref(), Some("a"));
        let spec = a
            .message("model_version_policy")
            .unwrap()
            .unwrap()
            .message("specific")
            .unwrap()
            .unwrap();
        let versions: Vec<u64> = spec
            .all("versions")
            .map(|(v, l)| as_uint(v, "versions", l).unwrap())
            .collect();
        assert_eq!(versions, [1, 2]);
        let Value::Message(b) = configs[1].0 else {
            panic!()
        };
        assert_eq!(b.string("name").unwrap().as_deref(), Some("bc"));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let text = format!("{}{}", "a {".repeat(100_000), "}".repeat(100_000));
        let e = parse(&text).unwrap_err();
        assert!(e.msg.contains("nested more than 64 deep"), "{e}");
        let ok = format!("{}{}", "a {".repeat(10), "}".repeat(10));
        assert!(parse(&ok).is_ok());
    }

    #[test]
    fn errors_carry_the_line() {
        let e = parse("a {\n b: 1\n c 2\n}").unwrap_err();
        assert_eq!(e.line, 3);
        assert!(e.msg.contains("after 'c'"), "{e}");
        assert_eq!(parse("a {").unwrap_err().msg, "missing '}'");
        assert!(parse("a: 'x").unwrap_err().msg.contains("unterminated"));
        let m = parse("x: 1\ny: 2").unwrap();
        let e = m.check_fields("top", &["x"]).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.msg.contains("unknown field 'y'"));
        assert!(parse("x: -1").unwrap().uint("x").is_err());
    }
}
