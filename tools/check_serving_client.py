#!/usr/bin/env python3
"""Replays TF Serving's REST API documentation against a running `ferroflow serve`.

The server must serve `half_plus_three` (version 123, from
`cargo run -p ferroflow --example half_plus_three -- BASE/123`) and the demo model as
`digits`. Requests are sent with Python `requests`, as TF Serving's REST clients do, and
the responses are checked against the documented shapes and values.

    python3 tools/check_serving_client.py --url http://127.0.0.1:8501 \
        --digits-inputs X.npy --digits-outputs Y.npy
"""

import argparse
import json
import math
import sys

import numpy as np
import requests


def check(cond, what):
    if not cond:
        print(f"FAIL {what}")
        sys.exit(1)
    print(f"ok   {what}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--digits-inputs", required=True)
    ap.add_argument("--digits-outputs", required=True)
    a = ap.parse_args()
    url = a.url.rstrip("/")

    # The documentation's example session, verbatim requests.
    r = requests.get(f"{url}/v1/models/half_plus_three")
    check(r.status_code == 200 and r.json() == {
        "model_version_status": [{
            "version": "123", "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""},
        }]
    }, f"GET status: {r.text.strip()[:120]}")

    r = requests.post(f"{url}/v1/models/half_plus_three:predict",
                      data='{"instances": [1.0,2.0,5.0]}')
    check(r.status_code == 200 and r.json() == {"predictions": [3.5, 4.0, 5.5]},
          f"POST :predict instances: {r.text}")

    r = requests.post(
        f"{url}/v1/models/half_plus_three:regress",
        data='{"signature_name": "tensorflow/serving/regress", "examples": [{"x": 1.0}, {"x": 2.0}]}')
    check(r.status_code == 200 and r.json() == {"result": [3.5, 4.0]},
          f"POST :regress examples: {r.text}")

    r = requests.post(f"{url}/v1/models/half:predict", data='{"instances": [1.0,5.0]}')
    check(r.status_code == 404 and r.headers["Content-Type"] == "application/json"
          and r.json() == {"error": "Servable not found for request: Latest(half)"},
          f"unknown model: {r.status_code} {r.text}")

    r = requests.post(f"{url}/v1/models/half_plus_three/versions/123:predict",
                      json={"inputs": [1.0, 2.0]})
    check(r.status_code == 200 and r.json() == {"outputs": [3.5, 4.0]},
          f"columnar inputs, pinned version: {r.text}")

    r = requests.post(f"{url}/v1/models/half_plus_three:predict",
                      json={"instances": [{"x": 1.0}, {"x": 3.0}]})
    check(r.status_code == 200 and r.json() == {"predictions": [3.5, 4.5]},
          f"named instances: {r.text}")

    r = requests.get(f"{url}/v1/models/half_plus_three/metadata")
    md = r.json()
    sig = md["metadata"]["signature_def"]["signature_def"]["serving_default"]
    check(r.status_code == 200 and md["model_spec"]["name"] == "half_plus_three"
          and md["model_spec"]["version"] == "123"
          and sig["inputs"]["x"]["dtype"] == "DT_FLOAT"
          and sig["inputs"]["x"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]
          and sig["method_name"] == "tensorflow/serving/predict",
          "GET metadata: GetModelMetadataResponse with the serving_default signature")

    r = requests.post(f"{url}/v1/models/half_plus_three:predict",
                      data='{"instances": [1.0, NaN, Infinity]}')
    out = json.loads(r.text)  # Python's json reads NaN/Infinity as TF Serving writes them
    check(r.status_code == 200 and out["predictions"][0] == 3.5 and math.isnan(out["predictions"][1])
          and out["predictions"][2] == math.inf, f"non-finite numbers: {r.text}")

    # The demo digits model: 64 pixel features in, 10 class scores out.
    x = np.load(a.digits_inputs).astype(np.float32)
    want = np.load(a.digits_outputs)
    r = requests.post(f"{url}/v1/models/digits:predict", json={"instances": x.tolist()})
    got = np.array(r.json()["predictions"], dtype=np.float32)
    check(r.status_code == 200 and got.shape == want.shape
          and np.abs(got - want).max() <= 1e-5,
          f"digits row format: {got.shape}, max |diff| vs ferroflow predict "
          f"{np.abs(got - want).max():.2e}")
    r = requests.post(f"{url}/v1/models/digits:predict", json={"inputs": x[:5].tolist()})
    got = np.array(r.json()["outputs"], dtype=np.float32)
    check(r.status_code == 200 and np.abs(got - want[:5]).max() <= 1e-5, "digits columnar format")
    r = requests.post(f"{url}/v1/models/digits:classify",
                      json={"examples": [{"input_layer": row} for row in x[:3].tolist()]})
    res = r.json()["result"]
    check(r.status_code == 200 and len(res) == 3 and len(res[0]) == want.shape[1]
          and all(max(pairs, key=lambda p: p[1])[0] == str(int(np.argmax(w)))
                  for pairs, w in zip(res, want[:3])),
          "digits :classify gives [label, score] pairs whose best label is the argmax")
    r = requests.post(f"{url}/v1/models/digits:predict", json={"instances": [[1.0, 2.0]]})
    check(r.status_code == 400 and "error" in r.json(), f"wrong shape: 400 {r.json()}")

    r = requests.get(f"{url}/monitoring/prometheus/metrics")
    check(r.status_code == 200
          and ':tensorflow:serving:request_count_total{model_name="digits",status="OK"}' in r.text,
          "Prometheus metrics page")
    print("all serving client checks passed")


if __name__ == "__main__":
    main()
