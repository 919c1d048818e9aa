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

/// A sparse step on `table` whose gradient covers `ids` (repeats summed).
fn step_on(opt: &mut Optimizer, table: &Variable, ids: &[i32]) {
    let ids = Tensor::from_vec(ids.to_vec(), &[ids.len()]).unwrap();
    let tape = ferroflow_core::GradientTape::new();
    let loss = table
        .value()
        .gather(&ids, 0)
        .unwrap()
        .square()
        .unwrap()
        .sum(ferroflow_core::Axes::All, false)
        .unwrap();
    let grads = tape.gradient(&loss, &[table]).unwrap();
    opt.apply_gradients(&grads, std::slice::from_ref(table))
        .unwrap();
}

#[test]
fn slots_kept_for_reached_rows_only_follow_whole_slots_exactly() {
    let init = ferroflow_core::random::normal(&[12, 3], 0.0, 1.0, DType::F32, Some(4)).unwrap();
    let batches: [&[i32]; 4] = [&[5, 2, 5], &[11, 2], &[0, 9, 5, 7], &[2]];
    for make in [|| Optimizer::lazy_adam(0.05), || Optimizer::adagrad(0.05)] {
        // `sparse` keeps slots for the rows reached; `whole` had whole slots restored
        // (as from a checkpoint) before its first step.
        let (sparse, whole) = (Variable::new(init.clone()), Variable::new(init.clone()));
        let (mut a, mut b) = (make(), make());
        step_on(&mut a, &sparse, batches[0]);
        let fresh: Vec<Tensor> = a.slots_of(&sparse).into_iter().map(|(_, t)| t).collect();
        // Rows not reached yet hold the slots' initial values.
        let initial = if a.name() == "Adam" { 0.0 } else { 0.1 };
        let row_0 = fresh[0].to_vec::<f32>().unwrap()[..3].to_vec();
        assert_eq!(row_0, [initial; 3], "{}", a.name());
        b.set_slots(
            &whole,
            (0..fresh.len())
                .map(|_| Tensor::full(&[12, 3], f64::from(initial), DType::F32).unwrap())
                .collect(),
        )
        .unwrap();
        step_on(&mut b, &whole, batches[0]);
        for ids in &batches[1..] {
            step_on(&mut a, &sparse, ids);
            step_on(&mut b, &whole, ids);
        }
        // Then a dense step: the reached rows' slots become whole slots.
        embedding_step(&mut a, &sparse, true);
        embedding_step(&mut b, &whole, true);
        assert_eq!(
            sparse.read_untracked().to_vec::<f32>().unwrap(),
            whole.read_untracked().to_vec::<f32>().unwrap(),
            "{}",
            a.name()
        );
        for ((name, x), (_, y)) in a.slots_of(&sparse).into_iter().zip(b.slots_of(&whole)) {
            assert_eq!(
                x.to_vec::<f32>().unwrap(),
                y.to_vec::<f32>().unwrap(),
                "{} {name}",
                a.name()
            );
        }
        // And sparse steps after it go on over the whole slots.
        step_on(&mut a, &sparse, &[4, 5]);
        step_on(&mut b, &whole, &[4, 5]);
        assert_eq!(
            sparse.read_untracked().to_vec::<f32>().unwrap(),
            whole.read_untracked().to_vec::<f32>().unwrap()
        );
    }
}
