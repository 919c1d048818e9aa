//! TF Serving's request and response bodies: `:predict` in row (`instances`) and
//! columnar (`inputs`) format, `:classify` and `:regress` with `examples`.

use crate::error::{ServeError, ServeResult};
use crate::json::{take, Budget, Json, Object};
use crate::json_tensor::{tensor_from_json, write_str, JsonTensor};
use crate::servable::{Signature, DEFAULT_SIGNATURE};
use ferroflow_core::Tensor;

/// How the inputs were sent, which decides how the outputs are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `instances`: one entry per example; answered with `predictions`.
    Row,
    /// `inputs`: one entry per named tensor; answered with `outputs`.
    Columnar,
}

/// The API a request calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `:predict`.
    Predict,
    /// `:classify`.
    Classify,
    /// `:regress`.
    Regress,
}

impl Method {
    /// The verb in the URL.
    pub fn verb(self) -> &'static str {
        match self {
            Method::Predict => "predict",
            Method::Classify => "classify",
            Method::Regress => "regress",
        }
    }

    /// The signature method name (`tensorflow/serving/predict`).
    pub fn method_name(self) -> &'static str {
        match self {
            Method::Predict => "tensorflow/serving/predict",
            Method::Classify => "tensorflow/serving/classify",
            Method::Regress => "tensorflow/serving/regress",
        }
    }
}

/// Checks the optional `signature_name`: the default signature answers to its key, to
/// an empty name and to the method's name (as the TF Serving docs' `regress` example
/// sends).
fn check_signature_name(body: &Object, method: Method) -> ServeResult<()> {
    match body
        .iter()
        .find(|(k, _)| k == "signature_name")
        .map(|(_, v)| v)
    {
        None | Some(Json::Null) => Ok(()),
        Some(Json::Str(s)) => check_signature(s, method),
        Some(other) => Err(ServeError::invalid(format!(
            "'signature_name' must be a string, got {}",
            other.kind()
        ))),
    }
}

/// Checks a request's signature name (on either API): the default signature answers to
/// its key, to an empty name and to the method's name.
pub fn check_signature(name: &str, method: Method) -> ServeResult<()> {
    if name.is_empty() || name == DEFAULT_SIGNATURE || name == method.method_name() {
        return Ok(());
    }
    Err(ServeError::invalid(format!(
        "Serving signature name: \"{name}\" not found in signature def"
    )))
}

fn as_object(body: Json) -> ServeResult<Object> {
    match body {
        Json::Object(m) => Ok(m),
        _ => Err(ServeError::invalid(
            "the request body must be a JSON object",
        )),
    }
}

/// Decodes a `:predict` body into input tensors in the signature's order, charging
/// the tensors to `budget`.
pub fn predict_inputs(
    body: Json,
    sig: &Signature,
    budget: &Budget,
) -> ServeResult<(Vec<Tensor>, Format)> {
    let mut body = as_object(body)?;
    check_signature_name(&body, Method::Predict)?;
    if let Some((k, _)) = body
        .iter()
        .find(|(k, _)| !["signature_name", "instances", "inputs"].contains(&k.as_str()))
    {
        return Err(ServeError::invalid(format!(
            "unknown key '{k}' in the request (expected 'instances' or 'inputs', and optionally 'signature_name')"
        )));
    }
    match (take(&mut body, "instances"), take(&mut body, "inputs")) {
        (Some(_), Some(_)) => Err(ServeError::invalid(
            "a request may have 'instances' or 'inputs', not both",
        )),
        (None, None) => Err(ServeError::invalid(
            "missing 'instances' (row format) or 'inputs' (columnar format)",
        )),
        (Some(instances), None) => Ok((row_inputs(instances, sig, budget)?, Format::Row)),
        (None, Some(inputs)) => Ok((columnar_inputs(inputs, sig, budget)?, Format::Columnar)),
    }
}

/// `instances`: a list of values (one input) or of objects keyed by input name.
fn row_inputs(instances: Json, sig: &Signature, budget: &Budget) -> ServeResult<Vec<Tensor>> {
    if !instances.is_list() {
        return Err(ServeError::invalid(
            "'instances' must be a list with one entry per example",
        ));
    }
    let rows = match instances {
        Json::List(rows) if rows.first().is_some_and(|r| matches!(r, Json::Object(_))) => rows,
        unnamed => {
            if sig.inputs.len() != 1 {
                return Err(ServeError::invalid(format!(
                "the model has {} inputs ({}): each instance must be an object keyed by input name",
                sig.inputs.len(),
                input_names(sig)
            )));
            }
            let what = format!("'instances' for input '{}'", sig.inputs[0].name);
            return Ok(vec![tensor_from_json(
                &unnamed,
                &sig.inputs[0],
                &what,
                budget,
            )?]);
        }
    };
    let mut columns: Vec<Vec<Json>> = vec![Vec::with_capacity(rows.len()); sig.inputs.len()];
    for (r, row) in rows.into_iter().enumerate() {
        let Json::Object(obj) = row else {
            return Err(ServeError::invalid(format!(
                "instance {r} is not an object (instances must be all objects or all values)"
            )));
        };
        for (col, v) in columns
            .iter_mut()
            .zip(take_inputs(obj, sig, &format!("instance {r}"))?)
        {
            col.push(v);
        }
    }
    stack_columns(columns, sig, "'instances' input", budget)
}

/// `inputs`: one value (one input) or an object of named values.
fn columnar_inputs(inputs: Json, sig: &Signature, budget: &Budget) -> ServeResult<Vec<Tensor>> {
    match inputs {
        Json::Object(obj) => take_inputs(obj, sig, "'inputs'")?
            .into_iter()
            .zip(&sig.inputs)
            .map(|(v, info)| {
                let what = format!("'inputs' input '{}'", info.name);
                tensor_from_json(&v, info, &what, budget)
            })
            .collect(),
        v if sig.inputs.len() == 1 => {
            let what = format!("'inputs' for input '{}'", sig.inputs[0].name);
            Ok(vec![tensor_from_json(&v, &sig.inputs[0], &what, budget)?])
        }
        _ => Err(ServeError::invalid(format!(
            "the model has {} inputs ({}): 'inputs' must be an object keyed by input name",
            sig.inputs.len(),
            input_names(sig)
        ))),
    }
}

/// Takes each input's value out of `obj` (an instance, the `inputs` object or an example),
/// in signature order; a missing input or a key that is no input is an error that says
/// `what` held it.
fn take_inputs(mut obj: Object, sig: &Signature, what: &str) -> ServeResult<Vec<Json>> {
    let values = sig
        .inputs
        .iter()
        .map(|info| {
            take(&mut obj, &info.name).ok_or_else(|| {
                ServeError::invalid(format!(
                    "{what} has no value for input '{}' (inputs: {})",
                    info.name,
                    input_names(sig)
                ))
            })
        })
        .collect::<ServeResult<Vec<_>>>()?;
    if let Some((k, _)) = obj.first() {
        return Err(ServeError::invalid(format!(
            "{what} has '{k}', which is not an input of the model (inputs: {})",
            input_names(sig)
        )));
    }
    Ok(values)
}

/// One tensor per input from its per-example values (`label` names it in errors).
fn stack_columns(
    columns: Vec<Vec<Json>>,
    sig: &Signature,
    label: &str,
    budget: &Budget,
) -> ServeResult<Vec<Tensor>> {
    sig.inputs
        .iter()
        .zip(columns)
        .map(|(info, col)| {
            let what = format!("{label} '{}'", info.name);
            tensor_from_json(&Json::List(col), info, &what, budget)
        })
        .collect()
}

fn input_names(sig: &Signature) -> String {
    sig.inputs
        .iter()
        .map(|i| i.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes the `:predict` response for outputs of a request in `format`.
pub fn predict_response(
    outputs: &[Tensor],
    sig: &Signature,
    format: Format,
) -> ServeResult<String> {
    let tensors = outputs
        .iter()
        .zip(&sig.outputs)
        .map(|(t, info)| JsonTensor::named(t, &info.name))
        .collect::<ServeResult<Vec<_>>>()?;
    let mut out = String::with_capacity(64 + 16 * outputs.iter().map(Tensor::numel).sum::<usize>());
    match (format, tensors.as_slice()) {
        (Format::Row, [one]) => {
            out.push_str("{\"predictions\":");
            one.write_all(&mut out);
        }
        (Format::Columnar, [one]) => {
            out.push_str("{\"outputs\":");
            one.write_all(&mut out);
        }
        (Format::Row, many) => {
            let rows = many.first().map_or(0, JsonTensor::rows);
            if let Some((t, info)) = many
                .iter()
                .zip(&sig.outputs)
                .find(|(t, _)| t.rows() != rows)
            {
                return Err(ServeError::invalid(format!(
                    "the row format needs every output to have the same batch size; '{}' has {} rows and '{}' {rows} (use 'inputs' for columnar output)",
                    info.name,
                    t.rows(),
                    sig.outputs[0].name
                )));
            }
            out.push_str("{\"predictions\":[");
            for r in 0..rows {
                if r > 0 {
                    out.push(',');
                }
                out.push('{');
                for (k, (t, info)) in many.iter().zip(&sig.outputs).enumerate() {
                    if k > 0 {
                        out.push(',');
                    }
                    write_str(&mut out, &info.name);
                    out.push(':');
                    t.write_row(&mut out, r);
                }
                out.push('}');
            }
            out.push(']');
        }
        (Format::Columnar, many) => {
            out.push_str("{\"outputs\":{");
            for (k, (t, info)) in many.iter().zip(&sig.outputs).enumerate() {
                if k > 0 {
                    out.push(',');
                }
                write_str(&mut out, &info.name);
                out.push(':');
                t.write_all(&mut out);
            }
            out.push('}');
        }
    }
    out.push('}');
    Ok(out)
}

/// Decodes a `:classify`/`:regress` body: each example (merged with `context`) gives
/// one row of every input; a feature's value or list is reshaped to the input's
/// per-example shape. Copies of `context` are charged to `budget`.
pub fn example_inputs(
    body: Json,
    sig: &Signature,
    method: Method,
    budget: &Budget,
) -> ServeResult<Vec<Tensor>> {
    let mut body = as_object(body)?;
    check_signature_name(&body, method)?;
    if let Some((k, _)) = body
        .iter()
        .find(|(k, _)| !["signature_name", "context", "examples"].contains(&k.as_str()))
    {
        return Err(ServeError::invalid(format!(
            "unknown key '{k}' in the request (expected 'examples', and optionally 'context' and 'signature_name')"
        )));
    }
    let context = match take(&mut body, "context") {
        None | Some(Json::Null) => Object::new(),
        Some(Json::Object(m)) => m,
        Some(_) => {
            return Err(ServeError::invalid(
                "'context' must be an object of features",
            ))
        }
    };
    let context_bytes: usize = context.iter().map(|(k, v)| k.len() + v.footprint()).sum();
    let examples = match take(&mut body, "examples") {
        Some(Json::List(examples)) => examples,
        Some(empty) if empty.list_len() == Some(0) => Vec::new(),
        _ => {
            return Err(ServeError::invalid(
                "'examples' must be a list of objects of features",
            ))
        }
    };
    let mut columns: Vec<Vec<Json>> = vec![Vec::with_capacity(examples.len()); sig.inputs.len()];
    for (r, ex) in examples.into_iter().enumerate() {
        let Json::Object(mut feats) = ex else {
            return Err(ServeError::invalid(format!(
                "example {r} is not an object of features"
            )));
        };
        budget.charge(context_bytes)?;
        for (k, v) in &context {
            if feats.iter().any(|(f, _)| f == k) {
                return Err(ServeError::invalid(format!(
                    "feature '{k}' is in both 'context' and example {r}"
                )));
            }
            feats.push((k.clone(), v.clone()));
        }
        // A one-input model takes a lone feature whatever its name.
        if sig.inputs.len() == 1 && feats.len() == 1 && feats[0].0 != sig.inputs[0].name {
            let v = feats.pop().map(|(_, v)| v).unwrap_or(Json::Null);
            columns[0].push(feature_row(v, &sig.inputs[0], r)?);
            continue;
        }
        let values = take_inputs(feats, sig, &format!("example {r}"))?;
        for ((col, v), info) in columns.iter_mut().zip(values).zip(&sig.inputs) {
            col.push(feature_row(v, info, r)?);
        }
    }
    stack_columns(columns, sig, "feature", budget)
}

/// One example's feature (a value or a flat list, as in `tf.train.Example`) nested to
/// the input's per-example shape.
fn feature_row(v: Json, info: &crate::servable::TensorInfo, r: usize) -> ServeResult<Json> {
    let len = v.list_len().unwrap_or(1);
    let dims = &info.shape[1..];
    let unknown = dims.iter().filter(|d| d.is_none()).count();
    let known = dims
        .iter()
        .flatten()
        .try_fold(1usize, |a, &d| a.checked_mul(d));
    let dims: Option<Vec<usize>> = match (unknown, known) {
        (0, Some(_)) => Some(dims.iter().flatten().copied().collect()),
        (1, Some(known)) if known > 0 && len.is_multiple_of(known) => {
            Some(dims.iter().map(|d| d.unwrap_or(len / known)).collect())
        }
        _ => None,
    };
    let Some(dims) = dims else {
        return Err(ServeError::invalid(format!(
            "example {r}: input '{}' has shape {} and cannot be built from a flat feature list",
            info.name,
            crate::servable::shape_string(&info.shape)
        )));
    };
    let want = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if want != Some(len) {
        return Err(ServeError::invalid(format!(
            "example {r}: feature '{}' has {len} values, input shape {} needs {}",
            info.name,
            crate::servable::shape_string(&info.shape),
            want.map_or_else(|| "more".to_string(), |w| w.to_string())
        )));
    }
    let flat = if v.is_list() { v } else { Json::List(vec![v]) };
    Ok(nest(flat, &dims))
}

/// A flat list of `dims`' product elements as nested lists of shape `dims`.
fn nest(flat: Json, dims: &[usize]) -> Json {
    match dims.split_first() {
        None => flat.item(0).unwrap_or(Json::Null),
        Some((_, [])) => flat,
        Some((&d, rest)) => {
            let stride: usize = rest.iter().product();
            let chunks = flat.split_list(d, stride).unwrap_or_default();
            Json::List(chunks.into_iter().map(|c| nest(c, rest)).collect())
        }
    }
}

/// The one output `:classify`/`:regress` read, with its values per example.
fn single_output<'a>(
    outputs: &'a [Tensor],
    sig: &Signature,
    method: Method,
) -> ServeResult<&'a Tensor> {
    match outputs {
        [one] => Ok(one),
        _ => Err(ServeError::invalid(format!(
            ":{} needs a model with one output; this one has {} ({})",
            method.verb(),
            outputs.len(),
            sig.outputs
                .iter()
                .map(|o| o.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Class scores per example, each labelled by its class index (a single score per
/// example has an empty label): what `:classify` answers, on either API.
pub fn class_scores(outputs: &[Tensor], sig: &Signature) -> ServeResult<Vec<Vec<(String, f32)>>> {
    let y = single_output(outputs, sig, Method::Classify)?;
    let (rows, classes) = match y.shape() {
        [n] => (*n, 1),
        [n, k] => (*n, *k),
        s => {
            return Err(ServeError::invalid(format!(
            ":classify needs class scores of shape [batch, classes]; output '{}' has shape {s:?}",
            sig.outputs[0].name
        )))
        }
    };
    let scores = y.cast(ferroflow_core::DType::F32)?.to_vec::<f32>()?;
    Ok((0..rows)
        .map(|r| {
            (0..classes)
                .map(|c| {
                    let label = if classes == 1 {
                        String::new()
                    } else {
                        c.to_string()
                    };
                    (label, scores[r * classes + c])
                })
                .collect()
        })
        .collect())
}

/// `{"result": [[[label, score], ...], ...]}`: [`class_scores`] as TF Serving's JSON.
pub fn classify_response(outputs: &[Tensor], sig: &Signature) -> ServeResult<String> {
    let mut out = String::from("{\"result\":[");
    for (r, row) in class_scores(outputs, sig)?.iter().enumerate() {
        if r > 0 {
            out.push(',');
        }
        out.push('[');
        for (c, (label, score)) in row.iter().enumerate() {
            if c > 0 {
                out.push(',');
            }
            out.push('[');
            write_str(&mut out, label);
            out.push(',');
            JsonTensor::new(&Tensor::scalar(*score))?.write_all(&mut out);
            out.push(']');
        }
        out.push(']');
    }
    out.push_str("]}");
    Ok(out)
}

/// One value per example: what `:regress` answers, on either API.
pub fn regression_values(outputs: &[Tensor], sig: &Signature) -> ServeResult<Tensor> {
    let y = single_output(outputs, sig, Method::Regress)?;
    let rows = match y.shape() {
        [n] | [n, 1] => *n,
        s => {
            return Err(ServeError::invalid(format!(
                ":regress needs one value per example; output '{}' has shape {s:?}",
                sig.outputs[0].name
            )))
        }
    };
    Ok(y.reshape(&[rows as isize])?)
}

/// `{"result": [value, ...]}`: [`regression_values`] as TF Serving's JSON.
pub fn regress_response(outputs: &[Tensor], sig: &Signature) -> ServeResult<String> {
    let flat = regression_values(outputs, sig)?;
    let mut out = String::from("{\"result\":");
    JsonTensor::new(&flat)?.write_all(&mut out);
    out.push('}');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::servable::TensorInfo;
    use ferroflow_core::DType;
    use serde_json::json;

    /// A request body as the server parses it.
    fn j(v: serde_json::Value) -> Json {
        Json::parse(v.to_string().as_bytes(), &b()).unwrap()
    }

    fn b() -> Budget {
        Budget::new(1 << 20)
    }

    fn sig(inputs: &[(&str, &[Option<usize>])], outputs: &[&str]) -> Signature {
        Signature {
            inputs: inputs
                .iter()
                .map(|(n, s)| TensorInfo {
                    name: n.to_string(),
                    dtype: DType::F32,
                    shape: s.to_vec(),
                })
                .collect(),
            outputs: outputs
                .iter()
                .map(|n| TensorInfo {
                    name: n.to_string(),
                    dtype: DType::F32,
                    shape: vec![None, Some(2)],
                })
                .collect(),
        }
    }

    #[test]
    fn row_and_columnar_formats_give_the_same_tensors() {
        let s = sig(&[("a", &[None, Some(2)]), ("b", &[None])], &["y"]);
        let (row, f) = predict_inputs(
            j(json!({"instances": [{"a": [1, 2], "b": 5}, {"a": [3, 4], "b": 6}]})),
            &s,
            &b(),
        )
        .unwrap();
        assert_eq!(f, Format::Row);
        let (col, f) = predict_inputs(
            j(json!({"inputs": {"b": [5, 6], "a": [[1, 2], [3, 4]]}})),
            &s,
            &b(),
        )
        .unwrap();
        assert_eq!(f, Format::Columnar);
        for (r, c) in row.iter().zip(&col) {
            assert_eq!(r.shape(), c.shape());
            assert_eq!(r.to_vec::<f32>().unwrap(), c.to_vec::<f32>().unwrap());
        }
        let one = sig(&[("x", &[None])], &["y"]);
        let (t, _) = predict_inputs(j(json!({"instances": [1.0, 2.0, 5.0]})), &one, &b()).unwrap();
        assert_eq!(t[0].shape(), [3]);
    }

    #[test]
    fn request_errors_name_the_problem() {
        let s = sig(&[("a", &[None, Some(2)]), ("b", &[None])], &["y"]);
        let e = |v: Json| predict_inputs(v, &s, &b()).unwrap_err().message;
        assert!(e(j(json!({"instances": [[1, 2]]}))).contains("keyed by input name"));
        assert!(e(j(json!({"instances": [{"a": [1, 2]}]}))).contains("no value for input 'b'"));
        assert!(e(j(json!({"instances": [{"a": [1, 2], "b": 1, "c": 0}]}))).contains("'c'"));
        assert!(e(j(json!({"inputs": {"a": [[1, 2]]}, "instances": []}))).contains("not both"));
        assert!(
            e(j(json!({"signature_name": "other", "inputs": {}}))).contains("\"other\" not found")
        );
        assert!(e(j(json!([1, 2]))).contains("JSON object"));
        assert!(e(j(json!({"input": 1}))).contains("unknown key 'input'"));
    }

    #[test]
    fn responses_follow_tf_serving_shapes() {
        let s = sig(&[("x", &[None])], &["p", "q"]);
        let p = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
        let q = Tensor::from_vec(vec![7i64, 8], &[2]).unwrap();
        let row = predict_response(&[p.clone(), q.clone()], &s, Format::Row).unwrap();
        assert_eq!(
            row,
            r#"{"predictions":[{"p":[1.0,2.0],"q":7},{"p":[3.0,4.0],"q":8}]}"#
        );
        let col = predict_response(&[p.clone(), q], &s, Format::Columnar).unwrap();
        assert_eq!(col, r#"{"outputs":{"p":[[1.0,2.0],[3.0,4.0]],"q":[7,8]}}"#);
        let one = predict_response(std::slice::from_ref(&p), &s, Format::Row).unwrap();
        assert_eq!(one, r#"{"predictions":[[1.0,2.0],[3.0,4.0]]}"#);
        let c = classify_response(&[p], &s).unwrap();
        assert_eq!(
            c,
            r#"{"result":[[["0",1.0],["1",2.0]],[["0",3.0],["1",4.0]]]}"#
        );
    }

    #[test]
    fn examples_merge_context_and_reshape_features() {
        let s = sig(&[("x", &[None, Some(2)]), ("k", &[None])], &["y"]);
        let t = example_inputs(
            j(json!({"context": {"k": 3}, "examples": [{"x": [1, 2]}, {"x": [3, 4]}]})),
            &s,
            Method::Regress,
            &b(),
        )
        .unwrap();
        assert_eq!(t[0].shape(), [2, 2]);
        assert_eq!(t[1].to_vec::<f32>().unwrap(), [3.0, 3.0]);
        let e = example_inputs(
            j(json!({"context": {"k": 3}, "examples": [{"x": [1, 2], "k": 1}]})),
            &s,
            Method::Regress,
            &b(),
        )
        .unwrap_err();
        assert!(e.message.contains("both 'context' and example 0"));
        let e = example_inputs(
            j(json!({"examples": [{"x": [1, 2, 3], "k": 1}]})),
            &s,
            Method::Regress,
            &b(),
        )
        .unwrap_err();
        assert!(e.message.contains("has 3 values"), "{}", e.message);
        let y = Tensor::from_vec(vec![3.5f32, 4.0], &[2, 1]).unwrap();
        assert_eq!(
            regress_response(&[y], &s).unwrap(),
            r#"{"result":[3.5,4.0]}"#
        );
    }
}
