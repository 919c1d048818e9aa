//! Recurrent layers: `SimpleRNN`, `LSTM` and `GRU` (Keras 3 gate orders and weight
//! layouts), with `return_sequences`, `return_state`, `go_backwards`, input and recurrent
//! dropout. The input projection of all time steps is one matmul; each step then costs one
//! recurrent matmul.

use super::common::{read_activation, WeightOptions};
use crate::activations::Activation;
use crate::config::{ConfigReader, Map};
use crate::initializers::Initializer;
use crate::layer::{expect_inputs, format_dims, CallContext, Layer, LayerBase, TensorSpec};
use ferroflow_core::{DType, Error, Result, Tensor, Variable};
use serde_json::Value;
use std::sync::OnceLock;

/// Which recurrence a [`Recurrent`] layer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CellKind {
    /// `h = act(x·W + h·U + b)`.
    Simple,
    /// Long short-term memory, gates (i, f, c, o).
    Lstm,
    /// Gated recurrent unit, gates (z, r, h).
    Gru,
}

impl CellKind {
    fn class(self) -> &'static str {
        match self {
            CellKind::Simple => "SimpleRNN",
            CellKind::Lstm => "LSTM",
            CellKind::Gru => "GRU",
        }
    }

    fn cell(self) -> &'static str {
        match self {
            CellKind::Simple => "simple_rnn_cell",
            CellKind::Lstm => "lstm_cell",
            CellKind::Gru => "gru_cell",
        }
    }

    fn gates(self) -> usize {
        match self {
            CellKind::Simple => 1,
            CellKind::Lstm => 4,
            CellKind::Gru => 3,
        }
    }
}

/// A recurrent layer (`keras.layers.SimpleRNN`, `LSTM`, `GRU`); build one with
/// [`Recurrent::simple_rnn`], [`Recurrent::lstm`] or [`Recurrent::gru`].
pub struct Recurrent {
    base: LayerBase,
    kind: CellKind,
    units: usize,
    activation: Activation,
    recurrent_activation: Activation,
    use_bias: bool,
    return_sequences: bool,
    return_state: bool,
    go_backwards: bool,
    /// Whether masked steps of the sequence output are zeros (else the previous output).
    zero_output_for_mask: bool,
    unit_forget_bias: bool,
    reset_after: bool,
    dropout: f64,
    recurrent_dropout: f64,
    seed: Option<u64>,
    kernel_options: WeightOptions,
    recurrent_options: WeightOptions,
    bias_options: WeightOptions,
    kernel: OnceLock<Variable>,
    recurrent: OnceLock<Variable>,
    bias: OnceLock<Variable>,
}

impl Recurrent {
    fn new(kind: CellKind, units: usize) -> Self {
        Recurrent {
            base: LayerBase::new(kind.class(), None),
            kind,
            units,
            activation: Activation::Tanh,
            recurrent_activation: Activation::Sigmoid,
            use_bias: true,
            return_sequences: false,
            return_state: false,
            go_backwards: false,
            zero_output_for_mask: false,
            unit_forget_bias: true,
            reset_after: true,
            dropout: 0.0,
            recurrent_dropout: 0.0,
            seed: None,
            kernel_options: WeightOptions::new(Initializer::glorot_uniform()),
            recurrent_options: WeightOptions::new(Initializer::Orthogonal {
                gain: 1.0,
                seed: None,
            }),
            bias_options: WeightOptions::new(Initializer::Zeros),
            kernel: OnceLock::new(),
            recurrent: OnceLock::new(),
            bias: OnceLock::new(),
        }
    }

    /// `SimpleRNN(units)`.
    pub fn simple_rnn(units: usize) -> Self {
        Self::new(CellKind::Simple, units)
    }

    /// `LSTM(units)`.
    pub fn lstm(units: usize) -> Self {
        Self::new(CellKind::Lstm, units)
    }

    /// `GRU(units)` (`reset_after=True`, Keras's default).
    pub fn gru(units: usize) -> Self {
        Self::new(CellKind::Gru, units)
    }

    /// Gives the layer a name.
    pub fn name(mut self, name: &str) -> Self {
        self.base.set_name(name);
        self
    }

    /// Returns the whole output sequence instead of the last output.
    pub fn return_sequences(mut self, on: bool) -> Self {
        self.return_sequences = on;
        self
    }

    /// Also returns the final state(s).
    pub fn return_state(mut self, on: bool) -> Self {
        self.return_state = on;
        self
    }

    /// Processes the sequence backwards.
    pub fn go_backwards(mut self, on: bool) -> Self {
        self.go_backwards = on;
        self
    }

    /// Dropout on the inputs and on the recurrent state (training only).
    pub fn dropout(mut self, dropout: f64, recurrent_dropout: f64) -> Self {
        self.dropout = dropout;
        self.recurrent_dropout = recurrent_dropout;
        self
    }

    /// The kind of cell.
    pub fn kind(&self) -> CellKind {
        self.kind
    }

    /// Rebuilds from a Keras config of class `SimpleRNN`, `LSTM` or `GRU`.
    pub fn from_config(kind: CellKind, config: &Value) -> Result<Self> {
        let class = kind.class();
        let r = ConfigReader::new(class, config)?;
        let mut l = Recurrent::new(kind, r.usize_req("units")?);
        l.base = LayerBase::from_reader(class, &r);
        l.activation = read_activation(&r)?;
        if r.raw("activation").is_none() {
            l.activation = Activation::Tanh;
        }
        if kind != CellKind::Simple {
            l.recurrent_activation = match r.raw("recurrent_activation") {
                Some(Value::String(s)) => Activation::from_name(s)?,
                _ => Activation::Sigmoid,
            };
        }
        l.use_bias = r.bool_or("use_bias", true)?;
        l.return_sequences = r.bool_or("return_sequences", false)?;
        l.return_state = r.bool_or("return_state", false)?;
        l.go_backwards = r.bool_or("go_backwards", false)?;
        l.unit_forget_bias = r.bool_or("unit_forget_bias", true)?;
        l.reset_after = r.bool_or("reset_after", true)?;
        l.dropout = r.f64_or("dropout", 0.0)?;
        l.recurrent_dropout = r.f64_or("recurrent_dropout", 0.0)?;
        l.seed = r.raw("seed").and_then(Value::as_u64);
        l.kernel_options = WeightOptions::read(&r, "kernel", Initializer::glorot_uniform())?;
        l.recurrent_options = WeightOptions::read(
            &r,
            "recurrent",
            Initializer::Orthogonal {
                gain: 1.0,
                seed: None,
            },
        )?;
        l.bias_options = WeightOptions::read(&r, "bias", Initializer::Zeros)?;
        r.require("stateful", &Value::from(false))?;
        r.require("activity_regularizer", &Value::Null)?;
        r.raw("unroll");
        l.zero_output_for_mask = r.bool_or("zero_output_for_mask", false)?;
        r.raw("implementation");
        r.raw("time_major");
        r.finish()?;
        Ok(l)
    }

    /// The same layer configured to run backwards, named `name` (for Bidirectional).
    pub(crate) fn mirrored(&self, name: &str, backwards: bool) -> Result<Recurrent> {
        let mut cfg = Value::Object(crate::layer::LayerExt::get_config(self));
        cfg["name"] = Value::from(name);
        cfg["go_backwards"] = Value::from(backwards);
        // As Keras's Bidirectional does for the layers it wraps.
        cfg["zero_output_for_mask"] = Value::from(self.return_sequences);
        Recurrent::from_config(self.kind, &cfg)
    }

    fn state_count(&self) -> usize {
        if self.kind == CellKind::Lstm {
            2
        } else {
            1
        }
    }

    fn cell_step(
        &self,
        xt: &Tensor,
        h: &Tensor,
        c: Option<&Tensor>,
        u: &Tensor,
        rec_bias: Option<&Tensor>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let n = self.units as isize;
        match self.kind {
            CellKind::Simple => Ok((self.activation.apply(&xt.add(&h.matmul(u)?)?)?, None)),
            CellKind::Lstm => {
                let z = xt.add(&h.matmul(u)?)?;
                let g = z.split(&[n, n, n, n], -1)?;
                let ra = self.recurrent_activation;
                let (i, f, cc, o) = (
                    ra.apply(&g[0])?,
                    ra.apply(&g[1])?,
                    self.activation.apply(&g[2])?,
                    ra.apply(&g[3])?,
                );
                let c = f.mul(c.expect("LSTM carries c"))?.add(&i.mul(&cc)?)?;
                let h = o.mul(&self.activation.apply(&c)?)?;
                Ok((h, Some(c)))
            }
            CellKind::Gru => {
                let xg = xt.split(&[n, n, n], -1)?;
                let ra = self.recurrent_activation;
                let hh;
                let (z, r);
                if self.reset_after {
                    let mut hu = h.matmul(u)?;
                    if let Some(b) = rec_bias {
                        hu = hu.add(b)?;
                    }
                    let hg = hu.split(&[n, n, n], -1)?;
                    z = ra.apply(&xg[0].add(&hg[0])?)?;
                    r = ra.apply(&xg[1].add(&hg[1])?)?;
                    hh = self.activation.apply(&xg[2].add(&r.mul(&hg[2])?)?)?;
                } else {
                    let ug = u.split(&[n, n, n], -1)?;
                    z = ra.apply(&xg[0].add(&h.matmul(&ug[0])?)?)?;
                    r = ra.apply(&xg[1].add(&h.matmul(&ug[1])?)?)?;
                    hh = self
                        .activation
                        .apply(&xg[2].add(&r.mul(h)?.matmul(&ug[2])?)?)?;
                }
                // h = z·h_prev + (1 - z)·hh
                let h_new = z.mul(h)?.add(&z.neg()?.add_scalar(1.0)?.mul(&hh)?)?;
                Ok((h_new, None))
            }
        }
    }
}

impl Layer for Recurrent {
    fn class_name(&self) -> &'static str {
        self.kind.class()
    }

    fn base(&self) -> &LayerBase {
        &self.base
    }

    fn build(&self, inputs: &[TensorSpec]) -> Result<()> {
        let s = &inputs[0].shape;
        let class = self.kind.class();
        if s.len() != 3 {
            return Err(Error::invalid(
                class,
                format!(
                    "layer '{}' expects (batch, steps, features), got {}",
                    self.base.name(),
                    format_dims(s)
                ),
            ));
        }
        let f = s[2].ok_or_else(|| {
            Error::invalid(
                class,
                format!(
                    "layer '{}': the feature dimension must be known",
                    self.base.name()
                ),
            )
        })?;
        let g = self.kind.gates() * self.units;
        let cell = self.kind.cell();
        let o = &self.kernel_options;
        let _ = self
            .kernel
            .set(o.create(&self.base, &format!("{cell}/kernel"), &[f, g])?);
        let o = &self.recurrent_options;
        let _ = self.recurrent.set(o.create(
            &self.base,
            &format!("{cell}/recurrent_kernel"),
            &[self.units, g],
        )?);
        if self.use_bias {
            let o = &self.bias_options;
            let shape: Vec<usize> = if self.kind == CellKind::Gru && self.reset_after {
                vec![2, g]
            } else {
                vec![g]
            };
            let init = if self.kind == CellKind::Lstm && self.unit_forget_bias {
                // Keras: the bias initializer for (i, c, o) and ones for the forget gate.
                let u = self.units;
                let base = o.initializer.init(&[g], DType::F32)?.to_vec::<f32>()?;
                let v: Vec<f32> = base
                    .iter()
                    .enumerate()
                    .map(|(k, &b)| if (u..2 * u).contains(&k) { 1.0 } else { b })
                    .collect();
                Some(Tensor::from_vec(v, &[g])?)
            } else {
                None
            };
            let b = o.create(&self.base, &format!("{cell}/bias"), &shape)?;
            if let Some(v) = init {
                b.assign(&v)?;
            }
            let _ = self.bias.set(b);
        }
        Ok(())
    }

    fn call(&self, inputs: &[Tensor], ctx: CallContext) -> Result<Vec<Tensor>> {
        self.call_masked(inputs, &[], ctx)
    }

    fn supports_masking(&self) -> bool {
        true
    }

    /// The sequences' mask passes on with `return_sequences`; a final state has none.
    fn compute_mask(&self, _inputs: &[Tensor], masks: &[Option<Tensor>]) -> Result<Option<Tensor>> {
        Ok(masks
            .first()
            .cloned()
            .flatten()
            .filter(|_| self.return_sequences))
    }

    /// Masked steps (false in the `[batch, steps]` mask) leave the state as it was; the
    /// sequence output there is zeros (`zero_output_for_mask`, Keras's choice with
    /// `return_sequences`) or the previous output.
    fn call_masked(
        &self,
        inputs: &[Tensor],
        masks: &[Option<Tensor>],
        ctx: CallContext,
    ) -> Result<Vec<Tensor>> {
        expect_inputs(self, inputs, 1)?;
        let x = &inputs[0];
        let class = self.kind.class();
        let mask = masks.first().cloned().flatten();
        if let Some(m) = &mask {
            if x.rank() != 3 || m.shape() != &x.shape()[..2] {
                return Err(Error::invalid(
                    class,
                    format!(
                        "layer '{}': mask of shape {:?} for inputs of shape {:?}",
                        self.base.name(),
                        m.shape(),
                        x.shape()
                    ),
                ));
            }
        }
        if x.rank() != 3 {
            return Err(Error::invalid(
                class,
                format!(
                    "layer '{}' expects (batch, steps, features), got {:?}",
                    self.base.name(),
                    x.shape()
                ),
            ));
        }
        let (b, t, f) = (x.shape()[0], x.shape()[1], x.shape()[2]);
        let w = self
            .kernel
            .get()
            .ok_or_else(|| self.base.not_built())?
            .value();
        let u = self
            .recurrent
            .get()
            .ok_or_else(|| self.base.not_built())?
            .value();
        let mut x = x.clone();
        if ctx.training && self.dropout > 0.0 {
            let mask =
                Tensor::ones(&[b, 1, f], DType::F32)?.dropout(self.dropout, true, self.seed)?;
            x = x.mul(&mask)?;
        }
        let g = self.kind.gates() * self.units;
        let mut proj = x.reshape_to(&[b * t, f])?.matmul(&w)?;
        let mut rec_bias = None;
        if let Some(bias) = self.bias.get() {
            let bias = bias.value();
            if self.kind == CellKind::Gru && self.reset_after {
                let rows = bias.unstack(0)?;
                proj = proj.add(&rows[0])?;
                rec_bias = Some(rows[1].clone());
            } else {
                proj = proj.add(&bias)?;
            }
        }
        let proj = proj.reshape_to(&[b, t, g])?;
        let rec_mask = if ctx.training && self.recurrent_dropout > 0.0 {
            Some(Tensor::ones(&[b, self.units], DType::F32)?.dropout(
                self.recurrent_dropout,
                true,
                self.seed,
            )?)
        } else {
            None
        };
        let mut h = Tensor::zeros(&[b, self.units], DType::F32)?;
        let mut c = (self.kind == CellKind::Lstm)
            .then(|| Tensor::zeros(&[b, self.units], DType::F32))
            .transpose()?;
        let mut outputs = Vec::with_capacity(if self.return_sequences { t } else { 0 });
        for step in 0..t {
            let ti = if self.go_backwards {
                t - 1 - step
            } else {
                step
            };
            let xt = proj.slice(&[0, ti, 0], &[-1, 1, -1])?.reshape_to(&[b, g])?;
            let hin = match &rec_mask {
                Some(m) => h.mul(m)?,
                None => h.clone(),
            };
            let (hn, cn) = self.cell_step(&xt, &hin, c.as_ref(), &u, rec_bias.as_ref())?;
            match &mask {
                None => {
                    h = hn;
                    if cn.is_some() {
                        c = cn;
                    }
                    if self.return_sequences {
                        outputs.push(h.clone());
                    }
                }
                Some(m) => {
                    let keep = m.slice(&[0, ti], &[-1, 1])?;
                    let kept = Tensor::where_(&keep, &hn, &h)?;
                    if self.return_sequences {
                        outputs.push(match self.zero_output_for_mask {
                            true => Tensor::where_(&keep, &hn, &hn.zeros_like()?)?,
                            false => kept.clone(),
                        });
                    }
                    h = kept;
                    if let (Some(cn), Some(cp)) = (cn, &c) {
                        c = Some(Tensor::where_(&keep, &cn, cp)?);
                    }
                }
            }
        }
        let out = if self.return_sequences {
            if outputs.is_empty() {
                Tensor::zeros(&[b, 0, self.units], DType::F32)?
            } else {
                Tensor::stack(&outputs, 1)?
            }
        } else {
            h.clone()
        };
        let mut res = vec![out];
        if self.return_state {
            res.push(h);
            if let Some(c) = c {
                res.push(c);
            }
        }
        Ok(res)
    }

    fn compute_output_spec(&self, inputs: &[TensorSpec]) -> Result<Vec<TensorSpec>> {
        let s = &inputs[0].shape;
        if s.len() != 3 {
            return Err(Error::invalid(
                self.kind.class(),
                format!(
                    "layer '{}' expects (batch, steps, features), got {}",
                    self.base.name(),
                    format_dims(s)
                ),
            ));
        }
        let state = TensorSpec::new(vec![s[0], Some(self.units)], DType::F32);
        let out = if self.return_sequences {
            TensorSpec::new(vec![s[0], s[1], Some(self.units)], DType::F32)
        } else {
            state.clone()
        };
        let mut v = vec![out];
        if self.return_state {
            v.extend(std::iter::repeat_n(state, self.state_count()));
        }
        Ok(v)
    }

    fn config(&self) -> Map {
        let mut m = Map::new();
        m.insert(
            "return_sequences".into(),
            Value::from(self.return_sequences),
        );
        m.insert("return_state".into(), Value::from(self.return_state));
        m.insert("go_backwards".into(), Value::from(self.go_backwards));
        m.insert("stateful".into(), Value::from(false));
        m.insert("unroll".into(), Value::from(false));
        m.insert(
            "zero_output_for_mask".into(),
            Value::from(self.zero_output_for_mask),
        );
        m.insert("units".into(), Value::from(self.units));
        m.insert("activation".into(), Value::from(self.activation.name()));
        if self.kind != CellKind::Simple {
            m.insert(
                "recurrent_activation".into(),
                Value::from(self.recurrent_activation.name()),
            );
        }
        m.insert("use_bias".into(), Value::from(self.use_bias));
        let between: Vec<(&str, Value)> = if self.kind == CellKind::Lstm {
            vec![("unit_forget_bias", Value::from(self.unit_forget_bias))]
        } else {
            Vec::new()
        };
        super::common::write_weight_options(
            &mut m,
            &[
                ("kernel", &self.kernel_options),
                ("recurrent", &self.recurrent_options),
                ("bias", &self.bias_options),
            ],
            &between,
            &[("activity_regularizer", Value::Null)],
        );
        m.insert("dropout".into(), Value::from(self.dropout));
        m.insert(
            "recurrent_dropout".into(),
            Value::from(self.recurrent_dropout),
        );
        if self.kind == CellKind::Gru {
            m.insert("reset_after".into(), Value::from(self.reset_after));
        }
        if self.kind != CellKind::Simple {
            m.insert("seed".into(), self.seed.map_or(Value::Null, Value::from));
        }
        m
    }
}
