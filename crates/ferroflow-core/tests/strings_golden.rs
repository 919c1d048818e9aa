//! String ops against TensorFlow's outputs, and NumPy's string `.npy` files
//! (fixtures from `tools/gen_string_golden.py`).

use base64::Engine;
use ferroflow_core::strings::{self, LengthUnit, Ragged};
use ferroflow_core::{npy, DType, Result, Tensor, TfString};
use serde_json::Value;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

fn golden() -> Value {
    let text = std::fs::read_to_string(format!("{DIR}/strings_golden.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn decode(v: &Value) -> Vec<TfString> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let b = base64::engine::general_purpose::STANDARD
                .decode(s.as_str().unwrap())
                .unwrap();
            TfString::from(b)
        })
        .collect()
}

/// Floats as the generator writes them (non-finite ones as strings).
fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| match x {
            Value::String(s) => s.parse().unwrap(),
            x => x.as_f64().unwrap() as f32,
        })
        .collect()
}

fn strings_of(t: &Tensor) -> Vec<TfString> {
    t.to_vec::<TfString>().unwrap()
}

fn check_ragged(name: &str, r: Ragged, want: &Value) {
    let splits: Vec<usize> = want["row_splits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(r.row_splits, splits, "{name}: row_splits");
    assert_eq!(
        strings_of(&r.values),
        decode(&want["values"]),
        "{name}: values"
    );
}

#[test]
fn text_ops_equal_tensorflow() -> Result<()> {
    let g = golden();
    let texts = decode(&g["texts"]);
    let x = Tensor::from_vec(texts.clone(), &[texts.len()])?;
    for case in g["cases"].as_array().unwrap() {
        let op = case["op"].as_str().unwrap();
        let args = &case["args"];
        let out = &case["out"];
        let str_arg = |k: &str| args[k].as_str().unwrap().to_string();
        match op {
            "lower" => assert_eq!(strings_of(&strings::lower(&x)?), decode(out), "{op}"),
            "lower_unicode" => {
                assert_eq!(
                    strings_of(&strings::lower_unicode(&x)?),
                    decode(out),
                    "{op}"
                )
            }
            "upper" => assert_eq!(strings_of(&strings::upper(&x)?), decode(out), "{op}"),
            "upper_unicode" => {
                assert_eq!(
                    strings_of(&strings::upper_unicode(&x)?),
                    decode(out),
                    "{op}"
                )
            }
            "strip" => assert_eq!(strings_of(&strings::strip(&x)?), decode(out), "{op}"),
            "length_bytes" | "length_chars" => {
                let unit = if op == "length_bytes" {
                    LengthUnit::Byte
                } else {
                    LengthUnit::Utf8Char
                };
                let want: Vec<i32> = serde_json::from_value(out.clone()).unwrap();
                assert_eq!(strings::length(&x, unit)?.to_vec::<i32>()?, want, "{op}");
            }
            "regex_replace" => {
                let got = strings::regex_replace(
                    &x,
                    &str_arg("pattern"),
                    &str_arg("rewrite"),
                    args["replace_global"].as_bool().unwrap(),
                )?;
                assert_eq!(strings_of(&got), decode(out), "{op} {args}");
            }
            "regex_full_match" => {
                let want: Vec<bool> = serde_json::from_value(out.clone()).unwrap();
                let got = strings::regex_full_match(&x, &str_arg("pattern"))?;
                assert_eq!(got.to_vec::<bool>()?, want, "{op} {args}");
            }
            _ if op.starts_with("split") => {
                let sep = args.get("sep").map(|s| s.as_str().unwrap().to_string());
                let max = args.get("maxsplit").map(|m| m.as_u64().unwrap() as usize);
                check_ragged(op, strings::split(&x, sep.as_deref(), max)?, out);
            }
            "join" => {
                let got = strings::join(&[&x, &strings::upper(&x)?], &str_arg("separator"))?;
                assert_eq!(strings_of(&got), decode(out), "{op}");
            }
            "reduce_join" => {
                let m = x.reshape(&[2, 7])?;
                let got = strings::reduce_join(&m, Some(1), false, &str_arg("separator"))?;
                assert_eq!(strings_of(&got), decode(out), "{op}");
            }
            other => panic!("no check for golden op {other}"),
        }
    }
    Ok(())
}

#[test]
fn numbers_and_text_equal_tensorflow() -> Result<()> {
    let g = golden();
    let texts: Vec<String> = serde_json::from_value(g["numbers"].clone()).unwrap();
    let n = Tensor::from_strings(&texts, &[texts.len()])?;
    let want = floats(&g["to_number_f32"]);
    let got = strings::to_number(&n, DType::F32)?.to_vec::<f32>()?;
    assert!(
        got.iter()
            .zip(&want)
            .all(|(a, b)| a == b || (a.is_nan() && b.is_nan())),
        "{got:?} vs {want:?}"
    );
    let ints: Vec<String> = serde_json::from_value(g["int_texts"].clone()).unwrap();
    let want: Vec<i32> = serde_json::from_value(g["to_number_i32"].clone()).unwrap();
    let got = strings::to_number(&Tensor::from_strings(&ints, &[ints.len()])?, DType::I32)?;
    assert_eq!(got.to_vec::<i32>()?, want);
    let f = floats(&g["floats"]);
    let f = Tensor::from_vec(f.clone(), &[f.len()])?;
    assert_eq!(
        strings_of(&strings::as_string(&f, None)?),
        decode(&g["as_string_f32"])
    );
    assert_eq!(
        strings_of(&strings::as_string(&f, Some(2))?),
        decode(&g["as_string_f32_p2"])
    );
    let i = Tensor::from_vec(vec![-3i64, 0, 1 << 40], &[3])?;
    assert_eq!(
        strings_of(&strings::as_string(&i, None)?),
        decode(&g["as_string_i64"])
    );
    Ok(())
}

#[test]
fn numpy_string_files_read_and_write_back() -> Result<()> {
    let g = golden();
    let texts = decode(&g["texts"]);
    let u = npy::read_npy(format!("{DIR}/strings_unicode.npy"))?;
    assert_eq!(u.shape(), [2, 4]);
    assert_eq!(strings_of(&u), texts[..8].to_vec());
    let again = npy::from_npy_bytes(&npy::to_npy_bytes(&u)?, "again")?;
    assert_eq!(strings_of(&again), strings_of(&u));
    let b = npy::read_npy(format!("{DIR}/strings_bytes.npy"))?;
    let want: Vec<TfString> = [&b"\xff\x00a"[..], b"", b"plain"]
        .iter()
        .map(|s| TfString::copy_from_slice(s))
        .collect();
    assert_eq!(strings_of(&b), want);
    Ok(())
}

#[test]
fn hash_buckets_equal_tensorflow() -> Result<()> {
    let g = golden();
    let words = decode(&g["hash_inputs"]);
    let x = Tensor::from_vec(words.clone(), &[words.len()])?;
    let fast: Vec<i64> = serde_json::from_value(g["hash_fast_1009"].clone()).unwrap();
    assert_eq!(
        strings::to_hash_bucket_fast(&x, 1009)?.to_vec::<i64>()?,
        fast
    );
    let strong: Vec<i64> = serde_json::from_value(g["hash_strong_1009_7_11"].clone()).unwrap();
    assert_eq!(
        strings::to_hash_bucket_strong(&x, 1009, [7, 11])?.to_vec::<i64>()?,
        strong
    );
    assert!(strings::to_hash_bucket_fast(&x, 0).is_err());
    Ok(())
}
