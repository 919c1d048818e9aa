//! Lazy sparse steps (LazyAdam, Adagrad) on a million-row table: only the batch's rows
//! change, in place. (A test binary of its own: the table's memory would disturb the flat
//! memory check in `sparse_and_memory.rs`.)

use ferroflow_core::{DType, Tensor, Variable};
use ferroflow_keras::optimizers::Optimizer;

mod common;
use common::embedding_step;

#[test]
fn lazy_steps_touch_only_the_batch_rows_of_a_million_row_table() {
    let (rows, width) = (1_000_000, 64);
    for make in [|| Optimizer::lazy_adam(0.1), || Optimizer::adagrad(0.1)] {
        let table = Variable::new(Tensor::full(&[rows, width], 0.5, DType::F32).unwrap());
        let mut opt = make();
        embedding_step(&mut opt, &table, false);
        let buffer = table.read_untracked().data::<f32>().unwrap().as_ptr() as usize;
        embedding_step(&mut opt, &table, false);
        let after = table.read_untracked();
        // The second step wrote over the table's own buffer: no copy of the table.
        assert_eq!(
            after.data::<f32>().unwrap().as_ptr() as usize,
            buffer,
            "{}",
            opt.name()
        );
        let v = after.to_vec::<f32>().unwrap();
        for (r, row) in v.chunks(width).enumerate() {
            let touched = [1, 3, 7].contains(&r);
            assert_eq!(
                row.iter().all(|&x| x == 0.5),
                !touched,
                "{}: row {r}",
                opt.name()
            );
        }
    }
    // Lazy Adam's first step equals Keras's Adam on the rows it touches.
    let init = ferroflow_core::random::normal(&[10, 4], 0.0, 1.0, DType::F32, Some(2)).unwrap();
    let (a, b) = (Variable::new(init.clone()), Variable::new(init));
    embedding_step(&mut Optimizer::lazy_adam(0.1), &a, false);
    embedding_step(&mut Optimizer::adam(0.1), &b, true);
    let (x, y) = (
        a.read_untracked().to_vec::<f32>().unwrap(),
        b.read_untracked().to_vec::<f32>().unwrap(),
    );
    assert!(x.iter().zip(&y).all(|(p, q)| (p - q).abs() < 1e-6));
}
