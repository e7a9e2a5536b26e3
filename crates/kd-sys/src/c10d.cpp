// PyTorch's distributed engine (c10d) for kd: a TCPStore for the rendezvous and a
// ProcessGroupGloo (CPU) or ProcessGroupNCCL (CUDA, made in cuda.cpp) for the collectives,
// built from the libtorch kd already links. Only functions libtorch exports are called; see
// gloo-decl/README.md for the Gloo declarations the header needs.

#define USE_C10D_GLOO 1

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "cuda.hpp"
#include "guard.hpp"

using kd::guarded;

struct KdProcessGroup {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
  // The rank's CUDA device under NCCL; -1 under Gloo.
  int nccl_device;
  // Set once a collective has failed: the group is then aborted, not shut down, when freed.
  bool failed = false;
};

namespace {
// Waits for a collective, with no timeout of its own: each backend enforces the group's
// (Gloo fails the work, which wait() rethrows; NCCL's watchdog aborts the communicators).
// Given one, ProcessGroupNCCL would poll until the GPU finished the collective and throw on
// timeout; without, it makes the current CUDA stream wait for the collective and returns,
// so later work on that stream (a copy to the host included) sees the result. False means
// the work was aborted.
void wait(const c10::intrusive_ptr<c10d::Work>& work) {
  if (!work->wait()) {
    throw std::runtime_error("the collective was aborted");
  }
}

// Runs collective `f` on `pg` under the shim's error convention; a failure marks the group.
template <typename F>
int collective(KdProcessGroup* pg, F f) {
  int status = guarded(f);
  if (status != 0) {
    pg->failed = true;
  }
  return status;
}
}  // namespace

extern "C" {

// Joins the group: rank `rank` of `world`, rendezvous at host:port (rank 0 serves the store
// there unless `serve_store` is false: torchrun's agent already serves it), keys under
// `prefix` (may be empty), `timeout_ms` for the rendezvous and every collective. `gloo_host`
// is the address this rank's Gloo device binds to (empty: libtorch's default device).
// `nccl_device` >= 0: the collectives go through NCCL on that CUDA device instead of Gloo.
int kd_pg_new(const char* host, int port, int rank, int world, bool serve_store,
              const char* prefix, const char* gloo_host, int64_t timeout_ms, int nccl_device,
              KdProcessGroup** out) {
  return guarded([&] {
    auto timeout = std::chrono::milliseconds(timeout_ms);
    c10d::TCPStoreOptions opts;
    opts.port = static_cast<std::uint16_t>(port);
    opts.isServer = serve_store && rank == 0;
    opts.numWorkers = world;
    opts.waitWorkers = true;
    opts.timeout = timeout;
    c10::intrusive_ptr<c10d::Store> store =
        c10::make_intrusive<c10d::TCPStore>(std::string(host), opts);
    if (prefix != nullptr && prefix[0] != '\0') {
      store = c10::make_intrusive<c10d::PrefixStore>(std::string(prefix), store);
    }
    if (nccl_device >= 0) {
      *out = new KdProcessGroup{
          store, kd::make_nccl_backend(store, rank, world, nccl_device, timeout), timeout,
          nccl_device};
      return;
    }
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    if (gloo_host != nullptr && gloo_host[0] != '\0') {
      options->devices.push_back(
          c10d::ProcessGroupGloo::createDeviceForHostname(std::string(gloo_host)));
    } else {
      options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
    }
    auto gloo = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, options);
    *out = new KdProcessGroup{store, gloo, timeout, -1};
  });
}

// Sums each tensor over all ranks, in place (contiguous tensors on the backend's device).
int kd_pg_all_reduce_sum(KdProcessGroup* pg, at::Tensor** tensors, size_t n) {
  return collective(pg, [&] {
    // One collective per tensor: a list given to one allreduce is read by Gloo as replicas
    // of one tensor (summed together), not as separate tensors.
    for (size_t i = 0; i < n; ++i) {
      std::vector<at::Tensor> one{*tensors[i]};
      c10d::AllreduceOptions opts;
      opts.reduceOp = c10d::ReduceOp::SUM;
      opts.timeout = pg->timeout;
      wait(pg->backend->allreduce(one, opts));
    }
  });
}

// Copies each tensor from rank `root` to every rank, in place.
int kd_pg_broadcast(KdProcessGroup* pg, at::Tensor** tensors, size_t n, int root) {
  return collective(pg, [&] {
    for (size_t i = 0; i < n; ++i) {
      std::vector<at::Tensor> one{*tensors[i]};
      c10d::BroadcastOptions opts;
      opts.rootRank = root;
      opts.timeout = pg->timeout;
      wait(pg->backend->broadcast(one, opts));
    }
  });
}

// Waits until every rank has reached the barrier.
int kd_pg_barrier(KdProcessGroup* pg) {
  return collective(pg, [&] {
    c10d::BarrierOptions opts;
    opts.timeout = pg->timeout;
    if (pg->nccl_device >= 0) {
      opts.device_ids = {pg->nccl_device};
    }
    wait(pg->backend->barrier(opts));
  });
}

// Leaves the group. The backend is shut down first (ProcessGroupNCCL finishes its queued
// collectives and destroys its communicators; one destroyed without this warns and aborts
// them), or aborted after a failed collective, whose communicators may never finish; Gloo
// has neither and does nothing. Freeing it then stops its threads and closes its
// connections and the store.
void kd_pg_free(KdProcessGroup* pg) {
  try {
    if (pg->failed) {
      pg->backend->abort();
    } else {
      pg->backend->shutdown();
    }
  } catch (...) {
  }
  try {
    delete pg;
  } catch (...) {
  }
}

}  // extern "C"
