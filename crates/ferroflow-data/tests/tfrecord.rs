//! TFRecord framing and `tf.train.Example` parsing: files written by TensorFlow
//! (`tools/gen_tfrecord_fixture.py`) read back exactly; ferroflow's own files round-trip;
//! corrupt files are errors naming the file and record.

use ferroflow_core::{DType, Tensor};
use ferroflow_data::{
    parse_example, tfrecord_dataset, Example, FeatureSpec, TFRecordReader, TFRecordWriter,
};
use serde_json::Value;

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn spec() -> Vec<(&'static str, FeatureSpec)> {
    vec![
        (
            "image",
            FeatureSpec::FixedLen {
                shape: vec![2, 3],
                dtype: DType::F32,
                default: None,
            },
        ),
        (
            "label",
            FeatureSpec::FixedLen {
                shape: vec![],
                dtype: DType::I64,
                default: Some(Tensor::from_vec(vec![-1i64], &[1]).unwrap()),
            },
        ),
        ("tokens", FeatureSpec::VarLen { dtype: DType::I64 }),
        ("raw", FeatureSpec::VarLen { dtype: DType::U8 }),
    ]
}

#[test]
fn reads_tensorflow_written_examples() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("tf_examples.json")).unwrap())
            .unwrap();
    let records = expected["records"].as_array().unwrap();
    let ds = tfrecord_dataset(&[fixture("tf_examples.tfrecord")]).map(|e| {
        let bytes = e.tensor()?.to_vec::<u8>()?;
        parse_example(&bytes, &spec())
    });
    let parsed = ds.collect().unwrap();
    assert_eq!(parsed.len(), records.len());
    for (p, r) in parsed.iter().zip(records) {
        let image = p.field("image").unwrap().tensor().unwrap();
        assert_eq!(image.shape(), &[2, 3]);
        let want: Vec<f32> = r["image"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(image.to_vec::<f32>().unwrap(), want);
        let label = p
            .field("label")
            .unwrap()
            .tensor()
            .unwrap()
            .to_scalar::<i64>()
            .unwrap();
        assert_eq!(label, r["label"].as_i64().unwrap_or(-1));
        let tokens: Vec<i64> = r["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(
            p.field("tokens")
                .unwrap()
                .tensor()
                .unwrap()
                .to_vec::<i64>()
                .unwrap(),
            tokens
        );
        let raw: Vec<u8> = r["raw"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u8)
            .collect();
        assert_eq!(
            p.field("raw")
                .unwrap()
                .tensor()
                .unwrap()
                .to_vec::<u8>()
                .unwrap(),
            raw
        );
    }
}

#[test]
fn gzip_compressed_files() {
    use ferroflow_data::{tfrecord_dataset_with, Compression};
    let plain = tfrecord_dataset(&[fixture("tf_examples.tfrecord")])
        .collect()
        .unwrap();
    let gz = tfrecord_dataset_with(&[fixture("tf_examples.tfrecord.gz")], Compression::Gzip)
        .collect()
        .unwrap();
    assert_eq!(plain.len(), gz.len());
    for (a, b) in plain.iter().zip(&gz) {
        assert_eq!(
            a.tensor().unwrap().to_vec::<u8>().unwrap(),
            b.tensor().unwrap().to_vec::<u8>().unwrap()
        );
    }
    let path = std::env::temp_dir().join(format!("ff_gz_{}.tfrecord.gz", std::process::id()));
    {
        let mut w = TFRecordWriter::create_with(&path, Compression::Gzip).unwrap();
        for r in &plain {
            w.write(&r.tensor().unwrap().to_vec::<u8>().unwrap())
                .unwrap();
        }
    }
    assert_eq!(std::fs::read(&path).unwrap()[..2], [0x1f, 0x8b]);
    assert_eq!(
        tfrecord_dataset_with(&[&path], Compression::Gzip)
            .collect()
            .unwrap()
            .len(),
        plain.len()
    );
    let _ = std::fs::remove_file(&path);
}

#[test]
fn writes_what_it_reads_and_reports_corruption() {
    let dir = std::env::temp_dir().join(format!("ff_tfrecord_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("own.tfrecord");
    {
        let mut w = TFRecordWriter::create(&path).unwrap();
        for i in 0..5 {
            let ex = Example::builder()
                .floats("image", &[i as f32; 6])
                .ints("label", &[i])
                .ints("tokens", &[1, 2])
                .bytes("raw", vec![vec![i as u8]]);
            w.write(&ex.encode()).unwrap();
        }
    }
    let parsed = tfrecord_dataset(&[&path])
        .map(|e| parse_example(&e.tensor()?.to_vec::<u8>()?, &spec()))
        .collect()
        .unwrap();
    assert_eq!(parsed.len(), 5);
    assert_eq!(
        parsed[4]
            .field("label")
            .unwrap()
            .tensor()
            .unwrap()
            .to_scalar::<i64>()
            .unwrap(),
        4
    );
    // Identical bytes to TensorFlow's framing: the fixture re-framed by us is unchanged.
    let tf_bytes = std::fs::read(fixture("tf_examples.tfrecord")).unwrap();
    let mut reader = TFRecordReader::open(fixture("tf_examples.tfrecord")).unwrap();
    let copy = dir.join("copy.tfrecord");
    {
        let mut w = TFRecordWriter::create(&copy).unwrap();
        while let Some(r) = reader.next_record() {
            w.write(&r.unwrap()).unwrap();
        }
    }
    assert_eq!(std::fs::read(&copy).unwrap(), tf_bytes);
    // Flip one payload byte of record 2: the error names file and record, and comes once.
    let mut bytes = std::fs::read(&path).unwrap();
    let rec_len = bytes.len() / 5;
    bytes[2 * rec_len + 14] ^= 0xff;
    let bad = dir.join("bad.tfrecord");
    std::fs::write(&bad, &bytes).unwrap();
    let results: Vec<_> = tfrecord_dataset(&[&bad]).iter().unwrap().collect();
    assert_eq!(results.len(), 3);
    let err = results[2].as_ref().unwrap_err().to_string();
    assert!(
        err.contains("bad.tfrecord") && err.contains("record 2") && err.contains("CRC"),
        "{err}"
    );
    // Truncated file.
    std::fs::write(&bad, &bytes[..bytes.len() - 3]).unwrap();
    let mut r = TFRecordReader::open(&bad).unwrap();
    let mut last = None;
    while let Some(x) = r.next_record() {
        last = Some(x);
    }
    assert!(last.unwrap().is_err());
    // A missing file, and a wrong feature type.
    assert!(tfrecord_dataset(&[dir.join("nope.tfrecord")])
        .collect()
        .is_err());
    // Bytes features as string tensors (tf.string), one element per bytes value.
    let words = vec![(
        "words",
        FeatureSpec::VarLen {
            dtype: DType::String,
        },
    )];
    let e = Example::builder()
        .bytes("words", vec![b"cat".to_vec(), vec![0xff, 0]])
        .encode();
    let parsed = parse_example(&e, &words).unwrap();
    let t = parsed.field("words").unwrap().tensor().unwrap();
    assert_eq!(
        t.to_vec::<ferroflow_core::TfString>().unwrap(),
        [&b"cat"[..], &[0xff, 0]]
    );
    let wrong = vec![("label", FeatureSpec::VarLen { dtype: DType::F32 })];
    let err = parse_example(&Example::builder().ints("label", &[1]).encode(), &wrong)
        .unwrap_err()
        .to_string();
    assert!(err.contains("label") && err.contains("int64"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
