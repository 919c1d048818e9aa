//! CSV, IDX, NPY and text-line readers, including the errors users see.

use ferroflow_core::{DType, Tensor};
use ferroflow_data::{csv_dataset, npy_dataset, read_idx, text_line_dataset, CsvColumn};
use std::io::Write;

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("ff_readers_{}_{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn csv_typed_columns_defaults_and_errors() {
    let d = dir("csv");
    let p = d.join("data.csv");
    std::fs::write(&p, "x,label,name\n1.5,3,\"a, b\"\n,7,c\n2.25,,d\n").unwrap();
    let cols = vec![
        CsvColumn::with_default(DType::F32, -1.0),
        CsvColumn::with_default(DType::I64, 0.0),
    ];
    let rows = csv_dataset(&[&p], cols, true, b',', Some(vec![0, 1]))
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(rows.len(), 3);
    let val = |r: usize, c: usize| {
        rows[r]
            .get(c)
            .unwrap()
            .tensor()
            .unwrap()
            .cast(DType::F64)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    };
    assert_eq!((val(0, 0), val(0, 1)), (1.5, 3.0));
    assert_eq!((val(1, 0), val(2, 1)), (-1.0, 0.0));
    assert_eq!(
        rows[0].get(1).unwrap().tensor().unwrap().dtype(),
        DType::I64
    );
    // String columns keep the field as written (quotes resolved) and batch as strings.
    let cols = vec![
        CsvColumn::with_default(DType::I64, 0.0),
        CsvColumn::required(DType::String),
    ];
    let names = csv_dataset(&[&p], cols, true, b',', Some(vec![1, 2]))
        .unwrap()
        .map(|e| Ok(e.get(1).unwrap().clone()))
        .batch(3, false)
        .unwrap()
        .collect()
        .unwrap();
    let t = names[0].tensor().unwrap();
    assert_eq!(
        (t.dtype(), t.to_strings().unwrap()),
        (DType::String, vec!["a, b".into(), "c".into(), "d".into()])
    );
    // A malformed value: the error names the file, line and column, and earlier rows
    // still come through.
    std::fs::write(&p, "1,2\n3,x\n").unwrap();
    let cols = vec![
        CsvColumn::required(DType::F32),
        CsvColumn::required(DType::I32),
    ];
    let results: Vec<_> = csv_dataset(&[&p], cols.clone(), false, b',', None)
        .unwrap()
        .iter()
        .unwrap()
        .collect();
    assert!(results[0].is_ok());
    let err = results[1].as_ref().unwrap_err().to_string();
    assert!(
        err.contains("data.csv") && err.contains("line 2") && err.contains("'x'"),
        "{err}"
    );
    std::fs::write(&p, "1,2\n3\n").unwrap();
    let results: Vec<_> = csv_dataset(&[&p], cols, false, b',', None)
        .unwrap()
        .iter()
        .unwrap()
        .collect();
    assert!(results[1]
        .as_ref()
        .unwrap_err()
        .to_string()
        .contains("1 fields, expected 2"));
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn idx_like_mnist_plain_and_gzipped() {
    let d = dir("idx");
    let mut bytes = vec![0u8, 0, 0x08, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 3];
    bytes.extend(0..12u8);
    let p = d.join("images-idx3-ubyte");
    std::fs::write(&p, &bytes).unwrap();
    let t = read_idx(&p).unwrap();
    assert_eq!(t.shape(), &[2, 2, 3]);
    assert_eq!(t.to_vec::<u8>().unwrap(), (0..12).collect::<Vec<u8>>());
    let gz = d.join("images-idx3-ubyte.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::default(),
    );
    enc.write_all(&bytes).unwrap();
    enc.finish().unwrap();
    assert_eq!(
        read_idx(&gz).unwrap().to_vec::<u8>().unwrap(),
        t.to_vec::<u8>().unwrap()
    );
    // float32 big-endian labels file.
    let mut f = vec![0u8, 0, 0x0D, 1, 0, 0, 0, 2];
    f.extend(1.5f32.to_be_bytes());
    f.extend((-2.0f32).to_be_bytes());
    std::fs::write(&p, &f).unwrap();
    assert_eq!(
        read_idx(&p).unwrap().to_vec::<f32>().unwrap(),
        vec![1.5, -2.0]
    );
    std::fs::write(&p, &bytes[..bytes.len() - 1]).unwrap();
    let err = read_idx(&p).unwrap_err().to_string();
    assert!(err.contains("needs 12 bytes"), "{err}");
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn npy_and_text_lines() {
    let d = dir("npy");
    let p = d.join("x.npy");
    ferroflow_core::npy::write_npy(
        &p,
        &Tensor::from_vec((0..6).map(|v| v as f32).collect::<Vec<_>>(), &[3, 2]).unwrap(),
    )
    .unwrap();
    let rows = npy_dataset(&[&p, &p]).unwrap().collect().unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(
        rows[4].tensor().unwrap().to_vec::<f32>().unwrap(),
        vec![2.0, 3.0]
    );
    let t = d.join("t.txt");
    std::fs::write(&t, "hello\r\nworld\n\ncarriage\r\r\nlast").unwrap();
    let lines: Vec<String> = text_line_dataset(&[&t])
        .collect()
        .unwrap()
        .iter()
        .flat_map(|e| {
            let t = e.tensor().unwrap();
            assert_eq!(
                (t.dtype(), t.shape()),
                (ferroflow_core::DType::String, &[][..])
            );
            t.to_strings().unwrap()
        })
        .collect();
    assert_eq!(lines, vec!["hello", "world", "", "carriage\r", "last"]);
    // Lines batch into string vectors.
    let batch = text_line_dataset(&[&t])
        .batch(5, false)
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(batch[0].tensor().unwrap().shape(), [5]);
    let _ = std::fs::remove_dir_all(&d);
}
