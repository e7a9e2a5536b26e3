//! Data-parallel training on PyTorch's c10d (through `kd_sys::dist`): every rank holds the
//! whole model, takes its contiguous share of each global batch, and the gradients are summed
//! over ranks before every optimizer step, so that all ranks take the same step — the step a
//! single process would take on the whole global batch (Li et al. 2020, "PyTorch
//! Distributed: Experiences on Accelerating Data Parallel Training", the design of
//! `DistributedDataParallel`). The environment contract is torchrun's (`RANK`, `WORLD_SIZE`,
//! `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`).
//!
//! Exactness: each rank scales its mean loss by its share of the global batch, so the summed
//! gradient is the global batch's mean gradient even when the shares differ. Batch-norm
//! statistics are per rank, as in `DistributedDataParallel` without `SyncBatchNorm`.

use std::ops::Range;
use std::time::Duration;

use kd_models::{Network, Precision};
pub use kd_sys::dist::{Backend, DistError, ProcessGroup, Rendezvous};
use tch::{Device, Kind, Tensor};

/// The torchrun environment of this process.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchEnv {
    /// Where and how the ranks meet (torchrun's `MASTER_ADDR`, `MASTER_PORT`, `RANK`,
    /// `WORLD_SIZE`).
    pub rendezvous: Rendezvous,
    /// The rank on this machine (`LOCAL_RANK`), for choosing a GPU.
    pub local_rank: usize,
}

/// How long a rank waits for the others: `KD_DIST_TIMEOUT` seconds (300 by default); an
/// error names the variable when it is not a positive number of seconds.
pub fn dist_timeout(var: impl Fn(&str) -> Option<String>) -> Result<Duration, String> {
    let Some(raw) = var("KD_DIST_TIMEOUT") else {
        return Ok(Duration::from_secs(300));
    };
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|s| *s > 0.0)
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| {
            format!("KD_DIST_TIMEOUT: expected a positive number of seconds, got {raw:?}")
        })
}

/// Reads the torchrun variables through `var`: `None` when `WORLD_SIZE` is unset (a single
/// process); an error naming the variable when one is missing or malformed.
pub fn launch_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<LaunchEnv>, String> {
    let Some(world) = var("WORLD_SIZE") else {
        return Ok(None);
    };
    let number = |name: &str, value: Option<String>| -> Result<usize, String> {
        let value = value.ok_or_else(|| format!("{name} is not set (WORLD_SIZE is {world})"))?;
        value
            .trim()
            .parse()
            .map_err(|_| format!("{name}: expected a non-negative integer, got {value:?}"))
    };
    let world_size = number("WORLD_SIZE", Some(world.clone()))?;
    let rank = number("RANK", var("RANK"))?;
    let local_rank = number(
        "LOCAL_RANK",
        var("LOCAL_RANK").or_else(|| Some(rank.to_string())),
    )?;
    if world_size == 0 || rank >= world_size {
        return Err(format!(
            "RANK {rank} and WORLD_SIZE {world_size}: expected 0 <= RANK < WORLD_SIZE"
        ));
    }
    let host = var("MASTER_ADDR").ok_or("MASTER_ADDR is not set")?;
    let port = var("MASTER_PORT").ok_or("MASTER_PORT is not set")?;
    let port: u16 = port
        .trim()
        .parse()
        .map_err(|_| format!("MASTER_PORT: expected a port number, got {port:?}"))?;
    // Under torchrun the agent already serves the store; the workers' keys live under the
    // restart attempt's prefix (what torch.distributed does with TORCHELASTIC_USE_AGENT_STORE).
    let agent_store = var("TORCHELASTIC_USE_AGENT_STORE").is_some_and(|v| v == "True");
    let prefix = if agent_store {
        let attempt = var("TORCHELASTIC_RESTART_COUNT").unwrap_or_else(|| "0".into());
        format!("/worker/attempt_{attempt}")
    } else {
        String::new()
    };
    let loopback = host == "127.0.0.1" || host == "localhost" || host == "::1";
    Ok(Some(LaunchEnv {
        rendezvous: Rendezvous {
            gloo_host: if loopback {
                "127.0.0.1".into()
            } else {
                String::new()
            },
            host,
            port,
            rank,
            world_size,
            serve_store: !agent_store,
            prefix,
            timeout: dist_timeout(&var)?,
            // Gloo until the caller knows the device ([`Backend::for_device`]).
            backend: Backend::Gloo,
        },
        local_rank,
    }))
}

/// Checks what a fit under `config` needs from data parallelism over `world_size` ranks:
/// not float16 (its loss scaling is per process), and a global batch of at least one image
/// per rank; `key` names the config section (`student.train`, say). A launcher's
/// [`LaunchEnv`] gives the world size before any process group exists.
///
/// ```
/// use kd_models::Precision;
/// use kd_train::distributed::check_parallel_config;
/// use kd_train::TrainConfig;
///
/// let config = TrainConfig { batch_size: 2, ..Default::default() };
/// assert!(check_parallel_config(2, &config, Precision::F32, "student.train").is_ok());
/// let err = check_parallel_config(4, &config, Precision::F32, "student.train").unwrap_err();
/// assert!(err.to_string().contains("student.train.batch_size"));
/// ```
pub fn check_parallel_config(
    world_size: usize,
    config: &crate::TrainConfig,
    precision: Precision,
    key: &str,
) -> crate::Result<()> {
    if precision == Precision::F16 {
        return Err(crate::TrainError::InvalidConfig {
            key: "precision".into(),
            expected: "f32 or bf16 with data parallelism (float16 loss scaling is per process)"
                .into(),
            got: "f16".into(),
        });
    }
    if config.batch_size < world_size {
        return Err(crate::TrainError::InvalidConfig {
            key: format!("{key}.batch_size"),
            expected: format!(
                "at least the number of data-parallel ranks ({world_size}): it is the global batch"
            ),
            got: config.batch_size.to_string(),
        });
    }
    Ok(())
}

/// Training across the ranks of a process group.
#[derive(Debug, Clone, Copy)]
pub struct DataParallel<'a> {
    /// The c10d process group of the ranks.
    pub group: &'a ProcessGroup,
}

impl DataParallel<'_> {
    /// This process's rank, from 0.
    pub fn rank(&self) -> usize {
        self.group.rank()
    }

    /// The number of ranks.
    pub fn world_size(&self) -> usize {
        self.group.world_size()
    }

    /// This rank's contiguous share of `n` items (shares differ by at most one).
    pub fn shard(&self, n: usize) -> Range<usize> {
        let (r, w) = (self.rank(), self.world_size());
        (r * n / w)..((r + 1) * n / w)
    }

    /// Checks what a fit under `config` needs from data parallelism
    /// ([`check_parallel_config`] with this group's size).
    pub fn check_config(
        &self,
        config: &crate::TrainConfig,
        precision: Precision,
        key: &str,
    ) -> crate::Result<()> {
        check_parallel_config(self.world_size(), config, precision, key)
    }

    /// Makes every rank's variables (parameters and buffers) rank 0's.
    pub fn broadcast_model(&self, model: &dyn Network) -> Result<(), DistError> {
        let mut vars: Vec<(String, Tensor)> = model.var_store().variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let tensors: Vec<Tensor> = vars.into_iter().map(|(_, t)| t.detach()).collect();
        self.group.broadcast(&tensors, 0)
    }

    /// Sums the gradients of `params` over ranks in one flat bucket, with `flag` (this rank's
    /// count of non-finite losses) riding along; returns the summed flag. Undefined gradients
    /// must not occur (every rank runs the same forward pass).
    pub fn all_reduce_gradients(&self, params: &[Tensor], flag: f64) -> Result<f64, DistError> {
        let grads: Vec<Tensor> = params.iter().map(Tensor::grad).collect();
        let mut flat: Vec<Tensor> = grads.iter().map(|g| g.detach().reshape([-1])).collect();
        let device = params.first().map_or(tch::Device::Cpu, Tensor::device);
        flat.push(Tensor::from_slice(&[flag as f32]).to_device(device));
        let bucket = Tensor::cat(&flat, 0);
        self.group.all_reduce_sum(&[bucket.shallow_clone()])?;
        let mut offset = 0;
        tch::no_grad(|| {
            for g in &grads {
                let n = g.numel() as i64;
                g.shallow_clone()
                    .copy_(&bucket.narrow(0, offset, n).view_as(g));
                offset += n;
            }
        });
        Ok(bucket.double_value(&[offset]))
    }

    /// The whole `[total, classes]` table of which this rank computed the rows
    /// `shard` (`rows`, float32): a sum of the shares (each row written by one rank, zeros
    /// elsewhere, assembled in host memory where Gloo reduces).
    pub(crate) fn assemble_rows(
        &self,
        rows: &Tensor,
        shard: Range<usize>,
        total: usize,
    ) -> Result<Tensor, DistError> {
        let classes = rows.size()[1];
        let all = Tensor::zeros([total as i64, classes], (Kind::Float, Device::Cpu));
        let (start, len) = (shard.start as i64, shard.len() as i64);
        tch::no_grad(|| all.narrow(0, start, len).copy_(rows));
        self.group.all_reduce_sum(&[all.shallow_clone()])?;
        Ok(all)
    }

    /// Sums `values` over ranks.
    pub fn sum(&self, values: &[f64]) -> Result<Vec<f64>, DistError> {
        let t = Tensor::from_slice(values).to_kind(Kind::Double);
        self.group.all_reduce_sum(&[t.shallow_clone()])?;
        Ok(Vec::<f64>::try_from(&t).expect("a f64 vector"))
    }

    /// Rank 0's `values`, on every rank.
    pub fn from_rank0(&self, values: &[f64]) -> Result<Vec<f64>, DistError> {
        let t = Tensor::from_slice(values).to_kind(Kind::Double);
        self.group.broadcast(&[t.shallow_clone()], 0)?;
        Ok(Vec::<f64>::try_from(&t).expect("a f64 vector"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn a_single_process_has_no_launch_environment() {
        assert_eq!(launch_env(env(&[])).unwrap(), None);
    }

    #[test]
    fn torchrun_variables_are_read_and_its_agent_store_used() {
        let e = launch_env(env(&[
            ("WORLD_SIZE", "4"),
            ("RANK", "3"),
            ("LOCAL_RANK", "1"),
            ("MASTER_ADDR", "10.0.0.7"),
            ("MASTER_PORT", "29500"),
            ("TORCHELASTIC_USE_AGENT_STORE", "True"),
            ("TORCHELASTIC_RESTART_COUNT", "2"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            (e.rendezvous.rank, e.rendezvous.world_size, e.local_rank),
            (3, 4, 1)
        );
        assert!(!e.rendezvous.serve_store);
        assert_eq!(e.rendezvous.prefix, "/worker/attempt_2");
        assert_eq!(e.rendezvous.gloo_host, "");
        let plain = launch_env(env(&[
            ("WORLD_SIZE", "2"),
            ("RANK", "0"),
            ("MASTER_ADDR", "127.0.0.1"),
            ("MASTER_PORT", "1234"),
        ]))
        .unwrap()
        .unwrap();
        assert!(plain.rendezvous.serve_store && plain.rendezvous.prefix.is_empty());
        assert_eq!(plain.rendezvous.gloo_host, "127.0.0.1");
    }

    #[test]
    fn missing_or_malformed_variables_are_named() {
        let err = launch_env(env(&[("WORLD_SIZE", "2"), ("RANK", "0")])).unwrap_err();
        assert!(err.contains("MASTER_ADDR"), "{err}");
        let err = launch_env(env(&[
            ("WORLD_SIZE", "2"),
            ("RANK", "2"),
            ("MASTER_ADDR", "h"),
            ("MASTER_PORT", "1"),
        ]))
        .unwrap_err();
        assert!(err.contains("RANK 2 and WORLD_SIZE 2"), "{err}");
        let err = launch_env(env(&[("WORLD_SIZE", "2"), ("RANK", "x")])).unwrap_err();
        assert!(
            err.contains("RANK: expected a non-negative integer"),
            "{err}"
        );
    }
}
