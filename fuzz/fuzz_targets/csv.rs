//! CSV files read by `csv_dataset` with typed columns (one with a default), batched.
#![no_main]
use ferroflow as ff;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ferroflow_fuzz::with_file("fuzz.csv", data, |path| {
        let cols = vec![
            ff::data::CsvColumn::required(ff::DType::F32),
            ff::data::CsvColumn::with_default(ff::DType::I64, -1.0),
            ff::data::CsvColumn::required(ff::DType::F64),
        ];
        let Ok(ds) = ff::data::csv_dataset(&[path], cols, true, b',', None) else {
            return;
        };
        if let Ok(it) = ds.batch(4, false).and_then(|d| d.iter()) {
            for e in it.take(64) {
                let _ = e;
            }
        }
    });
});
