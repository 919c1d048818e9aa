//! String ops inside a function follow each call's inputs (they run on the host, each
//! recorded as one op), and different applications on the same input stay apart.

use ferroflow_core::strings::{self, LengthUnit};
use ferroflow_core::Tensor;
use ferroflow_graph::function;

fn pipeline(x: &Tensor) -> ferroflow_core::Result<Vec<Tensor>> {
    let low = strings::lower(x)?;
    let low_u = strings::lower_unicode(x)?;
    // Two rewrites of the same input: a merge of the two would give equal outputs.
    let no_digits = strings::regex_replace(&low, r"\d", "#", true)?;
    let no_vowels = strings::regex_replace(&low, "[aeiou]", "", true)?;
    let joined = strings::join(&[&no_digits, &no_vowels], "|")?;
    Ok(vec![
        joined,
        strings::reduce_join(&low_u, None, false, " ")?,
        strings::length(x, LengthUnit::Utf8Char)?,
        strings::regex_full_match(x, r"[A-Z].*")?,
        strings::to_hash_bucket_fast(x, 1000)?,
        strings::to_hash_bucket_strong(x, 1000, [1, 2])?,
        strings::strip(x)?,
    ])
}

#[test]
fn string_ops_in_a_function_follow_each_calls_inputs() {
    let mut f = function(|x: &[Tensor]| pipeline(&x[0]));
    let a = Tensor::from_strings(&["Hello 42", " ÉCOLE 7 ", "x"], &[3]).unwrap();
    let b = Tensor::from_strings(&["Zebra 1", "plain", "Ünïcode 99"], &[3]).unwrap();
    for x in [&a, &b, &a] {
        let got = f.call(std::slice::from_ref(x)).unwrap();
        let want = pipeline(x).unwrap();
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.dtype(), w.dtype());
            assert_eq!(g.to_f64_vec_or_strings(), w.to_f64_vec_or_strings());
        }
    }
}

trait Show {
    fn to_f64_vec_or_strings(&self) -> Vec<String>;
}

impl Show for Tensor {
    fn to_f64_vec_or_strings(&self) -> Vec<String> {
        match self.to_strings() {
            Ok(s) => s,
            Err(_) => self.to_f64_vec().iter().map(|v| v.to_string()).collect(),
        }
    }
}
