//! `kd-cli launch --nproc N CONFIG [run options]`: starts N local `kd-cli run` processes as
//! the ranks of one data-parallel run — what `torchrun --nproc-per-node N` does, for users
//! without PyTorch's Python: each child gets torchrun's variables (`RANK`, `WORLD_SIZE`,
//! `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`), rank 0 serves the c10d
//! store, and if any rank fails the others are stopped and the failure is named.

use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// A free TCP port on the loopback interface (for the store).
pub fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .context("cannot find a free port for the rendezvous")?;
    Ok(listener.local_addr()?.port())
}

/// Runs `kd-cli run <run_args>` as `nproc` ranks; returns when all have succeeded, or fails
/// naming the first rank that did not.
pub fn launch(nproc: usize, master_port: Option<u16>, run_args: &[String]) -> Result<()> {
    if nproc == 0 {
        bail!("--nproc: expected at least 1, got 0");
    }
    let port = match master_port {
        Some(p) => p,
        None => free_port()?,
    };
    tracing::info!("launching {nproc} ranks, rendezvous at 127.0.0.1:{port}");
    let mut children = start_ranks(nproc, port, run_args)?;
    wait_for_ranks(&mut children)
}

/// Starts the `nproc` ranks with torchrun's variables; if one cannot start, the others are
/// stopped.
fn start_ranks(nproc: usize, port: u16, run_args: &[String]) -> Result<Vec<Child>> {
    let exe = std::env::current_exe().context("cannot find the kd-cli executable")?;
    let mut children: Vec<Child> = Vec::with_capacity(nproc);
    for rank in 0..nproc {
        let child = Command::new(&exe)
            .arg("run")
            .args(run_args)
            .env("RANK", rank.to_string())
            .env("LOCAL_RANK", rank.to_string())
            .env("WORLD_SIZE", nproc.to_string())
            .env("LOCAL_WORLD_SIZE", nproc.to_string())
            .env("MASTER_ADDR", "127.0.0.1")
            .env("MASTER_PORT", port.to_string())
            .spawn()
            .with_context(|| format!("cannot start rank {rank}"));
        match child {
            Ok(c) => children.push(c),
            Err(e) => {
                stop_all(&mut children);
                return Err(e);
            }
        }
    }
    Ok(children)
}

/// Waits for every rank; the first failure stops the rest (they would wait for it until
/// their collective timeout). Ranks are reported in the order their failures were seen; a
/// rank that died takes the others down within milliseconds, so several may be seen at once.
fn wait_for_ranks(children: &mut [Child]) -> Result<()> {
    let nproc = children.len();
    let mut done: Vec<Option<ExitStatus>> = vec![None; nproc];
    loop {
        let mut failed = Vec::new();
        for (rank, child) in children.iter_mut().enumerate() {
            if done[rank].is_some() {
                continue;
            }
            let status = match child.try_wait() {
                Ok(status) => status,
                Err(e) => {
                    stop_all(children);
                    return Err(e).context(format!("cannot wait for rank {rank}"));
                }
            };
            done[rank] = status;
            if let Some(s) = status.filter(|s| !s.success()) {
                failed.push(format!("rank {rank} ({s})"));
            }
        }
        if !failed.is_empty() {
            stop_all(children);
            // A rank killed by a signal is the likelier cause: name it first.
            failed.sort_by_key(|f| !f.contains("signal"));
            bail!(
                "{} of {nproc} failed; the other ranks were stopped",
                failed.join(", ")
            );
        }
        if done.iter().all(Option::is_some) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn stop_all(children: &mut [Child]) {
    for child in children.iter_mut() {
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
        }
        let _ = child.wait();
    }
}
