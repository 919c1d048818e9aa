//! The strategies: [`MirroredStrategy`] (replicas as threads of this process, one copy of
//! each variable), [`MultiWorkerMirroredStrategy`] (one replica per worker, over a
//! [`Collective`]) and the default single-replica [`OneDeviceStrategy`].

use crate::background::Background;
use crate::collective::{self, Collective, DEFAULT_BUCKET_BYTES};
use crate::context::{AutoShardPolicy, ClusterResolver, InputContext, ReduceOp, ReplicaContext};
use ferroflow_core::autodiff::Gradient;
use ferroflow_core::{Error, Result, Tensor, Variable};
use ferroflow_data::Dataset;
use ferroflow_keras::distribution::{self, ReplicaFn, ReplicaValue, Replicas, ReplicasExt};
use std::sync::Arc;

/// What every strategy offers (`tf.distribute.Strategy`).
pub trait Strategy {
    /// The strategy as Keras sees it.
    fn replicas(&self) -> Arc<dyn Replicas>;

    /// Runs `f` with this strategy current (`with strategy.scope():`): models compiled
    /// inside train, evaluate and predict on its replicas.
    fn scope<R>(&self, f: impl FnOnce() -> R) -> R {
        distribution::with_replicas(self.replicas(), f)
    }

    /// Replicas over all workers (`strategy.num_replicas_in_sync`).
    fn num_replicas_in_sync(&self) -> usize {
        self.replicas().num_replicas_in_sync()
    }

    /// This worker's place in the cluster (`strategy.cluster_resolver`).
    fn cluster_resolver(&self) -> ClusterResolver {
        let r = self.replicas();
        ClusterResolver {
            task_id: r.worker_rank(),
            num_workers: r.num_workers(),
        }
    }

    /// Runs `step` once per local replica (`strategy.run(fn, args)`); the results are in
    /// replica order. Each replica gets its context: which replica it is of how many.
    fn run<T: Send + 'static>(
        &self,
        step: impl Fn(&ReplicaContext) -> Result<T> + Sync,
    ) -> Result<Vec<T>> {
        let r = self.replicas();
        let (rank, local, total) = (
            r.worker_rank(),
            r.local_replicas(),
            r.num_replicas_in_sync(),
        );
        r.run_each(|i| {
            step(&ReplicaContext {
                replica_id_in_sync_group: rank * local + i,
                num_replicas_in_sync: total,
            })
        })
    }

    /// Combines per-replica values (`strategy.reduce(op, values, axis=None)`): the sum or
    /// mean over every replica of every worker, the same on all workers.
    fn reduce(&self, op: ReduceOp, per_replica: &[Tensor]) -> Result<Tensor> {
        let r = self.replicas();
        let mut it = per_replica.iter();
        let first = it
            .next()
            .ok_or_else(|| Error::invalid("Strategy::reduce", "no per-replica values"))?;
        let mut sum = first.clone();
        for t in it {
            sum = sum.add(t)?;
        }
        let mut parts = vec![sum];
        if r.num_workers() > 1 {
            parts = r.all_gather_rows(&[parts[0].expand_dims(0)?])?;
            parts = vec![parts[0].sum(0isize, false)?];
        }
        let sum = parts.remove(0);
        match op {
            ReduceOp::Sum => Ok(sum),
            ReduceOp::Mean => sum.mul_scalar(1.0 / r.num_replicas_in_sync() as f64),
        }
    }

    /// This worker's part of `data` (`strategy.experimental_distribute_dataset`) by TF's
    /// AUTO policy: its share of the files when the pipeline reads at least one file per
    /// worker (FILE), otherwise every `n`-th element (DATA).
    fn experimental_distribute_dataset(&self, data: &Dataset) -> Result<Dataset> {
        self.experimental_distribute_dataset_with(data, AutoShardPolicy::Auto)
    }

    /// This worker's part of `data` by `policy` (`tf.data.experimental.AutoShardPolicy`):
    /// FILE gives worker `i` of `n` files `i, i + n, ...` of the pipeline's file source
    /// (an error when there are fewer files than workers or none), DATA elements
    /// `i, i + n, ...`, OFF everything.
    fn experimental_distribute_dataset_with(
        &self,
        data: &Dataset,
        policy: AutoShardPolicy,
    ) -> Result<Dataset> {
        let r = self.replicas();
        let (n, i) = (r.num_workers(), r.worker_rank());
        if n == 1 || policy == AutoShardPolicy::Off {
            return Ok(data.clone());
        }
        let by_files = || data.shard_files(n, i);
        match policy {
            AutoShardPolicy::File => by_files().ok_or_else(|| {
                Error::invalid(
                    "experimental_distribute_dataset",
                    format!(
                        "AutoShardPolicy::File needs a pipeline reading at least {n} files (one per worker) through stages that can be rebuilt"
                    ),
                )
            }),
            AutoShardPolicy::Auto => match by_files() {
                Some(d) => Ok(d),
                None => data.shard(n as u64, i as u64),
            },
            AutoShardPolicy::Data | AutoShardPolicy::Off => data.shard(n as u64, i as u64),
        }
    }

    /// The dataset `make` builds for this worker
    /// (`strategy.distribute_datasets_from_function`): `make` shards it with the
    /// [`InputContext`] it is given.
    fn distribute_datasets_from_function(
        &self,
        make: impl FnOnce(&InputContext) -> Result<Dataset>,
    ) -> Result<Dataset> {
        let r = self.replicas();
        make(&InputContext {
            num_input_pipelines: r.num_workers(),
            input_pipeline_id: r.worker_rank(),
            num_replicas_in_sync: r.num_replicas_in_sync(),
        })
    }
}

/// Replicas as threads of this process, each with its share of the cores and its own
/// tape, sharing one copy of each variable (`tf.distribute.MirroredStrategy`). Gradients
/// are summed in replica order and applied once.
#[derive(Clone)]
pub struct MirroredStrategy(Arc<Mirrored>);

struct Mirrored {
    /// One pool per replica; none for a single replica on the calling thread.
    pools: Vec<rayon::ThreadPool>,
}

impl MirroredStrategy {
    /// One replica per core, as TF mirrors over every visible device.
    pub fn new() -> Result<Self> {
        Self::with_replicas(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// `n` replicas sharing the cores of rayon's pool.
    pub fn with_replicas(n: usize) -> Result<Self> {
        if n == 0 {
            return Err(Error::invalid(
                "MirroredStrategy",
                "needs at least one replica",
            ));
        }
        let threads = (rayon::current_num_threads() / n).max(1);
        let pools = (0..n)
            .map(|i| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .thread_name(move |t| format!("ferroflow-replica-{i}-{t}"))
                    .build()
                    .map_err(|e| {
                        Error::invalid("MirroredStrategy", format!("cannot start replica {i}: {e}"))
                    })
            })
            .collect::<Result<_>>()?;
        Ok(MirroredStrategy(Arc::new(Mirrored { pools })))
    }
}

impl Strategy for MirroredStrategy {
    fn replicas(&self) -> Arc<dyn Replicas> {
        self.0.clone()
    }
}

impl Replicas for Mirrored {
    fn num_replicas_in_sync(&self) -> usize {
        self.pools.len().max(1)
    }
    fn local_replicas(&self) -> usize {
        self.pools.len().max(1)
    }
    fn worker_rank(&self) -> usize {
        0
    }
    fn num_workers(&self) -> usize {
        1
    }
    fn run_local(&self, f: &ReplicaFn<'_>) -> Result<Vec<ReplicaValue>> {
        match &self.pools[..] {
            [] => return Ok(vec![f(0)?]),
            [pool] => return Ok(vec![pool.install(|| f(0))?]),
            _ => {}
        }
        let results: Vec<Result<ReplicaValue>> = std::thread::scope(|s| {
            let handles: Vec<_> = self
                .pools
                .iter()
                .enumerate()
                .map(|(i, pool)| s.spawn(move || pool.install(|| f(i))))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::invalid(
                            "MirroredStrategy",
                            "a replica thread panicked",
                        ))
                    })
                })
                .collect()
        });
        results.into_iter().collect()
    }
    fn all_reduce_gradients(&self, _: &mut [Option<Gradient>], _: &[Variable]) -> Result<()> {
        Ok(())
    }
    fn all_reduce_f64(&self, _: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn all_gather_rows(&self, tensors: &[Tensor]) -> Result<Vec<Tensor>> {
        Ok(tensors.to_vec())
    }
    fn broadcast_bytes(&self, bytes: Vec<u8>) -> Result<Vec<u8>> {
        Ok(bytes)
    }
    fn sync_variables(&self, _: &[Variable]) -> Result<()> {
        Ok(())
    }
}

/// One replica per worker process, kept in sync over a [`Collective`]
/// (`tf.distribute.MultiWorkerMirroredStrategy`): every worker starts from the chief's
/// variables, splits each global batch with the others, and all-reduces the gradients in
/// buckets before the same update everywhere.
#[derive(Clone)]
pub struct MultiWorkerMirroredStrategy(Arc<MultiWorker>);

struct MultiWorker {
    collective: Arc<dyn Collective>,
    bucket_bytes: usize,
    background: Background,
}

impl MultiWorkerMirroredStrategy {
    /// One worker per rank of the MPI job this process was launched in (`mpirun -np N`).
    /// Without the `mpi` feature this is an error that names it.
    pub fn new() -> Result<Self> {
        #[cfg(feature = "mpi")]
        {
            share_cores_with_local_ranks();
            Ok(Self::with_collective(collective::MpiCollective::world()?))
        }
        #[cfg(not(feature = "mpi"))]
        {
            Err(Error::invalid(
                "MultiWorkerMirroredStrategy",
                "multi-worker training needs MPI: build ferroflow with `--features mpi` \
                 (Open MPI and libclang installed) and launch with mpirun",
            ))
        }
    }

    /// Workers connected by `collective` (an MPI communicator, or a [`collective::LocalCollective::group`]
    /// member for workers that are threads of one process).
    pub fn with_collective(collective: Arc<dyn Collective>) -> Self {
        MultiWorkerMirroredStrategy(Arc::new(MultiWorker {
            background: Background::new(collective.clone()),
            collective,
            bucket_bytes: DEFAULT_BUCKET_BYTES,
        }))
    }

    /// Sets the gradient bytes per all-reduce (`bucket_cap_mb` in PyTorch DDP): a bucket's
    /// sum starts during the backward pass as soon as it is full. Set it before `scope`.
    pub fn bucket_bytes(self, bytes: usize) -> Self {
        let collective = self.0.collective.clone();
        MultiWorkerMirroredStrategy(Arc::new(MultiWorker {
            background: Background::new(collective.clone()),
            collective,
            bucket_bytes: bytes.max(1),
        }))
    }

    /// The collective the workers talk through.
    pub fn collective(&self) -> Arc<dyn Collective> {
        self.0.collective.clone()
    }
}

/// Gives rayon's pool this rank's share of the machine's cores when Open MPI started
/// several ranks on it, unless `RAYON_NUM_THREADS` says otherwise or the pool already
/// runs.
#[cfg(feature = "mpi")]
fn share_cores_with_local_ranks() {
    let local = std::env::var("OMPI_COMM_WORLD_LOCAL_SIZE")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 1);
    if let (Some(local), None) = (local, std::env::var_os("RAYON_NUM_THREADS")) {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads((cores / local).max(1))
            .build_global();
    }
}

impl Strategy for MultiWorkerMirroredStrategy {
    fn replicas(&self) -> Arc<dyn Replicas> {
        self.0.clone()
    }
}

impl Replicas for MultiWorker {
    fn num_replicas_in_sync(&self) -> usize {
        self.collective.size()
    }
    fn local_replicas(&self) -> usize {
        1
    }
    fn worker_rank(&self) -> usize {
        self.collective.rank()
    }
    fn num_workers(&self) -> usize {
        self.collective.size()
    }
    fn run_local(&self, f: &ReplicaFn<'_>) -> Result<Vec<ReplicaValue>> {
        Ok(vec![f(0)?])
    }
    fn all_reduce_gradients(
        &self,
        grads: &mut [Option<Gradient>],
        vars: &[Variable],
    ) -> Result<()> {
        collective::all_reduce_gradients(&*self.collective, grads, vars, self.bucket_bytes)
    }
    fn all_reduce_f64(&self, values: &mut [f64]) -> Result<()> {
        self.collective.all_reduce_sum_f64(values)
    }
    fn all_gather_rows(&self, tensors: &[Tensor]) -> Result<Vec<Tensor>> {
        collective::all_gather_rows(&*self.collective, tensors)
    }
    fn broadcast_bytes(&self, mut bytes: Vec<u8>) -> Result<Vec<u8>> {
        self.collective.broadcast(&mut bytes, 0)?;
        Ok(bytes)
    }
    fn sync_variables(&self, vars: &[Variable]) -> Result<()> {
        collective::sync_variables(&*self.collective, vars)
    }
    fn overlap_bucket_bytes(&self) -> Option<usize> {
        Some(self.bucket_bytes)
    }
    fn start_sum(&self, values: Vec<f32>) -> Result<u64> {
        self.background.start(values)
    }
    fn finish_sum(&self, ticket: u64) -> Result<Vec<f32>> {
        self.background.finish(ticket)
    }
    fn sum_buffer(&self) -> Vec<f32> {
        self.background.buffer()
    }
    fn recycle_sum_buffer(&self, buffer: Vec<f32>) {
        self.background.recycle(buffer)
    }
}

/// The default strategy: one replica, this process (`tf.distribute.get_strategy()`
/// outside any scope, or `OneDeviceStrategy`).
#[derive(Clone, Default)]
pub struct OneDeviceStrategy;

impl Strategy for OneDeviceStrategy {
    fn replicas(&self) -> Arc<dyn Replicas> {
        // One replica on the calling thread: mirroring without pools.
        Arc::new(Mirrored { pools: Vec::new() })
    }
}
