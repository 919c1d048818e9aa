//! The small value types strategies hand out: cluster and replica contexts, input
//! contexts, reduce ops.

/// This worker's place in the cluster (`strategy.cluster_resolver`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClusterResolver {
    /// This worker's index (`task_id`; 0 is the chief).
    pub task_id: usize,
    /// The number of workers.
    pub num_workers: usize,
}

impl ClusterResolver {
    /// Whether this worker is the chief, the one that writes files.
    pub fn is_chief(&self) -> bool {
        self.task_id == 0
    }
}

/// What a replica knows inside `strategy.run` (`tf.distribute.get_replica_context()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplicaContext {
    /// This replica's index over all workers.
    pub replica_id_in_sync_group: usize,
    /// Replicas over all workers.
    pub num_replicas_in_sync: usize,
}

/// What `distribute_datasets_from_function` tells the function building a worker's input
/// pipeline (`tf.distribute.InputContext`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InputContext {
    /// Input pipelines (one per worker).
    pub num_input_pipelines: usize,
    /// This worker's pipeline.
    pub input_pipeline_id: usize,
    /// Replicas over all workers.
    pub num_replicas_in_sync: usize,
}

impl InputContext {
    /// The batch size per replica for a global batch (`get_per_replica_batch_size`); the
    /// global batch must divide by the replica count.
    pub fn get_per_replica_batch_size(&self, global: usize) -> ferroflow_core::Result<usize> {
        if !global.is_multiple_of(self.num_replicas_in_sync) {
            return Err(ferroflow_core::Error::invalid(
                "InputContext",
                format!(
                    "the global batch size {global} is not divisible by the {} replicas in sync",
                    self.num_replicas_in_sync
                ),
            ));
        }
        Ok(global / self.num_replicas_in_sync)
    }
}

/// How `strategy.reduce` combines per-replica values (`tf.distribute.ReduceOp`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReduceOp {
    /// The sum over replicas.
    Sum,
    /// The mean over replicas.
    Mean,
}

/// How `experimental_distribute_dataset` splits a dataset between workers
/// (`tf.data.experimental.AutoShardPolicy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AutoShardPolicy {
    /// FILE when the pipeline reads enough files, else DATA.
    #[default]
    Auto,
    /// Each worker reads its share of the files.
    File,
    /// Each worker reads everything and keeps every `n`-th element.
    Data,
    /// No sharding: every worker sees every element.
    Off,
}
