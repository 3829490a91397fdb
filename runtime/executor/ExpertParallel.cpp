#include "runtime/executor/ExpertParallel.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "runtime/base/Status.h"
#include "runtime/kernels/cpu/CpuKernels.h"

namespace veomni::runtime {
namespace {

// The (token, slot) pairs of this member in the order they are sent: grouped
// by owner (ascending), each group in slot order. Rows come back in the same
// order, so `order[r]` is the slot of returned row r.
struct Routing {
  int members = 0;
  int64_t local_experts = 0;      // L
  std::vector<int64_t> order;     // slots, by owner
  std::vector<int64_t> send;      // rows to each member
  std::vector<int64_t> recv;      // rows from each member
  int64_t received = 0;
};

int64_t ExpertId(const TensorView& experts, int64_t slot) {
  return experts.dtype == DType::kI64 ? experts.As<int64_t>()[slot]
                                      : experts.As<int32_t>()[slot];
}

// Checks the operands the kernels cannot (the kernels check the rest on the
// rows they receive), sorts the slots by owner and exchanges the counts.
// `experts` must be host memory; the counts travel through `device` memory
// when the communicator works on the device (NCCL).
absl::StatusOr<Routing> Route(absl::string_view kernel, Communicator& comm, uint32_t axes,
                              absl::Span<const TensorView> inputs, Device* device = nullptr) {
  const TensorView& x = inputs[0];
  const TensorView& experts = inputs[1];
  const TensorView& weights = inputs[2];
  const TensorView& gate_up = inputs[3];
  const TensorView& down = inputs[4];
  // Everything read or written here before the owner's kernel checks it;
  // the same on every member, so all fail before any exchange.
  if (x.dtype != DType::kF32 || x.shape.size() != 2 || experts.shape.size() != 2 ||
      experts.shape[0] != x.shape[0] ||
      (experts.dtype != DType::kI64 && experts.dtype != DType::kI32) ||
      weights.dtype != DType::kF32 || weights.shape != experts.shape ||
      (gate_up.dtype != DType::kF32 && gate_up.dtype != DType::kBF16) ||
      gate_up.shape.size() != 3 || down.dtype != gate_up.dtype || down.shape.size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        kernel, " (expert parallel): expects x [T, H] f32, experts [T, k] i64/i32, "
                "weights [T, k] f32, gate_up [L, 2I, H] and down [L, H, I] both f32 or both "
                "bf16; got x ",
        FormatShape(x.shape), " ", DTypeName(x.dtype), ", experts ", FormatShape(experts.shape),
        " ", DTypeName(experts.dtype), ", weights ", FormatShape(weights.shape), " ",
        DTypeName(weights.dtype), ", gate_up ", FormatShape(gate_up.shape), " ",
        DTypeName(gate_up.dtype), ", down ", FormatShape(down.shape), " ",
        DTypeName(down.dtype)));
  }
  Routing routing;
  std::vector<int> group = comm.mesh().Group(comm.rank(), axes);
  routing.members = static_cast<int>(group.size());
  routing.local_experts = gate_up.shape[0];
  const int64_t total = routing.local_experts * routing.members;
  const int64_t slots = experts.NumElements();
  std::vector<std::vector<int64_t>> by_owner(routing.members);
  for (int64_t slot = 0; slot < slots; ++slot) {
    int64_t e = ExpertId(experts, slot);
    if (e < 0 || e >= total) {
      return absl::InvalidArgumentError(absl::StrCat(
          kernel, " (expert parallel): expert id ", e, " at slot ", slot, " is outside [0, ",
          total, ") (", routing.members, " members x ", routing.local_experts, " experts)"));
    }
    by_owner[e / routing.local_experts].push_back(slot);
  }
  routing.send.resize(routing.members);
  for (int g = 0; g < routing.members; ++g) {
    routing.send[g] = static_cast<int64_t>(by_owner[g].size());
    routing.order.insert(routing.order.end(), by_owner[g].begin(), by_owner[g].end());
  }
  routing.recv.assign(routing.members, 0);
  const uint64_t bytes = routing.members * sizeof(int64_t);
  if (device && comm.operates_on_device()) {
    VEOMNI_ASSIGN_OR_RETURN(DeviceBuffer counts,
                            DeviceBuffer::Allocate(*device, 2 * bytes, "expert counts"));
    VEOMNI_RETURN_IF_ERROR(device->CopyToDevice(counts.data(), routing.send.data(), bytes));
    VEOMNI_RETURN_IF_ERROR(comm.AllToAll({counts.data(), DType::kI64, {routing.members}},
                                         {counts.data() + bytes, DType::kI64, {routing.members}},
                                         axes, 0, 0));
    VEOMNI_RETURN_IF_ERROR(device->CopyToHost(routing.recv.data(), counts.data() + bytes, bytes));
  } else {
    VEOMNI_RETURN_IF_ERROR(comm.AllToAll({routing.send.data(), DType::kI64, {routing.members}},
                                         {routing.recv.data(), DType::kI64, {routing.members}},
                                         axes, 0, 0));
  }
  for (int64_t count : routing.recv) routing.received += count;
  return routing;
}

// A double as two floats whose sum restores it to ~48 bits: the owners'
// rows travel as f32, yet the combine still rounds once, as one rank does.
void Split(double value, float* pair) {
  if (!(std::abs(value) <= std::numeric_limits<float>::max())) {
    // Out of f32's range (or NaN): what the one-rank kernel would round to.
    pair[0] = std::isnan(value) ? std::numeric_limits<float>::quiet_NaN()
                                : std::copysign(std::numeric_limits<float>::infinity(), value);
    pair[1] = 0.0f;
    return;
  }
  pair[0] = static_cast<float>(value);
  pair[1] = static_cast<float>(value - pair[0]);
}
double Join(const float* pair) { return static_cast<double>(pair[0]) + pair[1]; }

// Columns [begin, begin + width) of the f32 rows [n, row] as their own tensor.
std::vector<float> Columns(const std::vector<float>& rows, int64_t n, int64_t row, int64_t begin,
                           int64_t width) {
  std::vector<float> out(n * width);
  for (int64_t r = 0; r < n; ++r) {
    std::copy_n(rows.data() + r * row + begin, width, out.data() + r * width);
  }
  return out;
}

// Packs each routed slot's [x_t, (y_grad_t,) weight, local expert id] into
// f32 rows, sends them to the owners, and returns what this member received
// as separate tensors for the expert kernels.
struct Received {
  std::vector<float> x, y_grad, weights;
  std::vector<int64_t> ids;
};

absl::StatusOr<Received> Dispatch(Communicator& comm, uint32_t axes, const Routing& routing,
                                  absl::Span<const TensorView> inputs, bool with_grad) {
  const int64_t h = inputs[0].shape[1];
  const int64_t k = inputs[1].shape[1];
  const int64_t row = (with_grad ? 2 * h : h) + 2;
  const float* x = inputs[0].As<float>();
  const float* weights = inputs[2].As<float>();
  const float* y_grad = with_grad ? inputs[5].As<float>() : nullptr;
  const int64_t sent = static_cast<int64_t>(routing.order.size());
  std::vector<float> out_rows(sent * row);
  for (int64_t r = 0; r < sent; ++r) {
    const int64_t slot = routing.order[r];
    const int64_t t = slot / k;
    float* dst = out_rows.data() + r * row;
    std::copy_n(x + t * h, h, dst);
    if (with_grad) std::copy_n(y_grad + t * h, h, dst + h);
    dst[row - 2] = weights[slot];
    // Exact in f32: expert counts stay far below 2^24.
    dst[row - 1] = static_cast<float>(ExpertId(inputs[1], slot) % routing.local_experts);
  }
  std::vector<float> in_rows(routing.received * row);
  VEOMNI_RETURN_IF_ERROR(comm.AllToAllV(TensorView{out_rows.data(), DType::kF32, {sent, row}},
                                        routing.send,
                                        TensorView{in_rows.data(), DType::kF32,
                                                   {routing.received, row}},
                                        routing.recv, axes));
  Received received;
  const int64_t n = routing.received;
  received.x = Columns(in_rows, n, row, 0, h);
  if (with_grad) received.y_grad = Columns(in_rows, n, row, h, h);
  received.weights = Columns(in_rows, n, row, row - 2, 1);
  received.ids.resize(n);
  for (int64_t r = 0; r < n; ++r) {
    received.ids[r] = static_cast<int64_t>(in_rows[r * row + row - 1]);
  }
  return received;
}

// The operands Route does not check: arity, y_grad and the outputs.
absl::Status CheckForwardOutputs(absl::Span<const TensorView> inputs,
                                 absl::Span<const TensorView> outputs) {
  if (inputs.size() != 5 || outputs.size() != 1) {
    return absl::InvalidArgumentError("moe_experts (expert parallel): expects 5 inputs and 1 output");
  }
  if (outputs[0].dtype != DType::kF32 || outputs[0].shape != inputs[0].shape) {
    return absl::InvalidArgumentError(
        absl::StrCat("moe_experts (expert parallel): output ", FormatShape(outputs[0].shape),
                     " ", DTypeName(outputs[0].dtype), " must be f32 of x's shape"));
  }
  return absl::OkStatus();
}

absl::Status CheckGradOutputs(absl::Span<const TensorView> inputs,
                              absl::Span<const TensorView> outputs) {
  if (inputs.size() != 6 || outputs.size() != 4) {
    return absl::InvalidArgumentError(
        "moe_experts_grad (expert parallel): expects 6 inputs and 4 outputs");
  }
  bool f32 = true;
  for (const TensorView* view : {&inputs[5], &outputs[0], &outputs[1], &outputs[2], &outputs[3]}) {
    f32 = f32 && view->dtype == DType::kF32;
  }
  if (!f32 || inputs[5].shape != inputs[0].shape || outputs[0].shape != inputs[0].shape ||
      outputs[1].shape != inputs[1].shape || outputs[2].shape != inputs[3].shape ||
      outputs[3].shape != inputs[4].shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        "moe_experts_grad (expert parallel): y_grad and x_grad must be f32 of x's shape ",
        FormatShape(inputs[0].shape), ", weights_grad f32 of the experts' ",
        FormatShape(inputs[1].shape), ", and the weight gradients f32 of the weights' shapes"));
  }
  return absl::OkStatus();
}

// For each slot, the row that carries it (the inverse of `order`).
std::vector<int64_t> RowOfSlot(const Routing& routing) {
  std::vector<int64_t> row_of(routing.order.size());
  for (size_t r = 0; r < routing.order.size(); ++r) row_of[routing.order[r]] = r;
  return row_of;
}

// Sends the owners' result rows [n, width] back; returns them in send order.
absl::StatusOr<std::vector<float>> Return(Communicator& comm, uint32_t axes,
                                          const Routing& routing, std::vector<float>& rows,
                                          int64_t width) {
  const int64_t sent = static_cast<int64_t>(routing.order.size());
  std::vector<float> back(sent * width);
  VEOMNI_RETURN_IF_ERROR(
      comm.AllToAllV(TensorView{rows.data(), DType::kF32, {routing.received, width}},
                     routing.recv, TensorView{back.data(), DType::kF32, {sent, width}},
                     routing.send, axes));
  return back;
}

}  // namespace

absl::Status MoeExpertsExpertParallel(Communicator& comm, uint32_t axes,
                                      absl::Span<const TensorView> inputs,
                                      absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "moe_experts";
  VEOMNI_RETURN_IF_ERROR(CheckForwardOutputs(inputs, outputs));
  VEOMNI_ASSIGN_OR_RETURN(Routing routing, Route(kKernel, comm, axes, inputs));
  VEOMNI_ASSIGN_OR_RETURN(Received got, Dispatch(comm, axes, routing, inputs, false));
  const int64_t n = routing.received;
  const int64_t h = inputs[0].shape[1];
  // The owner's rows: each one expert's output, already weighted.
  std::vector<double> outs(n * h);
  TensorView owner_in[] = {{got.x.data(), DType::kF32, {n, h}},
                           {got.ids.data(), DType::kI64, {n, 1}},
                           {got.weights.data(), DType::kF32, {n, 1}},
                           inputs[3],
                           inputs[4]};
  VEOMNI_RETURN_IF_ERROR(cpu::MoeExpertsInDouble(owner_in, outs.data()));
  std::vector<float> rows(n * 2 * h);
  for (int64_t i = 0; i < n * h; ++i) Split(outs[i], rows.data() + 2 * i);
  VEOMNI_ASSIGN_OR_RETURN(std::vector<float> back, Return(comm, axes, routing, rows, 2 * h));

  // y_t sums its slots in slot order, in double, as the one-rank kernel does.
  const TensorView& y = outputs[0];
  const int64_t tokens = inputs[0].shape[0];
  const int64_t k = inputs[1].shape[1];
  const std::vector<int64_t> row_of = RowOfSlot(routing);
  std::vector<double> sum(h);
  for (int64_t t = 0; t < tokens; ++t) {
    std::fill(sum.begin(), sum.end(), 0.0);
    for (int64_t j = 0; j < k; ++j) {
      const float* part = back.data() + row_of[t * k + j] * 2 * h;
      for (int64_t c = 0; c < h; ++c) sum[c] += Join(part + 2 * c);
    }
    for (int64_t c = 0; c < h; ++c) y.As<float>()[t * h + c] = static_cast<float>(sum[c]);
  }
  return absl::OkStatus();
}

absl::Status MoeExpertsGradExpertParallel(Communicator& comm, uint32_t axes,
                                          absl::Span<const TensorView> inputs,
                                          absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "moe_experts_grad";
  VEOMNI_RETURN_IF_ERROR(CheckGradOutputs(inputs, outputs));
  VEOMNI_ASSIGN_OR_RETURN(Routing routing, Route(kKernel, comm, axes, inputs));
  const int64_t h = inputs[0].shape[1];
  VEOMNI_ASSIGN_OR_RETURN(Received got, Dispatch(comm, axes, routing, inputs, true));
  const int64_t n = routing.received;
  std::vector<float> x_grad_f32(n * h), weights_grad(n);
  std::vector<double> x_grad(n * h);
  // One kernel call per sending member, its weight gradients summed in f32
  // in member order: each call sees exactly the (token, slot) rows one
  // member's batch routed here, in that batch's order, so it rounds as the
  // one-rank kernel does on that batch, and the sum over members is
  // associated like the sum over micro-batches or ranks without ep.
  const TensorView& gate_up_grad = outputs[2];
  const TensorView& down_grad = outputs[3];
  std::vector<float> gate_up_part(gate_up_grad.NumElements()),
      down_part(down_grad.NumElements());
  std::fill_n(gate_up_grad.As<float>(), gate_up_grad.NumElements(), 0.0f);
  std::fill_n(down_grad.As<float>(), down_grad.NumElements(), 0.0f);
  int64_t first = 0;
  for (int64_t rows : routing.recv) {
    TensorView owner_in[] = {{got.x.data() + first * h, DType::kF32, {rows, h}},
                             {got.ids.data() + first, DType::kI64, {rows, 1}},
                             {got.weights.data() + first, DType::kF32, {rows, 1}},
                             inputs[3],
                             inputs[4],
                             {got.y_grad.data() + first * h, DType::kF32, {rows, h}}};
    TensorView owner_out[] = {{x_grad_f32.data() + first * h, DType::kF32, {rows, h}},
                              {weights_grad.data() + first, DType::kF32, {rows, 1}},
                              {gate_up_part.data(), DType::kF32, gate_up_grad.shape},
                              {down_part.data(), DType::kF32, down_grad.shape}};
    VEOMNI_RETURN_IF_ERROR(
        cpu::MoeExpertsGradInDouble(owner_in, owner_out, x_grad.data() + first * h));
    for (size_t i = 0; i < gate_up_part.size(); ++i) gate_up_grad.As<float>()[i] += gate_up_part[i];
    for (size_t i = 0; i < down_part.size(); ++i) down_grad.As<float>()[i] += down_part[i];
    first += rows;
  }

  // Back: [x_grad row as float pairs, weight grad] per routed slot.
  const int64_t width = 2 * h + 1;
  std::vector<float> rows(n * width);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t c = 0; c < h; ++c) Split(x_grad[r * h + c], rows.data() + r * width + 2 * c);
    rows[r * width + 2 * h] = weights_grad[r];
  }
  VEOMNI_ASSIGN_OR_RETURN(std::vector<float> back, Return(comm, axes, routing, rows, width));
  const int64_t tokens = inputs[0].shape[0];
  const int64_t k = inputs[1].shape[1];
  const std::vector<int64_t> row_of = RowOfSlot(routing);
  std::vector<double> sum(h);
  for (int64_t t = 0; t < tokens; ++t) {
    std::fill(sum.begin(), sum.end(), 0.0);
    for (int64_t j = 0; j < k; ++j) {
      const float* part = back.data() + row_of[t * k + j] * width;
      for (int64_t c = 0; c < h; ++c) sum[c] += Join(part + 2 * c);
      outputs[1].As<float>()[t * k + j] = part[2 * h];
    }
    for (int64_t c = 0; c < h; ++c) {
      outputs[0].As<float>()[t * h + c] = static_cast<float>(sum[c]);
    }
  }
  return absl::OkStatus();
}

namespace {

// The device path's buffers, index arrays and kernel launches. Buffers live
// until the exchange ends (Device::Free waits for the queued kernels; their
// data errors stay flagged for the caller's next Synchronize).
class DeviceExchange {
 public:
  DeviceExchange(Device& device, Communicator& comm, uint32_t axes)
      : device_(device), comm_(comm), axes_(axes) {}

  // Routes on a host copy of the expert ids; the device views stay as given.
  absl::StatusOr<Routing> Route(absl::string_view kernel, absl::Span<const TensorView> inputs) {
    const TensorView& experts = inputs[1];
    host_ids_.resize(experts.Bytes());
    VEOMNI_RETURN_IF_ERROR(device_.CopyToHost(host_ids_.data(), experts.data, experts.Bytes()));
    std::vector<TensorView> on_host(inputs.begin(), inputs.end());
    on_host[1].data = host_ids_.data();
    return runtime::Route(kernel, comm_, axes_, on_host, &device_);
  }
  TensorView HostIds(const TensorView& experts) const {
    TensorView view = experts;
    view.data = const_cast<uint8_t*>(host_ids_.data());
    return view;
  }

  absl::StatusOr<TensorView> Buffer(DType dtype, std::vector<int64_t> shape) {
    TensorView view{nullptr, dtype, std::move(shape)};
    VEOMNI_ASSIGN_OR_RETURN(DeviceBuffer buffer,
                            DeviceBuffer::Allocate(device_, view.Bytes(), "expert exchange"));
    view.data = buffer.data();
    buffers_.push_back(std::move(buffer));
    return view;
  }
  absl::StatusOr<TensorView> Upload(const std::vector<int64_t>& values,
                                    std::vector<int64_t> shape) {
    VEOMNI_ASSIGN_OR_RETURN(TensorView view, Buffer(DType::kI64, std::move(shape)));
    VEOMNI_RETURN_IF_ERROR(device_.CopyToDevice(view.data, values.data(), view.Bytes()));
    return view;
  }
  absl::Status Launch(absl::string_view kernel, const KernelAttrs& attrs,
                      std::vector<TensorView> inputs, std::vector<TensorView> outputs) {
    const KernelFn* fn = device_.LookupKernel(kernel);
    if (!fn) {
      return absl::InternalError(absl::StrCat("expert parallelism needs the ", kernel,
                                              " kernel on ", device_.Describe()));
    }
    return (*fn)(attrs, inputs, outputs);
  }
  // rows [n, W] -> [ids..., W]: row ids[i] of `rows` at i.
  absl::Status Gather(const TensorView& rows, const TensorView& ids, const TensorView& out) {
    return Launch("embedding", KernelAttrs(), {rows, ids}, {out});
  }
  // Rows of `in` to the members (routing.send / recv, or reversed for the way
  // back); `out` is [sum of incoming counts, ...].
  absl::Status Exchange(const TensorView& in, absl::Span<const int64_t> send,
                        const TensorView& out, absl::Span<const int64_t> recv) {
    return comm_.AllToAllV(in, send, out, recv, axes_);
  }
  absl::Status Zero(const TensorView& view) {
    std::vector<uint8_t> zeros(view.Bytes(), 0);
    return device_.CopyToDevice(view.data, zeros.data(), zeros.size());
  }
  // out [T, H] = sum over the k slots of each token of its returned row:
  // gathers [T, k, H] by `row_of`, then sums dim 1.
  absl::Status Combine(const TensorView& back, const TensorView& row_of, const TensorView& out) {
    const int64_t tokens = row_of.shape[0], k = row_of.shape[1], h = back.shape[1];
    VEOMNI_ASSIGN_OR_RETURN(TensorView parts, Buffer(DType::kF32, {tokens, k, h}));
    VEOMNI_RETURN_IF_ERROR(Gather(back, row_of, parts));
    KernelAttrs sum;
    sum.SetInts("axes", {1});
    return Launch("reduce_sum", sum, {parts}, {out});
  }

 private:
  Device& device_;
  Communicator& comm_;
  uint32_t axes_;
  std::vector<uint8_t> host_ids_;
  std::vector<DeviceBuffer> buffers_;
};

// What both directions send: each routed slot's x row (and y_grad row),
// weight and local expert id, received as the owner's kernel operands.
struct Dispatched {
  TensorView x, y_grad, weights, ids;  // [n, H], [n, H], [n, 1], [n, 1]
  TensorView row_of;                   // [T, k]: the returned row of each slot
};

absl::StatusOr<Dispatched> DispatchOnDevice(DeviceExchange& exchange, const Routing& routing,
                                            absl::Span<const TensorView> inputs,
                                            bool with_grad) {
  const TensorView& x = inputs[0];
  const TensorView host_ids = exchange.HostIds(inputs[1]);
  const int64_t tokens = x.shape[0], h = x.shape[1], k = inputs[1].shape[1];
  const int64_t sent = static_cast<int64_t>(routing.order.size());
  const int64_t n = routing.received;
  std::vector<int64_t> token_of_row(sent), local_ids(sent);
  for (int64_t r = 0; r < sent; ++r) {
    token_of_row[r] = routing.order[r] / k;
    local_ids[r] = ExpertId(host_ids, routing.order[r]) % routing.local_experts;
  }
  VEOMNI_ASSIGN_OR_RETURN(TensorView tokens_view, exchange.Upload(token_of_row, {sent}));
  VEOMNI_ASSIGN_OR_RETURN(TensorView slots_view, exchange.Upload(routing.order, {sent}));
  VEOMNI_ASSIGN_OR_RETURN(TensorView ids_out, exchange.Upload(local_ids, {sent, 1}));
  Dispatched got;
  VEOMNI_ASSIGN_OR_RETURN(got.row_of, exchange.Upload(RowOfSlot(routing), {tokens, k}));

  auto send_rows = [&](const TensorView& table, const TensorView& ids, int64_t width,
                       TensorView& received) -> absl::Status {
    VEOMNI_ASSIGN_OR_RETURN(TensorView out, exchange.Buffer(DType::kF32, {sent, width}));
    VEOMNI_RETURN_IF_ERROR(exchange.Gather(table, ids, out));
    VEOMNI_ASSIGN_OR_RETURN(received, exchange.Buffer(DType::kF32, {n, width}));
    return exchange.Exchange(out, routing.send, received, routing.recv);
  };
  VEOMNI_RETURN_IF_ERROR(send_rows(x, tokens_view, h, got.x));
  if (with_grad) VEOMNI_RETURN_IF_ERROR(send_rows(inputs[5], tokens_view, h, got.y_grad));
  TensorView weight_rows = inputs[2];
  weight_rows.shape = {tokens * k, 1};
  VEOMNI_RETURN_IF_ERROR(send_rows(weight_rows, slots_view, 1, got.weights));
  VEOMNI_ASSIGN_OR_RETURN(got.ids, exchange.Buffer(DType::kI64, {n, 1}));
  VEOMNI_RETURN_IF_ERROR(exchange.Exchange(ids_out, routing.send, got.ids, routing.recv));
  return got;
}

// Routing and dispatch, the first half of both directions.
struct Exchanged {
  Routing routing;
  Dispatched got;
  int64_t received = 0, sent = 0, hidden = 0;
};

absl::StatusOr<Exchanged> RouteAndDispatch(DeviceExchange& exchange, absl::string_view kernel,
                                           absl::Span<const TensorView> inputs, bool with_grad) {
  Exchanged e;
  VEOMNI_ASSIGN_OR_RETURN(e.routing, exchange.Route(kernel, inputs));
  VEOMNI_ASSIGN_OR_RETURN(e.got, DispatchOnDevice(exchange, e.routing, inputs, with_grad));
  e.received = e.routing.received;
  e.sent = static_cast<int64_t>(e.routing.order.size());
  e.hidden = inputs[0].shape[1];
  return e;
}

}  // namespace

absl::Status MoeExpertsExpertParallelOnDevice(Device& device, Communicator& comm, uint32_t axes,
                                              absl::Span<const TensorView> inputs,
                                              absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "moe_experts";
  VEOMNI_RETURN_IF_ERROR(CheckForwardOutputs(inputs, outputs));
  DeviceExchange exchange(device, comm, axes);
  VEOMNI_ASSIGN_OR_RETURN(Exchanged e, RouteAndDispatch(exchange, kKernel, inputs, false));
  const Routing& routing = e.routing;
  const Dispatched& got = e.got;
  const int64_t n = e.received, h = e.hidden, sent = e.sent;
  VEOMNI_ASSIGN_OR_RETURN(TensorView rows, exchange.Buffer(DType::kF32, {n, h}));
  if (n > 0) {
    VEOMNI_RETURN_IF_ERROR(exchange.Launch(kKernel, KernelAttrs(),
                                           {got.x, got.ids, got.weights, inputs[3], inputs[4]},
                                           {rows}));
  }
  VEOMNI_ASSIGN_OR_RETURN(TensorView back, exchange.Buffer(DType::kF32, {sent, h}));
  VEOMNI_RETURN_IF_ERROR(exchange.Exchange(rows, routing.recv, back, routing.send));
  return exchange.Combine(back, got.row_of, outputs[0]);
}

absl::Status MoeExpertsGradExpertParallelOnDevice(Device& device, Communicator& comm,
                                                  uint32_t axes,
                                                  absl::Span<const TensorView> inputs,
                                                  absl::Span<const TensorView> outputs) {
  constexpr absl::string_view kKernel = "moe_experts_grad";
  VEOMNI_RETURN_IF_ERROR(CheckGradOutputs(inputs, outputs));
  DeviceExchange exchange(device, comm, axes);
  VEOMNI_ASSIGN_OR_RETURN(Exchanged e, RouteAndDispatch(exchange, kKernel, inputs, true));
  const Routing& routing = e.routing;
  const Dispatched& got = e.got;
  const int64_t n = e.received, h = e.hidden, sent = e.sent;
  // One launch over every received row: the weight gradients sum the rows
  // of all members at once (the one-rank kernel's order up to reassociation).
  VEOMNI_ASSIGN_OR_RETURN(TensorView x_rows, exchange.Buffer(DType::kF32, {n, h}));
  VEOMNI_ASSIGN_OR_RETURN(TensorView weight_rows, exchange.Buffer(DType::kF32, {n, 1}));
  if (n > 0) {
    VEOMNI_RETURN_IF_ERROR(exchange.Launch(
        kKernel, KernelAttrs(),
        {got.x, got.ids, got.weights, inputs[3], inputs[4], got.y_grad},
        {x_rows, weight_rows, outputs[2], outputs[3]}));
  } else {
    // Nothing routed here: this member's experts get no gradient.
    VEOMNI_RETURN_IF_ERROR(exchange.Zero(outputs[2]));
    VEOMNI_RETURN_IF_ERROR(exchange.Zero(outputs[3]));
  }
  VEOMNI_ASSIGN_OR_RETURN(TensorView x_back, exchange.Buffer(DType::kF32, {sent, h}));
  VEOMNI_RETURN_IF_ERROR(exchange.Exchange(x_rows, routing.recv, x_back, routing.send));
  VEOMNI_ASSIGN_OR_RETURN(TensorView weight_back, exchange.Buffer(DType::kF32, {sent, 1}));
  VEOMNI_RETURN_IF_ERROR(exchange.Exchange(weight_rows, routing.recv, weight_back, routing.send));
  VEOMNI_RETURN_IF_ERROR(exchange.Combine(x_back, got.row_of, outputs[0]));
  // weights_grad [T, k] is the gathered [T, k, 1].
  TensorView weights_grad = outputs[1];
  weights_grad.shape.push_back(1);
  return exchange.Gather(weight_back, got.row_of, weights_grad);
}

}  // namespace veomni::runtime
