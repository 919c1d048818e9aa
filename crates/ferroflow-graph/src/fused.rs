//! The fused elementwise kernel: a straight-line program of unary and binary ops over
//! broadcast inputs, evaluated block by block so intermediates stay in L1 and never become
//! tensors; optionally ending in a sum/max/min over leading or trailing axes.

use ferroflow_core::ops::binary::ScalarFn2;
use ferroflow_core::ops::conv_epilogue::TileFn;
use ferroflow_core::ops::unary::ScalarFn;
use ferroflow_core::{BinaryOp, Error, ReduceOp, Result, Tensor, UnaryOp};
use rayon::prelude::*;
use std::borrow::Cow;

/// Elements evaluated per step of the program.
const BLOCK: usize = 512;
/// Domains smaller than this run on the calling thread.
const PAR_MIN: usize = 1 << 16;

/// How an input's elements map onto the kernel's domain (row-major, broadcast).
#[derive(Clone, Debug, PartialEq)]
pub enum Access {
    /// Same shape as the domain.
    Same,
    /// One element, broadcast everywhere.
    Scalar,
    /// Repeats with period `p` (a trailing-axes input such as a bias row).
    Periodic(usize),
    /// Each element repeats `r` times in a row (a leading-axes input such as `[n, 1]`).
    Repeat(usize),
    /// Anything else: element strides over the domain's axes (0 where broadcast).
    Strided(Vec<usize>),
}

impl Access {
    /// The access pattern of an input of `shape` broadcast to `domain`.
    pub fn of(shape: &[usize], domain: &[usize]) -> Access {
        let n: usize = shape.iter().product();
        let total: usize = domain.iter().product();
        if n == total
            && shape
                .iter()
                .filter(|&&d| d != 1)
                .eq(domain.iter().filter(|&&d| d != 1))
        {
            return Access::Same;
        }
        if n == 1 {
            return Access::Scalar;
        }
        let r = domain.len();
        let padded: Vec<usize> = std::iter::repeat_n(1, r - shape.len())
            .chain(shape.iter().copied())
            .collect();
        // Trailing: input equals the domain on a suffix and is 1 before it.
        if let Some(k) =
            (0..r).find(|&k| padded[k..] == domain[k..] && padded[..k].iter().all(|&d| d == 1))
        {
            return Access::Periodic(domain[k..].iter().product());
        }
        // Leading: input equals the domain on a prefix and is 1 after it.
        if let Some(k) = (0..=r)
            .rev()
            .find(|&k| padded[..k] == domain[..k] && padded[k..].iter().all(|&d| d == 1))
        {
            return Access::Repeat(domain[k..].iter().product());
        }
        let mut strides = vec![0; r];
        let mut s = 1;
        for i in (0..r).rev() {
            if padded[i] != 1 {
                strides[i] = s;
            }
            s *= padded[i];
        }
        Access::Strided(strides)
    }
}

/// One step of the program; registers `0..inputs` hold the inputs, then one per step.
#[derive(Clone, Debug)]
pub enum Instr {
    /// `r[dst] = op(r[src])`
    Unary(UnaryOp, usize),
    /// `r[dst] = op(r[a], r[b])`
    Binary(BinaryOp, usize, usize),
}

/// A reduction ending the kernel.
#[derive(Clone, Debug)]
pub struct FusedReduce {
    /// Sum, max or min.
    pub op: ReduceOp,
    /// Whether the leading `split` axes are reduced (else the trailing ones).
    pub leading: bool,
    /// Number of leading axes of the domain on one side of the split.
    pub split: usize,
}

/// An op run first, whose output becomes the kernel's input 0 and whose buffer takes the
/// kernel's output (`matmul` or `conv2d` followed by bias and activation).
#[derive(Clone)]
pub struct Prologue {
    /// The op's label.
    pub label: String,
    /// Runs it.
    pub replay: ferroflow_core::trace::Replay,
    /// How many of the fused node's inputs are the prologue's.
    pub arity: usize,
    /// For a convolution (inputs: image and filter), its geometry: the kernel then runs
    /// as the convolution's epilogue, on each tile of its output while it is in cache.
    pub conv: Option<ferroflow_core::trace::ConvSpec>,
}

impl std::fmt::Debug for Prologue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.label)
    }
}

/// A fused elementwise kernel (f32).
#[derive(Clone, Debug)]
pub struct FusedKernel {
    /// An op whose output is input 0, run first.
    pub prologue: Option<Prologue>,
    /// Shape of the elementwise result.
    pub domain: Vec<usize>,
    /// Per input: how it is read.
    pub access: Vec<Access>,
    /// The program; the last step's register is the result.
    pub program: Vec<Instr>,
    /// Optional reduction of the result.
    pub reduce: Option<FusedReduce>,
    /// Shape of the kernel's output.
    pub out_shape: Vec<usize>,
    /// Names of the fused ops, for dumps.
    pub names: Vec<String>,
}

/// An operand of a step over one block: the block's values, or one value for all.
#[derive(Clone, Copy)]
enum Operand<'a> {
    Block(&'a [f32]),
    Scalar(f32),
}

/// `dst = f(src)`, or `dst = f(dst)` without `src`.
struct Unary<'a>(&'a mut [f32], Option<Operand<'a>>);
impl ScalarFn<f32> for Unary<'_> {
    type Output = ();
    #[inline(always)]
    fn apply<F: Fn(f32) -> f32 + Send + Sync + Copy>(self, _: usize, f: F) {
        // `UnaryOp::with_fn` is too large to inline into the caller's `with_best_isa`
        // context: compile the loop for the best instruction set here, per function.
        ferroflow_core::with_best_isa(
            #[inline(always)]
            move || match self.1 {
                Some(Operand::Block(s)) => {
                    for (d, &s) in self.0.iter_mut().zip(s) {
                        *d = f(s);
                    }
                }
                Some(Operand::Scalar(s)) => self.0.fill(f(s)),
                None => {
                    for d in self.0.iter_mut() {
                        *d = f(*d);
                    }
                }
            },
        )
    }
}

/// `dst = f(a, b)`, or `dst = f(dst, b)` without `a`; a scalar operand is broadcast
/// without being copied out to a block.
struct Binary<'a>(&'a mut [f32], Option<Operand<'a>>, Operand<'a>);
impl ScalarFn2<f32> for Binary<'_> {
    type Output = ();
    #[inline(always)]
    fn apply<F: Fn(f32, f32) -> f32 + Send + Sync + Copy>(self, _: usize, f: F) {
        use Operand::{Block, Scalar};
        // As for `Unary`.
        ferroflow_core::with_best_isa(
            #[inline(always)]
            move || match (self.1, self.2) {
                (Some(Block(a)), Block(b)) => {
                    for ((d, &a), &b) in self.0.iter_mut().zip(a).zip(b) {
                        *d = f(a, b);
                    }
                }
                (Some(Block(a)), Scalar(b)) => {
                    for (d, &a) in self.0.iter_mut().zip(a) {
                        *d = f(a, b);
                    }
                }
                (Some(Scalar(a)), Block(b)) => {
                    for (d, &b) in self.0.iter_mut().zip(b) {
                        *d = f(a, b);
                    }
                }
                (Some(Scalar(a)), Scalar(b)) => self.0.fill(f(a, b)),
                (None, Block(b)) => {
                    for (d, &b) in self.0.iter_mut().zip(b) {
                        *d = f(*d, b);
                    }
                }
                (None, Scalar(b)) => {
                    for d in self.0.iter_mut() {
                        *d = f(*d, b);
                    }
                }
            },
        )
    }
}

/// Runs step `ins` into `dst`; `operand(r)` reads register `r`, and `None` stands for
/// `dst`'s own values (the step then runs in place).
#[inline(always)]
fn run_step<'a>(ins: &Instr, dst: &mut [f32], operand: impl Fn(usize) -> Option<Operand<'a>>) {
    match *ins {
        Instr::Unary(op, s) => op.with_fn::<f32, _>(Unary(dst, operand(s))),
        Instr::Binary(op, a, b) => {
            let b = operand(b).expect("only a step's first operand is read in place");
            op.with_fn::<f32, _>(Binary(dst, operand(a), b))
        }
    }
}

impl FusedKernel {
    /// One line for dumps: `fused[sub, mul, add -> reduce_sum]`.
    pub fn describe(&self) -> String {
        let red = self
            .reduce
            .as_ref()
            .map(|r| format!(" -> {:?}", r.op).to_lowercase())
            .unwrap_or_default();
        let pro = self
            .prologue
            .as_ref()
            .map(|p| format!("{} -> ", p.label))
            .unwrap_or_default();
        format!(
            "fused[{pro}{}{red}] {:?}",
            self.names.join(", "),
            self.out_shape
        )
    }

    /// Loads elements `start..start + len` of input `i` into `dst`.
    #[inline(always)]
    fn load(&self, i: usize, src: &[f32], start: usize, dst: &mut [f32]) {
        match &self.access[i] {
            Access::Same => dst.copy_from_slice(&src[start..start + dst.len()]),
            Access::Scalar => dst.fill(src[0]),
            Access::Periodic(p) => {
                let p = *p;
                let mut k = start % p;
                if src.len() >= k + dst.len() {
                    // The input was repeated to cover a block (see `run`): one copy.
                    dst.copy_from_slice(&src[k..k + dst.len()]);
                    return;
                }
                // Whole runs of the period at a time (per-channel parameters).
                let mut filled = 0;
                while filled < dst.len() {
                    let n = (p - k).min(dst.len() - filled);
                    dst[filled..filled + n].copy_from_slice(&src[k..k + n]);
                    filled += n;
                    k = 0;
                }
            }
            Access::Repeat(r) => {
                for (j, d) in dst.iter_mut().enumerate() {
                    *d = src[(start + j) / r];
                }
            }
            Access::Strided(strides) => {
                let rank = self.domain.len();
                let mut idx = vec![0usize; rank];
                let mut rem = start;
                for a in (0..rank).rev() {
                    idx[a] = rem % self.domain[a];
                    rem /= self.domain[a];
                }
                for d in dst.iter_mut() {
                    *d = src[idx.iter().zip(strides).map(|(i, s)| i * s).sum::<usize>()];
                    for a in (0..rank).rev() {
                        idx[a] += 1;
                        if idx[a] < self.domain[a] {
                            break;
                        }
                        idx[a] = 0;
                    }
                }
            }
        }
    }

    /// Evaluates elements `start..start + out.len()` of the elementwise result into `out`,
    /// using `regs` (at least inputs + steps registers of `BLOCK` floats) as scratch.
    /// Input `inplace`, if any, is read from `out` itself (each block is read before it is
    /// written). Scalar inputs are broadcast where they are used, and the last step writes
    /// `out` directly (in place where it reads the in-place input).
    #[inline(always)]
    fn eval_range(
        &self,
        inputs: &[&[f32]],
        inplace: Option<usize>,
        start: usize,
        out: &mut [f32],
        regs: &mut [Vec<f32>],
    ) {
        let n_in = inputs.len();
        let (in_regs, steps) = regs.split_at_mut(n_in);
        let last = self.program.len() - 1;
        let held = |r: usize| Some(r) == inplace;
        let mut pos = 0;
        while pos < out.len() {
            let len = BLOCK.min(out.len() - pos);
            let at = start + pos;
            for (i, src) in inputs.iter().enumerate() {
                if !held(i)
                    && self.access[i] != Access::Scalar
                    && self.direct(i, src, at, len).is_none()
                {
                    self.load(i, src, at, &mut in_regs[i][..len]);
                }
            }
            // An input: a scalar, or a block read where it lies when its elements are
            // contiguous there (no copy) and from its register otherwise; `None` for the
            // in-place input, whose block is still in `out` until the last step writes it.
            let in_regs: &[Vec<f32>] = in_regs;
            let input = |r: usize| {
                if held(r) {
                    None
                } else if self.access[r] == Access::Scalar {
                    Some(Operand::Scalar(inputs[r][0]))
                } else {
                    Some(Operand::Block(
                        self.direct(r, inputs[r], at, len)
                            .unwrap_or(&in_regs[r][..len]),
                    ))
                }
            };
            let block = &mut out[pos..pos + len];
            let (done, rest) = steps.split_at_mut(last);
            {
                let block: &[f32] = block;
                for (j, ins) in self.program[..last].iter().enumerate() {
                    let (before, after) = done.split_at_mut(j);
                    let operand = |r: usize| {
                        Some(if r < n_in {
                            input(r).unwrap_or(Operand::Block(block))
                        } else {
                            Operand::Block(&before[r - n_in][..len])
                        })
                    };
                    run_step(ins, &mut after[0][..len], operand);
                }
            }
            // The last step: written into `out`'s block, in place where it reads the
            // in-place input once (as its first operand, or its second of a commutative
            // op), else through a register.
            let done: &[Vec<f32>] = done;
            let other = |r: usize| {
                if r < n_in {
                    input(r)
                } else {
                    Some(Operand::Block(&done[r - n_in][..len]))
                }
            };
            let ins = &self.program[last];
            let (first, second) = match *ins {
                Instr::Unary(_, s) => (s, None),
                Instr::Binary(_, a, b) => (a, Some(b)),
            };
            match (held(first), second.map(held), ins) {
                (_, None | Some(false), _) => run_step(ins, block, other),
                (false, Some(true), Instr::Binary(op @ (BinaryOp::Add | BinaryOp::Mul), ..)) => {
                    let a = other(first).expect("not the in-place input");
                    op.with_fn::<f32, _>(Binary(block, None, a));
                }
                _ => {
                    let dst = &mut rest[0][..len];
                    {
                        let block: &[f32] = block;
                        run_step(ins, dst, |r| {
                            Some(other(r).unwrap_or(Operand::Block(block)))
                        });
                    }
                    block.copy_from_slice(dst);
                }
            }
            pos += len;
        }
    }

    /// Elements `start..start + len` of input `i` as they lie in `src`, when they are
    /// contiguous there: an input of the domain's shape, or a periodic one repeated to
    /// cover a block (see `run`).
    #[inline(always)]
    fn direct<'s>(&self, i: usize, src: &'s [f32], start: usize, len: usize) -> Option<&'s [f32]> {
        match self.access[i] {
            Access::Same => Some(&src[start..start + len]),
            Access::Periodic(p) => src.get(start % p..start % p + len),
            _ => None,
        }
    }

    /// Registers for `n_in` inputs and the program's steps, `BLOCK` elements each, taken
    /// from this thread's pool (a kernel called on small tensors would otherwise spend
    /// much of its time allocating and zeroing them) and returned to it by `f`'s end.
    fn with_registers<R>(&self, n_in: usize, f: impl FnOnce(&mut [Vec<f32>]) -> R) -> R {
        thread_local! {
            static POOL: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        let n = n_in + self.program.len();
        let mut regs = POOL.with(|p| {
            let mut p = p.borrow_mut();
            let keep = p.len().saturating_sub(n);
            p.split_off(keep)
        });
        regs.resize_with(n, || vec![0.0f32; BLOCK]);
        let r = f(&mut regs);
        POOL.with(|p| p.borrow_mut().append(&mut regs));
        r
    }

    /// Short periodic inputs (per-channel parameters) repeated to cover a block and a
    /// period more, so that loading a block is one copy rather than one per period.
    fn repeat_periodic(&self, data: &[Cow<'_, [f32]>]) -> Vec<Option<Vec<f32>>> {
        self.access
            .iter()
            .zip(data)
            .map(|(a, d)| match a {
                Access::Periodic(p) if *p < BLOCK && d.len() == *p => {
                    let n = p * (BLOCK / p + 2);
                    let mut v = Vec::with_capacity(n);
                    while v.len() < n {
                        v.extend_from_slice(d);
                    }
                    Some(v)
                }
                _ => None,
            })
            .collect()
    }

    /// The f32 data of the kernel's inputs, each checked to hold its tensor's elements.
    /// `None` marks the one input whose buffer comes from elsewhere (a dying tensor's, or
    /// the producing op's output): it reads as empty here, and `slot_len`, its buffer's
    /// length, must cover the kernel's domain.
    fn input_data<'t>(
        &self,
        inputs: impl Iterator<Item = Option<&'t Tensor>>,
        slot_len: usize,
    ) -> Result<Vec<Cow<'t, [f32]>>> {
        let total: usize = self.domain.iter().product();
        inputs
            .enumerate()
            .map(|(i, t)| {
                let (d, n, want) = match t {
                    Some(t) => {
                        let d = t.data::<f32>()?;
                        let n = d.len();
                        (d, n, t.numel())
                    }
                    None => (Cow::Owned(Vec::new()), slot_len, total),
                };
                if n != want || n == 0 && total != 0 {
                    return Err(Error::invalid(
                        "fused",
                        format!("input {i} has {n} elements, expected {want}"),
                    ));
                }
                Ok(d)
            })
            .collect()
    }

    /// Runs the kernel as the epilogue of the op that makes its input 0, which `produce`
    /// runs: `produce` gets the kernel as a [`TileFn`] to apply to each tile of its output
    /// as it makes it (a convolution's [`ConvEpilogue::tiled`]), so the result is written
    /// over the op's output while each tile is still in cache. `rest` are inputs 1.. .
    ///
    /// [`ConvEpilogue::tiled`]: ferroflow_core::ops::conv_epilogue::ConvEpilogue::tiled
    pub fn run_as_epilogue(
        &self,
        rest: &[Tensor],
        produce: impl FnOnce(&TileFn<'_>) -> Result<Tensor>,
    ) -> Result<Tensor> {
        if self.reduce.is_some() || self.access.first() != Some(&Access::Same) {
            return Err(Error::invalid(
                "fused",
                "only a kernel without reduction that reads input 0 whole runs as an epilogue",
            ));
        }
        let total: usize = self.domain.iter().product();
        // Input 0 is the producing op's output, which the tiles are.
        let data = self.input_data(std::iter::once(None).chain(rest.iter().map(Some)), total)?;
        let tiled = self.repeat_periodic(&data);
        let srcs = sources(&data, &tiled);
        let tile = |start: usize, out: &mut [f32]| {
            debug_assert!(start + out.len() <= total, "a tile past the output's end");
            self.with_registers(srcs.len(), |regs| {
                ferroflow_core::with_best_isa(
                    #[inline(always)]
                    || self.eval_range(&srcs, Some(0), start, out, regs),
                )
            })
        };
        self.produced(produce(&tile)?)
    }

    /// The output of the op this kernel ran as the epilogue of, which must have the
    /// kernel's domain, in the kernel's output shape.
    pub(crate) fn produced(&self, y: Tensor) -> Result<Tensor> {
        if y.shape() != self.domain.as_slice() {
            return Err(Error::invalid(
                "fused",
                format!(
                    "the producing op gave shape {:?}, the kernel's domain is {:?}",
                    y.shape(),
                    self.domain
                ),
            ));
        }
        y.reshape_to(&self.out_shape)
    }

    /// Runs the kernel. `inplace` may name an input (read with [`Access::Same`], no
    /// reduction) together with its buffer, taken from a dying tensor: the output is
    /// written over it, and `inputs[i]` for that input is ignored.
    pub fn run(&self, inputs: &[Tensor], inplace: Option<(usize, Vec<f32>)>) -> Result<Tensor> {
        let which = inplace.as_ref().map(|(i, _)| *i);
        let total: usize = self.domain.iter().product();
        let given = inputs
            .iter()
            .enumerate()
            .map(|(i, t)| (Some(i) != which).then_some(t));
        let data = self.input_data(given, inplace.as_ref().map_or(0, |(_, b)| b.len()))?;
        let tiled = self.repeat_periodic(&data);
        let srcs = sources(&data, &tiled);
        let Some(red) = &self.reduce else {
            let (mut out, inplace) = match inplace {
                Some((i, v)) if v.len() == total && self.access[i] == Access::Same => (v, Some(i)),
                _ => (ferroflow_core::alloc::overwritable::<f32>(total), None),
            };
            let threads = ferroflow_core::num_threads();
            if total >= PAR_MIN && threads > 1 {
                let chunk = (total / threads).div_ceil(BLOCK) * BLOCK;
                out.par_chunks_mut(chunk.max(BLOCK))
                    .enumerate()
                    .for_each(|(c, o)| {
                        self.with_registers(srcs.len(), |regs| {
                            ferroflow_core::with_best_isa(
                                #[inline(always)]
                                || self.eval_range(&srcs, inplace, c * chunk.max(BLOCK), o, regs),
                            )
                        })
                    });
            } else {
                self.with_registers(srcs.len(), |regs| {
                    ferroflow_core::with_best_isa(
                        #[inline(always)]
                        || self.eval_range(&srcs, inplace, 0, &mut out, regs),
                    )
                });
            }
            return Tensor::from_vec(out, &self.out_shape);
        };
        let outer: usize = self.domain[..red.split].iter().product();
        let inner: usize = self.domain[red.split..].iter().product();
        let init = match red.op {
            ReduceOp::Max => f64::NEG_INFINITY,
            ReduceOp::Min => f64::INFINITY,
            _ => 0.0,
        };
        let combine = |a: f64, v: f32| -> f64 {
            let v = v as f64;
            match red.op {
                ReduceOp::Max => {
                    if v > a || v.is_nan() {
                        v
                    } else {
                        a
                    }
                }
                ReduceOp::Min => {
                    if v < a || v.is_nan() {
                        v
                    } else {
                        a
                    }
                }
                _ => a + v,
            }
        };
        let mut row = vec![0.0f32; inner.clamp(1, BLOCK * 64)];
        let out: Vec<f32> = self.with_registers(srcs.len(), |regs| {
            if red.leading {
                // Sum rows of the [outer, inner] domain into one row of `inner`.
                let mut acc = vec![init; inner];
                for o in 0..outer {
                    let mut j = 0;
                    while j < inner {
                        let len = row.len().min(inner - j);
                        self.eval_range(&srcs, None, o * inner + j, &mut row[..len], regs);
                        for (a, &v) in acc[j..j + len].iter_mut().zip(&row[..len]) {
                            *a = combine(*a, v);
                        }
                        j += len;
                    }
                }
                acc.into_iter().map(|a| a as f32).collect()
            } else {
                (0..outer)
                    .map(|o| {
                        let mut a = init;
                        let mut j = 0;
                        while j < inner {
                            let len = row.len().min(inner - j);
                            self.eval_range(&srcs, None, o * inner + j, &mut row[..len], regs);
                            a = row[..len].iter().fold(a, |a, &v| combine(a, v));
                            j += len;
                        }
                        a as f32
                    })
                    .collect()
            }
        });
        Tensor::from_vec(out, &self.out_shape)
    }
}

/// Each input's data as the kernel reads it: its repeated form where it has one.
fn sources<'a>(data: &'a [Cow<'_, [f32]>], tiled: &'a [Option<Vec<f32>>]) -> Vec<&'a [f32]> {
    data.iter()
        .zip(tiled)
        .map(|(d, t)| t.as_deref().unwrap_or(&d[..]))
        .collect()
}
