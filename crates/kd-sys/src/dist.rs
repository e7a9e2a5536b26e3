//! PyTorch's distributed engine, c10d, as kd uses it: ranks meet at a `TCPStore` (the
//! rendezvous torchrun and `torch.distributed` use) and exchange tensors through a
//! `ProcessGroupGloo` (PyTorch's CPU backend) or a `ProcessGroupNCCL` (its GPU backend) —
//! the classes of the libtorch kd links, not a protocol of kd's own. A process group is
//! joined once per process and left when dropped.

use std::time::Duration;

use tch::{Device, Tensor};

use crate::ffi::{self, PgHandle, PgSpec};

/// A collective or the rendezvous failed: a peer did not appear in time, died, or sent
/// something unexpected.
#[derive(Debug, thiserror::Error)]
#[error("rank {rank} of {world}: {what}: {message}")]
pub struct DistError {
    pub rank: usize,
    pub world: usize,
    pub what: &'static str,
    pub message: String,
}

/// Which c10d backend carries the collectives (what `torch.distributed.init_process_group`
/// calls `backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// `ProcessGroupGloo`: CPU tensors (others go through a CPU copy).
    #[default]
    Gloo,
    /// `ProcessGroupNCCL` on this rank's CUDA device: CUDA tensors, reduced on the GPUs
    /// (CPU tensors go through a copy on that device).
    Nccl(usize),
}

impl Backend {
    /// PyTorch's choice for a rank's device: NCCL for CUDA, Gloo otherwise.
    pub fn for_device(device: Device) -> Self {
        match device {
            Device::Cuda(n) => Self::Nccl(n),
            _ => Self::Gloo,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Gloo => "gloo",
            Self::Nccl(_) => "nccl",
        }
    }
}

/// Where and how to meet the other ranks.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendezvous {
    /// The store's address (`MASTER_ADDR`).
    pub host: String,
    /// The store's port (`MASTER_PORT`).
    pub port: u16,
    pub rank: usize,
    pub world_size: usize,
    /// Rank 0 serves the store itself (false when torchrun's agent already serves it).
    pub serve_store: bool,
    /// Prefix of every store key (torchrun's `/worker/attempt_<n>`), or empty.
    pub prefix: String,
    /// The address this rank's Gloo device binds to (empty: libtorch's default device,
    /// this host's name or loopback).
    pub gloo_host: String,
    /// For the rendezvous and every collective.
    pub timeout: Duration,
    pub backend: Backend,
}

/// Membership of a c10d Gloo process group.
#[derive(Debug)]
pub struct ProcessGroup {
    handle: PgHandle,
    rank: usize,
    world: usize,
    backend: Backend,
}

impl ProcessGroup {
    /// Joins the group; returns once all `world_size` ranks have joined, or fails after the
    /// timeout naming who is missing.
    pub fn join(r: &Rendezvous) -> Result<Self, DistError> {
        let timeout_ms = i64::try_from(r.timeout.as_millis()).unwrap_or(i64::MAX);
        let handle = ffi::pg_new(&PgSpec {
            host: &r.host,
            port: r.port,
            rank: r.rank,
            world: r.world_size,
            serve_store: r.serve_store,
            prefix: &r.prefix,
            gloo_host: &r.gloo_host,
            timeout_ms,
            nccl_device: match r.backend {
                Backend::Nccl(device) => Some(device),
                Backend::Gloo => None,
            },
        })
        .map_err(|message| DistError {
            rank: r.rank,
            world: r.world_size,
            what: "rendezvous",
            message: first_line(&message),
        })?;
        Ok(Self {
            handle,
            rank: r.rank,
            world: r.world_size,
            backend: r.backend,
        })
    }

    pub fn rank(&self) -> usize {
        self.rank
    }

    pub fn world_size(&self) -> usize {
        self.world
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    fn error(&self, what: &'static str, message: String) -> DistError {
        DistError {
            rank: self.rank,
            world: self.world,
            what,
            message: first_line(&message),
        }
    }

    /// Sums each tensor over all ranks, in place. Gloo reduces CPU tensors directly and
    /// others through a CPU copy; NCCL reduces CUDA tensors where they are (others through
    /// a copy on this rank's GPU).
    pub fn all_reduce_sum(&self, tensors: &[Tensor]) -> Result<(), DistError> {
        self.on_backend_device(tensors, |t| self.handle.all_reduce_sum(t))
            .map_err(|m| self.error("all-reduce", m))
    }

    /// Copies each tensor from rank `root` to every rank, in place.
    pub fn broadcast(&self, tensors: &[Tensor], root: usize) -> Result<(), DistError> {
        self.on_backend_device(tensors, |t| self.handle.broadcast(t, root))
            .map_err(|m| self.error("broadcast", m))
    }

    /// Waits until every rank gets here.
    pub fn barrier(&self) -> Result<(), DistError> {
        self.handle.barrier().map_err(|m| self.error("barrier", m))
    }

    /// The device the backend reduces on for `tensor`: the CPU for Gloo, the rank's GPU for
    /// NCCL.
    fn backend_device(&self, _tensor: &Tensor) -> Device {
        match self.backend {
            Backend::Gloo => Device::Cpu,
            Backend::Nccl(device) => Device::Cuda(device),
        }
    }

    /// Runs `op` on contiguous versions of `tensors` on the backend's device and copies
    /// results back where a copy was made.
    fn on_backend_device(
        &self,
        tensors: &[Tensor],
        op: impl FnOnce(&[Tensor]) -> Result<(), String>,
    ) -> Result<(), String> {
        let direct = |t: &Tensor| t.device() == self.backend_device(t) && t.is_contiguous();
        let moved: Vec<Tensor> = tensors
            .iter()
            .map(|t| {
                if direct(t) {
                    t.shallow_clone()
                } else {
                    t.to_device(self.backend_device(t)).contiguous()
                }
            })
            .collect();
        tch::no_grad(|| op(&moved))?;
        tch::no_grad(|| {
            for (t, c) in tensors.iter().zip(&moved) {
                if !direct(t) {
                    t.shallow_clone().copy_(c);
                }
            }
        });
        Ok(())
    }
}

/// libtorch's messages carry a C++ backtrace after their first line.
fn first_line(message: &str) -> String {
    message
        .split("Exception raised from")
        .next()
        .unwrap_or(message)
        .lines()
        .next()
        .unwrap_or("")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn rendezvous(port: u16, rank: usize, world_size: usize, timeout: Duration) -> Rendezvous {
        Rendezvous {
            host: "127.0.0.1".into(),
            port,
            rank,
            world_size,
            serve_store: true,
            prefix: String::new(),
            gloo_host: "127.0.0.1".into(),
            timeout,
            backend: Backend::Gloo,
        }
    }

    #[test]
    fn two_ranks_sum_broadcast_and_meet() {
        let port = free_port();
        let results: Vec<(Vec<f32>, Vec<f32>)> = std::thread::scope(|s| {
            let ranks: Vec<_> = (0..2)
                .map(|rank| {
                    s.spawn(move || {
                        let r = rendezvous(port, rank, 2, Duration::from_secs(30));
                        let pg = ProcessGroup::join(&r).unwrap();
                        let x = Tensor::from_slice(&[1.0f32 + rank as f32, 10.0]);
                        pg.all_reduce_sum(&[x.shallow_clone()]).unwrap();
                        // A strided (non-contiguous) tensor goes through a copy.
                        let b = Tensor::from_slice(&[rank as f32 + 5.0; 4])
                            .reshape([2, 2])
                            .transpose(0, 1);
                        pg.broadcast(&[b.shallow_clone()], 1).unwrap();
                        pg.barrier().unwrap();
                        (
                            Vec::<f32>::try_from(&x).unwrap(),
                            Vec::<f32>::try_from(b.contiguous().view([-1])).unwrap(),
                        )
                    })
                })
                .collect();
            ranks.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (sum, broadcast) in results {
            assert_eq!(sum, vec![3.0, 20.0]);
            assert_eq!(broadcast, vec![6.0; 4]);
        }
    }

    #[test]
    fn a_rank_that_never_comes_is_a_rendezvous_error_after_the_timeout() {
        let port = free_port();
        let started = std::time::Instant::now();
        let err = ProcessGroup::join(&rendezvous(port, 0, 2, Duration::from_secs(2))).unwrap_err();
        assert_eq!(err.what, "rendezvous");
        assert!(
            err.to_string().starts_with("rank 0 of 2: rendezvous: "),
            "{err}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "gave up in time"
        );
    }

    #[test]
    fn nccl_without_a_gpu_is_a_rendezvous_error_saying_why() {
        if tch::Cuda::is_available() {
            return;
        }
        let r = Rendezvous {
            backend: Backend::Nccl(0),
            ..rendezvous(free_port(), 0, 1, Duration::from_secs(10))
        };
        let err = ProcessGroup::join(&r).unwrap_err();
        assert_eq!(err.what, "rendezvous");
        let message = err.to_string();
        assert!(
            message.contains("NCCL needs a CUDA device")
                || message.contains("kd was built without CUDA graphs and NCCL"),
            "{message}"
        );
    }

    #[test]
    fn the_backend_follows_the_device_as_in_pytorch() {
        assert_eq!(Backend::for_device(Device::Cpu), Backend::Gloo);
        assert_eq!(Backend::for_device(Device::Cuda(1)), Backend::Nccl(1));
        assert_eq!(Backend::default().name(), "gloo");
    }
}
