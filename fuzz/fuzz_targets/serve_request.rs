//! TF Serving request bodies (`:predict`, `:classify`, `:regress`) decoded against fixed
//! signatures, under the budget `--rest_api_max_body_bytes` sets.
#![no_main]
use ferroflow::serve::json::{Budget, Json, MEMORY_PER_BODY_BYTE};
use ferroflow::serve::request::{example_inputs, predict_inputs, Method};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for sig in ferroflow_fuzz::signatures() {
        for method in [Method::Predict, Method::Classify, Method::Regress] {
            let budget = Budget::new(data.len().max(1024) * MEMORY_PER_BODY_BYTE);
            let Ok(body) = Json::parse(data, &budget) else {
                return;
            };
            let _ = match method {
                Method::Predict => predict_inputs(body, &sig, &budget).map(|_| ()),
                m => example_inputs(body, &sig, m, &budget).map(|_| ()),
            };
        }
    }
});
