// The mesh and the in-process communicator: groups of a 2x2x2 mesh by hand;
// every collective on 1 to 8 rank threads and on sub-groups against a naive
// single-threaded reference; bit-identical reductions; Ulysses all-to-all;
// interleaved groups; and the failure paths (mismatched operands, a rank that
// never arrives, abort), none of which may hang.

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/base/Tensor.h"
#include "runtime/comm/LocalCommunicator.h"
#include "runtime/comm/Mesh.h"

namespace veomni::runtime {
namespace {

using ::testing::HasSubstr;
using Shape = std::vector<int64_t>;
using Clock = std::chrono::steady_clock;

constexpr uint32_t kAll = kAxisDp | kAxisFsdp | kAxisSp;
// Long enough never to fire in a passing test, short enough that a bug that
// would hang shows up as DeadlineExceeded instead.
constexpr absl::Duration kGenerousTimeout = absl::Seconds(5);

// --- Mesh --------------------------------------------------------------------

TEST(Mesh, CoordsOfA2x2x2Mesh) {
  Mesh mesh{2, 2, 2};
  EXPECT_EQ(mesh.size(), 8);
  const std::array<int, 3> expected[8] = {{0, 0, 0}, {0, 0, 1}, {0, 1, 0}, {0, 1, 1},
                                          {1, 0, 0}, {1, 0, 1}, {1, 1, 0}, {1, 1, 1}};
  for (int rank = 0; rank < 8; ++rank) EXPECT_EQ(mesh.Coords(rank), expected[rank]) << rank;
  Mesh uneven{3, 1, 2};
  EXPECT_EQ(uneven.Coords(5), (std::array<int, 3>{2, 0, 1}));
}

TEST(Mesh, GroupsOfA2x2x2Mesh) {
  Mesh mesh{2, 2, 2};
  using Group = std::vector<int>;
  EXPECT_EQ(mesh.Group(5, 0), Group({5}));
  EXPECT_EQ(mesh.Group(5, kAxisDp), Group({1, 5}));
  EXPECT_EQ(mesh.Group(5, kAxisFsdp), Group({5, 7}));
  EXPECT_EQ(mesh.Group(5, kAxisSp), Group({4, 5}));
  EXPECT_EQ(mesh.Group(5, kAxisDp | kAxisFsdp), Group({1, 3, 5, 7}));
  EXPECT_EQ(mesh.Group(5, kAxisDp | kAxisSp), Group({0, 1, 4, 5}));
  EXPECT_EQ(mesh.Group(5, kAxisFsdp | kAxisSp), Group({4, 5, 6, 7}));
  EXPECT_EQ(mesh.Group(5, kAll), Group({0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(mesh.Group(2, kAxisFsdp | kAxisSp), Group({0, 1, 2, 3}));
  EXPECT_EQ(mesh.Group(2, kAxisDp), Group({2, 6}));
  // Degree-1 axes add nothing.
  Mesh fsdp_only{1, 4, 1};
  EXPECT_EQ(fsdp_only.Group(2, kAxisDp | kAxisSp), Group({2}));
  EXPECT_EQ(fsdp_only.Group(2, kAll), Group({0, 1, 2, 3}));
}

TEST(Mesh, ExpertGroupsFactorEachFsdpSpBlock) {
  using Group = std::vector<int>;
  // fsdp=2, sp=2, ep=2: in each dp slice g = rank % 4, ep_i = g % 2,
  // ep_fsdp_i = g / 2.
  Mesh mesh{2, 2, 2, 2};
  EXPECT_EQ(mesh.size(), 8);  // ep does not multiply the world
  EXPECT_EQ(mesh.Group(5, kAxisEp), Group({4, 5}));
  EXPECT_EQ(mesh.Group(5, kAxisEpFsdp), Group({5, 7}));
  EXPECT_EQ(mesh.Group(5, kAxisEp | kAxisEpFsdp), Group({4, 5, 6, 7}));
  EXPECT_EQ(mesh.Group(5, kAxisDp | kAxisEp), Group({0, 1, 4, 5}));
  EXPECT_EQ(mesh.Group(2, kAxisDp | kAxisEpFsdp), Group({0, 2, 4, 6}));
  // ep=2 inside sp=4 (one fsdp rank): not a union of sp groups' halves...
  Mesh inside_sp{1, 1, 4, 2};
  EXPECT_EQ(inside_sp.Group(3, kAxisEp), Group({2, 3}));
  EXPECT_EQ(inside_sp.Group(3, kAxisEpFsdp), Group({1, 3}));
  // ...and ep=4 across fsdp=2 x sp=2 spans both axes.
  Mesh across{1, 2, 2, 4};
  EXPECT_EQ(across.Group(2, kAxisEp), Group({0, 1, 2, 3}));
  EXPECT_EQ(across.Group(2, kAxisEpFsdp), Group({2}));

  EXPECT_TRUE(Mesh::ValidAxes(kAxisDp | kAxisEp));
  EXPECT_FALSE(Mesh::ValidAxes(kAxisSp | kAxisEp));
  EXPECT_FALSE(Mesh::ValidAxes(kAxisFsdp | kAxisEpFsdp));
  EXPECT_FALSE(Mesh::ValidAxes(32));
}

TEST(Mesh, ParseAxes) {
  using Names = std::vector<std::string>;
  EXPECT_EQ(Mesh::ParseAxes(Names{}).value(), 0u);
  EXPECT_EQ(Mesh::ParseAxes(Names{"dp"}).value(), kAxisDp);
  EXPECT_EQ(Mesh::ParseAxes(Names{"fsdp", "sp"}).value(), kAxisFsdp | kAxisSp);
  EXPECT_EQ(Mesh::ParseAxes(Names{"dp", "fsdp", "sp"}).value(), kAll);

  absl::StatusOr<uint32_t> unknown = Mesh::ParseAxes(Names{"fsdp", "tp"});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(unknown.status().message(), HasSubstr("unknown mesh axis 'tp'"));
  absl::StatusOr<uint32_t> twice = Mesh::ParseAxes(Names{"sp", "sp"});
  EXPECT_EQ(twice.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(twice.status().message(), HasSubstr("'sp' is listed twice"));
  absl::StatusOr<uint32_t> reversed = Mesh::ParseAxes(Names{"sp", "fsdp"});
  EXPECT_EQ(reversed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(reversed.status().message(), HasSubstr("(sp, fsdp) are out of order"));
}

TEST(Mesh, ParseAndFormatExpertAxes) {
  using Names = std::vector<std::string>;
  EXPECT_EQ(Mesh::ParseAxes(Names{"dp", "ep_fsdp", "ep"}).value(),
            kAxisDp | kAxisEpFsdp | kAxisEp);
  absl::StatusOr<uint32_t> mixed = Mesh::ParseAxes(Names{"fsdp", "ep"});
  EXPECT_EQ(mixed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(mixed.status().message(), HasSubstr("mix fsdp/sp with ep_fsdp/ep"));
  EXPECT_FALSE(Mesh::ParseAxes(Names{"ep", "ep_fsdp"}).ok());  // order
  EXPECT_EQ(FormatAxes(kAxisDp | kAxisEp), "(dp, ep)");
  EXPECT_EQ(FormatAxes(kAxisEpFsdp), "(ep_fsdp)");
}

TEST(Mesh, FormatAxes) {
  EXPECT_EQ(FormatAxes(0), "()");
  EXPECT_EQ(FormatAxes(kAxisFsdp), "(fsdp)");
  EXPECT_EQ(FormatAxes(kAxisDp | kAxisSp), "(dp, sp)");
}

// --- Helpers -----------------------------------------------------------------

// Runs body(rank, communicator) on one thread per rank and joins them.
void RunRanks(LocalWorld& world, int size, const std::function<void(int, Communicator&)>& body) {
  std::vector<std::unique_ptr<Communicator>> comms;
  for (int rank = 0; rank < size; ++rank) comms.push_back(world.ForRank(rank));
  std::vector<std::thread> threads;
  for (int rank = 0; rank < size; ++rank) {
    threads.emplace_back([&body, &comms, rank] { body(rank, *comms[rank]); });
  }
  for (std::thread& thread : threads) thread.join();
}

int64_t NumElements(const Shape& shape) {
  int64_t count = 1;
  for (int64_t dim : shape) count *= dim;
  return count;
}

Shape Unravel(int64_t flat, const Shape& shape) {
  Shape index(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    index[d] = flat % shape[d];
    flat /= shape[d];
  }
  return index;
}

int64_t Ravel(const Shape& index, const Shape& shape) {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d) flat = flat * shape[d] + index[d];
  return flat;
}

template <typename T>
TensorView View(std::vector<T>& data, DType dtype, Shape shape) {
  return TensorView{data.data(), dtype, std::move(shape)};
}

std::vector<uint32_t> Bits(const std::vector<float>& values) {
  std::vector<uint32_t> bits(values.size());
  if (!values.empty()) std::memcpy(bits.data(), values.data(), values.size() * 4);
  return bits;
}

// A value that differs per rank, per tensor and per element, with enough
// mantissa that the order of a sum changes its rounding.
float Value(int rank, int tensor, int64_t i) {
  const int64_t mixed = (rank * 7919 + tensor * 613 + i * 104729) % 2001 - 1000;
  return static_cast<float>(mixed) / 37.0f * std::pow(10.0f, static_cast<float>((rank + i) % 5));
}

// Naive references, one output element at a time from the members' inputs
// (in group order); g is the receiving member's group index.
template <typename T>
std::vector<T> ReferenceAllGather(const std::vector<std::vector<T>>& inputs, const Shape& in_shape,
                                  int dim) {
  Shape out_shape = in_shape;
  out_shape[dim] *= static_cast<int64_t>(inputs.size());
  std::vector<T> out(NumElements(out_shape));
  for (int64_t flat = 0; flat < NumElements(out_shape); ++flat) {
    Shape index = Unravel(flat, out_shape);
    const int64_t member = index[dim] / in_shape[dim];
    index[dim] %= in_shape[dim];
    out[flat] = inputs[member][Ravel(index, in_shape)];
  }
  return out;
}

std::vector<float> ReferenceReduceScatter(const std::vector<std::vector<float>>& inputs,
                                          const Shape& in_shape, int dim, int g) {
  Shape out_shape = in_shape;
  out_shape[dim] /= static_cast<int64_t>(inputs.size());
  std::vector<float> out(NumElements(out_shape));
  for (int64_t flat = 0; flat < NumElements(out_shape); ++flat) {
    Shape index = Unravel(flat, out_shape);
    index[dim] += g * out_shape[dim];
    float sum = inputs[0][Ravel(index, in_shape)];
    for (size_t j = 1; j < inputs.size(); ++j) sum += inputs[j][Ravel(index, in_shape)];
    out[flat] = sum;
  }
  return out;
}

std::vector<float> ReferenceAllReduce(const std::vector<std::vector<float>>& inputs) {
  std::vector<float> out = inputs[0];
  for (size_t j = 1; j < inputs.size(); ++j) {
    for (size_t i = 0; i < out.size(); ++i) out[i] += inputs[j][i];
  }
  return out;
}

template <typename T>
std::vector<T> ReferenceAllToAll(const std::vector<std::vector<T>>& inputs, const Shape& in_shape,
                                 int split, int concat, int g) {
  const int64_t group_size = static_cast<int64_t>(inputs.size());
  Shape piece = in_shape;
  piece[split] /= group_size;
  Shape out_shape = piece;
  out_shape[concat] *= group_size;
  std::vector<T> out(NumElements(out_shape));
  for (int64_t flat = 0; flat < NumElements(out_shape); ++flat) {
    Shape index = Unravel(flat, out_shape);
    const int64_t member = index[concat] / piece[concat];
    index[concat] %= piece[concat];
    index[split] += g * piece[split];
    out[flat] = inputs[member][Ravel(index, in_shape)];
  }
  return out;
}

// --- Every collective against the reference, over many meshes and groups -----

enum class Kind { kAllGather, kReduceScatter, kAllReduce, kAllToAll };

struct Op {
  Kind kind;
  Shape in_shape;
  int dim = 0;
  int concat_dim = 0;
};

std::vector<Op> OpsFor(int64_t g) {
  return {
      {Kind::kAllGather, {2, 3, 2}, 1},
      {Kind::kAllGather, {3, 2}, 0},
      {Kind::kAllGather, {3, 2}, -1},
      {Kind::kReduceScatter, {2, 2 * g, 3}, 1},
      {Kind::kReduceScatter, {3 * g}, 0},
      {Kind::kReduceScatter, {2, 3, g}, -1},
      {Kind::kAllReduce, {5, 3}},
      {Kind::kAllReduce, {}},
      {Kind::kAllToAll, {2, 3, 2 * g, 2}, 2, 1},  // Ulysses-shaped
      {Kind::kAllToAll, {2, 3, 2 * g}, 2, 0},
      {Kind::kAllToAll, {g, 3, 2}, 0, 2},
      {Kind::kAllToAll, {2 * g, 3}, 0, 0},
      {Kind::kAllGather, {0, 3}, 1},  // empty
  };
}

Shape OutShape(const Op& op, int64_t g) {
  Shape out = op.in_shape;
  const int rank = static_cast<int>(out.size());
  auto at = [&](int dim) -> int64_t& { return out[dim < 0 ? dim + rank : dim]; };
  switch (op.kind) {
    case Kind::kAllGather: at(op.dim) *= g; break;
    case Kind::kReduceScatter: at(op.dim) /= g; break;
    case Kind::kAllReduce: break;
    case Kind::kAllToAll:
      at(op.dim) /= g;
      at(op.concat_dim) *= g;
      break;
  }
  return out;
}

std::vector<float> Reference(const Op& op, const std::vector<std::vector<float>>& inputs, int g) {
  const int rank = static_cast<int>(op.in_shape.size());
  const int dim = op.dim < 0 ? op.dim + rank : op.dim;
  switch (op.kind) {
    case Kind::kAllGather: return ReferenceAllGather(inputs, op.in_shape, dim);
    case Kind::kReduceScatter: return ReferenceReduceScatter(inputs, op.in_shape, dim, g);
    case Kind::kAllReduce: return ReferenceAllReduce(inputs);
    case Kind::kAllToAll: return ReferenceAllToAll(inputs, op.in_shape, dim, op.concat_dim, g);
  }
  return {};
}

absl::Status Call(Communicator& comm, const Op& op, const TensorView& in, const TensorView& out,
                  uint32_t axes) {
  switch (op.kind) {
    case Kind::kAllGather: return comm.AllGather(in, out, axes, op.dim);
    case Kind::kReduceScatter: return comm.ReduceScatter(in, out, axes, op.dim);
    case Kind::kAllReduce: return comm.AllReduce(in, out, axes);
    case Kind::kAllToAll: return comm.AllToAll(in, out, axes, op.dim, op.concat_dim);
  }
  return absl::InternalError("unknown kind");
}

std::vector<float> InputOf(int rank, int tensor, const Shape& shape) {
  std::vector<float> values(NumElements(shape));
  for (int64_t i = 0; i < NumElements(shape); ++i) values[i] = Value(rank, tensor, i);
  return values;
}

struct MeshCase {
  Mesh mesh;
  uint32_t axes;
};

std::string CaseName(const testing::TestParamInfo<MeshCase>& info) {
  const MeshCase& c = info.param;
  std::string name = absl::StrCat("dp", c.mesh.dp, "_fsdp", c.mesh.fsdp, "_sp", c.mesh.sp, "_ep",
                                  c.mesh.ep, "_over");
  if (c.axes == 0) absl::StrAppend(&name, "_none");
  if (c.axes & kAxisDp) absl::StrAppend(&name, "_dp");
  if (c.axes & kAxisFsdp) absl::StrAppend(&name, "_fsdp");
  if (c.axes & kAxisSp) absl::StrAppend(&name, "_sp");
  if (c.axes & kAxisEpFsdp) absl::StrAppend(&name, "_epfsdp");
  if (c.axes & kAxisEp) absl::StrAppend(&name, "_ep");
  return name;
}

class CollectivesMatchReference : public testing::TestWithParam<MeshCase> {};

TEST_P(CollectivesMatchReference, OnEveryRank) {
  const Mesh mesh = GetParam().mesh;
  const uint32_t axes = GetParam().axes;
  const int world_size = mesh.size();
  const int64_t group_size = static_cast<int64_t>(mesh.Group(0, axes).size());
  const std::vector<Op> ops = OpsFor(group_size);

  std::vector<std::vector<absl::Status>> statuses(world_size);
  std::vector<std::vector<std::vector<float>>> outputs(world_size);
  LocalWorld world(mesh, kGenerousTimeout);
  RunRanks(world, world_size, [&](int rank, Communicator& comm) {
    for (size_t t = 0; t < ops.size(); ++t) {
      const Op& op = ops[t];
      std::vector<float> in = InputOf(rank, static_cast<int>(t), op.in_shape);
      const Shape out_shape = OutShape(op, group_size);
      std::vector<float> out(NumElements(out_shape), std::nanf(""));
      statuses[rank].push_back(Call(comm, op, View(in, DType::kF32, op.in_shape),
                                    View(out, DType::kF32, out_shape), axes));
      outputs[rank].push_back(std::move(out));
    }
  });

  for (int rank = 0; rank < world_size; ++rank) {
    const std::vector<int> group = mesh.Group(rank, axes);
    const int g = static_cast<int>(std::find(group.begin(), group.end(), rank) - group.begin());
    for (size_t t = 0; t < ops.size(); ++t) {
      ASSERT_TRUE(statuses[rank][t].ok())
          << "rank " << rank << " op " << t << ": " << statuses[rank][t];
      std::vector<std::vector<float>> inputs;
      for (int member : group) {
        inputs.push_back(InputOf(member, static_cast<int>(t), ops[t].in_shape));
      }
      EXPECT_EQ(Bits(outputs[rank][t]), Bits(Reference(ops[t], inputs, g)))
          << "rank " << rank << " op " << t;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Meshes, CollectivesMatchReference,
    testing::Values(MeshCase{{1, 1, 1}, 0}, MeshCase{{1, 1, 1}, kAll}, MeshCase{{2, 1, 1}, kAxisDp},
                    MeshCase{{1, 2, 1}, kAxisFsdp}, MeshCase{{1, 1, 2}, kAxisSp},
                    MeshCase{{1, 4, 1}, kAxisFsdp}, MeshCase{{2, 2, 1}, kAxisDp},
                    MeshCase{{2, 2, 1}, kAxisFsdp}, MeshCase{{2, 2, 1}, kAxisDp | kAxisFsdp},
                    MeshCase{{2, 2, 1}, kAxisSp},  // degree 1: each rank alone
                    MeshCase{{1, 2, 2}, kAxisFsdp | kAxisSp}, MeshCase{{2, 2, 2}, kAxisDp},
                    MeshCase{{2, 2, 2}, kAxisFsdp}, MeshCase{{2, 2, 2}, kAxisSp},
                    MeshCase{{2, 2, 2}, kAxisDp | kAxisSp},
                    MeshCase{{2, 2, 2}, kAxisFsdp | kAxisSp}, MeshCase{{2, 2, 2}, kAll},
                    MeshCase{{2, 2, 2}, 0}, MeshCase{{8, 1, 1}, kAxisDp}, MeshCase{{1, 1, 8}, kAll},
                    MeshCase{{2, 1, 4}, kAxisSp}, MeshCase{{2, 1, 4}, kAxisDp | kAxisSp},
                    // Expert sub-groups of (fsdp, sp): ep=2 inside sp=4, and
                    // ep=4 across fsdp=2 x sp=2.
                    MeshCase{{1, 1, 4, 2}, kAxisEp}, MeshCase{{1, 1, 4, 2}, kAxisEpFsdp},
                    MeshCase{{2, 2, 2, 4}, kAxisEp}, MeshCase{{2, 2, 2, 2}, kAxisDp | kAxisEp},
                    MeshCase{{2, 2, 2, 2}, kAxisDp | kAxisEpFsdp}),
    CaseName);

TEST(LocalCommunicator, GatherAndAllToAllMoveEveryDType) {
  const Mesh mesh{1, 2, 2};
  const uint32_t axes = kAxisFsdp | kAxisSp;
  auto i64_input = [](int rank) {
    std::vector<int64_t> values(6);
    for (int i = 0; i < 6; ++i) values[i] = (int64_t{rank} << 40) + i;
    return values;
  };
  auto bf16_input = [](int rank) {
    std::vector<uint16_t> values(32);
    for (int i = 0; i < 32; ++i) values[i] = static_cast<uint16_t>(rank * 1000 + i);
    return values;
  };
  std::vector<std::vector<int64_t>> gathered(4);
  std::vector<std::vector<uint16_t>> exchanged(4);
  std::vector<absl::Status> statuses(4);
  LocalWorld world(mesh, kGenerousTimeout);
  RunRanks(world, 4, [&](int rank, Communicator& comm) {
    std::vector<int64_t> in64 = i64_input(rank);
    gathered[rank].resize(24);
    absl::Status status = comm.AllGather(View(in64, DType::kI64, {2, 3}),
                                         View(gathered[rank], DType::kI64, {8, 3}), axes, 0);
    std::vector<uint16_t> in16 = bf16_input(rank);
    exchanged[rank].resize(32);
    if (status.ok()) {
      status = comm.AllToAll(View(in16, DType::kBF16, {4, 2, 4}),
                             View(exchanged[rank], DType::kBF16, {16, 2, 1}), axes, 2, 0);
    }
    statuses[rank] = status;
  });
  std::vector<std::vector<int64_t>> i64_inputs;
  std::vector<std::vector<uint16_t>> bf16_inputs;
  for (int rank = 0; rank < 4; ++rank) {
    i64_inputs.push_back(i64_input(rank));
    bf16_inputs.push_back(bf16_input(rank));
  }
  for (int rank = 0; rank < 4; ++rank) {
    ASSERT_TRUE(statuses[rank].ok()) << statuses[rank];
    EXPECT_EQ(gathered[rank], ReferenceAllGather(i64_inputs, {2, 3}, 0));
    EXPECT_EQ(exchanged[rank], ReferenceAllToAll(bf16_inputs, {4, 2, 4}, 2, 0, rank));
  }
}

// --- Determinism, Ulysses, in place, interleaving --------------------------------

TEST(LocalCommunicator, AllReduceIsBitIdenticalAndSumsInGroupOrder) {
  const Mesh mesh{2, 2, 2};
  const int64_t n = 257;
  auto input = [](int rank, int64_t i) {
    // Large terms of both signs and small ones: the order of the sum matters.
    const float sign = (rank + i) % 2 == 0 ? 1.0f : -1.0f;
    return sign * std::ldexp(1.0f + 0.37f * static_cast<float>(rank), 20 + (rank * 3 + i) % 9) +
           0.1f * static_cast<float>(i);
  };
  std::vector<std::vector<float>> outputs(8, std::vector<float>(n));
  std::vector<absl::Status> statuses(8);
  LocalWorld world(mesh, kGenerousTimeout);
  RunRanks(world, 8, [&](int rank, Communicator& comm) {
    std::vector<float> in(n);
    for (int64_t i = 0; i < n; ++i) in[i] = input(rank, i);
    statuses[rank] =
        comm.AllReduce(View(in, DType::kF32, {n}), View(outputs[rank], DType::kF32, {n}), kAll);
  });

  std::vector<float> forward(n), backward(n);
  for (int64_t i = 0; i < n; ++i) {
    forward[i] = input(0, i);
    for (int rank = 1; rank < 8; ++rank) forward[i] += input(rank, i);
    backward[i] = input(7, i);
    for (int rank = 6; rank >= 0; --rank) backward[i] += input(rank, i);
  }
  ASSERT_NE(Bits(forward), Bits(backward)) << "the data does not exercise summation order";
  for (int rank = 0; rank < 8; ++rank) {
    ASSERT_TRUE(statuses[rank].ok()) << statuses[rank];
    EXPECT_EQ(Bits(outputs[rank]), Bits(forward)) << "rank " << rank;
  }
}

TEST(LocalCommunicator, UlyssesAllToAllTurnsSequenceShardsIntoHeadShards) {
  // dp=2 replicas, each with sp=4 ranks holding S/sp of the same sequences.
  const Mesh mesh{2, 1, 4};
  const int64_t batch = 2, seq = 12, heads = 8, head_dim = 3, sp = 4;
  const Shape global_shape = {batch, seq, heads, head_dim};
  auto global = [&](int replica, int64_t flat) { return Value(replica, 99, flat); };

  std::vector<absl::Status> statuses(8);
  std::vector<std::vector<float>> head_shards(8), round_trips(8), inputs(8);
  LocalWorld world(mesh, kGenerousTimeout);
  RunRanks(world, 8, [&](int rank, Communicator& comm) {
    const std::array<int, 3> coords = mesh.Coords(rank);
    const Shape local_shape = {batch, seq / sp, heads, head_dim};
    std::vector<float>& in = inputs[rank];
    in.resize(NumElements(local_shape));
    for (int64_t flat = 0; flat < NumElements(local_shape); ++flat) {
      Shape index = Unravel(flat, local_shape);
      index[1] += coords[2] * (seq / sp);
      in[flat] = global(coords[0], Ravel(index, global_shape));
    }
    const Shape head_shape = {batch, seq, heads / sp, head_dim};
    head_shards[rank].resize(NumElements(head_shape));
    round_trips[rank].resize(in.size());
    statuses[rank] = comm.AllToAll(View(in, DType::kF32, local_shape),
                                   View(head_shards[rank], DType::kF32, head_shape), kAxisSp, 2, 1);
    if (!statuses[rank].ok()) return;
    // And back: [B, S, H/sp, D] -> [B, S/sp, H, D].
    statuses[rank] =
        comm.AllToAll(View(head_shards[rank], DType::kF32, head_shape),
                      View(round_trips[rank], DType::kF32, local_shape), kAxisSp, 1, 2);
  });

  for (int rank = 0; rank < 8; ++rank) {
    ASSERT_TRUE(statuses[rank].ok()) << statuses[rank];
    const std::array<int, 3> coords = mesh.Coords(rank);
    const Shape head_shape = {batch, seq, heads / sp, head_dim};
    std::vector<float> expected(NumElements(head_shape));
    for (int64_t flat = 0; flat < NumElements(head_shape); ++flat) {
      Shape index = Unravel(flat, head_shape);
      index[2] += coords[2] * (heads / sp);
      expected[flat] = global(coords[0], Ravel(index, global_shape));
    }
    EXPECT_EQ(Bits(head_shards[rank]), Bits(expected)) << "rank " << rank;
    EXPECT_EQ(Bits(round_trips[rank]), Bits(inputs[rank])) << "rank " << rank;
  }
}

TEST(LocalCommunicator, CollectivesRunInPlace) {
  const Mesh mesh{1, 4, 1};
  const int64_t chunk = 6;
  std::vector<absl::Status> statuses(4);
  std::vector<std::vector<float>> reduced(4), gathered(4), scattered(4);
  LocalWorld world(mesh, kGenerousTimeout);
  RunRanks(world, 4, [&](int rank, Communicator& comm) {
    // all_reduce with out == in.
    reduced[rank] = InputOf(rank, 0, {4 * chunk});
    TensorView whole = View(reduced[rank], DType::kF32, {4 * chunk});
    absl::Status status = comm.AllReduce(whole, whole, kAxisFsdp);
    // all_gather whose input is this rank's chunk of the output.
    gathered[rank].assign(4 * chunk, 0.0f);
    std::vector<float> mine = InputOf(rank, 1, {chunk});
    std::copy(mine.begin(), mine.end(), gathered[rank].begin() + rank * chunk);
    if (status.ok()) {
      status =
          comm.AllGather(TensorView{gathered[rank].data() + rank * chunk, DType::kF32, {chunk}},
                         View(gathered[rank], DType::kF32, {4 * chunk}), kAxisFsdp, 0);
    }
    // reduce_scatter whose output is this rank's chunk of the input.
    scattered[rank] = InputOf(rank, 2, {4 * chunk});
    if (status.ok()) {
      status = comm.ReduceScatter(
          View(scattered[rank], DType::kF32, {4 * chunk}),
          TensorView{scattered[rank].data() + rank * chunk, DType::kF32, {chunk}}, kAxisFsdp, 0);
    }
    statuses[rank] = status;
  });

  std::vector<std::vector<float>> reduce_inputs, gather_inputs, scatter_inputs;
  for (int rank = 0; rank < 4; ++rank) {
    reduce_inputs.push_back(InputOf(rank, 0, {4 * chunk}));
    gather_inputs.push_back(InputOf(rank, 1, {chunk}));
    scatter_inputs.push_back(InputOf(rank, 2, {4 * chunk}));
  }
  for (int rank = 0; rank < 4; ++rank) {
    ASSERT_TRUE(statuses[rank].ok()) << statuses[rank];
    EXPECT_EQ(Bits(reduced[rank]), Bits(ReferenceAllReduce(reduce_inputs)));
    EXPECT_EQ(Bits(gathered[rank]), Bits(ReferenceAllGather(gather_inputs, {chunk}, 0)));
    std::vector<float> chunk_out(scattered[rank].begin() + rank * chunk,
                                 scattered[rank].begin() + (rank + 1) * chunk);
    EXPECT_EQ(Bits(chunk_out), Bits(ReferenceReduceScatter(scatter_inputs, {4 * chunk}, 0, rank)));
  }
}

TEST(LocalCommunicator, SuccessiveCollectivesOnDpAndFsdpGroupsDoNotInterfere) {
  // HSDP: dp groups {0, 2}, {1, 3}; fsdp groups {0, 1}, {2, 3}. Ranks with
  // fsdp_i 0 gather first, the others reduce first, so dp and fsdp
  // collectives are in flight at the same time.
  const Mesh mesh{2, 2, 1};
  const int iterations = 300;
  std::vector<int> mismatches(4, 0);
  std::vector<absl::Status> statuses(4);
  LocalWorld world(mesh, kGenerousTimeout);
  auto value = [](int rank, int iteration, int i) {
    return static_cast<float>(rank * 1000 + iteration * 10 + i) * 0.25f;
  };
  RunRanks(world, 4, [&](int rank, Communicator& comm) {
    const std::array<int, 3> coords = mesh.Coords(rank);
    for (int it = 0; it < iterations && statuses[rank].ok(); ++it) {
      std::vector<float> shard(3), full(6), grad(4);
      for (int i = 0; i < 3; ++i) shard[i] = value(rank, it, i);
      for (int i = 0; i < 4; ++i) grad[i] = value(rank, it, i + 5);
      auto gather = [&] {
        return comm.AllGather(View(shard, DType::kF32, {3}), View(full, DType::kF32, {6}),
                              kAxisFsdp, 0);
      };
      auto reduce = [&] {
        TensorView view = View(grad, DType::kF32, {4});
        return comm.AllReduce(view, view, kAxisDp);
      };
      absl::Status status = coords[1] == 0 ? gather() : reduce();
      if (status.ok()) status = coords[1] == 0 ? reduce() : gather();
      statuses[rank] = status;
      const int fsdp_base = coords[0] * 2;  // the first rank of this fsdp group
      const int dp_peer = (rank + 2) % 4;
      for (int i = 0; i < 6; ++i) {
        mismatches[rank] += full[i] != value(fsdp_base + i / 3, it, i % 3);
      }
      for (int i = 0; i < 4; ++i) {
        const int first = std::min(rank, dp_peer), second = std::max(rank, dp_peer);
        mismatches[rank] += grad[i] != value(first, it, i + 5) + value(second, it, i + 5);
      }
    }
  });
  for (int rank = 0; rank < 4; ++rank) {
    EXPECT_TRUE(statuses[rank].ok()) << statuses[rank];
    EXPECT_EQ(mismatches[rank], 0) << "rank " << rank;
  }
}

// --- Failures ------------------------------------------------------------------

// --- all_to_all_v ------------------------------------------------------------

// Rows member j of a group sends to member g in collective t: 0 to 3, so
// some pairs exchange nothing.
int64_t RowsSent(int j, int g, int t) { return (j * 3 + g * 5 + t) % 4; }

struct VCase {
  Mesh mesh;
  uint32_t axes;
};

class AllToAllVMatchesReference : public testing::TestWithParam<VCase> {};

TEST_P(AllToAllVMatchesReference, OnEveryRank) {
  const Mesh mesh = GetParam().mesh;
  const uint32_t axes = GetParam().axes;
  const int world_size = mesh.size();
  const int64_t row = 3;  // elements per row
  constexpr int kCollectives = 3;

  // Rank r's input in collective t: row i element k = r * 1000 + t * 100 + i + k / 8.
  auto input_of = [&](int rank, int t, int64_t rows) {
    std::vector<float> values(rows * row);
    for (int64_t i = 0; i < rows * row; ++i) {
      values[i] = static_cast<float>(rank * 1000 + t * 100 + i / row) + (i % row) / 8.0f;
    }
    return values;
  };
  std::vector<std::vector<absl::Status>> statuses(world_size);
  std::vector<std::vector<std::vector<float>>> outputs(world_size);
  LocalWorld world(mesh, kGenerousTimeout);
  RunRanks(world, world_size, [&](int rank, Communicator& comm) {
    const std::vector<int> group = mesh.Group(rank, axes);
    const int size = static_cast<int>(group.size());
    const int g = static_cast<int>(std::find(group.begin(), group.end(), rank) - group.begin());
    for (int t = 0; t < kCollectives; ++t) {
      std::vector<int64_t> send(size), recv(size);
      int64_t sent = 0, received = 0;
      for (int h = 0; h < size; ++h) {
        send[h] = RowsSent(g, h, t);
        recv[h] = RowsSent(h, g, t);
        sent += send[h];
        received += recv[h];
      }
      // One spare input row, and two output rows the exchange must not touch.
      std::vector<float> in = input_of(rank, t, sent + 1);
      std::vector<float> out((received + 2) * row, std::nanf(""));
      statuses[rank].push_back(comm.AllToAllV(View(in, DType::kF32, {sent + 1, row}), send,
                                              View(out, DType::kF32, {received + 2, row}), recv,
                                              axes));
      outputs[rank].push_back(std::move(out));
    }
  });

  for (int rank = 0; rank < world_size; ++rank) {
    const std::vector<int> group = mesh.Group(rank, axes);
    const int size = static_cast<int>(group.size());
    const int g = static_cast<int>(std::find(group.begin(), group.end(), rank) - group.begin());
    for (int t = 0; t < kCollectives; ++t) {
      ASSERT_TRUE(statuses[rank][t].ok()) << "rank " << rank << ": " << statuses[rank][t];
      // Naive: walk every sender's rows in order, keep those addressed to g.
      std::vector<float> expected;
      for (int j = 0; j < size; ++j) {
        int64_t sent = 0;
        for (int h = 0; h < size; ++h) sent += RowsSent(j, h, t);
        std::vector<float> in = input_of(group[j], t, sent + 1);
        int64_t first = 0;
        for (int h = 0; h < g; ++h) first += RowsSent(j, h, t);
        expected.insert(expected.end(), in.begin() + first * row,
                        in.begin() + (first + RowsSent(j, g, t)) * row);
      }
      for (int i = 0; i < 2 * row; ++i) expected.push_back(std::nanf(""));
      EXPECT_EQ(Bits(outputs[rank][t]), Bits(expected)) << "rank " << rank << " collective " << t;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Meshes, AllToAllVMatchesReference,
    testing::Values(VCase{{1, 1, 1}, 0}, VCase{{1, 4, 1}, kAxisFsdp},
                    VCase{{2, 2, 2}, kAxisFsdp | kAxisSp}, VCase{{1, 1, 4, 2}, kAxisEp},
                    VCase{{1, 2, 2, 4}, kAxisEp}, VCase{{2, 2, 2, 4}, kAxisEp},
                    VCase{{2, 2, 2, 2}, kAxisEpFsdp}),
    [](const testing::TestParamInfo<VCase>& info) {
      return CaseName(testing::TestParamInfo<MeshCase>(
          MeshCase{info.param.mesh, info.param.axes}, info.index));
    });

TEST(LocalCommunicator, AllToAllVCountsThatDisagreeAreInvalidArgumentOnEveryRank) {
  const Mesh mesh{1, 1, 4, 2};  // ep groups {0, 1} and {2, 3}
  std::vector<std::vector<absl::Status>> statuses(4);
  LocalWorld world(mesh, kGenerousTimeout);
  RunRanks(world, 4, [&](int rank, Communicator& comm) {
    std::vector<float> in(16, 1.0f), out(16, 0.0f);
    std::vector<absl::Status>& s = statuses[rank];
    // 0: rank 1 expects 2 rows from rank 0, which sends it 1.
    std::vector<int64_t> recv = rank == 1 ? std::vector<int64_t>{2, 1} : std::vector<int64_t>{1, 1};
    s.push_back(comm.AllToAllV(View(in, DType::kF32, {4, 2}), {1, 1},
                               View(out, DType::kF32, {4, 2}), recv, kAxisEp));
    // 1: counts that overrun the buffer; 2: rows of different shapes.
    s.push_back(comm.AllToAllV(View(in, DType::kF32, {2, 2}), {2, 1},
                               View(out, DType::kF32, {4, 2}), {2, 1}, kAxisEp));
    s.push_back(comm.AllToAllV(View(in, DType::kF32, {2, 2}), {1, 1},
                               View(out, DType::kF32, {2, 4}), {1, 1}, kAxisEp));
    // 3: ep mixed with sp; 4: the world is still healthy.
    s.push_back(comm.AllToAllV(View(in, DType::kF32, {2, 2}), {1, 1},
                               View(out, DType::kF32, {2, 2}), {1, 1}, kAxisSp | kAxisEp));
    s.push_back(comm.AllToAllV(View(in, DType::kF32, {2, 2}), {1, 1},
                               View(out, DType::kF32, {2, 2}), {1, 1}, kAxisEp));
  });
  for (int rank = 0; rank < 4; ++rank) {
    const std::vector<absl::Status>& s = statuses[rank];
    ASSERT_EQ(s.size(), 5u);
    for (int i = 1; i < 4; ++i) {
      EXPECT_EQ(s[i].code(), absl::StatusCode::kInvalidArgument) << "rank " << rank << " " << i;
    }
    if (rank < 2) {  // the group with the disagreement; the other one agrees
      EXPECT_EQ(s[0].code(), absl::StatusCode::kInvalidArgument) << "rank " << rank;
      EXPECT_THAT(s[0].message(),
                  HasSubstr("all_to_all_v over (ep): rank 0 sends 1 rows to rank 1, which "
                            "expects 2"));
    } else {
      EXPECT_TRUE(s[0].ok()) << s[0];
    }
    EXPECT_THAT(s[1].message(), HasSubstr("send counts total 3 rows; its buffer has 2"));
    EXPECT_THAT(s[2].message(), HasSubstr("both need rows (dim 0) of one shape"));
    EXPECT_THAT(s[3].message(), HasSubstr("mixes fsdp/sp with ep_fsdp/ep"));
    EXPECT_TRUE(s[4].ok()) << s[4];
  }
}

TEST(LocalCommunicator, MismatchedOperandsAreInvalidArgumentOnEveryRank) {
  const Mesh mesh{1, 4, 1};
  struct Result {
    std::vector<absl::Status> statuses;
  };
  std::vector<Result> results(4);
  LocalWorld world(mesh, kGenerousTimeout);
  RunRanks(world, 4, [&](int rank, Communicator& comm) {
    std::vector<float> in(64, 1.0f), out(256, 0.0f);
    std::vector<int32_t> ints(64, 1), int_out(64, 0);
    std::vector<absl::Status>& s = results[rank].statuses;
    // 0: rank 3's input shape differs from the others'.
    const Shape in_shape = rank == 3 ? Shape{2, 5} : Shape{2, 4};
    const Shape out_shape = rank == 3 ? Shape{8, 5} : Shape{8, 4};
    s.push_back(comm.AllGather(View(in, DType::kF32, in_shape), View(out, DType::kF32, out_shape),
                               kAxisFsdp, 0));
    // 1: rank 1's output does not follow the op's rule.
    s.push_back(comm.AllGather(View(in, DType::kF32, {2, 4}),
                               View(out, DType::kF32, rank == 1 ? Shape{4, 4} : Shape{8, 4}),
                               kAxisFsdp, 0));
    // 2: reductions are f32 only.
    s.push_back(comm.ReduceScatter(View(ints, DType::kI32, {8}), View(int_out, DType::kI32, {2}),
                                   kAxisFsdp, 0));
    // 3: not divisible by the group.
    s.push_back(
        comm.ReduceScatter(View(in, DType::kF32, {6}), View(out, DType::kF32, {1}), kAxisFsdp, 0));
    // 4: rank 2 calls another collective.
    s.push_back(rank == 2 ? comm.ReduceScatter(View(in, DType::kF32, {8, 4}),
                                               View(out, DType::kF32, {2, 4}), kAxisFsdp, 0)
                          : comm.AllGather(View(in, DType::kF32, {2, 4}),
                                           View(out, DType::kF32, {8, 4}), kAxisFsdp, 0));
    // 5: ranks pass different dims.
    s.push_back(comm.AllGather(View(in, DType::kF32, {2, 2}),
                               View(out, DType::kF32, rank == 0 ? Shape{8, 2} : Shape{2, 8}),
                               kAxisFsdp, rank == 0 ? 0 : 1));
    // 6: in and out dtypes differ; 7: dim out of range; 8: axes outside the mesh.
    s.push_back(
        comm.AllReduce(View(in, DType::kF32, {4}), View(out, DType::kBF16, {4}), kAxisFsdp));
    s.push_back(comm.AllToAll(View(in, DType::kF32, {4, 4}), View(out, DType::kF32, {4, 4}),
                              kAxisFsdp, 2, 0));
    s.push_back(comm.AllReduce(View(in, DType::kF32, {4}), View(out, DType::kF32, {4}), 32));
    // 9: the world is still healthy: a valid collective succeeds.
    s.push_back(comm.AllGather(View(in, DType::kF32, {2, 4}), View(out, DType::kF32, {8, 4}),
                               kAxisFsdp, 0));
  });

  const std::vector<std::string> expected = {
      "all_gather over (fsdp): rank 3 passes input f32 [2, 5], rank 0 passes f32 [2, 4]",
      "all_gather over (fsdp): rank 1's output has shape [4, 4], expected [8, 4]",
      "reduce_scatter over (fsdp): rank 0 passes i32; only f32 is reduced",
      "reduce_scatter over (fsdp): rank 0's input dim 0 (6) is not divisible by the 4 members",
      "rank 2 called reduce_scatter while rank 0 called all_gather",
      "all_gather over (fsdp): rank 1 passes dim 1, rank 0 passes dim 0",
      "all_reduce over (fsdp): rank 0 passes input f32 and output bf16",
      "all_to_all over (fsdp): rank 0 passes split_dim 2 for an input of shape [4, 4]",
      "all_reduce: axes mask 0x20 has bits outside dp|fsdp|sp|ep_fsdp|ep",
  };
  for (int rank = 0; rank < 4; ++rank) {
    const std::vector<absl::Status>& s = results[rank].statuses;
    ASSERT_EQ(s.size(), expected.size() + 1);
    for (size_t i = 0; i < expected.size(); ++i) {
      EXPECT_EQ(s[i].code(), absl::StatusCode::kInvalidArgument)
          << "rank " << rank << " case " << i;
      if (i != 8) {
        EXPECT_THAT(s[i].message(), HasSubstr(expected[i])) << "rank " << rank << " case " << i;
      }
    }
    EXPECT_THAT(s[8].message(), HasSubstr(expected[8]));
    EXPECT_TRUE(s.back().ok()) << s.back();
  }
  EXPECT_THAT(results[0].statuses[1].message(), HasSubstr("(input [2, 4] gathered from 4 members"));
}

TEST(LocalCommunicator, ARankThatNeverArrivesIsDeadlineExceeded) {
  const Mesh mesh{1, 4, 1};
  const absl::Duration timeout = absl::Milliseconds(200);
  std::vector<absl::Status> statuses(4);
  std::vector<double> seconds(4, 0.0);
  std::atomic<int> returned{0};
  absl::Status late, late_alone;
  LocalWorld world(mesh, timeout);
  RunRanks(world, 4, [&](int rank, Communicator& comm) {
    std::vector<float> in(2, 1.0f), out(8);
    if (rank == 3) {
      // Stopped responding; comes back only after the others gave up.
      while (returned.load() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      late = comm.AllGather(View(in, DType::kF32, {2}), View(out, DType::kF32, {8}), kAxisFsdp, 0);
      late_alone = comm.AllReduce(View(in, DType::kF32, {2}), View(out, DType::kF32, {2}), 0);
      return;
    }
    const Clock::time_point start = Clock::now();
    statuses[rank] =
        comm.AllGather(View(in, DType::kF32, {2}), View(out, DType::kF32, {8}), kAxisFsdp, 0);
    seconds[rank] = std::chrono::duration<double>(Clock::now() - start).count();
    ++returned;
  });

  int gave_up_first = 0;
  for (int rank = 0; rank < 3; ++rank) {
    EXPECT_EQ(statuses[rank].code(), absl::StatusCode::kDeadlineExceeded) << statuses[rank];
    EXPECT_THAT(statuses[rank].message(),
                HasSubstr(absl::StrCat("all_gather over (fsdp): rank ", rank, " waited ")));
    EXPECT_THAT(statuses[rank].message(), HasSubstr("for rank 3; a rank stopped responding"));
    gave_up_first += absl::StrContains(statuses[rank].message(), "waited 200ms for rank 3");
    EXPECT_LT(seconds[rank], 1.0) << "rank " << rank;
  }
  EXPECT_GE(gave_up_first, 1);
  // The world is failed: the late rank, and any later call, is Aborted at once.
  EXPECT_EQ(late.code(), absl::StatusCode::kAborted) << late;
  EXPECT_THAT(late.message(), HasSubstr("waited 200ms for rank 3"));
  EXPECT_EQ(late_alone.code(), absl::StatusCode::kAborted) << late_alone;
}

TEST(LocalCommunicator, DeadlineExceededNamesEveryMissingRank) {
  const Mesh mesh{2, 2, 1};
  std::vector<absl::Status> statuses(4);
  LocalWorld world(mesh, absl::Milliseconds(100));
  RunRanks(world, 4, [&](int rank, Communicator& comm) {
    if (rank >= 2) return;
    std::vector<float> in(2, 1.0f), out(2);
    TensorView view = View(in, DType::kF32, {2});
    // Ranks 0 and 1 meet first, so both are waiting when the deadline passes.
    statuses[rank] = comm.AllReduce(view, View(out, DType::kF32, {2}), kAxisFsdp);
    if (!statuses[rank].ok()) return;
    statuses[rank] = comm.AllReduce(view, View(out, DType::kF32, {2}), kAxisDp | kAxisFsdp);
  });
  for (int rank = 0; rank < 2; ++rank) {
    EXPECT_EQ(statuses[rank].code(), absl::StatusCode::kDeadlineExceeded);
    EXPECT_THAT(statuses[rank].message(), HasSubstr("for ranks 2, 3; a rank stopped responding"));
  }
}

TEST(LocalCommunicator, AbortWakesEveryWaiterPromptly) {
  // Rank 1 fails while 0 waits for it in fsdp {0, 1}, 2 waits for 0 in
  // dp {0, 2}, and 3 waits for 2 in fsdp {2, 3}.
  const Mesh mesh{2, 2, 1};
  std::vector<absl::Status> statuses(4), after(4);
  std::vector<double> seconds(4, 0.0);
  LocalWorld world(mesh, absl::Seconds(30));
  RunRanks(world, 4, [&](int rank, Communicator& comm) {
    std::vector<float> in(2, 1.0f), out(4);
    const Clock::time_point start = Clock::now();
    if (rank == 1) {
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
      comm.Abort(absl::ResourceExhaustedError("out of memory in step 3"));
      comm.Abort(absl::InternalError("a second failure"));  // ignored: idempotent
    } else if (rank == 2) {
      statuses[rank] =
          comm.AllReduce(View(in, DType::kF32, {2}), View(out, DType::kF32, {2}), kAxisDp);
    } else {
      statuses[rank] =
          comm.AllGather(View(in, DType::kF32, {2}), View(out, DType::kF32, {4}), kAxisFsdp, 0);
    }
    seconds[rank] = std::chrono::duration<double>(Clock::now() - start).count();
    after[rank] = comm.AllReduce(View(in, DType::kF32, {2}), View(out, DType::kF32, {2}), 0);
  });
  for (int rank : {0, 2, 3}) {
    EXPECT_EQ(statuses[rank].code(), absl::StatusCode::kAborted) << statuses[rank];
    EXPECT_THAT(statuses[rank].message(), HasSubstr("rank 1 failed: out of memory in step 3"));
    EXPECT_LT(seconds[rank], 1.0) << "rank " << rank;
  }
  EXPECT_THAT(statuses[2].message(), HasSubstr("all_reduce over (dp): "));
  for (int rank = 0; rank < 4; ++rank) {
    EXPECT_EQ(after[rank].code(), absl::StatusCode::kAborted) << after[rank];
    EXPECT_THAT(after[rank].message(),
                HasSubstr("all_reduce over (): rank 1 failed: out of memory in step 3"));
  }
}

TEST(LocalWorld, CommunicatorsThatCannotRunSayWhy) {
  LocalWorld world(Mesh{1, 2, 1}, kGenerousTimeout);
  std::vector<float> in(2), out(2);
  const TensorView in_view = View(in, DType::kF32, {2});
  const TensorView out_view = View(out, DType::kF32, {2});

  absl::Status outside = world.ForRank(2)->AllReduce(in_view, out_view, 0);
  EXPECT_EQ(outside.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(outside.message(), HasSubstr("rank 2 is outside the mesh of 2 ranks"));

  {
    std::unique_ptr<Communicator> first = world.ForRank(0);
    absl::Status twice = world.ForRank(0)->AllReduce(in_view, out_view, 0);
    EXPECT_EQ(twice.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(twice.message(), HasSubstr("rank 0 already has a communicator"));
    EXPECT_TRUE(first->AllReduce(in_view, out_view, 0).ok());
  }
  // Released with the first communicator.
  EXPECT_TRUE(world.ForRank(0)->AllReduce(in_view, out_view, 0).ok());

  LocalWorld broken(Mesh{2, 0, 1}, kGenerousTimeout);
  absl::Status degree = broken.ForRank(0)->AllReduce(in_view, out_view, 0);
  EXPECT_EQ(degree.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(degree.message(), HasSubstr("mesh dp=2, fsdp=0, sp=1, ep=1 has a degree below 1"));

  LocalWorld indivisible(Mesh{1, 2, 2, 3}, kGenerousTimeout);
  absl::Status ep = indivisible.ForRank(0)->AllReduce(in_view, out_view, 0);
  EXPECT_EQ(ep.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ep.message(), HasSubstr("ep=3 does not divide fsdp*sp=4"));
}

TEST(LocalWorld, CommunicatorsOutliveTheirWorld) {
  std::unique_ptr<Communicator> comm;
  {
    LocalWorld world(Mesh{1, 1, 1}, kGenerousTimeout);
    comm = world.ForRank(0);
  }
  std::vector<float> in = {1.0f, 2.0f}, out(4);
  EXPECT_TRUE(
      comm->AllGather(View(in, DType::kF32, {2}), View(out, DType::kF32, {2}), kAll, 0).ok());
  EXPECT_EQ(comm->mesh().size(), 1);
  EXPECT_EQ(out[1], 2.0f);
}

}  // namespace
}  // namespace veomni::runtime
