//! Times MPI all-reduce sums of one buffer size through ferroflow's collective (the
//! gradient sums of multi-worker training): `mpirun -np 2
//! target/release/examples/allreduce_timing [FLOATS] [REPS]` (build with `--features
//! mpi`); the default size is the MLP of `ferroflow bench distribute`.
use ferroflow_distribute::collective::{Collective, MpiCollective};
fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(235_146);
    let reps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(500);
    let c = MpiCollective::world().unwrap();
    let mut buf = vec![1.0f32; n];
    for _ in 0..20 {
        c.all_reduce_sum_f32(&mut buf).unwrap();
    }
    c.barrier().unwrap();
    let t = std::time::Instant::now();
    for _ in 0..reps {
        c.all_reduce_sum_f32(&mut buf).unwrap();
    }
    let dt = t.elapsed().as_secs_f64() / reps as f64;
    if c.rank() == 0 {
        println!("{n} floats: {:.1} us per all-reduce", dt * 1e6);
    }
}
