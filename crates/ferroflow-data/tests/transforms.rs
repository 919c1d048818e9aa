//! Every transformation: values, order guarantees, cardinality, errors, and prompt
//! shutdown of worker threads.

use ferroflow_core::{DType, Error, Tensor};
use ferroflow_data::{Cardinality, Dataset, Element, AUTOTUNE};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn ints(d: &Dataset) -> Vec<i64> {
    d.collect()
        .unwrap()
        .iter()
        .map(|e| e.tensor().unwrap().to_scalar::<i64>().unwrap())
        .collect()
}

fn range(n: i64) -> Dataset {
    Dataset::range(0, n, 1).unwrap()
}

fn add(k: i64) -> impl Fn(Element) -> ferroflow_core::Result<Element> + Send + Sync {
    move |e| Ok(Element::Tensor(e.tensor()?.add_scalar(k as f64)?))
}

#[test]
fn sources() {
    let x = Tensor::from_vec((0..12).map(|v| v as f32).collect::<Vec<_>>(), &[4, 3]).unwrap();
    let y = Tensor::from_vec(vec![0i64, 1, 2, 3], &[4]).unwrap();
    let d = Dataset::from_tensor_slices((x.clone(), y)).unwrap();
    assert_eq!(d.cardinality(), Cardinality::Known(4));
    let items = d.collect().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(
        items[2]
            .get(0)
            .unwrap()
            .tensor()
            .unwrap()
            .to_vec::<f32>()
            .unwrap(),
        vec![6.0, 7.0, 8.0]
    );
    assert_eq!(
        items[2]
            .get(1)
            .unwrap()
            .tensor()
            .unwrap()
            .to_scalar::<i64>()
            .unwrap(),
        2
    );
    assert_eq!(
        Dataset::from_tensors(x.clone()).collect().unwrap()[0]
            .tensor()
            .unwrap()
            .shape(),
        &[4, 3]
    );
    assert_eq!(ints(&Dataset::range(3, -4, -3).unwrap()), vec![3, 0, -3]);
    let g = Dataset::from_generator(|| (0..3i64).map(|i| Element::Tensor(Tensor::scalar(i * i))));
    assert_eq!(ints(&g), vec![0, 1, 4]);
    assert_eq!(
        ints(&g),
        vec![0, 1, 4],
        "a generator restarts for every pass"
    );
    assert_eq!(g.cardinality(), Cardinality::Unknown);
    let z = Dataset::zip(&[range(5), range(3).map(add(10))]).unwrap();
    assert_eq!(z.cardinality(), Cardinality::Known(3));
    assert_eq!(
        z.collect().unwrap()[2]
            .get(1)
            .unwrap()
            .tensor()
            .unwrap()
            .to_scalar::<i64>()
            .unwrap(),
        12
    );
    let c = range(2).concatenate(&range(3));
    assert_eq!(ints(&c), vec![0, 1, 0, 1, 2]);
    assert_eq!(c.cardinality(), Cardinality::Known(5));
    let bad = Tensor::zeros(&[3], DType::F32).unwrap();
    let err = Dataset::from_tensor_slices((x, bad))
        .unwrap_err()
        .to_string();
    assert!(err.contains("same first dimension"), "{err}");
}

#[test]
fn parallel_map_deterministic_equals_sequential() {
    let slow = |e: Element| {
        let v = e.tensor()?.to_scalar::<i64>()?;
        // Later elements finish first, so only the reorder buffer keeps the order.
        std::thread::sleep(Duration::from_micros(((50 - v % 50) * 20) as u64));
        Ok(Element::Tensor(Tensor::scalar(v * 3)))
    };
    let d = range(200);
    let seq = ints(&d.map(slow));
    let par = ints(&d.map_parallel(slow, 4, true));
    assert_eq!(seq, par);
    let auto = ints(&d.map_parallel(slow, AUTOTUNE, true));
    assert_eq!(seq, auto);
    let mut loose = ints(&d.map_parallel(slow, 4, false));
    loose.sort();
    assert_eq!(seq, loose, "non-deterministic map yields the same multiset");
}

#[test]
fn map_errors_are_reported_in_place_and_can_be_ignored() {
    let f = |e: Element| {
        let v = e.tensor()?.to_scalar::<i64>()?;
        if v == 3 {
            Err(Error::invalid("map", "element 3 is bad"))
        } else {
            Ok(e)
        }
    };
    for par in [1, 3] {
        let results: Vec<_> = range(6)
            .map_parallel(f, par, true)
            .iter()
            .unwrap()
            .collect();
        assert_eq!(results.len(), 6);
        assert!(results[3]
            .as_ref()
            .unwrap_err()
            .to_string()
            .contains("element 3 is bad"));
        assert_eq!(
            ints(&range(6).map_parallel(f, par, true).ignore_errors()),
            vec![0, 1, 2, 4, 5]
        );
    }
}

#[test]
fn dropping_an_iterator_stops_workers_promptly() {
    let started = Arc::new(AtomicUsize::new(0));
    let s = started.clone();
    let d = range(1_000_000)
        .map_parallel(
            move |e| {
                s.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(1));
                Ok(e)
            },
            4,
            true,
        )
        .prefetch(AUTOTUNE);
    let mut it = d.iter().unwrap();
    for _ in 0..10 {
        it.next().unwrap().unwrap();
    }
    let t = Instant::now();
    drop(it);
    std::thread::sleep(Duration::from_millis(100));
    let after = started.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        after,
        started.load(Ordering::SeqCst),
        "workers kept running after drop"
    );
    assert!(after < 200, "{after} elements were started for 10 consumed");
    assert!(t.elapsed() < Duration::from_secs(1));
}

#[test]
fn filter_shuffle_and_seeds() {
    let even = range(10).filter(|e| Ok(e.tensor()?.to_scalar::<i64>()? % 2 == 0));
    assert_eq!(ints(&even), vec![0, 2, 4, 6, 8]);
    assert_eq!(even.cardinality(), Cardinality::Unknown);
    let a = range(100).shuffle(30, Some(7), true);
    let (p1, p2) = (ints(&a), ints(&a));
    assert_ne!(
        p1, p2,
        "reshuffle_each_iteration gives each pass a new order"
    );
    let b = range(100).shuffle(30, Some(7), true);
    assert_eq!(p1, ints(&b), "the same seed gives the same order");
    let fixed = range(100).shuffle(30, Some(7), false);
    assert_eq!(ints(&fixed), ints(&fixed));
    let mut sorted = p1.clone();
    sorted.sort();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>());
    assert_ne!(p1, (0..100).collect::<Vec<_>>());
    // A buffer of 1 keeps the order.
    assert_eq!(
        ints(&range(10).shuffle(1, Some(3), true)),
        (0..10).collect::<Vec<_>>()
    );
}

#[test]
fn batching() {
    let d = range(10).batch(4, false).unwrap();
    assert_eq!(d.cardinality(), Cardinality::Known(3));
    let b = d.collect().unwrap();
    assert_eq!(b[2].tensor().unwrap().to_vec::<i64>().unwrap(), vec![8, 9]);
    assert_eq!(
        range(10).batch(4, true).unwrap().collect().unwrap().len(),
        2
    );
    assert_eq!(
        range(10).batch(4, true).unwrap().cardinality(),
        Cardinality::Known(2)
    );
    assert_eq!(ints(&d.unbatch()), (0..10).collect::<Vec<_>>());
    let r = d.rebatch(5, false).unwrap().collect().unwrap();
    assert_eq!(r.len(), 2);
    // padded_batch: sequences of length i, padded with -1.
    let seqs = range(4).map(|e| {
        let n = e.tensor()?.to_scalar::<i64>()? as usize;
        Ok(Element::Tensor(Tensor::from_vec(vec![7i64; n], &[n])?))
    });
    assert!(seqs.batch(2, false).unwrap().collect().is_err());
    let p = seqs
        .padded_batch(2, None, -1.0, false)
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(
        p[1].tensor().unwrap().to_vec::<i64>().unwrap(),
        vec![7, 7, -1, 7, 7, 7]
    );
    let p = seqs
        .padded_batch(4, Some(vec![Some(5)]), 0.0, false)
        .unwrap()
        .collect()
        .unwrap();
    assert_eq!(p[0].tensor().unwrap().shape(), &[4, 5]);
}

#[test]
fn repeat_take_skip_shard_enumerate() {
    assert_eq!(ints(&range(3).repeat(Some(2))), vec![0, 1, 2, 0, 1, 2]);
    assert_eq!(range(3).repeat(None).cardinality(), Cardinality::Infinite);
    assert_eq!(
        ints(&range(3).repeat(None).take(7)),
        vec![0, 1, 2, 0, 1, 2, 0]
    );
    assert_eq!(
        range(3).repeat(None).take(7).cardinality(),
        Cardinality::Known(7)
    );
    assert_eq!(
        ints(&range(0).repeat(None)),
        Vec::<i64>::new(),
        "empty repeated forever ends"
    );
    assert_eq!(ints(&range(10).skip(7)), vec![7, 8, 9]);
    assert_eq!(ints(&range(10).shard(3, 1).unwrap()), vec![1, 4, 7]);
    assert_eq!(
        range(10).shard(3, 1).unwrap().cardinality(),
        Cardinality::Known(3)
    );
    assert!(range(10).shard(3, 3).is_err());
    let e = range(3).map(add(5)).enumerate(10).collect().unwrap();
    assert_eq!(
        e[1].get(0)
            .unwrap()
            .tensor()
            .unwrap()
            .to_scalar::<i64>()
            .unwrap(),
        11
    );
    assert_eq!(
        e[1].get(1)
            .unwrap()
            .tensor()
            .unwrap()
            .to_scalar::<i64>()
            .unwrap(),
        6
    );
}

#[test]
fn cache_and_prefetch() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let d = range(5)
        .map(move |e| {
            c.fetch_add(1, Ordering::SeqCst);
            Ok(e)
        })
        .cache();
    assert_eq!(ints(&d), ints(&d));
    assert_eq!(
        calls.load(Ordering::SeqCst),
        5,
        "the second pass replays the cache"
    );
    for buf in [1, 3, AUTOTUNE] {
        assert_eq!(ints(&range(50).prefetch(buf)), (0..50).collect::<Vec<_>>());
    }
}

#[test]
fn interleave_round_robin_and_parallel() {
    // Each input i becomes [i*10, i*10+1, i*10+2]; cycle 2, block 2. Expected orders are
    // what TensorFlow 2.21 produces for the same calls.
    let f = |e: Element| {
        let i = e.tensor()?.to_scalar::<i64>()?;
        Dataset::range(i * 10, i * 10 + 3, 1)
    };
    let want = vec![0, 1, 10, 11, 2, 12, 20, 21, 30, 31, 22, 32];
    assert_eq!(ints(&range(4).interleave(f, 2, 2, 1)), want);
    assert_eq!(
        ints(&range(4).interleave(f, 2, 2, 4)),
        want,
        "parallel interleave keeps the order"
    );
    assert_eq!(
        ints(&range(3).interleave(f, 1, 1, 1)),
        vec![0, 1, 2, 10, 11, 12, 20, 21, 22]
    );
    // Uneven lengths, an empty one first: range(i*10, i*10 + i), cycle 3, block 1.
    let g = |e: Element| {
        let i = e.tensor()?.to_scalar::<i64>()?;
        Dataset::range(i * 10, i * 10 + i, 1)
    };
    assert_eq!(
        ints(&range(5).interleave(g, 3, 1, 1)),
        vec![10, 20, 30, 21, 31, 40, 32, 41, 42, 43]
    );
}

#[test]
fn windows() {
    let w: Vec<Vec<i64>> = range(7)
        .window(3, 2, 1, false)
        .unwrap()
        .collect()
        .unwrap()
        .iter()
        .map(|e| e.tensor().unwrap().to_vec::<i64>().unwrap())
        .collect();
    assert_eq!(
        w,
        vec![vec![0, 1, 2], vec![2, 3, 4], vec![4, 5, 6], vec![6]]
    );
    assert_eq!(
        range(7).window(3, 2, 1, false).unwrap().cardinality(),
        Cardinality::Known(4)
    );
    let w = range(10).window(3, 4, 2, true).unwrap();
    let got: Vec<Vec<i64>> = w
        .collect()
        .unwrap()
        .iter()
        .map(|e| e.tensor().unwrap().to_vec::<i64>().unwrap())
        .collect();
    assert_eq!(got, vec![vec![0, 2, 4], vec![4, 6, 8]]);
    assert_eq!(w.cardinality(), Cardinality::Known(2));
}

#[test]
fn file_cache_survives_the_process_view() {
    let path = std::env::temp_dir().join(format!("ff_cache_{}.bin", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let make = move || {
        let c = c.clone();
        range(5).map(move |e| {
            c.fetch_add(1, Ordering::SeqCst);
            let i = e.tensor()?.to_scalar::<i64>()?;
            let mut m = std::collections::BTreeMap::new();
            m.insert(
                "x".to_string(),
                Element::Tensor(Tensor::from_vec(vec![i as f32; 3], &[3])?),
            );
            m.insert(
                "flag".to_string(),
                Element::Tensor(Tensor::from_vec(vec![i % 2 == 0], &[1])?),
            );
            Ok(Element::Tuple(vec![Element::Map(m), e]))
        })
    };
    let first = make().cache_file(&path);
    let a = first.collect().unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert!(path.exists());
    // A new pipeline over the same file (a later run) reads it instead of computing.
    let b = make().cache_file(&path).collect().unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.structure(), y.structure());
        assert_eq!(
            x.get(0)
                .unwrap()
                .field("x")
                .unwrap()
                .tensor()
                .unwrap()
                .to_vec::<f32>()
                .unwrap(),
            y.get(0)
                .unwrap()
                .field("x")
                .unwrap()
                .tensor()
                .unwrap()
                .to_vec::<f32>()
                .unwrap()
        );
        assert_eq!(
            x.get(0)
                .unwrap()
                .field("flag")
                .unwrap()
                .tensor()
                .unwrap()
                .to_vec::<bool>()
                .unwrap(),
            y.get(0)
                .unwrap()
                .field("flag")
                .unwrap()
                .tensor()
                .unwrap()
                .to_vec::<bool>()
                .unwrap()
        );
    }
    // A corrupted cache file is an error, not wrong data.
    let mut bytes = std::fs::read(&path).unwrap();
    let k = bytes.len() / 2;
    bytes[k] ^= 0x55;
    std::fs::write(&path, bytes).unwrap();
    assert!(make().cache_file(&path).collect().is_err());
    let _ = std::fs::remove_file(&path);
}

#[test]
fn autotuned_map_adds_workers_when_the_consumer_waits() {
    use std::collections::HashSet;
    use std::sync::Mutex;
    let threads = Arc::new(Mutex::new(HashSet::new()));
    let t = threads.clone();
    let d = range(60).map_parallel(
        move |e| {
            t.lock().unwrap().insert(std::thread::current().id());
            std::thread::sleep(Duration::from_millis(2));
            Ok(e)
        },
        AUTOTUNE,
        true,
    );
    assert_eq!(ints(&d), (0..60).collect::<Vec<_>>());
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let used = threads.lock().unwrap().len();
    assert!(used <= cores.max(1), "{used} workers on {cores} cores");
    if cores >= 2 {
        assert!(used >= 2, "AUTOTUNE never added a worker");
    }
}
