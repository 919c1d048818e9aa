//! Criterion benches of the tensor core (ferroflow alone, tracked over time).
//! `tools/bench_compare.py core` compares the same workloads with NumPy and TensorFlow.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use ferroflow as ff;
use ff::ops::conv::Padding;

fn matmul(c: &mut Criterion) {
    let mut g = c.benchmark_group("matmul");
    for (m, k, n) in [(64, 784, 128), (1024, 1024, 1024)] {
        let a = ff::random::normal(&[m, k], 0.0, 1.0, ff::DType::F32, Some(1)).unwrap();
        let b = ff::random::normal(&[k, n], 0.0, 1.0, ff::DType::F32, Some(2)).unwrap();
        g.throughput(Throughput::Elements((2 * m * k * n) as u64));
        g.bench_function(format!("{m}x{k}x{n}"), |bch| {
            bch.iter(|| black_box(a.matmul(&b).unwrap()))
        });
    }
    g.finish();
}

fn elementwise(c: &mut Criterion) {
    let mut g = c.benchmark_group("elementwise");
    let n = 1 << 22;
    let x = ff::random::uniform(&[n], -1.0, 1.0, ff::DType::F32, Some(3)).unwrap();
    let y = ff::random::uniform(&[n], -1.0, 1.0, ff::DType::F32, Some(4)).unwrap();
    g.throughput(Throughput::Bytes((12 * n) as u64));
    g.bench_function("add_2^22", |b| b.iter(|| black_box(x.add(&y).unwrap())));
    g.throughput(Throughput::Bytes((8 * n) as u64));
    g.bench_function("exp_2^22", |b| b.iter(|| black_box(x.exp().unwrap())));
    g.throughput(Throughput::Bytes((4 * n) as u64));
    g.bench_function("sum_2^22", |b| {
        b.iter(|| black_box(x.sum(ff::Axes::All, false).unwrap()))
    });
    let s = ff::Tensor::from_vec(vec![1.0f32], &[1]).unwrap();
    g.throughput(Throughput::Elements(1));
    g.bench_function("tiny_add", |b| b.iter(|| black_box(s.add(&s).unwrap())));
    g.finish();
}

fn conv(c: &mut Criterion) {
    let img = ff::random::normal(&[8, 32, 32, 64], 0.0, 1.0, ff::DType::F32, Some(5)).unwrap();
    let ker = ff::random::normal(&[3, 3, 64, 64], 0.0, 0.1, ff::DType::F32, Some(6)).unwrap();
    c.bench_function("conv2d_b8_32x32x64_3x3x64", |b| {
        b.iter(|| black_box(img.conv2d(&ker, (1, 1), Padding::Same, (1, 1)).unwrap()))
    });
}

criterion_group!(benches, matmul, elementwise, conv);
criterion_main!(benches);
