//! The strategy API beyond `fit`: `run` and `reduce` for custom loops, input distribution,
//! cluster information, and distributed `evaluate`/`predict` matching one process.

use ferroflow_core::{Result, Tensor};
use ferroflow_data::Dataset;
use ferroflow_distribute::{
    AutoShardPolicy, Collective, LocalCollective, MirroredStrategy, MultiWorkerMirroredStrategy,
    OneDeviceStrategy, ReduceOp, Strategy,
};
use ferroflow_keras::layers::Dense;
use ferroflow_keras::{Input, Model, SymbolicCall};
use std::sync::Arc;

/// Runs `f` on two in-process workers and returns their results in rank order.
fn on_two_workers<T: Send>(f: impl Fn(MultiWorkerMirroredStrategy) -> Result<T> + Sync) -> Vec<T> {
    let group = LocalCollective::group(2).unwrap();
    std::thread::scope(|s| {
        let hs: Vec<_> = group
            .into_iter()
            .map(|c| {
                let f = &f;
                s.spawn(move || f(MultiWorkerMirroredStrategy::with_collective(Arc::new(c))))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap().unwrap()).collect()
    })
}

#[test]
fn run_gives_each_replica_its_context_and_reduce_combines_them() -> Result<()> {
    let s = MirroredStrategy::with_replicas(3)?;
    let ids = s.run(|ctx| Ok((ctx.replica_id_in_sync_group, ctx.num_replicas_in_sync)))?;
    assert_eq!(ids, vec![(0, 3), (1, 3), (2, 3)]);
    let values =
        s.run(|ctx| Tensor::from_vec(vec![ctx.replica_id_in_sync_group as f32 + 1.0; 2], &[2]))?;
    assert_eq!(
        s.reduce(ReduceOp::Sum, &values)?.to_vec::<f32>()?,
        vec![6.0, 6.0]
    );
    assert_eq!(
        s.reduce(ReduceOp::Mean, &values)?.to_vec::<f32>()?,
        vec![2.0, 2.0]
    );

    // Across workers: every worker gets the sum over all replicas of all workers.
    let sums = on_two_workers(|s| {
        let v = s.run(|ctx| {
            Tensor::from_vec(
                vec![10.0f32 * (ctx.replica_id_in_sync_group as f32 + 1.0)],
                &[1],
            )
        })?;
        Ok((
            s.reduce(ReduceOp::Sum, &v)?.to_vec::<f32>()?,
            s.reduce(ReduceOp::Mean, &v)?.to_vec::<f32>()?,
        ))
    });
    assert_eq!(sums, vec![(vec![30.0], vec![15.0]); 2]);
    Ok(())
}

#[test]
fn cluster_information() -> Result<()> {
    let infos = on_two_workers(|s| Ok((s.cluster_resolver(), s.num_replicas_in_sync())));
    assert_eq!(infos[0].0.task_id, 0);
    assert!(infos[0].0.is_chief() && !infos[1].0.is_chief());
    assert!(infos.iter().all(|(c, n)| c.num_workers == 2 && *n == 2));
    let one = OneDeviceStrategy;
    assert_eq!(one.num_replicas_in_sync(), 1);
    assert!(one.cluster_resolver().is_chief());
    Ok(())
}

#[test]
fn datasets_are_sharded_by_worker() -> Result<()> {
    let shards = on_two_workers(|s| {
        let d = s.experimental_distribute_dataset(&Dataset::range(0, 7, 1)?)?;
        let mine: Vec<i64> = d
            .iter()?
            .map(|e| {
                e.and_then(|e| e.tensor().cloned())
                    .and_then(|t| t.to_vec::<i64>())
                    .map(|v| v[0])
            })
            .collect::<Result<_>>()?;
        let ctx = s.distribute_datasets_from_function(|ctx| {
            assert_eq!(ctx.num_input_pipelines, 2);
            assert_eq!(ctx.get_per_replica_batch_size(64)?, 32);
            assert!(ctx.get_per_replica_batch_size(63).is_err());
            Dataset::range(
                ctx.input_pipeline_id as i64,
                1 + ctx.input_pipeline_id as i64,
                1,
            )
        })?;
        Ok((mine, ctx.iter()?.count()))
    });
    assert_eq!(shards[0].0, vec![0, 2, 4, 6]);
    assert_eq!(shards[1].0, vec![1, 3, 5]);
    Ok(())
}

fn model() -> Result<Model> {
    let inputs = Input::new(&[5]);
    let h = Dense::new(7).activation("tanh").name("h").apply(&inputs)?;
    let out = Dense::new(3).activation("softmax").name("out").apply(&h)?;
    let mut m = Model::named(&[inputs], &[out], "small")?;
    m.compile("sgd", "sparse_categorical_crossentropy", &["accuracy"])?;
    Ok(m)
}

#[test]
fn evaluate_and_predict_under_strategies_match_one_process() -> Result<()> {
    let n = 23;
    let x = Tensor::from_vec(
        (0..n * 5)
            .map(|i| ((i * 13 % 11) as f32 - 5.0) / 4.0)
            .collect::<Vec<_>>(),
        &[n, 5],
    )?;
    let y = Tensor::from_vec((0..n as i64).map(|i| i % 3).collect::<Vec<_>>(), &[n])?;
    let single = model()?;
    let weights = single.get_weights();
    let want_logs = single.evaluate(&x, &y, 8)?;
    let want = single.predict(&x, 8)?.remove(0).to_vec::<f32>()?;
    let check = |m: &Model| -> Result<()> {
        let logs = m.evaluate(&x, &y, 8)?;
        for (k, v) in &want_logs {
            assert!((logs[k] - v).abs() < 1e-6, "{k}: {} vs {v}", logs[k]);
        }
        let got = m.predict(&x, 8)?.remove(0).to_vec::<f32>()?;
        assert_eq!(got.len(), want.len());
        assert!(got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-6));
        Ok(())
    };
    let mirrored = MirroredStrategy::with_replicas(3)?;
    let m = mirrored.scope(model)?;
    m.set_weights(&weights)?;
    check(&m)?;
    on_two_workers(|s| {
        let m = s.scope(model)?;
        m.set_weights(&weights)?;
        check(&m)
    });
    Ok(())
}

#[test]
fn a_collective_checks_what_workers_reduce() -> Result<()> {
    let errs = {
        let group = LocalCollective::group(2)?;
        std::thread::scope(|s| {
            let hs: Vec<_> = group
                .into_iter()
                .map(|c| {
                    s.spawn(move || {
                        let mut buf = vec![1.0f32; 2 + c.rank()];
                        c.all_reduce_sum_f32(&mut buf).err().map(|e| e.to_string())
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        })
    };
    assert!(
        errs.iter()
            .all(|e| e.as_deref().is_some_and(|e| e.contains("worker"))),
        "{errs:?}"
    );
    Ok(())
}

/// The first byte of each record each worker reads.
fn records_seen(d: &Dataset) -> Result<Vec<u8>> {
    d.iter()?
        .map(|e| {
            e.and_then(|e| e.tensor().cloned())
                .and_then(|t| t.to_vec::<u8>())
                .map(|v| v[0])
        })
        .collect()
}

#[test]
fn tfrecord_pipelines_are_sharded_by_file() -> Result<()> {
    let dir = std::env::temp_dir().join(format!("ff_autoshard_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files: Vec<_> = (0..4u8)
        .map(|f| {
            let p = dir.join(format!("part-{f}.tfrecord"));
            let mut w = ferroflow_data::tfrecord::TFRecordWriter::create(&p).unwrap();
            for r in 0..3u8 {
                w.write(&[10 * f + r]).unwrap();
            }
            w.close().unwrap();
            p
        })
        .collect();
    let seen = on_two_workers(|s| {
        // Files below a map and a shuffle-free prefetch: FILE applies through them.
        let d = ferroflow_data::tfrecord::tfrecord_dataset(&files)
            .map(Ok)
            .prefetch(2);
        let auto = records_seen(&s.experimental_distribute_dataset(&d)?)?;
        let data =
            records_seen(&s.experimental_distribute_dataset_with(&d, AutoShardPolicy::Data)?)?;
        let off = records_seen(&s.experimental_distribute_dataset_with(&d, AutoShardPolicy::Off)?)?;
        let one_file = ferroflow_data::tfrecord::tfrecord_dataset(&files[..1]);
        let file_err = s
            .experimental_distribute_dataset_with(&one_file, AutoShardPolicy::File)
            .err()
            .map(|e| e.to_string());
        let fallback = records_seen(&s.experimental_distribute_dataset(&one_file)?)?;
        Ok((auto, data, off.len(), file_err, fallback))
    });
    assert_eq!(seen[0].0, vec![0, 1, 2, 20, 21, 22]);
    assert_eq!(seen[1].0, vec![10, 11, 12, 30, 31, 32]);
    assert_eq!(seen[0].1, vec![0, 2, 11, 20, 22, 31]);
    assert_eq!(seen[0].2, 12);
    assert!(
        seen[0]
            .3
            .as_deref()
            .is_some_and(|e| e.contains("at least 2 files")),
        "{:?}",
        seen[0].3
    );
    assert_eq!(seen[1].4, vec![1]);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn workers_end_each_epoch_with_the_same_batchnorm_statistics() -> Result<()> {
    use ferroflow_keras::layers::BatchNormalization;
    let n = 40;
    let x = Tensor::from_vec(
        (0..n * 5)
            .map(|i| ((i * 7 % 13) as f32 - 6.0) / 3.0)
            .collect::<Vec<_>>(),
        &[n, 5],
    )?;
    let y = Tensor::from_vec((0..n as i64).map(|i| i % 3).collect::<Vec<_>>(), &[n])?;
    let stats = on_two_workers(|s| {
        let mut m = s.scope(|| -> Result<Model> {
            let inputs = Input::new(&[5]);
            let h = Dense::new(6).name("h").apply(&inputs)?;
            let h = BatchNormalization::new().name("bn").apply(&h)?;
            let out = Dense::new(3).activation("softmax").name("out").apply(&h)?;
            let mut m = Model::named(&[inputs], &[out], "bn_model")?;
            m.compile("sgd", "sparse_categorical_crossentropy", &[])?;
            Ok(m)
        })?;
        m.fit(
            &x,
            &y,
            ferroflow_keras::FitOptions::new()
                .epochs(2)
                .batch_size(8)
                .verbose(ferroflow_keras::Verbose::Silent),
        )?;
        Ok(m.non_trainable_variables()
            .iter()
            .map(|v| v.read_untracked().to_f64_vec())
            .collect::<Vec<_>>())
    });
    assert!(!stats[0].is_empty());
    assert_eq!(
        stats[0], stats[1],
        "moving statistics agree after averaging"
    );
    assert!(stats[0][0].iter().any(|v| *v != 0.0), "they moved");
    Ok(())
}

/// Local replicas share one moving mean and variance: each step assigns them the mean of
/// the replicas' updates (TF's ON_READ / MEAN variables), the same in every run, instead
/// of whichever replica wrote last.
#[test]
fn mirrored_replicas_update_batchnorm_statistics_with_their_mean() -> Result<()> {
    use ferroflow_keras::layers::BatchNormalization;
    let (n, f) = (8usize, 3usize);
    let values: Vec<f32> = (0..n * f)
        .map(|i| ((i * 7 % 11) as f32 - 4.0) * if i < n * f / 2 { 1.0 } else { 3.0 })
        .collect();
    let x = Tensor::from_vec(values.clone(), &[n, f])?;
    let y = Tensor::from_vec((0..n as i64).map(|i| i % 3).collect::<Vec<_>>(), &[n])?;
    // Each replica's share: rows 0..4 and 4..8; their means and (biased) variances.
    let share_stats = |rows: std::ops::Range<usize>| -> (Vec<f64>, Vec<f64>) {
        (0..f)
            .map(|c| {
                let col: Vec<f64> = rows.clone().map(|r| values[r * f + c] as f64).collect();
                let m = col.iter().sum::<f64>() / col.len() as f64;
                let v = col.iter().map(|a| (a - m) * (a - m)).sum::<f64>() / col.len() as f64;
                (m, v)
            })
            .unzip()
    };
    let ((m0, v0), (m1, v1)) = (share_stats(0..4), share_stats(4..8));
    for eager in [false, true] {
        for _ in 0..3 {
            let strategy = MirroredStrategy::with_replicas(2)?;
            let mut m = strategy.scope(|| -> Result<Model> {
                let inputs = Input::new(&[f]);
                let h = BatchNormalization::new().name("bn").apply(&inputs)?;
                let out = Dense::new(3).activation("softmax").name("out").apply(&h)?;
                let mut m = Model::named(&[inputs], &[out], "bn_first")?;
                m.compile("sgd", "sparse_categorical_crossentropy", &[])?;
                Ok(m)
            })?;
            m.set_run_eagerly(eager)?;
            m.fit(
                &x,
                &y,
                ferroflow_keras::FitOptions::new()
                    .epochs(1)
                    .batch_size(n)
                    .shuffle(false)
                    .verbose(ferroflow_keras::Verbose::Silent),
            )?;
            let stats: Vec<Vec<f64>> = m
                .non_trainable_variables()
                .iter()
                .map(|v| v.read_untracked().to_f64_vec())
                .collect();
            for c in 0..f {
                let mean = 0.01 * (m0[c] + m1[c]) / 2.0;
                let var = 0.99 + 0.01 * (v0[c] + v1[c]) / 2.0;
                assert!(
                    (stats[0][c] - mean).abs() < 1e-6,
                    "mean {c}: {} vs {mean}",
                    stats[0][c]
                );
                assert!(
                    (stats[1][c] - var).abs() < 1e-5,
                    "var {c}: {} vs {var}",
                    stats[1][c]
                );
            }
        }
    }
    Ok(())
}

/// Only the chief writes saved models; the other workers' `save` calls write nothing (so
/// that every worker may run the same program, paths included).
#[test]
fn only_the_chief_writes_saved_models() -> Result<()> {
    let root = std::env::temp_dir().join(format!("ff_chief_saves_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)
        .map_err(|e| ferroflow_core::Error::invalid("test", e.to_string()))?;
    let written = on_two_workers(|s| {
        let rank = s.cluster_resolver().task_id;
        let m = s.scope(model)?;
        let dir = root.join(format!("model_{rank}"));
        let keras = root.join(format!("model_{rank}.keras"));
        let weights = root.join(format!("w_{rank}.safetensors"));
        m.save(&dir)?;
        m.save(&keras)?;
        m.save_weights(&weights)?;
        Ok([dir.exists(), keras.exists(), weights.exists()])
    });
    let _ = std::fs::remove_dir_all(&root);
    // save_weights writes on every worker, as TF's does (tests compare workers so).
    assert_eq!(written, vec![[true; 3], [false, false, true]]);
    Ok(())
}
