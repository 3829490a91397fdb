// How the processes of one training run find each other and learn of each
// other's failure, over TCP: rank 0 listens on MASTER_ADDR:MASTER_PORT, every
// other rank connects to it. Through it rank 0 hands out the NCCL unique id,
// and it stays open for the run as the failure channel: a rank that fails
// reports it, a rank that dies closes its socket, and either way every other
// rank hears of it and can abort instead of hanging in a collective.

#ifndef VEOMNI_RUNTIME_COMM_RENDEZVOUS_H
#define VEOMNI_RUNTIME_COMM_RENDEZVOUS_H

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace veomni::runtime {

struct RendezvousConfig {
  int rank = 0;
  int world = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;
  // How long to wait for every rank to arrive (and for rank 0 to answer).
  absl::Duration timeout = absl::Seconds(300);
};

class Rendezvous {
 public:
  ~Rendezvous();
  Rendezvous(const Rendezvous&) = delete;
  Rendezvous& operator=(const Rendezvous&) = delete;

  // Blocks until all `world` ranks have joined; DeadlineExceeded naming who
  // is missing, or Unavailable when rank 0 cannot be reached.
  static absl::StatusOr<std::unique_ptr<Rendezvous>> Join(const RendezvousConfig& config);

  // Rank 0's `payload` on every rank (others pass anything). Aborted with
  // rank 0's message when it reported a failure instead.
  absl::StatusOr<std::string> Broadcast(const std::string& payload);

  // From now on, `on_failure` runs once, on a watcher thread, with a message
  // naming the rank when any other rank reports a failure or its process
  // ends before Finish.
  void Watch(std::function<void(const std::string& message)> on_failure);
  // Tells every other rank that this one failed, with `message`.
  void ReportFailure(const std::string& message);
  // A clean end: rank 0 waits (up to the timeout) until every rank has
  // finished, the others until rank 0 confirms (however long its checkpoint
  // takes), so no rank mistakes another's exit for a failure.
  absl::Status Finish();

  int rank() const { return config_.rank; }
  int world() const { return config_.world; }

 private:
  explicit Rendezvous(RendezvousConfig config) : config_(std::move(config)) {}
  void WatchLoop();
  void Fail(const std::string& message);
  bool SendLine(int fd, const std::string& line);

  RendezvousConfig config_;
  std::vector<int> peers_;  // rank 0: fd of rank r at [r] (-1 for itself); others: [0]
  std::mutex send_mu_;
  std::thread watcher_;
  std::function<void(const std::string&)> on_failure_;
  std::atomic<bool> failed_{false}, finishing_{false}, stop_{false};
  std::atomic<int> finished_{0};   // rank 0: ranks that said DONE
  std::atomic<bool> released_{false};  // others: rank 0 said BYE
  int wake_pipe_[2] = {-1, -1};
};

// The rendezvous settings of this process from its environment, as torchrun,
// Slurm or Open MPI set them: RANK / WORLD_SIZE / LOCAL_RANK, else
// SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID, else OMPI_COMM_WORLD_RANK /
// _SIZE / _LOCAL_RANK; MASTER_ADDR (default 127.0.0.1) and MASTER_PORT
// (required when the world has several ranks). NotFound when none is set.
struct LaunchEnvironment {
  RendezvousConfig rendezvous;
  int local_rank = 0;
};
absl::StatusOr<LaunchEnvironment> LaunchEnvironmentFromEnv();

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_COMM_RENDEZVOUS_H
