//! `ferroflow inspect`: what a model file expects and contains, for every format
//! ferroflow reads (`saved_model_cli show --all` and LiteRT's model analyzer in one).
//!
//! Every format is described in one JSON shape (`--json` prints it); the text view
//! renders that same JSON, so the two never disagree.

use ferroflow as ff;
use serde_json::{json, Value};
use std::path::Path;

/// The description of the model at `path` as JSON.
pub fn describe(path: &Path) -> ff::Result<Value> {
    let mut v = if path.extension().is_some_and(|e| e == "tflite") {
        let bytes = std::fs::read(path).map_err(|source| ff::Error::Io {
            path: path.display().to_string(),
            source,
        })?;
        ff::lite::inspect::inspect(&bytes).map_err(|e| match e {
            ff::Error::Format { msg, .. } => ff::Error::Format {
                path: path.display().to_string(),
                msg,
            },
            other => other,
        })?
    } else {
        let model = ff::keras::load_model(path)?;
        let mut v = ff::keras::saving::file_format(path)?;
        if let (Value::Object(m), Value::Object(d)) = (&mut v, model.describe()) {
            m.extend(d);
        }
        v
    };
    if let Value::Object(m) = &mut v {
        m.insert("path".into(), json!(path.display().to_string()));
    }
    Ok(v)
}

/// A JSON shape (`null` for dynamic dimensions) as Keras prints shapes.
fn shape_text(v: &Value) -> String {
    let dims: Vec<String> = v
        .as_array()
        .map(|a| {
            a.iter()
                .map(|d| d.as_u64().map_or("None".to_string(), |x| x.to_string()))
                .collect()
        })
        .unwrap_or_default();
    match dims.len() {
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    }
}

fn quant_text(q: &Value) -> String {
    if q.is_null() {
        return String::new();
    }
    let list = |k: &str| {
        q[k].as_array()
            .map(|a| {
                a.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default()
    };
    match q["kind"].as_str() {
        Some("per_channel") => format!(
            "  quantized per channel (axis {}, {} channels; scales {}...)",
            q["axis"],
            q["channels"],
            list("scale")
        ),
        _ => format!(
            "  quantized per tensor (scale {}, zero point {})",
            list("scale"),
            list("zero_point")
        ),
    }
}

/// Keras's byte-size format: `116.00 B`, `1.17 MB`.
fn size_text(bytes: u64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let (mut v, mut i) = (bytes as f64, 0);
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.2} {}", units[i])
}

/// Renders [`describe`]'s JSON for a terminal.
pub fn render(v: &Value) -> String {
    let mut s = String::new();
    let str_of = |x: &Value| {
        x.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| x.to_string())
    };
    s.push_str(&format!("Model file: {}\n", str_of(&v["path"])));
    let version = &v["format_version"];
    let format = match v["format"].as_str() {
        Some("tflite") => format!("TFLite flatbuffer (schema version {version})"),
        Some("keras") => format!(
            "Keras 3 .keras archive (written by Keras {})",
            str_of(version)
        ),
        Some("keras_h5") => format!(
            "legacy Keras HDF5 file (written by Keras {})",
            str_of(version)
        ),
        Some("ferroflow_saved_model") => "ferroflow saved model directory".to_string(),
        _ => str_of(&v["format"]),
    };
    s.push_str(&format!("Format: {format}\n"));
    if let Some(name) = v["name"].as_str() {
        s.push_str(&format!("Model: '{name}' ({})\n", str_of(&v["class"])));
    }
    if let Some(d) = v["description"].as_str().filter(|d| !d.is_empty()) {
        s.push_str(&format!("Description: {d}\n"));
    }
    for (title, key) in [("Inputs", "inputs"), ("Outputs", "outputs")] {
        s.push_str(&format!("{title}:\n"));
        for t in v[key].as_array().into_iter().flatten() {
            s.push_str(&format!(
                "  '{}': {} {}{}\n",
                str_of(&t["name"]),
                str_of(&t["dtype"]),
                shape_text(&t["shape"]),
                quant_text(&t["quantization"])
            ));
        }
    }
    if let Some(ops) = v["ops"].as_array() {
        match v["subgraphs"].as_u64() {
            Some(n) if n > 1 => s.push_str(&format!(
                "Operators: {} in all, in {n} subgraphs (the main one and {} run by control flow)\n",
                v["operators"],
                n - 1
            )),
            _ => s.push_str(&format!("Operators: {} in all\n", v["operators"])),
        }
        for o in ops {
            let mark = match o["reason"].as_str() {
                Some(r) => format!("  <- ferroflow cannot run this: {r}"),
                None => String::new(),
            };
            s.push_str(&format!(
                "  {:>5} x {} (version {}){mark}\n",
                o["count"].to_string(),
                str_of(&o["op"]),
                o["version"]
            ));
        }
    }
    if let Some(layers) = v["layers"].as_array() {
        s.push_str("Layers:\n");
        for l in layers {
            s.push_str(&format!(
                "  {:>5} x {}\n",
                l["count"].to_string(),
                str_of(&l["class"])
            ));
        }
    }
    let p = &v["parameters"];
    let bytes = p["bytes"].as_u64().unwrap_or(0);
    s.push_str(&format!(
        "Parameters: {} ({})",
        p["count"],
        size_text(bytes)
    ));
    if p["trainable"].is_number() {
        s.push_str(&format!(
            ", trainable {}, non-trainable {}",
            p["trainable"], p["non_trainable"]
        ));
    }
    if p["tensors"].is_number() {
        s.push_str(&format!(" in {} constant tensors", p["tensors"]));
    }
    s.push('\n');
    if let Some(types) = v["tensor_types"].as_object() {
        let list: Vec<String> = types.iter().map(|(k, n)| format!("{k} {n}")).collect();
        s.push_str(&format!("Tensor types: {}\n", list.join(", ")));
        let q = &v["quantization"];
        s.push_str(&format!(
            "Quantized tensors: {} per tensor, {} per channel\n",
            q["per_tensor"], q["per_channel"]
        ));
    }
    if let Some(c) = v["compiled"].as_object() {
        s.push_str(&format!(
            "Compiled: optimizer {}, loss {}, metrics {}\n",
            str_of(&c["optimizer"]),
            c["losses"],
            c["metrics"]
        ));
    }
    if let Some(u) = v["unsupported_ops"].as_array() {
        let types: Vec<String> = v["unsupported_tensor_types"]
            .as_array()
            .map(|t| t.iter().map(str_of).collect())
            .unwrap_or_default();
        if !types.is_empty() {
            s.push_str(&format!(
                "ferroflow cannot read tensors of type: {}\n",
                types.join(", ")
            ));
        }
        if !u.is_empty() {
            let names: Vec<String> = u.iter().map(str_of).collect();
            s.push_str(&format!(
                "ferroflow cannot run: {} (see the reasons above)\n",
                names.join(", ")
            ));
        }
        if u.is_empty() && types.is_empty() {
            s.push_str("ferroflow runs every operator of this model.\n");
        }
    }
    s
}

/// Prints the description of `path`, as text or as JSON.
pub fn run(path: &Path, as_json: bool) -> ff::Result<()> {
    let v = describe(path)?;
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
        );
    } else {
        print!("{}", render(&v));
    }
    Ok(())
}
