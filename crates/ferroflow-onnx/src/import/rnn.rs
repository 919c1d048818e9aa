//! ONNX's recurrent ops, LSTM and GRU, with ONNX's gate layouts (LSTM: i, o, f, c; GRU:
//! z, r, h), both directions, initial states as inputs and final states as outputs (so a
//! streaming model can carry its state between calls).

use super::ops::Ctx;
use ferroflow_core::{Result, Tensor};

/// Gate `k` of `g` (`[batch, gates · hidden]`).
fn gate(g: &Tensor, k: usize, hidden: usize) -> Result<Tensor> {
    g.slice(&[0, k * hidden], &[-1, hidden as isize])
}

/// The shared inputs of a recurrent op, one direction at a time.
struct Recurrent {
    /// `[seq, batch, input]`.
    x: Tensor,
    hidden: usize,
    directions: Vec<bool>,
    batch_first: bool,
    clip: Option<f64>,
}

fn setup(c: &Ctx, gates: &str, defaults: &[&str]) -> Result<Recurrent> {
    let a = &c.a;
    let x = c.x(0)?;
    if x.rank() != 3 {
        return Err(c.err(format!("X must be rank 3, got {:?}", x.shape())));
    }
    let batch_first = a.int("layout", 0) != 0;
    let x = if batch_first {
        x.transpose(&[1, 0, 2])?
    } else {
        x.clone()
    };
    if let Some(lens) = c.opt(4) {
        let full = lens.cast(ferroflow_core::DType::I64)?.to_vec::<i64>()?;
        if full.iter().any(|&l| l != x.shape()[0] as i64) {
            return Err(c.err("sequence_lens shorter than the sequence are not supported"));
        }
    }
    let directions = match a.string("direction", "forward").as_str() {
        "forward" => vec![false],
        "reverse" => vec![true],
        "bidirectional" => vec![false, true],
        d => return Err(c.err(format!("direction '{d}'"))),
    };
    if a.has("activations") {
        let acts = a.strings("activations");
        let want: Vec<String> = defaults
            .iter()
            .cycle()
            .take(defaults.len() * directions.len())
            .map(|s| s.to_string())
            .collect();
        if acts != want {
            return Err(c.err(format!(
                "activations {acts:?} are not supported (only {gates}'s defaults)"
            )));
        }
    }
    if a.int("input_forget", 0) != 0 {
        return Err(c.err("input_forget is not supported"));
    }
    let w = c.x(1)?;
    let hidden = a.int("hidden_size", (w.shape()[1] / gates.len()) as i64) as usize;
    let clip = a.has("clip").then(|| a.float("clip", 0.0));
    Ok(Recurrent {
        x,
        hidden,
        directions,
        batch_first,
        clip,
    })
}

impl Recurrent {
    fn steps(&self, reverse: bool) -> Vec<usize> {
        let n = self.x.shape()[0];
        if reverse {
            (0..n).rev().collect()
        } else {
            (0..n).collect()
        }
    }

    /// Direction `d`'s slice of a `[num_dir, ...]` parameter.
    fn part(t: &Tensor, d: usize) -> Result<Tensor> {
        let mut size: Vec<isize> = t.shape().iter().map(|&v| v as isize).collect();
        size[0] = 1;
        let mut begin = vec![0; t.rank()];
        begin[0] = d;
        t.slice(&begin, &size)?.squeeze(&[0])
    }

    /// `X · Wᵀ + Wb` for every step at once: `[seq, batch, gates · hidden]`.
    fn input_projection(&self, w: &Tensor, wb: Option<&Tensor>) -> Result<Tensor> {
        let y = self.x.matmul_t(&w.expand_dims(0)?, false, true)?;
        match wb {
            Some(b) => y.add(b),
            None => Ok(y),
        }
    }

    fn clipped(&self, g: Tensor) -> Result<Tensor> {
        match self.clip {
            Some(v) => g.clip_scalar(-v, v),
            None => Ok(g),
        }
    }

    /// Initial state `i` of direction `d`, or zeros.
    fn initial(&self, c: &Ctx, i: usize, d: usize) -> Result<Tensor> {
        match c.opt(i) {
            Some(t) => Recurrent::part(t, d),
            None => Tensor::from_vec(
                vec![0.0f32; self.x.shape()[1] * self.hidden],
                &[self.x.shape()[1], self.hidden],
            )?
            .cast(self.x.dtype()),
        }
    }

    /// The outputs from each direction's per-step outputs and final states.
    fn outputs(&self, per_dir: Vec<(Vec<Tensor>, Vec<Tensor>)>) -> Result<Vec<Tensor>> {
        let mut ys = Vec::new();
        let mut finals: Vec<Vec<Tensor>> = Vec::new();
        for (steps, last) in per_dir {
            ys.push(Tensor::stack(&steps, 0)?); // [seq, batch, hidden]
            for (k, s) in last.into_iter().enumerate() {
                if finals.len() <= k {
                    finals.push(Vec::new());
                }
                finals[k].push(s);
            }
        }
        let mut y = Tensor::stack(&ys, 1)?; // [seq, num_dir, batch, hidden]
        let mut states: Vec<Tensor> = finals
            .iter()
            .map(|f| Tensor::stack(f, 0))
            .collect::<Result<_>>()?;
        if self.batch_first {
            y = y.transpose(&[2, 0, 1, 3])?;
            states = states
                .into_iter()
                .map(|s| s.transpose(&[1, 0, 2]))
                .collect::<Result<_>>()?;
        }
        let mut out = vec![y];
        out.extend(states);
        Ok(out)
    }
}

/// Splits `[2 · g · hidden]` biases into the input and recurrent halves.
fn biases(b: Option<&Tensor>, d: usize, width: usize) -> Result<(Option<Tensor>, Option<Tensor>)> {
    match b {
        None => Ok((None, None)),
        Some(b) => {
            let b = Recurrent::part(b, d)?;
            Ok((
                Some(b.slice(&[0], &[width as isize])?),
                Some(b.slice(&[width], &[width as isize])?),
            ))
        }
    }
}

/// ONNX `LSTM`.
pub fn lstm(c: &Ctx) -> Result<Vec<Tensor>> {
    let rec = setup(c, "iofc", &["Sigmoid", "Tanh", "Tanh"])?;
    let h = rec.hidden;
    let mut per_dir = Vec::new();
    for (d, &reverse) in rec.directions.iter().enumerate() {
        let w = Recurrent::part(c.x(1)?, d)?;
        let r = Recurrent::part(c.x(2)?, d)?;
        let (wb, rb) = biases(c.opt(3), d, 4 * h)?;
        let peep = c.opt(7).map(|p| Recurrent::part(p, d)).transpose()?;
        let xw = rec.input_projection(&w, wb.as_ref())?;
        let (mut ht, mut ct) = (rec.initial(c, 5, d)?, rec.initial(c, 6, d)?);
        let mut ys = vec![None; rec.x.shape()[0]];
        for t in rec.steps(reverse) {
            let mut g = xw
                .slice(&[t, 0, 0], &[1, -1, -1])?
                .squeeze(&[0])?
                .add(&ht.matmul_t(&r, false, true)?)?;
            if let Some(b) = &rb {
                g = g.add(b)?;
            }
            let g = rec.clipped(g)?;
            let (mut i, mut o, mut f) = (gate(&g, 0, h)?, gate(&g, 1, h)?, gate(&g, 2, h)?);
            if let Some(p) = &peep {
                i = i.add(&ct.mul(&p.slice(&[0], &[h as isize])?)?)?;
                f = f.add(&ct.mul(&p.slice(&[2 * h], &[h as isize])?)?)?;
            }
            let cand = gate(&g, 3, h)?.tanh()?;
            ct = f.sigmoid()?.mul(&ct)?.add(&i.sigmoid()?.mul(&cand)?)?;
            if let Some(p) = &peep {
                o = o.add(&ct.mul(&p.slice(&[h], &[h as isize])?)?)?;
            }
            ht = o.sigmoid()?.mul(&ct.tanh()?)?;
            ys[t] = Some(ht.clone());
        }
        per_dir.push((ys.into_iter().flatten().collect(), vec![ht, ct]));
    }
    let out = rec.outputs(per_dir)?;
    Ok(out.into_iter().take(c.node.output.len().max(1)).collect())
}

/// ONNX `GRU`.
pub fn gru(c: &Ctx) -> Result<Vec<Tensor>> {
    let rec = setup(c, "zrh", &["Sigmoid", "Tanh"])?;
    let h = rec.hidden;
    let before_reset = c.a.int("linear_before_reset", 0) != 0;
    let mut per_dir = Vec::new();
    for (d, &reverse) in rec.directions.iter().enumerate() {
        let w = Recurrent::part(c.x(1)?, d)?;
        let r = Recurrent::part(c.x(2)?, d)?;
        let (wb, rb) = biases(c.opt(3), d, 3 * h)?;
        let xw = rec.input_projection(&w, wb.as_ref())?;
        let rz_r = r.slice(&[0, 0], &[2 * h as isize, -1])?;
        let rh = r.slice(&[2 * h, 0], &[h as isize, -1])?;
        let rb_zr = rb
            .as_ref()
            .map(|b| b.slice(&[0], &[2 * h as isize]))
            .transpose()?;
        let rb_h = rb
            .as_ref()
            .map(|b| b.slice(&[2 * h], &[h as isize]))
            .transpose()?;
        let mut ht = rec.initial(c, 5, d)?;
        let mut ys = vec![None; rec.x.shape()[0]];
        for t in rec.steps(reverse) {
            let xt = xw.slice(&[t, 0, 0], &[1, -1, -1])?.squeeze(&[0])?;
            let mut zr = gate(&xt, 0, 2 * h)?.add(&ht.matmul_t(&rz_r, false, true)?)?;
            if let Some(b) = &rb_zr {
                zr = zr.add(b)?;
            }
            let zr = rec.clipped(zr)?.sigmoid()?;
            let (z, rg) = (gate(&zr, 0, h)?, gate(&zr, 1, h)?);
            let xh = gate(&xt, 2, h)?;
            let rec_h = if before_reset {
                let mut hr = ht.matmul_t(&rh, false, true)?;
                if let Some(b) = &rb_h {
                    hr = hr.add(b)?;
                }
                rg.mul(&hr)?
            } else {
                let mut hr = rg.mul(&ht)?.matmul_t(&rh, false, true)?;
                if let Some(b) = &rb_h {
                    hr = hr.add(b)?;
                }
                hr
            };
            let cand = rec.clipped(xh.add(&rec_h)?)?.tanh()?;
            // (1 - z) · cand + z · h = cand + z · (h - cand)
            ht = cand.add(&z.mul(&ht.sub(&cand)?)?)?;
            ys[t] = Some(ht.clone());
        }
        per_dir.push((ys.into_iter().flatten().collect(), vec![ht]));
    }
    let out = rec.outputs(per_dir)?;
    Ok(out.into_iter().take(c.node.output.len().max(1)).collect())
}
