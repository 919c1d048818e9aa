//! `ferroflow bench data`: the input pipeline of `tools/bench_compare.py data`:
//! `from_tensor_slices` (60,000 x 784 f32) -> shuffle(10,000) -> map(normalise + random
//! flip, parallel) -> batch(128) -> prefetch, and a TFRecord read of the same data
//! (parse `tf.train.Example`s, batch, prefetch). Reports elements per second and peak RSS.

use crate::bench_core::report;
use crate::heap_meter::peak_rss_mib;
use ferroflow as ff;
use ff::data::{
    parse_example, tfrecord_dataset, Dataset, Element, Example, FeatureSpec, TFRecordWriter,
    AUTOTUNE,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

const N: usize = 60_000;

/// Normalises to zero mean / unit scale and flips the 28x28 image left-right half the time.
fn augment(e: Element, counter: &AtomicU64) -> ff::Result<Element> {
    let x = e.get(0)?.tensor()?;
    let y = e.get(1)?.tensor()?.clone();
    let x = x.add_scalar(-0.5)?.mul_scalar(2.0)?;
    // A cheap per-element coin (SplitMix64 of a counter): flips are random but reproducible.
    let mut z = counter
        .fetch_add(1, Ordering::Relaxed)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    let x = if (z ^ (z >> 31)) & 1 == 1 {
        x.reshape_to(&[28, 28])?
            .reverse(&[1])?
            .contiguous()
            .reshape_to(&[784])?
    } else {
        x
    };
    Ok(Element::Tuple(vec![Element::Tensor(x), Element::Tensor(y)]))
}

fn count_elements(ds: &Dataset) -> ff::Result<(usize, f64)> {
    let t = Instant::now();
    let mut n = 0;
    for b in ds.iter()? {
        n += b?.get(1)?.tensor()?.shape()[0];
    }
    Ok((n, t.elapsed().as_secs_f64()))
}

/// Runs both pipelines `reps` times and reports the best rates.
pub fn run(json: bool, reps: usize) -> ff::Result<()> {
    let x = ff::random::uniform(&[N, 784], 0.0, 1.0, ff::DType::F32, Some(1))?;
    let labels: Vec<i64> = (0..N).map(|i| ((i * 7) % 10) as i64).collect();
    let y = ff::Tensor::from_vec(labels.clone(), &[N])?;
    let counter = std::sync::Arc::new(AtomicU64::new(0));
    let c = counter.clone();
    let pipeline = Dataset::from_tensor_slices((x.clone(), y))?
        .shuffle(10_000, Some(0), true)
        .map_parallel(move |e| augment(e, &c), AUTOTUNE, true)
        .batch(128, false)?
        .prefetch(AUTOTUNE);
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let (n, s) = count_elements(&pipeline)?;
        if n != N {
            return Err(ff::Error::invalid(
                "bench data",
                format!("pipeline gave {n} elements, expected {N}"),
            ));
        }
        best = best.min(s);
    }
    let slices_rate = N as f64 / best;

    let dir = std::env::temp_dir().join(format!("ff_bench_data_{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| ff::Error::Io {
        path: dir.display().to_string(),
        source: e,
    })?;
    let path = dir.join("data.tfrecord");
    {
        let xs = x.to_vec::<f32>()?;
        let mut w = TFRecordWriter::create(&path)?;
        for (i, row) in xs.chunks(784).enumerate() {
            w.write(
                &Example::builder()
                    .floats("x", row)
                    .ints("y", &[labels[i]])
                    .encode(),
            )?;
        }
    }
    let spec = vec![
        (
            "x",
            FeatureSpec::FixedLen {
                shape: vec![784],
                dtype: ff::DType::F32,
                default: None,
            },
        ),
        (
            "y",
            FeatureSpec::FixedLen {
                shape: vec![],
                dtype: ff::DType::I64,
                default: None,
            },
        ),
    ];
    let records = tfrecord_dataset(&[&path])
        .map_parallel(
            move |e| {
                let m = parse_example(&e.tensor()?.to_vec::<u8>()?, &spec)?;
                Ok(Element::Tuple(vec![
                    m.field("x")?.clone(),
                    m.field("y")?.clone(),
                ]))
            },
            AUTOTUNE,
            true,
        )
        .batch(128, false)?
        .prefetch(AUTOTUNE);
    let mut best = f64::INFINITY;
    for _ in 0..reps.max(1) {
        let (n, s) = count_elements(&records)?;
        if n != N {
            return Err(ff::Error::invalid(
                "bench data",
                format!("TFRecord pipeline gave {n} elements, expected {N}"),
            ));
        }
        best = best.min(s);
    }
    let _ = std::fs::remove_dir_all(&dir);
    report(
        &[
            ("pipeline_elements_per_s", slices_rate, "elements/s"),
            ("tfrecord_elements_per_s", N as f64 / best, "elements/s"),
            ("data_peak_rss_mib", peak_rss_mib(), "MiB"),
        ],
        json,
    );
    Ok(())
}
