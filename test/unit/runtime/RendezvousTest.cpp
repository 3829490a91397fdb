// The TCP rendezvous of multi-process runs, with ranks as threads on
// loopback: the id broadcast, a clean finish, a failure report, a rank that
// vanishes, and a rank that never comes.

#include "runtime/comm/Rendezvous.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "gtest/gtest.h"

namespace veomni::runtime {
namespace {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

RendezvousConfig Config(int rank, int world, int port, absl::Duration timeout) {
  RendezvousConfig config;
  config.rank = rank;
  config.world = world;
  config.master_port = port;
  config.timeout = timeout;
  return config;
}

// Runs `body(rank)` on `world` threads and joins them.
template <typename Body>
void OnRanks(int world, Body body) {
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) threads.emplace_back([&, r] { body(r); });
  for (std::thread& thread : threads) thread.join();
}

TEST(Rendezvous, BroadcastsRankZerosPayloadAndFinishes) {
  const int world = 4, port = FreePort();
  std::vector<std::string> received(world);
  std::atomic<int> failures{0};
  OnRanks(world, [&](int rank) {
    auto rendezvous = Rendezvous::Join(Config(rank, world, port, absl::Seconds(20)));
    ASSERT_TRUE(rendezvous.ok()) << rendezvous.status();
    auto payload = (*rendezvous)->Broadcast(rank == 0 ? std::string("id\0\x01\xff", 5) : "");
    ASSERT_TRUE(payload.ok()) << payload.status();
    received[rank] = *payload;
    (*rendezvous)->Watch([&](const std::string&) { ++failures; });
    EXPECT_TRUE((*rendezvous)->Finish().ok());
  });
  for (const std::string& bytes : received) EXPECT_EQ(bytes, std::string("id\0\x01\xff", 5));
  EXPECT_EQ(failures, 0);
}

// Each rank but `culprit` waits until it has heard of the failure.
struct FailureLog {
  std::mutex mu;
  std::condition_variable heard;
  std::vector<std::string> messages;
  void Add(const std::string& message) {
    std::lock_guard<std::mutex> lock(mu);
    messages.push_back(message);
    heard.notify_all();
  }
  bool WaitFor(size_t count) {
    std::unique_lock<std::mutex> lock(mu);
    return heard.wait_for(lock, std::chrono::seconds(20),
                          [&] { return messages.size() >= count; });
  }
};

TEST(Rendezvous, AReportedFailureReachesEveryOtherRank) {
  const int world = 3, port = FreePort(), culprit = 2;
  FailureLog log;
  OnRanks(world, [&](int rank) {
    auto rendezvous = Rendezvous::Join(Config(rank, world, port, absl::Seconds(20)));
    ASSERT_TRUE(rendezvous.ok()) << rendezvous.status();
    (*rendezvous)->Watch([&](const std::string& message) { log.Add(message); });
    if (rank == culprit) {
      (*rendezvous)->ReportFailure("out of memory\nat step 3");
    }
    EXPECT_TRUE(log.WaitFor(world - 1));
  });
  ASSERT_EQ(log.messages.size(), static_cast<size_t>(world - 1));
  for (const std::string& message : log.messages) {
    EXPECT_NE(message.find("out of memory at step 3"), std::string::npos) << message;
  }
}

TEST(Rendezvous, ARankThatVanishesIsAFailure) {
  const int world = 3, port = FreePort(), culprit = 1;
  FailureLog log;
  OnRanks(world, [&](int rank) {
    auto rendezvous = Rendezvous::Join(Config(rank, world, port, absl::Seconds(20)));
    ASSERT_TRUE(rendezvous.ok()) << rendezvous.status();
    if (rank == culprit) return;  // its socket closes without a word, as in a crash
    (*rendezvous)->Watch([&](const std::string& message) { log.Add(message); });
    EXPECT_TRUE(log.WaitFor(world - 1));
  });
  ASSERT_EQ(log.messages.size(), static_cast<size_t>(world - 1));
  for (const std::string& message : log.messages) {
    EXPECT_NE(message.find("rank 1 ended before finishing"), std::string::npos) << message;
  }
}

TEST(Rendezvous, RankZeroDyingIsAFailureForTheOthers) {
  const int world = 2, port = FreePort();
  FailureLog log;
  OnRanks(world, [&](int rank) {
    auto rendezvous = Rendezvous::Join(Config(rank, world, port, absl::Seconds(20)));
    ASSERT_TRUE(rendezvous.ok()) << rendezvous.status();
    if (rank == 0) return;
    (*rendezvous)->Watch([&](const std::string& message) { log.Add(message); });
    EXPECT_TRUE(log.WaitFor(1));
  });
  ASSERT_EQ(log.messages.size(), 1u);
  EXPECT_NE(log.messages[0].find("lost the connection to rank 0"), std::string::npos);
}

TEST(Rendezvous, AMissingRankIsNamedAfterTheTimeout) {
  const int world = 3, port = FreePort();
  OnRanks(2, [&](int rank) {
    auto rendezvous = Rendezvous::Join(Config(rank, world, port, absl::Seconds(2)));
    if (rank == 0) {
      ASSERT_FALSE(rendezvous.ok());
      EXPECT_EQ(rendezvous.status().code(), absl::StatusCode::kDeadlineExceeded);
      EXPECT_NE(rendezvous.status().message().find("ranks 2 of 3"), std::string::npos)
          << rendezvous.status();
    }
  });
}

TEST(Rendezvous, RankZeroFailingBeforeTheIdIsReportedToTheOthers) {
  const int world = 3, port = FreePort();
  OnRanks(world, [&](int rank) {
    auto rendezvous = Rendezvous::Join(Config(rank, world, port, absl::Seconds(20)));
    ASSERT_TRUE(rendezvous.ok()) << rendezvous.status();
    if (rank == 0) {
      (*rendezvous)->ReportFailure("no CUDA GPU is visible");
      return;
    }
    auto payload = (*rendezvous)->Broadcast("");
    ASSERT_FALSE(payload.ok());
    EXPECT_EQ(payload.status().code(), absl::StatusCode::kAborted);
    EXPECT_NE(payload.status().message().find("no CUDA GPU is visible"), std::string::npos)
        << payload.status();
  });
}

TEST(Rendezvous, NoRankZeroIsUnavailable) {
  auto rendezvous = Rendezvous::Join(Config(1, 2, FreePort(), absl::Seconds(1)));
  ASSERT_FALSE(rendezvous.ok());
  EXPECT_EQ(rendezvous.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(rendezvous.status().message().find("MASTER_ADDR:MASTER_PORT"), std::string::npos);
}

}  // namespace
}  // namespace veomni::runtime
