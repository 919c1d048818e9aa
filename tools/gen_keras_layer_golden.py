"""Golden outputs of Keras 3 layers for ferroflow-keras/tests/layer_golden.rs.

For each case: the layer's Keras config (get_config), its weights after building with a
fixed seed, the inputs, and the outputs (inference, and training where it differs, with
BatchNormalization's updated moving statistics). Run with the TF venv:

    TF_CPP_MIN_LOG_LEVEL=3 python tools/gen_keras_layer_golden.py
"""
import json
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
import numpy as np  # noqa: E402
import keras  # noqa: E402

L = keras.layers
OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "ferroflow-keras", "tests", "fixtures", "keras_layers.json")
rng = np.random.default_rng(1234)


def arr(a):
    a = np.asarray(a)
    return {"shape": list(a.shape), "dtype": str(a.dtype), "data": a.ravel().tolist()}


cases = []


def case(name, layer, shapes, training=False, int_input=None, adapt=None, star=False):
    keras.utils.set_random_seed(7)
    if int_input is not None:
        xs = [rng.integers(0, int_input, size=s).astype("int32") for s in shapes]
    else:
        xs = [rng.standard_normal(s).astype("float32") for s in shapes]
    if adapt is not None:
        layer.adapt(adapt)
    arg = xs if len(xs) > 1 else xs[0]
    if star:
        layer(*xs)  # builds layers that take several positional inputs
    elif not layer.built:
        layer.build([x.shape for x in xs] if len(xs) > 1 else xs[0].shape)
    # Random non-trivial weights (biases, BN statistics) so every term is exercised.
    # (Normalization caches its adapted statistics, so its weights stay as adapted.)
    for w in ([] if adapt is not None else layer.weights):
        if w.dtype.startswith("float") and "count" not in w.path:
            v = rng.standard_normal(w.shape).astype("float32") * 0.5
            if "variance" in w.path:
                v = np.abs(v) + 0.5
            w.assign(v)
    weights = [{"name": w.path.split("/", 1)[1], "value": arr(np.asarray(w.numpy()))} for w in layer.weights]
    call = (lambda **kw: layer(*xs, **kw)) if star else (lambda **kw: layer(arg, **kw))
    y = call(training=False) if "training" in layer.call.__code__.co_varnames else call()
    entry = {
        "name": name,
        "class_name": type(layer).__name__,
        "config": json.loads(json.dumps(layer.get_config(), default=list)),
        "weights": weights,
        "inputs": [arr(x) for x in xs],
        "outputs": [arr(np.asarray(t)) for t in (y if isinstance(y, (list, tuple)) else [y])],
    }
    if training:
        yt = call(training=True)
        entry["train_outputs"] = [arr(np.asarray(yt))]
        entry["weights_after_train"] = [{"name": w.path.split("/", 1)[1], "value": arr(np.asarray(w.numpy()))} for w in layer.weights]
    cases.append(entry)


case("dense_relu", L.Dense(5, activation="relu"), [(4, 3)])
case("dense_nobias_tanh_rank3", L.Dense(4, activation="tanh", use_bias=False), [(2, 3, 6)])
for act in ["sigmoid", "softmax", "gelu", "silu", "softplus", "softsign", "elu", "selu", "hard_sigmoid", "leaky_relu", "relu6", "mish", "exponential", "log_softmax"]:
    case(f"activation_{act}", L.Activation(act), [(3, 5)])
case("dropout_inference", L.Dropout(0.5), [(3, 4)])
case("flatten", L.Flatten(), [(2, 3, 4, 2)])
case("reshape", L.Reshape((3, -1)), [(2, 12)])
case("permute", L.Permute((2, 1)), [(2, 3, 4)])
case("repeat_vector", L.RepeatVector(3), [(2, 4)])
case("zero_padding2d", L.ZeroPadding2D(((1, 2), (0, 1))), [(1, 3, 3, 2)])
case("up_sampling2d", L.UpSampling2D((2, 3)), [(1, 2, 2, 2)])
case("embedding", L.Embedding(10, 4), [(3, 5)], int_input=10)
case("concatenate", L.Concatenate(axis=-1), [(2, 3), (2, 4)])
case("concatenate_axis1", L.Concatenate(axis=1), [(2, 3, 2), (2, 1, 2)])
case("add", L.Add(), [(2, 3), (2, 3), (2, 3)])
case("subtract", L.Subtract(), [(2, 3), (2, 3)])
case("multiply", L.Multiply(), [(2, 3), (2, 3)])
case("average", L.Average(), [(2, 3), (2, 3)])
case("maximum", L.Maximum(), [(2, 3), (2, 3)])
case("minimum", L.Minimum(), [(2, 3), (2, 3)])
case("dot", L.Dot(axes=1), [(3, 4), (3, 4)])
case("dot_normalize", L.Dot(axes=(2, 2), normalize=True), [(2, 3, 4), (2, 5, 4)])
case("conv1d_same_stride", L.Conv1D(4, 3, strides=2, padding="same", activation="relu"), [(2, 9, 3)])
case("conv1d_dilated", L.Conv1D(3, 2, dilation_rate=2), [(2, 8, 2)])
case("conv2d_valid", L.Conv2D(4, 3), [(2, 6, 6, 3)])
case("conv2d_same_strides", L.Conv2D(5, (3, 2), strides=(2, 1), padding="same"), [(1, 7, 5, 2)])
case("conv2d_dilated", L.Conv2D(2, 3, dilation_rate=2, padding="same"), [(1, 7, 7, 2)])
case("conv2d_groups", L.Conv2D(4, 3, groups=2), [(1, 5, 5, 4)])
case("depthwise_conv2d", L.DepthwiseConv2D(3, depth_multiplier=2, padding="same"), [(1, 5, 5, 3)])
case("separable_conv2d", L.SeparableConv2D(4, 3, strides=2), [(1, 7, 7, 3)])
case("conv2d_transpose_valid", L.Conv2DTranspose(3, 3, strides=2), [(1, 3, 4, 2)])
case("conv2d_transpose_same", L.Conv2DTranspose(2, 3, strides=2, padding="same"), [(1, 3, 3, 2)])
case("max_pooling1d", L.MaxPooling1D(2), [(2, 7, 3)])
case("average_pooling1d_same", L.AveragePooling1D(3, strides=2, padding="same"), [(2, 7, 3)])
case("max_pooling2d", L.MaxPooling2D((2, 2)), [(2, 5, 5, 3)])
case("average_pooling2d_same", L.AveragePooling2D(3, strides=2, padding="same"), [(1, 5, 6, 2)])
case("global_average_pooling1d", L.GlobalAveragePooling1D(), [(2, 5, 3)])
case("global_average_pooling2d", L.GlobalAveragePooling2D(), [(2, 3, 4, 3)])
case("global_max_pooling1d", L.GlobalMaxPooling1D(), [(2, 5, 3)])
case("global_max_pooling2d_keepdims", L.GlobalMaxPooling2D(keepdims=True), [(2, 3, 4, 3)])
case("batch_normalization", L.BatchNormalization(), [(6, 4)], training=True)
case("batch_normalization_conv", L.BatchNormalization(momentum=0.9, epsilon=1e-5), [(3, 2, 2, 3)], training=True)
case("layer_normalization", L.LayerNormalization(), [(3, 5)])
case("layer_normalization_rank3", L.LayerNormalization(epsilon=1e-5), [(2, 3, 4)])
case("rescaling", L.Rescaling(1 / 16, offset=-0.5), [(2, 4)])
case("normalization_fixed", L.Normalization(mean=[1.0, 2.0, 3.0], variance=[4.0, 1.0, 0.25]), [(2, 3)])
case("normalization_adapt", L.Normalization(), [(4, 3)], adapt=rng.standard_normal((50, 3)).astype("float32") * 3 + 1)

case("simple_rnn", L.SimpleRNN(4), [(2, 5, 3)])
case("simple_rnn_sequences_relu", L.SimpleRNN(3, activation="relu", return_sequences=True), [(2, 4, 3)])
case("lstm", L.LSTM(4), [(2, 5, 3)])
case("lstm_sequences_state", L.LSTM(3, return_sequences=True, return_state=True), [(2, 4, 3)])
case("lstm_backwards", L.LSTM(3, go_backwards=True, return_sequences=True), [(2, 4, 2)])
case("gru", L.GRU(4), [(2, 5, 3)])
case("gru_state_no_reset_after", L.GRU(3, reset_after=False, return_state=True), [(2, 4, 3)])
case("bidirectional_lstm", L.Bidirectional(L.LSTM(3)), [(2, 5, 2)])
case("bidirectional_gru_sequences_sum", L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode="sum"), [(2, 4, 2)])
case("time_distributed_dense", L.TimeDistributed(L.Dense(3, activation="relu")), [(2, 4, 5)])
case("multi_head_attention_self", L.MultiHeadAttention(2, 4), [(2, 5, 6), (2, 5, 6)], star=True)
case("multi_head_attention_cross", L.MultiHeadAttention(3, 2, value_dim=5, output_shape=7), [(2, 3, 4), (2, 6, 5), (2, 6, 3)], star=True)

with open(OUT, "w") as f:
    json.dump({"keras_version": keras.__version__, "cases": cases}, f)
print(f"wrote {len(cases)} cases to {OUT} ({os.path.getsize(OUT) // 1024} KiB)")
