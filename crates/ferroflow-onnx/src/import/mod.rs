//! Import: an ONNX model read, validated and run with ferroflow's kernels.
//!
//! [`OnnxModel`] checks the whole file before anything runs (opset, every op type and
//! domain, every name a node reads, initializer sizes against their bytes, external data)
//! and lists every problem at once. [`OnnxModel::run`] evaluates the nodes in order with
//! eager ops (`ops.rs`); [`load`] wraps that in `function`, so each input shape is traced
//! once into an optimised graph and later calls run the compiled plan.

mod attrs;
mod liveness;
mod ops;
mod rnn;

use crate::proto::{type_proto, GraphProto, ModelProto, NodeProto, ValueInfoProto};
use crate::tensor::{dtype_of_code, from_proto};
use ferroflow_core::{DType, Error, Result, Tensor};
use ferroflow_graph::{Function, TensorSpec};
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};

pub use ops::{is_supported, supported_ops};

/// The opsets import reads.
pub const IMPORT_OPSETS: std::ops::RangeInclusive<i64> = 11..=21;

/// How to read a model.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    /// Read tensors stored outside the file (`data_location: EXTERNAL`) from files beside
    /// it. Off by default: a model file should not make the loader open other files.
    pub allow_external_data: bool,
}

/// A graph input the caller feeds.
#[derive(Clone, Debug)]
pub struct InputInfo {
    /// Its name.
    pub name: String,
    /// Its sizes (`None` where symbolic or unknown).
    pub shape: Vec<Option<usize>>,
    /// Its element type.
    pub dtype: DType,
}

/// A validated ONNX model, runnable with eager ops.
pub struct OnnxModel {
    opset: i64,
    graph: GraphProto,
    initializers: HashMap<String, Tensor>,
    inputs: Vec<InputInfo>,
    outputs: Vec<String>,
    output_infos: Vec<InputInfo>,
    control_flow: bool,
}

/// Names in an error, at most a few.
fn listed(items: &[String]) -> String {
    items.join("\n  ")
}

impl OnnxModel {
    /// Reads and validates a model file.
    pub fn load(path: impl AsRef<Path>, opts: &LoadOptions) -> Result<OnnxModel> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|e| Error::invalid("onnx", format!("cannot read {}: {e}", path.display())))?;
        let dir = path.parent().map(Path::to_path_buf);
        OnnxModel::parse(&bytes, opts, dir.as_deref())
            .map_err(|e| e.context(format!("loading {}", path.display())))
    }

    /// Reads and validates a model from its bytes (external data is refused).
    pub fn from_bytes(bytes: &[u8]) -> Result<OnnxModel> {
        OnnxModel::parse(bytes, &LoadOptions::default(), None)
    }

    fn parse(bytes: &[u8], opts: &LoadOptions, dir: Option<&Path>) -> Result<OnnxModel> {
        let model = <ModelProto as prost::Message>::decode(bytes)
            .map_err(|e| Error::invalid("onnx", format!("not an ONNX model (protobuf: {e})")))?;
        let opset = model
            .opset_import
            .iter()
            .find(|o| {
                o.domain.as_deref().unwrap_or("").is_empty()
                    || o.domain.as_deref() == Some("ai.onnx")
            })
            .and_then(|o| o.version)
            .ok_or_else(|| Error::invalid("onnx", "the model imports no ONNX opset"))?;
        if !IMPORT_OPSETS.contains(&opset) {
            return Err(Error::invalid(
                "onnx",
                format!(
                    "opset {opset} is not supported (supported: {} to {})",
                    IMPORT_OPSETS.start(),
                    IMPORT_OPSETS.end()
                ),
            ));
        }
        let graph = model
            .graph
            .ok_or_else(|| Error::invalid("onnx", "the model has no graph"))?;
        let mut initializers = HashMap::new();
        let mut problems = Vec::new();
        for t in &graph.initializer {
            let name = t.name.clone().unwrap_or_default();
            match read_initializer(t, opts, dir) {
                Ok(v) => {
                    initializers.insert(name, v);
                }
                Err(e) => problems.push(format!("initializer '{name}': {e}")),
            }
        }
        let inputs: Vec<InputInfo> = graph
            .input
            .iter()
            .filter(|v| !initializers.contains_key(v.name.as_deref().unwrap_or("")))
            .map(input_info)
            .collect::<Result<_>>()?;
        let outputs: Vec<String> = graph
            .output
            .iter()
            .map(|v| v.name.clone().unwrap_or_default())
            .collect();
        let mut known: HashSet<String> = initializers.keys().cloned().collect();
        known.extend(inputs.iter().map(|i| i.name.clone()));
        let mut control_flow = false;
        check_graph(
            &graph,
            opset,
            &mut known,
            &mut problems,
            &mut control_flow,
            "",
        );
        for o in &outputs {
            if !known.contains(o) {
                problems.push(format!("graph output '{o}' is not produced by any node"));
            }
        }
        if !problems.is_empty() {
            return Err(Error::invalid(
                "onnx",
                format!(
                    "the model (opset {opset}) cannot be imported; {} problem(s):\n  {}",
                    problems.len(),
                    listed(&problems)
                ),
            ));
        }
        let output_infos = graph
            .output
            .iter()
            .map(|v| {
                input_info(v).unwrap_or_else(|_| InputInfo {
                    name: v.name.clone().unwrap_or_default(),
                    shape: Vec::new(),
                    dtype: DType::F32,
                })
            })
            .collect();
        Ok(OnnxModel {
            opset,
            graph,
            initializers,
            inputs,
            outputs,
            output_infos,
            control_flow,
        })
    }

    /// The inputs to feed, in order.
    pub fn inputs(&self) -> &[InputInfo] {
        &self.inputs
    }

    /// The outputs as the graph declares them (element type float32 and no shape where
    /// it declares none).
    pub fn outputs(&self) -> &[InputInfo] {
        &self.output_infos
    }

    /// The output names, in order.
    pub fn output_names(&self) -> &[String] {
        &self.outputs
    }

    /// The batch size the first input fixes, if it fixes one (PyTorch exports often fix 1).
    pub fn fixed_batch(&self) -> Option<usize> {
        self.inputs
            .first()
            .and_then(|i| i.shape.first().copied().flatten())
    }

    /// The model's opset.
    pub fn opset(&self) -> i64 {
        self.opset
    }

    /// Input specs for `function` (`None` on symbolic axes).
    pub fn input_specs(&self) -> Vec<TensorSpec> {
        self.inputs
            .iter()
            .map(|i| TensorSpec::new(&i.shape, i.dtype))
            .collect()
    }

    /// Checks `inputs` against the declared inputs (count, dtype, rank, fixed sizes).
    pub fn check_inputs(&self, inputs: &[Tensor]) -> Result<()> {
        if inputs.len() != self.inputs.len() {
            let names: Vec<&str> = self.inputs.iter().map(|i| i.name.as_str()).collect();
            return Err(Error::invalid(
                "onnx",
                format!(
                    "the model takes {} input(s) ({}), got {}",
                    names.len(),
                    names.join(", "),
                    inputs.len()
                ),
            ));
        }
        for (info, t) in self.inputs.iter().zip(inputs) {
            let fits = t.rank() == info.shape.len()
                && info
                    .shape
                    .iter()
                    .zip(t.shape())
                    .all(|(s, &d)| s.is_none_or(|s| s == d));
            if t.dtype() != info.dtype || !fits {
                return Err(Error::invalid(
                    "onnx",
                    format!(
                        "input '{}' must be {} of shape [{}], got {} of shape {:?}",
                        info.name,
                        info.dtype,
                        info.shape
                            .iter()
                            .map(|d| d.map_or("None".to_string(), |d| d.to_string()))
                            .collect::<Vec<_>>()
                            .join(", "),
                        t.dtype(),
                        t.shape()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Runs the graph eagerly on `inputs` (in input order).
    pub fn run(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.check_inputs(inputs)?;
        let mut env: HashMap<String, Tensor> = self.initializers.clone();
        for (info, t) in self.inputs.iter().zip(inputs) {
            env.insert(info.name.clone(), t.clone());
        }
        run_graph(&self.graph, self.opset, &mut env)?;
        self.outputs
            .iter()
            .map(|o| {
                env.get(o)
                    .cloned()
                    .ok_or_else(|| Error::invalid("onnx", format!("output '{o}' was not computed")))
            })
            .collect()
    }

    /// Whether the graph has `If`/`Loop` nodes (whose branch is chosen by a value, so the
    /// model runs eagerly rather than as a traced plan).
    pub fn has_control_flow(&self) -> bool {
        self.control_flow
    }
}

/// Runs a graph's nodes over `env` (which holds the outer scope for a subgraph).
pub(crate) fn run_graph(
    g: &GraphProto,
    opset: i64,
    env: &mut HashMap<String, Tensor>,
) -> Result<()> {
    GraphPlan::new(g, env)?.run(opset, env)
}

/// A graph prepared to run, once or many times (a `Loop` body runs at every iteration):
/// its initializers that the scope does not hold, decoded, and the values each node is
/// the last reader of.
pub(crate) struct GraphPlan<'g> {
    graph: &'g GraphProto,
    initializers: Vec<(String, Tensor)>,
    dying: Vec<Vec<String>>,
}

impl<'g> GraphPlan<'g> {
    /// Prepares `g` to run over scopes holding the names `scope` holds.
    pub(crate) fn new(g: &'g GraphProto, scope: &HashMap<String, Tensor>) -> Result<Self> {
        let initializers = g
            .initializer
            .iter()
            .map(|t| (t.name.clone().unwrap_or_default(), t))
            .filter(|(name, _)| !scope.contains_key(name))
            .map(|(name, t)| Ok((name, from_proto(t)?)))
            .collect::<Result<_>>()?;
        Ok(GraphPlan {
            graph: g,
            initializers,
            dying: liveness::dying_after(g),
        })
    }

    /// Runs the nodes over `env`.
    pub(crate) fn run(&self, opset: i64, env: &mut HashMap<String, Tensor>) -> Result<()> {
        for (name, t) in &self.initializers {
            env.entry(name.clone()).or_insert_with(|| t.clone());
        }
        run_nodes(self.graph, &self.dying, opset, env)
    }
}

/// The nodes of `g` over `env`, dropping the values `dying` names after their last reader.
fn run_nodes(
    g: &GraphProto,
    dying: &[Vec<String>],
    opset: i64,
    env: &mut HashMap<String, Tensor>,
) -> Result<()> {
    // Channels-last forms of values whose producers computed them so (window ops and the
    // elementwise ops after them), for consumers that work channels-last.
    let mut nhwc: HashMap<String, Tensor> = HashMap::new();
    for (node, dead) in g.node.iter().zip(dying) {
        let get = |m: &HashMap<String, Tensor>| -> Vec<Option<Tensor>> {
            node.input
                .iter()
                .map(|n| {
                    if n.is_empty() {
                        None
                    } else {
                        m.get(n).cloned()
                    }
                })
                .collect()
        };
        let (ins, ins_nhwc) = (get(env), get(&nhwc));
        let (outs, outs_nhwc) = ops::run(node, &ins, &ins_nhwc, opset, env).map_err(|e| {
            e.context(format!(
                "ONNX node '{}' ({})",
                node.name.as_deref().unwrap_or(""),
                node.op_type.as_deref().unwrap_or("")
            ))
        })?;
        for ((name, t), n) in node.output.iter().zip(outs).zip(outs_nhwc) {
            if name.is_empty() {
                continue;
            }
            env.insert(name.clone(), t);
            match n {
                Some(n) => nhwc.insert(name.clone(), n),
                None => nhwc.remove(name),
            };
        }
        for name in dead {
            env.remove(name);
            nhwc.remove(name);
        }
    }
    Ok(())
}

fn read_initializer(
    t: &crate::proto::TensorProto,
    opts: &LoadOptions,
    dir: Option<&Path>,
) -> Result<Tensor> {
    if t.data_location == Some(crate::proto::tensor_proto::DataLocation::External as i32) {
        if !opts.allow_external_data {
            return Err(Error::invalid(
                "onnx",
                "its data is stored outside the file (external data is refused unless allowed)",
            ));
        }
        let dir =
            dir.ok_or_else(|| Error::invalid("onnx", "external data needs the model's folder"))?;
        return external(t, dir);
    }
    from_proto(t)
}

/// Reads external data (`location`, `offset`, `length`) from a plain file name beside the
/// model, checked against the file's size before reading.
fn external(t: &crate::proto::TensorProto, dir: &Path) -> Result<Tensor> {
    let get = |k: &str| {
        t.external_data
            .iter()
            .find(|e| e.key.as_deref() == Some(k))
            .and_then(|e| e.value.clone())
    };
    let loc = get("location")
        .ok_or_else(|| Error::invalid("onnx", "external data without a location"))?;
    let p = Path::new(&loc);
    if p.components().count() != 1 || p.is_absolute() {
        return Err(Error::invalid(
            "onnx",
            format!("external data location '{loc}' must be a file beside the model"),
        ));
    }
    let bytes = std::fs::read(dir.join(p))
        .map_err(|e| Error::invalid("onnx", format!("cannot read external data '{loc}': {e}")))?;
    let offset: usize = get("offset").and_then(|v| v.parse().ok()).unwrap_or(0);
    let length: usize = get("length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(bytes.len().saturating_sub(offset));
    let end = offset
        .checked_add(length)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| {
            Error::invalid(
                "onnx",
                format!(
                    "external data '{loc}' has {} bytes, the tensor asks for {offset}+{length}",
                    bytes.len()
                ),
            )
        })?;
    let mut inline = t.clone();
    inline.data_location = None;
    inline.raw_data = Some(bytes[offset..end].to_vec());
    from_proto(&inline)
}

fn input_info(v: &ValueInfoProto) -> Result<InputInfo> {
    let name = v.name.clone().unwrap_or_default();
    let Some(type_proto::Value::TensorType(t)) = v.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        return Err(Error::invalid(
            "onnx",
            format!("input '{name}' is not a tensor"),
        ));
    };
    let dtype = dtype_of_code(t.elem_type.unwrap_or(0).into()).ok_or_else(|| {
        Error::invalid(
            "onnx",
            format!(
                "input '{name}' has an unsupported element type {:?}",
                t.elem_type
            ),
        )
    })?;
    let shape = t
        .shape
        .as_ref()
        .map(|s| {
            s.dim
                .iter()
                .map(|d| match d.value {
                    Some(crate::proto::tensor_shape_proto::dimension::Value::DimValue(v))
                        if v > 0 =>
                    {
                        Some(v as usize)
                    }
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(InputInfo { name, shape, dtype })
}

/// Checks every node (and subgraph): known op type and domain, inputs that exist.
fn check_graph(
    g: &GraphProto,
    opset: i64,
    known: &mut HashSet<String>,
    problems: &mut Vec<String>,
    control_flow: &mut bool,
    scope: &str,
) {
    for t in &g.initializer {
        known.insert(t.name.clone().unwrap_or_default());
    }
    for (i, node) in g.node.iter().enumerate() {
        let op = node.op_type.as_deref().unwrap_or("");
        let label = format!(
            "{scope}node {i} '{}' ({op}, opset {opset})",
            node.name.as_deref().unwrap_or("")
        );
        let domain = node.domain.as_deref().unwrap_or("");
        if !(domain.is_empty() || domain == "ai.onnx") {
            problems.push(format!("{label}: domain '{domain}' is not supported"));
        } else if !is_supported(op) {
            problems.push(format!("{label}: op type {op} is not supported"));
        }
        for inp in &node.input {
            if !inp.is_empty() && !known.contains(inp) {
                problems.push(format!("{label}: input '{inp}' is not defined before it"));
            }
        }
        for a in &node.attribute {
            for sub in a.g.iter().chain(&a.graphs) {
                *control_flow = true;
                let mut inner = known.clone();
                inner.extend(sub.input.iter().map(|v| v.name.clone().unwrap_or_default()));
                check_graph(
                    sub,
                    opset,
                    &mut inner,
                    problems,
                    control_flow,
                    &format!("{label} / "),
                );
            }
        }
        known.extend(node.output.iter().cloned());
    }
}

/// The closure `function` traces: the model run eagerly.
type GraphFn = Box<dyn FnMut(&[Tensor]) -> Result<Vec<Tensor>> + Send>;

/// A loaded ONNX model compiled with `function`: each input shape is traced once; models
/// with control flow run eagerly.
pub struct CompiledOnnx {
    model: Arc<OnnxModel>,
    compiled: Mutex<Function<GraphFn>>,
}

impl CompiledOnnx {
    /// Compiles a validated model.
    pub fn new(model: OnnxModel) -> CompiledOnnx {
        let model = Arc::new(model);
        let m = model.clone();
        let f: GraphFn = Box::new(move |x| m.run(x));
        CompiledOnnx {
            model,
            compiled: Mutex::new(ferroflow_graph::function(f).with_name("onnx")),
        }
    }

    /// The model.
    pub fn model(&self) -> &OnnxModel {
        &self.model
    }

    /// The compiled plan's nodes by mean time over `runs` calls on `inputs` (see
    /// `ConcreteFunction::profile`).
    pub fn profile(&self, inputs: &[Tensor], runs: usize) -> Result<String> {
        self.model.check_inputs(inputs)?;
        let mut f = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        f.concrete_function(inputs)?.profile(inputs, runs)
    }

    /// Runs the model on row blocks of `rows` (the last may be shorter) of `inputs`, which
    /// share their first dimension, and joins each output's blocks along it.
    pub fn call_in_chunks(&self, inputs: &[Tensor], rows: usize) -> Result<Vec<Tensor>> {
        let total = inputs
            .first()
            .and_then(|x| x.shape().first().copied())
            .unwrap_or(0);
        let mut parts = Vec::new();
        for start in (0..total).step_by(rows.max(1)) {
            let chunk = ferroflow_keras::training::data::slice_rows(
                inputs,
                start,
                (start + rows).min(total),
            )?;
            parts.push(self.call(&chunk)?);
        }
        let n = parts.first().map_or(0, Vec::len);
        (0..n)
            .map(|k| Tensor::concat(&parts.iter().map(|p| p[k].clone()).collect::<Vec<_>>(), 0))
            .collect()
    }

    /// Runs the model on `inputs` (in input order).
    pub fn call(&self, inputs: &[Tensor]) -> Result<Vec<Tensor>> {
        self.model.check_inputs(inputs)?;
        if self.model.has_control_flow() {
            return self.model.run(inputs);
        }
        let mut f = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        f.call(inputs)
    }
}

/// Reads, validates and compiles an ONNX model file (`ff::onnx::load`).
pub fn load(path: impl AsRef<Path>) -> Result<CompiledOnnx> {
    Ok(CompiledOnnx::new(OnnxModel::load(
        path,
        &LoadOptions::default(),
    )?))
}

/// The node a subgraph attribute belongs to, for errors.
pub(crate) fn node_label(node: &NodeProto) -> String {
    format!(
        "'{}' ({})",
        node.name.as_deref().unwrap_or(""),
        node.op_type.as_deref().unwrap_or("")
    )
}
