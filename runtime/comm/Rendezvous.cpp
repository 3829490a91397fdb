#include "runtime/comm/Rendezvous.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace veomni::runtime {
namespace {

// Messages are lines: "HELLO <rank>", "PAYLOAD <hex>", "FAIL <text>", "DONE",
// "BYE". Text is kept to one line.
std::string OneLine(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return text;
}

std::string Hex(const std::string& bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

bool Unhex(const std::string& hex, std::string* bytes) {
  if (hex.size() % 2) return false;
  bytes->clear();
  for (size_t i = 0; i < hex.size(); i += 2) {
    int value = 0;
    for (int j = 0; j < 2; ++j) {
      char c = hex[i + j];
      int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (digit < 0) return false;
      value = value * 16 + digit;
    }
    *bytes += static_cast<char>(value);
  }
  return true;
}

// Reads one line from `fd` within `deadline`; false on EOF, error or timeout.
bool ReadLine(int fd, std::string* line, absl::Time deadline) {
  line->clear();
  char c;
  while (true) {
    int wait_ms = static_cast<int>(
        std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now())));
    pollfd p{fd, POLLIN, 0};
    int ready = poll(&p, 1, wait_ms);
    if (ready <= 0) return false;
    ssize_t got = recv(fd, &c, 1, 0);
    if (got <= 0) return false;
    if (c == '\n') return true;
    *line += c;
  }
}

absl::StatusOr<int> Listen(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("socket: ", std::strerror(errno)));
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  address.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0 ||
      listen(fd, 1024) != 0) {
    std::string error = std::strerror(errno);
    close(fd);
    return absl::UnavailableError(
        absl::StrCat("rank 0 cannot listen on port ", port, " (MASTER_PORT): ", error));
  }
  return fd;
}

absl::StatusOr<int> Connect(const std::string& host, int port, absl::Time deadline) {
  std::string last_error = "no attempt";
  while (absl::Now() < deadline) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    int resolved = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
    if (resolved != 0) {
      last_error = gai_strerror(resolved);
    } else {
      int fd = socket(AF_INET, SOCK_STREAM, 0);
      if (fd >= 0 && connect(fd, found->ai_addr, found->ai_addrlen) == 0) {
        freeaddrinfo(found);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        return fd;
      }
      last_error = std::strerror(errno);
      if (fd >= 0) close(fd);
      freeaddrinfo(found);
    }
    // Rank 0 may not be listening yet.
    usleep(100 * 1000);
  }
  return absl::UnavailableError(absl::StrCat("cannot reach rank 0 at ", host, ":", port,
                                             " (MASTER_ADDR:MASTER_PORT): ", last_error));
}

}  // namespace

absl::StatusOr<std::unique_ptr<Rendezvous>> Rendezvous::Join(const RendezvousConfig& config) {
  if (config.world < 1 || config.rank < 0 || config.rank >= config.world) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank ", config.rank, " is outside a world of ", config.world));
  }
  auto rendezvous = std::unique_ptr<Rendezvous>(new Rendezvous(config));
  if (pipe(rendezvous->wake_pipe_) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  absl::Time deadline = absl::Now() + config.timeout;
  if (config.world == 1) return rendezvous;
  if (config.rank == 0) {
    auto listener = Listen(config.master_port);
    if (!listener.ok()) return listener.status();
    rendezvous->peers_.assign(config.world, -1);
    int joined = 1;
    while (joined < config.world) {
      int wait_ms = static_cast<int>(
          std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now())));
      pollfd p{*listener, POLLIN, 0};
      if (poll(&p, 1, wait_ms) <= 0) break;
      int fd = accept(*listener, nullptr, nullptr);
      if (fd < 0) continue;
      std::string hello;
      int rank = -1;
      if (!ReadLine(fd, &hello, deadline) || hello.rfind("HELLO ", 0) != 0 ||
          !absl::SimpleAtoi(hello.substr(6), &rank) || rank <= 0 || rank >= config.world ||
          rendezvous->peers_[rank] != -1) {
        close(fd);  // a stray connection, or a rank that is already here
        continue;
      }
      rendezvous->peers_[rank] = fd;
      ++joined;
    }
    close(*listener);
    if (joined < config.world) {
      std::vector<int> missing;
      for (int r = 1; r < config.world; ++r) {
        if (rendezvous->peers_[r] == -1) missing.push_back(r);
      }
      return absl::DeadlineExceededError(absl::StrCat(
          "rank 0 waited ", absl::FormatDuration(config.timeout), " for ranks ",
          absl::StrJoin(missing, ", "), " of ", config.world, " to join; they never came"));
    }
  } else {
    auto fd = Connect(config.master_addr, config.master_port, deadline);
    if (!fd.ok()) return fd.status();
    rendezvous->peers_.assign(1, *fd);
    if (!rendezvous->SendLine(*fd, absl::StrCat("HELLO ", config.rank))) {
      return absl::UnavailableError("lost the connection to rank 0 while joining");
    }
  }
  return rendezvous;
}

bool Rendezvous::SendLine(int fd, const std::string& line) {
  std::lock_guard<std::mutex> lock(send_mu_);
  std::string data = line + "\n";
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

absl::StatusOr<std::string> Rendezvous::Broadcast(const std::string& payload) {
  if (config_.world == 1) return payload;
  if (watcher_.joinable()) {
    return absl::FailedPreconditionError("Broadcast after Watch");
  }
  if (config_.rank == 0) {
    for (int r = 1; r < config_.world; ++r) {
      if (!SendLine(peers_[r], "PAYLOAD " + Hex(payload))) {
        return absl::UnavailableError(absl::StrCat("lost the connection to rank ", r));
      }
    }
    return payload;
  }
  std::string line, bytes;
  if (!ReadLine(peers_[0], &line, absl::Now() + config_.timeout)) {
    return absl::UnavailableError("rank 0 did not send the NCCL id (did it fail?)");
  }
  if (line.rfind("FAIL ", 0) == 0) {
    failed_ = true;
    return absl::AbortedError(absl::StrCat("stopping: ", line.substr(5)));
  }
  if (line.rfind("PAYLOAD ", 0) != 0 || !Unhex(line.substr(8), &bytes)) {
    return absl::UnavailableError("rank 0 sent a malformed NCCL id");
  }
  return bytes;
}

void Rendezvous::Watch(std::function<void(const std::string&)> on_failure) {
  on_failure_ = std::move(on_failure);
  if (config_.world == 1) return;
  watcher_ = std::thread([this] { WatchLoop(); });
}

void Rendezvous::Fail(const std::string& message) {
  if (failed_.exchange(true)) return;
  if (on_failure_) on_failure_(message);
}

void Rendezvous::WatchLoop() {
  std::vector<bool> open(peers_.size(), true);
  std::vector<std::string> pending(peers_.size());
  while (!stop_) {
    std::vector<pollfd> fds;
    std::vector<int> owner;
    fds.push_back({wake_pipe_[0], POLLIN, 0});
    owner.push_back(-1);
    for (size_t i = 0; i < peers_.size(); ++i) {
      if (peers_[i] >= 0 && open[i]) {
        fds.push_back({peers_[i], POLLIN, 0});
        owner.push_back(static_cast<int>(i));
      }
    }
    if (poll(fds.data(), fds.size(), 1000) < 0) {
      if (errno == EINTR) continue;
      Fail(absl::StrCat("the failure channel broke: poll: ", std::strerror(errno)));
      return;
    }
    if (fds[0].revents) return;  // woken to stop
    for (size_t k = 1; k < fds.size(); ++k) {
      if (!fds[k].revents) continue;
      int peer = owner[k];
      char buffer[4096];
      ssize_t n = recv(peers_[peer], buffer, sizeof(buffer), 0);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        open[peer] = false;
        if (config_.rank == 0) {
          if (finished_ < config_.world && !released_) {
            std::string message = absl::StrCat("rank ", peer, " ended before finishing");
            for (size_t r = 1; r < peers_.size(); ++r) {
              if (static_cast<int>(r) != peer && open[r]) SendLine(peers_[r], "FAIL " + message);
            }
            Fail(message);
          }
        } else if (!released_) {
          Fail("lost the connection to rank 0 (its process ended)");
        }
        continue;
      }
      pending[peer].append(buffer, static_cast<size_t>(n));
      size_t newline;
      while ((newline = pending[peer].find('\n')) != std::string::npos) {
        std::string line = pending[peer].substr(0, newline);
        pending[peer].erase(0, newline + 1);
        if (line.rfind("FAIL ", 0) == 0) {
          std::string message = line.substr(5);
          if (config_.rank == 0) {
            message = absl::StrCat("rank ", peer, ": ", message);
            for (size_t r = 1; r < peers_.size(); ++r) {
              if (static_cast<int>(r) != peer && open[r]) SendLine(peers_[r], "FAIL " + message);
            }
          }
          Fail(message);
        } else if (line == "DONE" && config_.rank == 0) {
          ++finished_;
        } else if (line == "BYE" && config_.rank != 0) {
          released_ = true;
        }
      }
    }
  }
}

void Rendezvous::ReportFailure(const std::string& message) {
  failed_ = true;
  std::string line = "FAIL " + OneLine(message);
  if (config_.rank == 0) {
    for (size_t r = 1; r < peers_.size(); ++r) SendLine(peers_[r], line);
  } else if (!peers_.empty()) {
    SendLine(peers_[0], line);
  }
}

absl::Status Rendezvous::Finish() {
  if (config_.world == 1) return absl::OkStatus();
  absl::Time deadline = absl::Now() + config_.timeout;
  if (config_.rank == 0) {
    ++finished_;
    while (finished_ < config_.world && !failed_ && absl::Now() < deadline) {
      usleep(10 * 1000);
    }
    if (failed_) return absl::AbortedError("another rank failed");
    if (finished_ < config_.world) return absl::DeadlineExceededError("ranks did not finish");
    released_ = true;
    for (size_t r = 1; r < peers_.size(); ++r) SendLine(peers_[r], "BYE");
    return absl::OkStatus();
  }
  SendLine(peers_[0], "DONE");
  // No deadline: rank 0 may still be writing the checkpoint, and if it dies
  // the watcher reports the lost connection.
  while (!released_ && !failed_) usleep(10 * 1000);
  if (failed_) return absl::AbortedError("another rank failed");
  return absl::OkStatus();
}

Rendezvous::~Rendezvous() {
  stop_ = true;
  if (wake_pipe_[1] >= 0) {
    char c = 0;
    (void)!write(wake_pipe_[1], &c, 1);
  }
  if (watcher_.joinable()) watcher_.join();
  for (int fd : peers_) {
    if (fd >= 0) close(fd);
  }
  for (int fd : wake_pipe_) {
    if (fd >= 0) close(fd);
  }
}

absl::StatusOr<LaunchEnvironment> LaunchEnvironmentFromEnv() {
  struct Names {
    const char *rank, *world, *local;
  };
  const Names kSchemes[] = {{"RANK", "WORLD_SIZE", "LOCAL_RANK"},
                            {"SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
                            {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                             "OMPI_COMM_WORLD_LOCAL_RANK"}};
  for (const Names& names : kSchemes) {
    const char* rank = std::getenv(names.rank);
    const char* world = std::getenv(names.world);
    if (!rank || !world) continue;
    LaunchEnvironment env;
    const char* local = std::getenv(names.local);
    if (!absl::SimpleAtoi(rank, &env.rendezvous.rank) ||
        !absl::SimpleAtoi(world, &env.rendezvous.world) ||
        (local && !absl::SimpleAtoi(local, &env.local_rank))) {
      return absl::InvalidArgumentError(absl::StrCat(names.rank, "=", rank, " ", names.world,
                                                     "=", world, ": not integers"));
    }
    if (!local) env.local_rank = env.rendezvous.rank;
    if (const char* addr = std::getenv("MASTER_ADDR")) env.rendezvous.master_addr = addr;
    const char* port = std::getenv("MASTER_PORT");
    if (env.rendezvous.world > 1 &&
        (!port || !absl::SimpleAtoi(port, &env.rendezvous.master_port) ||
         env.rendezvous.master_port <= 0 || env.rendezvous.master_port > 65535)) {
      return absl::InvalidArgumentError(absl::StrCat(
          names.rank, " and ", names.world, " are set but MASTER_PORT is not a port (",
          port ? port : "unset", "): rank 0 listens there"));
    }
    return env;
  }
  return absl::NotFoundError("no RANK/WORLD_SIZE, SLURM_PROCID/SLURM_NTASKS or OMPI_COMM_WORLD_*");
}

}  // namespace veomni::runtime
