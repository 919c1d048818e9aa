//! Workers as MPI ranks (Open MPI, launched with `mpirun`).

use super::Collective;
use ferroflow_core::{Error, Result};
use mpi::collective::SystemOperation;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;
use mpi::Count;
use std::sync::{Arc, Mutex, OnceLock};

/// MPI's world communicator as a [`Collective`]. MPI is initialised (with full thread
/// support) by the first [`MpiCollective::world`] and finalised when the process exits,
/// after every rank has arrived there (or the job is ended when one never does).
pub struct MpiCollective {
    comm: Mutex<Comm>,
    rank: usize,
    size: usize,
}

struct Comm {
    world: SimpleCommunicator,
    /// The send buffer, kept from call to call: MPI moves large messages far faster
    /// between pages it has seen before (fresh pages cost faults and mappings every step,
    /// several times the transfer itself). The sums arrive in the caller's buffer.
    /// (Held as 8-byte words, so that it is aligned for every element type.)
    send: Vec<f64>,
    // Never dropped (dropping it would finalise MPI); `finalize_at_exit` does that.
    _universe: std::mem::ManuallyDrop<Universe>,
}

// SAFETY: MPI is initialised with `Threading::Multiple`, so its handles may be used from
// any thread; the mutex makes the calls one at a time as well.
unsafe impl Send for Comm {}

/// How long a rank that is done waits for the others before ending the job, unless
/// `FERROFLOW_MPI_EXIT_TIMEOUT_S` says otherwise.
const EXIT_TIMEOUT_S: u64 = 30;

/// Run by the C library when the process exits (returning from `main`,
/// `std::process::exit`): MPI_Finalize waits for every rank, so a rank that leaves while
/// another is stuck in a collective (it failed alone, say) would wait forever. It waits a
/// bounded time for the others and ends the whole job (`MPI_Abort`) when they don't come.
extern "C" fn finalize_at_exit() {
    let Some(me) = WORLD.get() else { return };
    let comm = me.comm.lock().unwrap_or_else(|e| e.into_inner());
    let limit = std::env::var("FERROFLOW_MPI_EXIT_TIMEOUT_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(EXIT_TIMEOUT_S);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(limit);
    let mut request = comm.world.immediate_barrier();
    loop {
        match request.test() {
            Ok(_) => break,
            Err(pending) => request = pending,
        }
        if std::time::Instant::now() > deadline {
            eprintln!(
                "ferroflow: worker {} is done but the other workers did not finish within {limit} s \
                 (one stopped early, or failed alone); ending the MPI job",
                me.rank
            );
            comm.world.abort(1);
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    // SAFETY: every rank has reached this point, MPI is initialised and not yet finalised,
    // and nothing uses it after (the handles live in a static that is never dropped).
    unsafe {
        mpi::ffi::MPI_Finalize();
    }
}

extern "C" {
    fn atexit(f: extern "C" fn()) -> std::os::raw::c_int;
}

static WORLD: OnceLock<Arc<MpiCollective>> = OnceLock::new();
static INIT: Mutex<()> = Mutex::new(());

impl MpiCollective {
    /// The world communicator of this process's MPI job (one worker per rank).
    pub fn world() -> Result<Arc<MpiCollective>> {
        let _once = INIT.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(me) = WORLD.get() {
            return Ok(me.clone());
        }
        let (universe, threading) = mpi::initialize_with_threading(mpi::Threading::Multiple)
            .ok_or_else(|| {
                Error::invalid(
                    "MultiWorkerMirroredStrategy",
                    "MPI is already initialised elsewhere",
                )
            })?;
        if threading != mpi::Threading::Multiple {
            return Err(Error::invalid(
                "MultiWorkerMirroredStrategy",
                format!("the MPI library offers {threading:?} threading; ferroflow needs Multiple"),
            ));
        }
        let world = universe.world();
        let (rank, size) = (world.rank() as usize, world.size() as usize);
        let me = Arc::new(MpiCollective {
            comm: Mutex::new(Comm {
                world,
                send: Vec::new(),
                _universe: std::mem::ManuallyDrop::new(universe),
            }),
            rank,
            size,
        });
        let _ = WORLD.set(me.clone());
        // SAFETY: registers a plain function with the C library.
        if unsafe { atexit(finalize_at_exit) } != 0 {
            return Err(Error::invalid(
                "MultiWorkerMirroredStrategy",
                "cannot register MPI's finalisation at exit",
            ));
        }
        Ok(me)
    }

    fn with<R>(&self, f: impl FnOnce(&SimpleCommunicator) -> R) -> R {
        let comm = self.comm.lock().unwrap_or_else(|e| e.into_inner());
        f(&comm.world)
    }

    /// Sums `buf` over the ranks, sending from the kept buffer.
    fn all_reduce_sum<T: Equivalence + bytemuck::Pod>(&self, buf: &mut [T]) -> Result<()> {
        count(buf.len())?;
        let mut comm = self.comm.lock().unwrap_or_else(|e| e.into_inner());
        let Comm { world, send, .. } = &mut *comm;
        let words = std::mem::size_of_val(buf).div_ceil(8);
        if send.len() < words {
            send.resize(words, 0.0);
        }
        let s: &mut [T] = &mut bytemuck::cast_slice_mut(&mut send[..words])[..buf.len()];
        s.copy_from_slice(buf);
        world.all_reduce_into(&*s, buf, SystemOperation::sum());
        Ok(())
    }

    /// Ends the whole job with `code` (`MPI_Abort`): the other ranks stop too, instead of
    /// waiting in a collective for a worker that has given up.
    pub fn abort(&self, code: i32) -> ! {
        self.with(|w| w.abort(code))
    }
}

fn count(n: usize) -> Result<Count> {
    Count::try_from(n)
        .map_err(|_| Error::invalid("MPI", format!("{n} elements exceed MPI's count limit")))
}

impl Collective for MpiCollective {
    fn rank(&self) -> usize {
        self.rank
    }

    fn size(&self) -> usize {
        self.size
    }

    fn all_reduce_sum_f32(&self, buf: &mut [f32]) -> Result<()> {
        self.all_reduce_sum(buf)
    }

    fn all_reduce_sum_f64(&self, buf: &mut [f64]) -> Result<()> {
        self.all_reduce_sum(buf)
    }

    fn broadcast(&self, buf: &mut Vec<u8>, root: usize) -> Result<()> {
        if root >= self.size {
            return Err(Error::invalid(
                "broadcast",
                format!("root {root} is not among {} ranks", self.size),
            ));
        }
        let mut len = buf.len() as u64;
        let comm = self.comm.lock().unwrap_or_else(|e| e.into_inner());
        let r = comm.world.process_at_rank(root as i32);
        r.broadcast_into(&mut len);
        // Every rank sees the same length, so all of them refuse an oversized message
        // together (before any allocation) and none is left waiting for the payload.
        let n = usize::try_from(len)
            .ok()
            .filter(|&n| count(n).is_ok())
            .ok_or_else(|| {
                Error::invalid(
                    "broadcast",
                    format!("rank {root} sent {len} bytes, beyond MPI's count limit"),
                )
            })?;
        if self.rank != root {
            let mut fresh = Vec::new();
            fresh.try_reserve_exact(n).map_err(|_| {
                Error::invalid(
                    "broadcast",
                    format!("cannot allocate the {n} bytes rank {root} sent"),
                )
            })?;
            fresh.resize(n, 0);
            *buf = fresh;
        }
        r.broadcast_into(&mut buf[..]);
        Ok(())
    }

    fn all_gather(&self, local: &[u8]) -> Result<Vec<Vec<u8>>> {
        let mine = count(local.len())?;
        let mut counts = vec![0 as Count; self.size];
        self.with(|w| w.all_gather_into(&mine, &mut counts[..]));
        let mut displs = Vec::with_capacity(self.size);
        let mut total: usize = 0;
        for &c in &counts {
            displs.push(count(total)?);
            total +=
                usize::try_from(c).map_err(|_| Error::invalid("all_gather", "negative count"))?;
        }
        if total == 0 {
            // Every rank sees the same counts, so all skip the call together.
            return Ok(vec![Vec::new(); self.size]);
        }
        let mut out = Vec::new();
        out.try_reserve_exact(total).map_err(|_| {
            Error::invalid(
                "all_gather",
                format!("cannot allocate the {total} bytes the ranks sent"),
            )
        })?;
        out.resize(total, 0);
        self.with(|w| {
            let mut part = PartitionMut::new(&mut out[..], &counts[..], &displs[..]);
            w.all_gather_varcount_into(local, &mut part);
        });
        let mut at = 0;
        Ok(counts
            .iter()
            .map(|&c| {
                let v = out[at..at + c as usize].to_vec();
                at += c as usize;
                v
            })
            .collect())
    }

    fn barrier(&self) -> Result<()> {
        self.with(|w| w.barrier());
        Ok(())
    }
}
