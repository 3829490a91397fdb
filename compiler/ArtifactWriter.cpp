//===- ArtifactWriter.cpp - serialize a planned vrt module ----------------===//

#include "compiler/ArtifactWriter.h"

#include "dialects/vo/VoOps.h"
#include "dialects/vrt/VrtDialect.h"
#include "runtime/artifact/ArtifactFormat.h"
#include "runtime/artifact/Artifact_generated.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/raw_ostream.h"

using namespace mlir;
using namespace veomni;
namespace va = veomni::artifact;
namespace fb = flatbuffers;

int64_t veomni::tensorBytes(RankedTensorType type) {
  unsigned bits = type.getElementType().getIntOrFloatBitWidth();
  return type.getNumElements() * (bits == 1 ? 1 : bits / 8);
}

namespace {

llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

llvm::Expected<va::DType> toDType(Type element) {
  if (element.isF32())
    return va::DType_f32;
  if (element.isBF16())
    return va::DType_bf16;
  if (element.isF16())
    return va::DType_f16;
  if (element.isInteger(64))
    return va::DType_i64;
  if (element.isInteger(32))
    return va::DType_i32;
  if (element.isInteger(1))
    return va::DType_i1;
  std::string name;
  llvm::raw_string_ostream(name) << element;
  return makeError("the runtime has no element type " + name);
}

int64_t elementBytes(Type element) {
  unsigned bits = element.getIntOrFloatBitWidth();
  return bits == 1 ? 1 : bits / 8;
}

/// The bytes the runtime expects for an elements attribute (i1 one per byte).
llvm::Expected<std::vector<char>> elementsBytes(ElementsAttr attr,
                                                const llvm::Twine &what) {
  auto type = cast<RankedTensorType>(attr.getType());
  if (auto resource = dyn_cast<DenseResourceElementsAttr>(attr)) {
    AsmResourceBlob *blob = resource.getRawHandle().getBlob();
    if (!blob)
      return makeError(what + " has no values (were they elided when the "
                              "module was printed?)");
    ArrayRef<char> data = blob->getData();
    if (static_cast<int64_t>(data.size()) != tensorBytes(type))
      return makeError(what + " holds " + llvm::Twine(data.size()) +
                       " bytes, its type needs " +
                       llvm::Twine(tensorBytes(type)));
    return std::vector<char>(data.begin(), data.end());
  }
  auto dense = dyn_cast<DenseElementsAttr>(attr);
  if (!dense)
    return makeError(what + " is neither dense nor a resource");
  if (type.getElementType().isInteger(1)) {
    std::vector<char> bytes;
    for (bool bit : dense.getValues<bool>())
      bytes.push_back(bit ? 1 : 0);
    return bytes;
  }
  ArrayRef<char> raw = dense.getRawData();
  if (!dense.isSplat())
    return std::vector<char>(raw.begin(), raw.end());
  std::vector<char> bytes;
  bytes.reserve(tensorBytes(type));
  for (int64_t i = 0; i < type.getNumElements(); ++i)
    bytes.insert(bytes.end(), raw.begin(), raw.end());
  return bytes;
}

/// State keys in a stable order: per kind, in parameter declaration order.
llvm::Expected<llvm::MapVector<StringRef, RankedTensorType>>
collectState(ModuleOp module) {
  llvm::DenseMap<StringRef, RankedTensorType> used;
  llvm::Error error = llvm::Error::success();
  auto note = [&](StringRef key, Type type) {
    auto tensor = cast<RankedTensorType>(type);
    auto [it, inserted] = used.try_emplace(key, tensor);
    if (!inserted && it->second != tensor && !error)
      error = makeError("state '" + key + "' is used with two types");
  };
  module.walk([&](vrt::StateOp op) { note(op.getKey(), op.getType()); });
  module.walk([&](vrt::StoreOp op) {
    note(op.getKey(), op.getValue().getType());
  });
  if (error)
    return std::move(error);
  llvm::MapVector<StringRef, RankedTensorType> ordered;
  for (StringRef kind : {"param:", "param_bf16:", "grad:", "exp_avg:", "exp_avg_sq:"})
    for (auto param : module.getOps<vo::ParameterOp>()) {
      std::string key = (kind + param.getSymName()).str();
      auto it = used.find(key);
      if (it != used.end())
        ordered.insert({it->first, it->second});
    }
  for (auto &[key, type] : used)
    if (!ordered.count(key))
      return makeError("state '" + key + "' names no parameter");
  return ordered;
}

class ProgramBuilder {
public:
  ProgramBuilder(ModuleOp module, const ArtifactMetadata &meta)
      : module(module), meta(meta) {}

  llvm::Error build();
  const fb::FlatBufferBuilder &program() const { return fbb; }
  const std::vector<std::vector<char>> &blobs() const { return blobData; }
  const std::vector<uint64_t> &blobOffsets() const { return blobOffset; }
  uint64_t blobsBytes() const { return nextBlob; }

private:
  uint64_t addBlob(std::vector<char> bytes) {
    uint64_t offset = nextBlob;
    nextBlob = va::AlignUp(nextBlob + bytes.size());
    blobOffset.push_back(offset);
    blobData.push_back(std::move(bytes));
    return offset;
  }
  llvm::Expected<fb::Offset<va::Tensor>> tensorRef(Value value);
  llvm::Expected<fb::Offset<va::Tensor>>
  makeTensor(RankedTensorType type, va::Region region, uint64_t offset);
  llvm::Expected<fb::Offset<va::Function>> buildFunction(func::FuncOp func);
  llvm::Expected<fb::Offset<fb::Vector<fb::Offset<va::Param>>>>
  buildParams(DictionaryAttr params);

  ModuleOp module;
  const ArtifactMetadata &meta;
  fb::FlatBufferBuilder fbb{1 << 16};
  llvm::MapVector<StringRef, RankedTensorType> state;
  llvm::DenseMap<StringRef, uint64_t> stateOffset;
  llvm::DenseMap<Operation *, uint64_t> constantOffset;
  std::vector<std::vector<char>> blobData;
  std::vector<uint64_t> blobOffset;
  uint64_t nextBlob = 0;
};

llvm::Expected<fb::Offset<va::Tensor>>
ProgramBuilder::makeTensor(RankedTensorType type, va::Region region,
                           uint64_t offset) {
  auto dtype = toDType(type.getElementType());
  if (!dtype)
    return dtype.takeError();
  std::vector<int64_t> shape(type.getShape().begin(), type.getShape().end());
  return va::CreateTensorDirect(fbb, *dtype, &shape, region, offset);
}

llvm::Expected<fb::Offset<va::Tensor>> ProgramBuilder::tensorRef(Value value) {
  auto type = cast<RankedTensorType>(value.getType());
  if (auto arg = dyn_cast<BlockArgument>(value))
    return makeTensor(type, va::Region_Input, arg.getArgNumber());
  Operation *op = value.getDefiningOp();
  if (auto read = dyn_cast<vrt::StateOp>(op))
    return makeTensor(type, va::Region_State, stateOffset.lookup(read.getKey()));
  if (isa<vrt::ConstantOp>(op))
    return makeTensor(type, va::Region_Constant, constantOffset.lookup(op));
  if (auto launch = dyn_cast<vrt::LaunchOp>(op)) {
    // A forwarded store's value lives in its state.
    if (vrt::StoreOp store = vrt::getForwardedStore(value))
      return makeTensor(type, va::Region_State, stateOffset.lookup(store.getKey()));
    if (!launch.getOffsetsAttr())
      return makeError("launch of '" + launch.getKernel() +
                       "' has no arena offsets; run vrt-plan-memory");
    unsigned index = cast<OpResult>(value).getResultNumber();
    return makeTensor(type, va::Region_Arena, launch.getOffsetsAttr()[index]);
  }
  return makeError("value defined by '" + op->getName().getStringRef() +
                   "' has no runtime location");
}

llvm::Expected<fb::Offset<fb::Vector<fb::Offset<va::Param>>>>
ProgramBuilder::buildParams(DictionaryAttr params) {
  std::vector<fb::Offset<va::Param>> out;
  for (NamedAttribute param : params) {
    auto name = fbb.CreateString(param.getName().getValue().str());
    Attribute value = param.getValue();
    if (auto integer = dyn_cast<IntegerAttr>(value)) {
      out.push_back(va::CreateParam(fbb, name, va::ParamKind_Int,
                                    integer.getValue().getSExtValue()));
    } else if (auto real = dyn_cast<FloatAttr>(value)) {
      out.push_back(va::CreateParam(fbb, name, va::ParamKind_Float, 0,
                                    real.getValueAsDouble()));
    } else if (auto ints = dyn_cast<DenseI64ArrayAttr>(value)) {
      std::vector<int64_t> values(ints.asArrayRef().begin(),
                                  ints.asArrayRef().end());
      out.push_back(va::CreateParam(fbb, name, va::ParamKind_Ints, 0, 0.0,
                                    fbb.CreateVector(values)));
    } else {
      return makeError("kernel param '" + param.getName().getValue() +
                       "' has an unsupported kind");
    }
  }
  return fbb.CreateVector(out);
}

llvm::Expected<fb::Offset<va::Function>>
ProgramBuilder::buildFunction(func::FuncOp func) {
  std::vector<fb::Offset<va::NamedTensor>> inputs, outputs;
  for (BlockArgument arg : func.getArguments()) {
    auto name = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(),
                                                  vo::kNameAttr);
    if (!name)
      return makeError("@" + func.getSymName() + " argument " +
                       llvm::Twine(arg.getArgNumber()) + " has no vo.name");
    auto tensor = tensorRef(arg);
    if (!tensor)
      return tensor.takeError();
    inputs.push_back(va::CreateNamedTensorDirect(fbb, name.str().c_str(), *tensor));
  }
  std::vector<fb::Offset<va::Command>> commands;
  Block &body = func.getBody().front();
  for (Operation &op : body) {
    if (auto launch = dyn_cast<vrt::LaunchOp>(op)) {
      std::vector<fb::Offset<va::Tensor>> ins, outs;
      for (Value v : launch.getInputs()) {
        auto t = tensorRef(v);
        if (!t)
          return t.takeError();
        ins.push_back(*t);
      }
      for (Value v : launch.getResults()) {
        auto t = tensorRef(v);
        if (!t)
          return t.takeError();
        outs.push_back(*t);
      }
      auto params = buildParams(launch.getParams());
      if (!params)
        return params.takeError();
      commands.push_back(va::CreateCommand(
          fbb, fbb.CreateString(launch.getKernel().str()),
          fbb.CreateVector(ins), fbb.CreateVector(outs), *params));
    } else if (auto store = dyn_cast<vrt::StoreOp>(op)) {
      if (store.getForwarded())
        continue;  // its launch wrote the state
      auto source = tensorRef(store.getValue());
      if (!source)
        return source.takeError();
      auto target = makeTensor(cast<RankedTensorType>(store.getValue().getType()),
                               va::Region_State,
                               stateOffset.lookup(store.getKey()));
      if (!target)
        return target.takeError();
      std::vector<fb::Offset<va::Tensor>> ins = {*source}, outs = {*target};
      commands.push_back(va::CreateCommand(
          fbb, fbb.CreateString("copy"), fbb.CreateVector(ins),
          fbb.CreateVector(outs),
          fbb.CreateVector(std::vector<fb::Offset<va::Param>>{})));
    } else if (auto ret = dyn_cast<func::ReturnOp>(op)) {
      for (auto [i, value] : llvm::enumerate(ret.getOperands())) {
        auto name = func.getResultAttrOfType<StringAttr>(i, vo::kNameAttr);
        auto tensor = tensorRef(value);
        if (!tensor)
          return tensor.takeError();
        std::string resultName =
            name ? name.str() : "result" + std::to_string(i);
        outputs.push_back(
            va::CreateNamedTensorDirect(fbb, resultName.c_str(), *tensor));
      }
    } else if (!isa<vrt::StateOp, vrt::ConstantOp>(op)) {
      return makeError("@" + func.getSymName() + " holds '" +
                       op.getName().getStringRef() +
                       "', which the runtime cannot execute; lower to vrt");
    }
  }
  auto arena = func->getAttrOfType<IntegerAttr>(vrt::kArenaBytesAttr);
  if (!arena)
    return makeError("@" + func.getSymName() +
                     " has no arena size; run vrt-plan-memory");
  return va::CreateFunctionDirect(fbb, func.getSymName().str().c_str(),
                                  &inputs, &outputs, &commands,
                                  arena.getInt());
}

llvm::Error ProgramBuilder::build() {
  auto collected = collectState(module);
  if (!collected)
    return collected.takeError();
  state = std::move(*collected);

  // Constants first, then initial parameter values, in the blob section.
  llvm::Error error = llvm::Error::success();
  module.walk([&](vrt::ConstantOp op) {
    if (error)
      return;
    auto bytes = elementsBytes(op.getValue(), "a constant");
    if (!bytes) {
      error = bytes.takeError();
      return;
    }
    constantOffset[op] = addBlob(std::move(*bytes));
  });
  if (error)
    return error;

  std::vector<fb::Offset<va::StateEntry>> entries;
  uint64_t stateBytes = 0;
  for (auto &[key, type] : state) {
    stateOffset[key] = stateBytes;
    uint64_t bytes = tensorBytes(type);
    va::Init init = va::Init_Zeros;
    double std = 0;
    uint64_t blob = 0;
    if (key.starts_with("param_bf16:"))
      init = va::Init_RoundedParam;
    if (key.starts_with("param:")) {
      auto param = module.lookupSymbol<vo::ParameterOp>(key.drop_front(6));
      if (auto values = param.getInitialValueAttr()) {
        auto data = elementsBytes(values, "parameter " + param.getSymName());
        if (!data)
          return data.takeError();
        init = va::Init_Values;
        blob = addBlob(std::move(*data));
      } else {
        vo::InitRuleAttr rule = param.getInitAttr();
        init = rule.getKind() == vo::InitKind::ones     ? va::Init_Ones
               : rule.getKind() == vo::InitKind::normal ? va::Init_Normal
                                                        : va::Init_Zeros;
        std = rule.getStd().convertToDouble();
      }
    }
    auto dtype = toDType(type.getElementType());
    if (!dtype)
      return dtype.takeError();
    std::vector<int64_t> shape(type.getShape().begin(), type.getShape().end());
    // Every state of a sharded parameter is sharded like it.
    auto param = module.lookupSymbol<vo::ParameterOp>(key.split(':').second);
    std::vector<int64_t> fullShape;
    uint32_t shardAxes = 0;
    int64_t shardGroup = 1;
    auto axisBit = [](StringRef axis) {
      return 1u << (llvm::find(vo::kMeshAxisNames, axis) -
                    std::begin(vo::kMeshAxisNames));
    };
    if (auto shard = param->getAttrOfType<DictionaryAttr>(vo::kShardAttr)) {
      auto full = param.getTensorType().getShape();
      fullShape.assign(full.begin(), full.end());
      shardGroup = shard.getAs<IntegerAttr>("group_size").getInt();
      for (Attribute axis : shard.getAs<ArrayAttr>("mesh_axes"))
        shardAxes |= axisBit(cast<StringAttr>(axis).getValue());
    }
    uint32_t expertAxes = 0;
    int64_t expertGroup = 1;
    if (auto experts = param->getAttrOfType<DictionaryAttr>(vo::kExpertShardAttr)) {
      auto full = param.getTensorType().getShape();
      fullShape.assign(full.begin(), full.end());
      expertGroup = experts.getAs<IntegerAttr>("group_size").getInt();
      expertAxes = axisBit("ep");
    }
    entries.push_back(va::CreateStateEntryDirect(
        fbb, key.str().c_str(), *dtype, &shape, stateBytes, bytes, init, std,
        blob, fullShape.empty() ? nullptr : &fullShape, shardAxes, shardGroup,
        expertAxes, expertGroup));
    stateBytes = va::AlignUp(stateBytes + bytes);
  }

  std::vector<fb::Offset<va::Function>> functions;
  for (auto func : module.getOps<func::FuncOp>()) {
    auto built = buildFunction(func);
    if (!built)
      return built.takeError();
    functions.push_back(*built);
  }

  const OptimizerConfig &opt = meta.optimizer;
  auto optimizer = va::CreateOptimizerDirect(
      fbb, opt.lr, opt.beta1, opt.beta2, opt.eps, opt.weightDecay,
      opt.maxGradNorm, opt.schedule.c_str(), opt.warmupSteps, opt.totalSteps,
      opt.minLr);
  auto recipe = va::CreateRecipe(fbb, meta.dp, meta.fsdp, meta.sp, meta.ep);
  auto program = va::CreateProgramDirect(
      fbb, "veomni-compile", &functions, &entries, stateBytes,
      meta.tokenInput.c_str(), meta.labelInput.c_str(), meta.vocabSize,
      meta.microBatch, meta.seqLen, meta.gradAccum, optimizer, recipe);
  va::FinishProgramBuffer(fbb, program);
  return llvm::Error::success();
}

} // namespace

llvm::Expected<MemoryReport> veomni::measureArtifact(ModuleOp module) {
  auto state = collectState(module);
  if (!state)
    return state.takeError();
  MemoryReport report;
  for (auto &[key, type] : *state) {
    int64_t bytes = tensorBytes(type);
    if (key.starts_with("param:"))
      report.parameters += bytes;
    else if (key.starts_with("param_bf16:"))
      report.parameterCopies += bytes;
    else if (key.starts_with("grad:"))
      report.gradients += bytes;
    else
      report.optimizerState += bytes;
  }
  module.walk([&](vrt::ConstantOp op) {
    report.constants += tensorBytes(cast<RankedTensorType>(op.getType()));
  });
  for (auto func : module.getOps<func::FuncOp>()) {
    if (auto arena = func->getAttrOfType<IntegerAttr>(vrt::kArenaBytesAttr))
      report.arenas.push_back({func.getSymName().str(), arena.getInt()});
    func.walk([&](vrt::LaunchOp launch) {
      StringRef kind = launch.getKernel();
      bool experts = (kind == "moe_experts" || kind == "moe_experts_grad") &&
                     launch.getParams().get("mesh_axes");
      if (!experts && !llvm::is_contained({"all_gather", "reduce_scatter",
                                           "all_reduce", "all_to_all"},
                                          kind))
        return;
      int64_t mask = 0;
      if (auto axes = launch.getParams().getAs<IntegerAttr>("mesh_axes"))
        mask = axes.getInt();
      std::string axes;
      for (auto [bit, name] : llvm::enumerate(vo::kMeshAxisNames))
        if (mask & (int64_t(1) << bit))
          axes += (axes.empty() ? "" : ", ") + name.str();
      // The larger side: what a rank receives (gather) or sends (scatter).
      int64_t bytes = std::max(
          tensorBytes(cast<RankedTensorType>(launch.getInputs()[0].getType())),
          tensorBytes(cast<RankedTensorType>(launch.getResult(0).getType())));
      int64_t calls = 1;
      if (experts) {
        // Expert dispatch: rows out to the owners and back (runtime/executor/
        // ExpertParallel.cpp); the counts depend on the routing, so this is
        // the dropless bound: every slot of the group lands on this rank.
        auto x = cast<RankedTensorType>(launch.getInputs()[0].getType());
        auto slots = cast<RankedTensorType>(launch.getInputs()[1].getType());
        int64_t group = launch.getParams().getAs<IntegerAttr>("group_size").getInt();
        int64_t rows = slots.getNumElements() * group, hidden = x.getDimSize(1);
        bool grad = kind == "moe_experts_grad";
        int64_t floats = (grad ? 2 * hidden + 2 : hidden + 2) + (grad ? 2 * hidden + 1 : 2 * hidden);
        bytes = rows * floats * 4;
        calls = 2;
        kind = "all_to_all_v (expert dispatch, bound)";
      }
      auto it = llvm::find_if(report.collectives, [&](auto &c) {
        return c.function == func.getSymName() && c.kind == kind && c.axes == axes;
      });
      if (it == report.collectives.end()) {
        report.collectives.push_back({func.getSymName().str(), kind.str(), axes, 0, 0});
        it = std::prev(report.collectives.end());
      }
      it->calls += calls;
      it->bytes += bytes;
    });
  }
  return report;
}

llvm::Error veomni::writeArtifact(ModuleOp module, const ArtifactMetadata &meta,
                                  llvm::StringRef path) {
  ProgramBuilder builder(module, meta);
  if (llvm::Error error = builder.build())
    return error;
  const fb::FlatBufferBuilder &program = builder.program();

  va::Header header = {};
  std::memcpy(header.magic, va::kMagic, sizeof(header.magic));
  header.schema_version = va::kSchemaVersion;
  header.header_bytes = sizeof(va::Header);
  header.program_offset = sizeof(va::Header);
  header.program_bytes = program.GetSize();
  header.blobs_offset = va::AlignUp(header.program_offset + header.program_bytes);
  header.blobs_bytes = builder.blobsBytes();

  // The checksum covers every byte after the header, padding included.
  std::vector<char> programPadded(header.blobs_offset - header.program_offset, 0);
  std::memcpy(programPadded.data(), program.GetBufferPointer(),
              program.GetSize());
  uint64_t hash = va::Fnv1a64(programPadded.data(), programPadded.size());
  std::vector<char> zeros(va::kAlignment, 0);
  auto forEachBlobChunk = [&](auto &&visit) {
    uint64_t position = 0;
    for (auto [blob, offset] :
         llvm::zip(builder.blobs(), builder.blobOffsets())) {
      visit(blob.data(), blob.size());
      position = offset + blob.size();
      uint64_t padding = va::AlignUp(position) - position;
      visit(zeros.data(), padding);
      position += padding;
    }
  };
  forEachBlobChunk([&](const char *data, size_t size) {
    hash = va::Fnv1a64(data, size, hash);
  });
  header.checksum = hash;

  std::error_code ec;
  llvm::raw_fd_ostream out(path, ec, llvm::sys::fs::OF_None);
  if (ec)
    return makeError("cannot write '" + path + "': " + ec.message());
  out.write(reinterpret_cast<const char *>(&header), sizeof(header));
  out.write(programPadded.data(), programPadded.size());
  forEachBlobChunk([&](const char *data, size_t size) { out.write(data, size); });
  out.close();
  if (out.has_error())
    return makeError("cannot write '" + path + "': " + out.error().message());
  return llvm::Error::success();
}
