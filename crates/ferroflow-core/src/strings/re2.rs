//! RE2 patterns (TensorFlow's regular expressions) for the `regex` crate. The syntax is
//! shared; what differs is that RE2's Perl classes `\d \w \s` and word boundaries `\b` are
//! ASCII, where the `regex` crate's are Unicode. They are rewritten to ASCII forms.

use crate::{Error, Result};
use regex::bytes::Regex;

/// The ASCII set of a Perl class letter inside brackets (`d` → `0-9`), negated for the
/// upper-case letter.
fn in_class(c: char) -> Option<&'static str> {
    Some(match c {
        'd' => "0-9",
        'w' => "0-9A-Za-z_",
        's' => "\\t\\n\\x0C\\r ",
        'D' => "[:^digit:]",
        'W' => "[:^word:]",
        'S' => "[:^space:]",
        _ => return None,
    })
}

/// Rewrites an RE2 pattern so that the `regex` crate matches what RE2 matches.
fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut depth = 0usize; // nesting of [...] classes
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(e) if depth > 0 && in_class(e).is_some() => {
                    out.push_str(in_class(e).unwrap_or_default());
                }
                Some(e @ ('d' | 'D' | 'w' | 'W' | 's' | 'S' | 'b' | 'B')) => {
                    out.push_str(&format!("(?-u:\\{e})"));
                }
                Some(e) => {
                    out.push('\\');
                    out.push(e);
                }
                None => out.push('\\'),
            },
            '[' => {
                // `[:alpha:]` inside a class is a named class, not a nested one.
                if depth > 0 && chars.peek() == Some(&':') {
                    out.push('[');
                    for d in chars.by_ref() {
                        out.push(d);
                        if d == ']' {
                            break;
                        }
                    }
                    continue;
                }
                depth += 1;
                out.push('[');
                // A `]` (after an optional `^`) right at the start is a literal.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                }
            }
            ']' if depth > 0 => {
                depth -= 1;
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// Compiles an RE2 pattern (`op` names the caller in the error).
pub(crate) fn compile(op: &'static str, pattern: &str) -> Result<Regex> {
    Regex::new(&translate(pattern))
        .map_err(|e| Error::invalid(op, format!("bad regular expression {pattern:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perl_classes_are_ascii_as_in_re2() {
        let w = compile("t", r"\w+").unwrap();
        assert_eq!(w.find("ÀÉb1".as_bytes()).unwrap().as_bytes(), b"b1");
        let d = compile("t", r"[\d.]+").unwrap();
        assert_eq!(d.find("x٣12.5".as_bytes()).unwrap().as_bytes(), b"12.5");
        let n = compile("t", r"[^\W_]+").unwrap();
        assert_eq!(n.find("__ab_".as_bytes()).unwrap().as_bytes(), b"ab");
        let p = compile("t", r##"[!"#$%&()\*\+,-\./:;<=>?@\[\\\]^_`{|}~']"##).unwrap();
        assert_eq!(p.replace_all(b"a.b[c]\\d", &b""[..]).as_ref(), b"abcd");
        let c = compile("t", r"[[:alpha:]]+").unwrap();
        assert_eq!(c.find(b"12ab3").unwrap().as_bytes(), b"ab");
        assert!(compile("t", "(").is_err());
    }
}
