//! Training-step workloads shared by `ferroflow bench function` and the criterion bench:
//! an MLP 784-256-128-10 and a small CNN, each step run eagerly or compiled with
//! [`crate::function`]. `tools/bench_compare.py function` runs the same steps in
//! TensorFlow with `tf.function(jit_compile=True)`.

use crate as ff;
use ff::keras::optimizers::Optimizer;
use ff::ops::conv::Padding;
use ff::{Axes, DType, GradientTape, Tensor, Variable};

/// Glorot-uniform kernel and zero bias.
fn dense_vars(
    fan_in: usize,
    fan_out: usize,
    shape: &[usize],
    seed: u64,
) -> ff::Result<[Variable; 2]> {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    let k = ff::random::uniform(shape, -limit, limit, DType::F32, Some(seed))?;
    Ok([
        Variable::with_options(k, "kernel", true),
        Variable::with_options(Tensor::zeros(&[fan_out], DType::F32)?, "bias", true),
    ])
}

/// The benchmarked models.
#[derive(Clone, Copy)]
pub enum Workload {
    /// MLP 784-256-128-10 at a batch size.
    Mlp(usize),
    /// conv3x3(16)-pool-conv3x3(32)-pool-dense(10) on 28x28x1 at a batch size.
    Cnn(usize),
}

impl Workload {
    /// The figure's name.
    pub fn name(self) -> String {
        match self {
            Workload::Mlp(b) => format!("mlp_b{b}"),
            Workload::Cnn(b) => format!("cnn_b{b}"),
        }
    }

    fn vars(self) -> ff::Result<Vec<Variable>> {
        Ok(match self {
            Workload::Mlp(_) => {
                let mut v = Vec::new();
                for (i, w) in [784, 256, 128, 10].windows(2).enumerate() {
                    v.extend(dense_vars(w[0], w[1], &[w[0], w[1]], i as u64)?);
                }
                v
            }
            Workload::Cnn(_) => {
                let mut v = Vec::new();
                v.extend(dense_vars(9, 16 * 9, &[3, 3, 1, 16], 1)?);
                v[1] = Variable::with_options(Tensor::zeros(&[16], DType::F32)?, "bias", true);
                v.extend(dense_vars(9 * 16, 9 * 32, &[3, 3, 16, 32], 2)?);
                v[3] = Variable::with_options(Tensor::zeros(&[32], DType::F32)?, "bias", true);
                v.extend(dense_vars(7 * 7 * 32, 10, &[7 * 7 * 32, 10], 3)?);
                v
            }
        })
    }

    fn data(self) -> ff::Result<(Tensor, Tensor)> {
        let (batch, shape) = match self {
            Workload::Mlp(b) => (b, vec![b, 784]),
            Workload::Cnn(b) => (b, vec![b, 28, 28, 1]),
        };
        let x = ff::random::normal(&shape, 0.0, 1.0, DType::F32, Some(10))?;
        let labels: Vec<i32> = (0..batch as i32).map(|i| (i * 7) % 10).collect();
        let onehot = Tensor::from_vec(labels, &[batch])?.one_hot(10, 1.0, 0.0, DType::F32)?;
        Ok((x, onehot))
    }

    fn logits(self, v: &[Variable], x: &Tensor) -> ff::Result<Tensor> {
        match self {
            Workload::Mlp(_) => {
                let mut h = x.clone();
                for (i, pair) in v.chunks(2).enumerate() {
                    h = h.matmul(&pair[0].value())?.add(&pair[1].value())?;
                    if i < 2 {
                        h = h.relu()?;
                    }
                }
                Ok(h)
            }
            Workload::Cnn(b) => {
                let conv = |h: &Tensor, k: &Variable, bias: &Variable| -> ff::Result<Tensor> {
                    h.conv2d(&k.value(), (1, 1), Padding::Same, (1, 1))?
                        .add(&bias.value())?
                        .relu()?
                        .max_pool2d((2, 2), (2, 2), Padding::Valid)
                };
                let h = conv(x, &v[0], &v[1])?;
                let h = conv(&h, &v[2], &v[3])?.reshape(&[b as isize, -1])?;
                h.matmul(&v[4].value())?.add(&v[5].value())
            }
        }
    }

    /// One training step; returns the loss.
    pub fn step(
        self,
        v: &[Variable],
        opt: &mut Optimizer,
        x: &Tensor,
        onehot: &Tensor,
    ) -> ff::Result<Tensor> {
        let tape = GradientTape::new();
        let loss = self
            .logits(v, x)?
            .log_softmax(-1)?
            .mul(onehot)?
            .sum(-1, false)?
            .mean(Axes::All, false)?
            .neg()?;
        let grads = tape.gradient(&loss, v)?;
        opt.apply_gradients(&grads, v)?;
        Ok(loss)
    }

    /// A runner of `steps` training steps, eager or compiled, on fresh variables.
    pub fn runner(self, compiled: bool) -> ff::Result<impl FnMut(usize) -> ff::Result<()>> {
        let (x, onehot) = self.data()?;
        let vars = self.vars()?;
        let mut opt = Optimizer::adam(1e-3);
        let mut f =
            ff::function(move |a: &[Tensor]| Ok(vec![self.step(&vars, &mut opt, &a[0], &a[1])?]))
                .opt_level(if compiled {
                    ff::OptLevel::Full
                } else {
                    ff::OptLevel::None
                });
        Ok(move |steps: usize| {
            for _ in 0..steps {
                if compiled {
                    f.call(&[x.clone(), onehot.clone()])?;
                } else {
                    f.call_eagerly(&[x.clone(), onehot.clone()])?;
                }
            }
            Ok(())
        })
    }
}
