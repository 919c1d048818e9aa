//! What the compiled-function tests share.

use ferroflow_core::{Result, Tensor};
use ferroflow_graph::{function, Function};

/// Compiles `f`, calls it twice on `x` and checks each result against `f` run eagerly
/// (`|a - b| <= 1e-5 * max(|b|, 4)`: sums of terms up to about 50 with cancellation);
/// returns the compiled function.
pub fn compiled_matches_eager<F>(f: F, x: &Tensor) -> Function<F>
where
    F: FnMut(&[Tensor]) -> Result<Vec<Tensor>>,
{
    let mut f = f;
    let want = f(std::slice::from_ref(x)).unwrap();
    let mut compiled = function(f);
    for _ in 0..2 {
        let got = compiled.call(std::slice::from_ref(x)).unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(g.shape(), w.shape());
            for (a, b) in g.to_f64_vec().iter().zip(w.to_f64_vec()) {
                assert!((a - b).abs() <= 1e-5 * b.abs().max(4.0), "{a} vs {b}");
            }
        }
    }
    compiled
}
