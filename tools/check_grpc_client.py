#!/usr/bin/env python3
"""TF Serving's official gRPC client (the `tensorflow-serving-api` package's generated
stubs and `tf.make_tensor_proto`) against a running `ferroflow serve`.

The server must serve `half_plus_three` (version 123) and the demo model as `digits`
from DIGITS_BASE (version 1); the script publishes version 2 of `digits` under load and
reloads the config through ModelService. Exits 1 on the first failed check.

    python3 tools/check_grpc_client.py --addr 127.0.0.1:8500 --digits-base DIR \\
        --digits-inputs X.npy --digits-outputs Y.npy --half-plus-three-base DIR2
"""
import argparse
import os
import shutil
import sys
import threading
import time

import grpc
import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import (classification_pb2, get_model_metadata_pb2, get_model_status_pb2,
                                     inference_pb2, model_management_pb2, model_service_pb2_grpc,
                                     predict_pb2, prediction_service_pb2_grpc, regression_pb2)
from tensorflow_serving.config import model_server_config_pb2


def check(cond, what):
    if not cond:
        print(f"FAIL {what}")
        sys.exit(1)
    print(f"ok   {what}")


def code_of(call):
    try:
        call()
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


def example(**features):
    return tf.train.Example(features=tf.train.Features(feature={
        k: tf.train.Feature(float_list=tf.train.FloatList(value=v)) for k, v in features.items()}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--addr", required=True)
    ap.add_argument("--digits-base", required=True)
    ap.add_argument("--half-plus-three-base", required=True)
    ap.add_argument("--digits-inputs", required=True)
    ap.add_argument("--digits-outputs", required=True)
    a = ap.parse_args()
    channel = grpc.insecure_channel(a.addr, options=[("grpc.max_send_message_length", 64 << 20)])
    predict = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    models = model_service_pb2_grpc.ModelServiceStub(channel)

    # Status and metadata.
    req = get_model_status_pb2.GetModelStatusRequest()
    req.model_spec.name = "digits"
    st = models.GetModelStatus(req, timeout=30)
    check([(s.version, s.state) for s in st.model_version_status] == [(1, 30)], "GetModelStatus: digits v1 AVAILABLE")
    req = get_model_metadata_pb2.GetModelMetadataRequest()
    req.model_spec.name = "digits"
    req.metadata_field.append("signature_def")
    md = predict.GetModelMetadata(req, timeout=30)
    sigs = get_model_metadata_pb2.SignatureDefMap()
    md.metadata["signature_def"].Unpack(sigs)
    sig = sigs.signature_def["serving_default"]
    (in_name, in_info), = sig.inputs.items()
    check(in_info.dtype == tf.float32.as_datatype_enum
          and [d.size for d in in_info.tensor_shape.dim] == [-1, 64], f"metadata: input {in_name} float32 [-1, 64]")
    check(md.model_spec.version.value == 1 and sig.method_name == "tensorflow/serving/predict",
          "metadata: version 1, predict method")

    # Predict, in both TensorProto encodings, equal to `ferroflow predict`.
    x = np.load(a.digits_inputs).astype(np.float32)
    want = np.load(a.digits_outputs)
    (out_name, _), = sig.outputs.items()

    def predict_req(proto, version=None):
        r = predict_pb2.PredictRequest()
        r.model_spec.name = "digits"
        r.model_spec.signature_name = "serving_default"
        if version is not None:
            r.model_spec.version.value = version
        r.inputs[in_name].CopyFrom(proto)
        return r

    got = predict.Predict(predict_req(tf.make_tensor_proto(x)), timeout=30)
    y = tf.make_ndarray(got.outputs[out_name])
    check(y.shape == want.shape and np.allclose(y, want, rtol=1e-5, atol=1e-6),
          f"Predict (tensor_content) equals ferroflow predict, max diff {np.abs(y - want).max():.2e}")
    typed = tf.make_tensor_proto(x[:3])
    typed.ClearField("tensor_content")
    typed.float_val.extend(x[:3].ravel().tolist())
    got = predict.Predict(predict_req(typed), timeout=30)
    check(np.allclose(tf.make_ndarray(got.outputs[out_name]), want[:3], rtol=1e-5, atol=1e-6),
          "Predict (float_val) equals ferroflow predict")
    check(got.model_spec.name == "digits" and got.model_spec.version.value == 1, "Predict names the version that answered")

    # Classify and regress on half_plus_three (y = 0.5 x + 3), with and without context.
    r = regression_pb2.RegressionRequest()
    r.model_spec.name = "half_plus_three"
    r.input.example_list.examples.extend([example(x=[1.0]), example(x=[2.0]), example(x=[5.0])])
    res = predict.Regress(r, timeout=30)
    check([round(v.value, 5) for v in res.result.regressions] == [3.5, 4.0, 5.5], "Regress on half_plus_three")
    c = classification_pb2.ClassificationRequest()
    c.model_spec.name = "half_plus_three"
    c.input.example_list.examples.extend([example(x=[1.0]), example(x=[3.0])])
    res = predict.Classify(c, timeout=30)
    check([[round(k.score, 5) for k in cl.classes] for cl in res.result.classifications] == [[3.5], [4.5]],
          "Classify on half_plus_three")
    m = inference_pb2.MultiInferenceRequest()
    for method in ("tensorflow/serving/regress", "tensorflow/serving/classify"):
        t = m.tasks.add()
        t.model_spec.name = "half_plus_three"
        t.method_name = method
    m.input.example_list.examples.extend([example(x=[4.0])])
    res = predict.MultiInference(m, timeout=30)
    check(len(res.results) == 2 and round(res.results[0].regression_result.regressions[0].value, 5) == 5.0,
          "MultiInference: regress and classify")

    # Errors with TF Serving's status codes.
    bad_model = predict_req(tf.make_tensor_proto(x[:1]))
    bad_model.model_spec.name = "nope"
    check(code_of(lambda: predict.Predict(bad_model, timeout=30))[0] == grpc.StatusCode.NOT_FOUND, "unknown model: NOT_FOUND")
    check(code_of(lambda: predict.Predict(predict_req(tf.make_tensor_proto(x[:1]), version=9), timeout=30))[0]
          == grpc.StatusCode.NOT_FOUND, "unknown version: NOT_FOUND")
    wrong_name = predict_pb2.PredictRequest()
    wrong_name.model_spec.name = "digits"
    wrong_name.inputs["pixels"].CopyFrom(tf.make_tensor_proto(x[:1]))
    code, msg = code_of(lambda: predict.Predict(wrong_name, timeout=30))
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "pixels" in msg, f"wrong input name: INVALID_ARGUMENT ({msg})")
    code, msg = code_of(lambda: predict.Predict(predict_req(tf.make_tensor_proto(x[:1].astype(np.float64))), timeout=30))
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "DT_DOUBLE" in msg, f"wrong dtype: INVALID_ARGUMENT ({msg})")
    code, msg = code_of(lambda: predict.Predict(predict_req(tf.make_tensor_proto(x[:1, :7])), timeout=30))
    check(code == grpc.StatusCode.INVALID_ARGUMENT and "[1, 7]" in msg, f"wrong shape: INVALID_ARGUMENT ({msg})")
    huge = np.zeros((20000, 64), np.float32)  # 5 MB, over the server's 1 MB limit
    code, msg = code_of(lambda: predict.Predict(predict_req(tf.make_tensor_proto(huge)), timeout=30))
    check(code == grpc.StatusCode.RESOURCE_EXHAUSTED, f"oversized message: RESOURCE_EXHAUSTED ({msg})")
    # A 1 us deadline passes before any answer can arrive (a loopback round trip alone
    # takes longer); 0.5 ms raced the server, which sometimes answered first.
    code, _ = code_of(lambda: predict.Predict(predict_req(tf.make_tensor_proto(x)), timeout=1e-6))
    check(code == grpc.StatusCode.DEADLINE_EXCEEDED, f"a deadline that passes: DEADLINE_EXCEEDED (got {code})")
    got = predict.Predict(predict_req(tf.make_tensor_proto(x[:2])), timeout=30)
    check(got.outputs[out_name].tensor_shape.dim[0].size == 2, "the server answers after the errors")

    # A new version published under a running client: no call fails, answers move to it.
    failures, versions, stop = [], set(), threading.Event()

    def load():
        while not stop.is_set():
            try:
                r = predict.Predict(predict_req(tf.make_tensor_proto(x[:4])), timeout=30)
                versions.add(r.model_spec.version.value)
            except grpc.RpcError as e:
                failures.append(e.code())

    workers = [threading.Thread(target=load) for _ in range(4)]
    for w in workers:
        w.start()
    time.sleep(0.5)
    staging = os.path.join(a.digits_base, ".staging2")
    shutil.copytree(os.path.join(a.digits_base, "1"), staging)
    os.rename(staging, os.path.join(a.digits_base, "2"))
    deadline = time.time() + 30
    while 2 not in versions and time.time() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    stop.set()
    for w in workers:
        w.join()
    check(not failures and versions == {1, 2}, f"hot reload under load: 0 failed calls, served by {sorted(versions)}")

    # HandleReloadConfigRequest: serve only half_plus_three, then both again.
    def reload(names):
        req = model_management_pb2.ReloadConfigRequest()
        for name, base in names:
            cfg = req.config.model_config_list.config.add()
            cfg.name, cfg.base_path, cfg.model_platform = name, base, "tensorflow"
        return models.HandleReloadConfigRequest(req, timeout=60)

    res = reload([("half_plus_three", a.half_plus_three_base)])
    check(res.status.error_code == 0, "HandleReloadConfigRequest: OK")
    check(code_of(lambda: predict.Predict(predict_req(tf.make_tensor_proto(x[:1])), timeout=30))[0]
          == grpc.StatusCode.NOT_FOUND, "a model dropped by the new config is gone")
    reload([("half_plus_three", a.half_plus_three_base), ("digits", a.digits_base)])
    got = predict.Predict(predict_req(tf.make_tensor_proto(x[:1])), timeout=30)
    check(got.model_spec.version.value == 2, "a model added by the new config serves its newest version")
    print("all gRPC client checks passed")


if __name__ == "__main__":
    main()
