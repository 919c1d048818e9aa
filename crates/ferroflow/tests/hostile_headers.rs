//! Every reader, fed a small input whose header claims terabytes, returns an error within
//! a second, having allocated no more than the input's size (plus the fixed buffers a
//! reader keeps): the size is checked against the bytes present before anything is
//! allocated from it. A counting allocator measures the peak heap of the test's thread.

use ferroflow as ff;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Counts the live heap bytes allocated by each thread, and their peak.
struct ThreadMeter;

thread_local! {
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for ThreadMeter {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let _ = LIVE.try_with(|l| {
                let now = l.get() + layout.size() as isize;
                l.set(now);
                let _ = PEAK.try_with(|p| p.set(p.get().max(now)));
            });
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        let _ = LIVE.try_with(|l| l.set(l.get() - layout.size() as isize));
    }
}

#[global_allocator]
static METER: ThreadMeter = ThreadMeter;

/// Fixed buffers a reader may keep whatever its input: 64 KiB read buffers, the first
/// 64 KiB of a record or member, a gzip decoder's window and state, error messages.
const SLACK: usize = 512 << 10;

/// Runs `read` on an input of `input_len` bytes: it must fail, within a second, with a
/// message containing `expect`, allocating at most `input_len + SLACK` bytes at its peak.
fn refused<T>(what: &str, input_len: usize, expect: &str, read: impl FnOnce() -> ff::Result<T>) {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let t = Instant::now();
    let result = read();
    let elapsed = t.elapsed();
    let peak = (PEAK.with(Cell::get) - base).max(0) as usize;
    let Err(e) = result else {
        panic!("{what}: a hostile header was accepted");
    };
    let msg = e.to_string();
    assert!(msg.contains(expect), "{what}: {msg}");
    assert!(elapsed < Duration::from_secs(1), "{what}: took {elapsed:?}");
    assert!(
        peak <= input_len + SLACK,
        "{what}: allocated {peak} bytes at peak for an input of {input_len} ({msg})"
    );
    println!(
        "{what}: refused in {elapsed:?}, peak heap {peak} B for {input_len} B of input: {msg}"
    );
}

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("ff_hostile_{}_{name}", std::process::id()))
}

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = tmp(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

const TB: u64 = 1 << 40;

#[test]
fn npy_header_claiming_terabytes() {
    let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1048576, 1048576, 4), }";
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0; 64]);
    let p = write("huge.npy", &bytes);
    refused("npy", bytes.len(), "data is truncated", || {
        ff::npy::read_npy(&p)
    });
}

#[test]
fn safetensors_header_claiming_terabytes() {
    let header = format!(
        r#"{{"w":{{"dtype":"F32","shape":[1048576,1048576],"data_offsets":[0,{}]}}}}"#,
        4 * TB
    );
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    bytes.extend_from_slice(&[0; 64]);
    let p = write("huge.safetensors", &bytes);
    refused("safetensors", bytes.len(), "huge.safetensors", || {
        ff::keras::saving::tensor_file::read(&p)
    });
}

#[test]
fn tfrecord_length_claiming_a_terabyte() {
    let len = TB.to_le_bytes();
    let mut bytes = len.to_vec();
    bytes.extend_from_slice(&ff::data::tfrecord::masked_crc32c(&len).to_le_bytes());
    bytes.extend_from_slice(&[0; 100]);
    let p = write("huge.tfrecord", &bytes);
    let first = |path: &Path, c| -> ff::Result<Vec<u8>> {
        let mut r = ff::data::TFRecordReader::open_with(path, c)?;
        r.next_record().unwrap_or(Ok(Vec::new()))
    };
    refused(
        "tfrecord",
        bytes.len(),
        "exceeds the 100 bytes left",
        || first(&p, ff::data::Compression::None),
    );
    // Compressed, the stream's size is unknown: the record is read as bytes arrive.
    let gz = flate2_gz(&bytes);
    let pz = write("huge.tfrecord.gz", &gz);
    refused("tfrecord (gzip)", gz.len(), "truncated record", || {
        first(&pz, ff::data::Compression::Gzip)
    });
}

/// Gzip of `data`, by the system's gzip.
fn flate2_gz(data: &[u8]) -> Vec<u8> {
    let p = write("gz_scratch", data);
    let out = std::process::Command::new("gzip")
        .arg("-c")
        .arg(&p)
        .output()
        .expect("gzip runs");
    assert!(out.status.success());
    out.stdout
}

#[test]
fn idx_dimensions_claiming_terabytes() {
    let mut bytes = vec![0, 0, 0x0D, 3];
    for d in [1u32 << 20, 1 << 20, 1 << 10] {
        bytes.extend_from_slice(&d.to_be_bytes());
    }
    bytes.extend_from_slice(&[0; 64]);
    let p = write("huge.idx", &bytes);
    refused(
        "idx",
        bytes.len(),
        "needs 4503599627370496 bytes of data, found 64",
        || ff::data::read_idx(&p),
    );
    let gz = flate2_gz(&bytes);
    let pz = write("huge.idx.gz", &gz);
    refused("idx (gzip)", gz.len(), "found 64", || {
        ff::data::read_idx(&pz)
    });
}

#[test]
fn tflite_constant_claiming_terabytes() {
    use ff::lite::ir::{ElementType, LiteModel, LiteTensor};
    // A constant declared [2^20, 2^20] with four bytes of data behind it.
    let mut t = LiteTensor::constant_f32("w", &[1 << 20, 1 << 20], &[0.0]);
    t.dtype = ElementType::F32;
    let model = LiteModel {
        tensors: vec![t],
        ops: Vec::new(),
        inputs: Vec::new(),
        outputs: vec![0],
        ..Default::default()
    };
    let bytes = ff::lite::write::to_bytes(&model);
    refused("tflite", bytes.len(), "holds 4 bytes, but shape", || {
        ff::lite::Interpreter::from_bytes(&bytes)
    });
}

/// A PNG whose header claims 2^20 x 2^20 pixels.
fn huge_png() -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&(1u32 << 20).to_be_bytes());
    ihdr.extend_from_slice(&(1u32 << 20).to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&ihdr);
    let crc = crc32(&chunk);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&chunk);
    png.extend_from_slice(&crc.to_be_bytes());
    // A little pixel data (a zlib stream of one stored block), so decoding begins.
    let pixels = [0u8; 64];
    let mut z = vec![0x78, 0x01, 0x01];
    z.extend_from_slice(&(pixels.len() as u16).to_le_bytes());
    z.extend_from_slice(&(!(pixels.len() as u16)).to_le_bytes());
    z.extend_from_slice(&pixels);
    let (a, b) = pixels.iter().fold((1u32, 0u32), |(a, b), &x| {
        ((a + x as u32) % 65521, (b + a + x as u32) % 65521)
    });
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());
    let mut idat = b"IDAT".to_vec();
    idat.extend_from_slice(&z);
    png.extend_from_slice(&(z.len() as u32).to_be_bytes());
    png.extend_from_slice(&idat);
    png.extend_from_slice(&crc32(&idat).to_be_bytes());
    png.extend_from_slice(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]);
    png
}

/// CRC-32 (PNG's, IEEE).
fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn image_header_claiming_a_terapixel() {
    let png = huge_png();
    refused(
        "image",
        png.len(),
        "the image claims 1048576x1048576 pixels",
        || {
            ff::data::images::decode_image(
                &png,
                Path::new("huge.png"),
                (8, 8),
                ff::data::images::ColorMode::Rgb,
            )
        },
    );
}

#[test]
fn keras_archive_member_claiming_more_than_it_holds() {
    // A real archive, then its config.json entry's sizes patched to claim 4 GiB.
    let dir = tmp("keras_dir");
    let _ = std::fs::create_dir_all(&dir);
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ferroflow-keras/tests/fixtures/keras/mlp.keras");
    let mut bytes = std::fs::read(src).unwrap();
    let mut patched = 0;
    // Local headers (PK\x03\x04: size at +22) and central headers (PK\x01\x02: at +24).
    for (sig, at) in [(b"PK\x03\x04", 22usize), (b"PK\x01\x02", 24)] {
        let mut i = 0;
        while let Some(k) = find(&bytes[i..], sig) {
            let h = i + k;
            let name_at = if at == 22 { h + 30 } else { h + 46 };
            if bytes[name_at..].starts_with(b"config.json") {
                bytes[h + at..h + at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
                patched += 1;
            }
            i = h + 4;
        }
    }
    assert_eq!(patched, 2, "config.json headers found");
    let p = dir.join("huge.keras");
    std::fs::write(&p, &bytes).unwrap();
    refused(
        "keras archive",
        bytes.len(),
        "config.json claims 4294967295 bytes",
        || ff::keras::load_model(&p),
    );
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[test]
fn model_config_claiming_a_terabyte_layer() {
    // A saved model whose config asks for a Dense layer of 2^40 weights, with a
    // weights file of a few bytes.
    let dir = tmp("saved_huge");
    let _ = std::fs::remove_dir_all(&dir);
    let model = ff::keras::Model::sequential(Some("small"));
    model.add(ff::keras::Input::new(&[4])).unwrap();
    model.add(ff::keras::layers::Dense::new(2)).unwrap();
    model.save(&dir).unwrap();
    let cfg = dir.join("config.json");
    let text = std::fs::read_to_string(&cfg).unwrap();
    let huge = text.replacen("\"units\": 2", "\"units\": 1099511627776", 1);
    let huge = if huge == text {
        text.replacen("\"units\":2", "\"units\":1099511627776", 1)
    } else {
        huge
    };
    assert_ne!(huge, text, "units found in {text}");
    std::fs::write(&cfg, &huge).unwrap();
    let input = huge.len()
        + std::fs::metadata(dir.join("model.weights.safetensors"))
            .unwrap()
            .len() as usize;
    refused(
        "model config",
        input,
        "more than the model file's weights can hold",
        || ff::keras::load_model(&dir),
    );
}

#[test]
fn keras_weights_dataset_claiming_terabytes() {
    // The legacy .h5 fixture with one weight's first dimension patched to 2^40.
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ferroflow-keras/tests/fixtures/keras/mlp_legacy.h5");
    let mut bytes = std::fs::read(src).unwrap();
    let model = ff::keras::load_model(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../ferroflow-keras/tests/fixtures/keras/mlp_legacy.h5"),
    )
    .unwrap();
    let kernel = model.get_weights()[0].shape().to_vec();
    let pattern: Vec<u8> = kernel
        .iter()
        .flat_map(|&d| (d as u64).to_le_bytes())
        .collect();
    let at = find(&bytes, &pattern).expect("the kernel's dataspace");
    bytes[at..at + 8].copy_from_slice(&TB.to_le_bytes());
    let p = write("huge.h5", &bytes);
    refused("h5 dataset", bytes.len(), "mlp", || {
        ff::keras::load_model(&p).map(|_| ())
    });
}

#[test]
fn serve_request_whose_first_row_claims_a_terabyte_tensor() {
    // The request that took `ferroflow serve` down: a first row of 5 * 10^5 numbers
    // followed by as many empty rows reads as a 1 TB float tensor from its first elements.
    use ff::serve::json::{Budget, Json, MEMORY_PER_BODY_BYTE};
    use ff::serve::servable::TensorInfo;
    let mut body = String::from("[[");
    body.push_str(&vec!["0"; 500_000].join(","));
    body.push(']');
    body.push_str(&",[]".repeat(500_000 - 1));
    body.push(']');
    let info = TensorInfo {
        name: "tokens".into(),
        dtype: ff::DType::F32,
        shape: vec![None, None],
    };
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let t = Instant::now();
    let budget = Budget::new(body.len() * MEMORY_PER_BODY_BYTE);
    let e = Json::parse(body.as_bytes(), &budget)
        .and_then(|v| ff::serve::json_tensor::tensor_from_json(&v, &info, "'instances'", &budget))
        .unwrap_err();
    let peak = (PEAK.with(Cell::get) - base).max(0) as usize;
    assert!(e.message.contains("ragged"), "{}", e.message);
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert!(
        peak <= body.len() * MEMORY_PER_BODY_BYTE,
        "peak {peak} for a body of {}",
        body.len()
    );
    println!(
        "serve request: refused in {:?}, peak heap {peak} B for a {} B body: {}",
        t.elapsed(),
        body.len(),
        e.message
    );
}
