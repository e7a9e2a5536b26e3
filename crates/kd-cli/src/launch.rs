//! `kd-cli launch --nproc N CONFIG [run options]`: starts N local `kd-cli run` processes as
//! the ranks of one data-parallel run — what `torchrun --nproc-per-node N` does, for users
//! without PyTorch's Python: each child gets torchrun's variables (`RANK`, `WORLD_SIZE`,
//! `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`), rank 0 serves the c10d
//! store, and if any rank fails the others are stopped and the failure is named.

use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// A free TCP port on the loopback interface (for the store).
fn free_port() -> Result<u16> {
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
    let exe = std::env::current_exe().context("cannot find the kd-cli executable")?;
    let port = match master_port {
        Some(p) => p,
        None => free_port()?,
    };
    tracing::info!("launching {nproc} ranks, rendezvous at 127.0.0.1:{port}");
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
    // Wait for all; the first failure stops the rest (they would wait for it until their
    // collective timeout).
    let mut done: Vec<Option<ExitStatus>> = vec![None; nproc];
    loop {
        for (rank, child) in children.iter_mut().enumerate() {
            if done[rank].is_none() {
                done[rank] = child.try_wait().context("cannot wait for a rank")?;
            }
        }
        if let Some((rank, status)) = done
            .iter()
            .enumerate()
            .find_map(|(r, s)| s.filter(|s| !s.success()).map(|s| (r, s)))
        {
            stop_all(&mut children);
            bail!("rank {rank} of {nproc} failed ({status}); the other ranks were stopped");
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
