//===- OnnxImporter.cpp - ONNX models into the vo dialect -----------------===//
//
// Walks the graph in its (topological) node order. A node whose inputs are
// all host constants is folded on the host, so static exports lose their
// shape arithmetic; any other node becomes primitive vo ops. The op-mapping
// table at the bottom names every ONNX op this frontend reads; any other op
// is an error naming the op type, node and opset.
//
//===----------------------------------------------------------------------===//

#include "frontends/onnx/OnnxImporter.h"

#include "dialects/vo/VoOps.h"
#include "frontends/common/HostTensor.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Regex.h"

#include "onnx.pb.h"

#include <cmath>
#include <cstring>
#include <functional>

using namespace mlir;
using namespace veomni;
using llvm::Error;
using llvm::Expected;
using llvm::SmallVector;
using llvm::StringRef;

namespace {

constexpr int64_t kMinOpset = 13;
constexpr int64_t kMaxOpset = 23;

Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

std::string formatShape(llvm::ArrayRef<int64_t> shape) {
  std::string text = "[";
  for (auto [i, d] : llvm::enumerate(shape))
    text += (i ? ", " : "") + std::to_string(d);
  return text + "]";
}

Expected<HostDType> hostDTypeFromOnnx(int32_t type) {
  switch (type) {
  case onnx::TensorProto::FLOAT:
    return HostDType::F32;
  case onnx::TensorProto::DOUBLE:
    return HostDType::F64;
  case onnx::TensorProto::FLOAT16:
    return HostDType::F16;
  case onnx::TensorProto::BFLOAT16:
    return HostDType::BF16;
  case onnx::TensorProto::INT64:
    return HostDType::I64;
  case onnx::TensorProto::INT32:
    return HostDType::I32;
  case onnx::TensorProto::INT8:
    return HostDType::I8;
  case onnx::TensorProto::UINT8:
    return HostDType::U8;
  case onnx::TensorProto::BOOL:
    return HostDType::Bool;
  default:
    return makeError("unsupported ONNX tensor element type " +
                     llvm::Twine(onnx::TensorProto::DataType_Name(
                         static_cast<onnx::TensorProto::DataType>(type))));
  }
}

/// One graph value during import: known on the host, an SSA value, or both
/// (a host constant already materialized as vo.constant).
struct ImportedValue {
  std::optional<HostTensor> constant;
  Value value;
};

class OnnxImporter {
public:
  OnnxImporter(MLIRContext &context, const onnx::ModelProto &model,
               StringRef path, const OnnxImportOptions &options)
      : context(context), model(model), path(path), options(options),
        builder(&context) {}

  Expected<OwningOpRef<ModuleOp>> run();

private:
  using NodeHandler = std::function<Error(OnnxImporter &,
                                          const onnx::NodeProto &)>;
  static const llvm::StringMap<NodeHandler> &handlers();

  Error checkOpset();
  Error collectTrainable();
  Error readTensor(const onnx::TensorProto &proto, HostTensor &result);
  Expected<RankedTensorType> inputType(const onnx::ValueInfoProto &info);
  Error importNode(const onnx::NodeProto &node);

  // Node helpers.
  Error nodeError(const onnx::NodeProto &node, const llvm::Twine &message);
  bool hasInput(const onnx::NodeProto &node, int index) const;
  Expected<const ImportedValue *> lookup(const onnx::NodeProto &node,
                                         int index);
  Expected<Value> operand(const onnx::NodeProto &node, int index);
  Expected<HostTensor> constantOperand(const onnx::NodeProto &node, int index,
                                       StringRef what);
  Expected<std::vector<int64_t>> shapeOf(const onnx::NodeProto &node,
                                         int index);
  bool allInputsConstant(const onnx::NodeProto &node);
  const onnx::AttributeProto *attr(const onnx::NodeProto &node,
                                   StringRef name) const;
  int64_t intAttr(const onnx::NodeProto &node, StringRef name,
                  int64_t fallback) const;
  float floatAttr(const onnx::NodeProto &node, StringRef name,
                  float fallback) const;
  std::vector<int64_t> intsAttr(const onnx::NodeProto &node,
                                StringRef name) const;
  std::string stringAttr(const onnx::NodeProto &node, StringRef name,
                         StringRef fallback) const;
  Expected<int64_t> normalizeAxis(const onnx::NodeProto &node, int64_t axis,
                                  int64_t rank);
  Location locOf(const onnx::NodeProto &node);
  void define(const onnx::NodeProto &node, int index, Value value);
  void define(const onnx::NodeProto &node, int index, HostTensor constant);
  Value materialize(const HostTensor &constant, Location loc);
  Value paramRef(StringRef name, Location loc);

  // Op handlers.
  Error importElementwise(const onnx::NodeProto &node, StringRef kind);
  Error importUnary(const onnx::NodeProto &node, StringRef kind);
  Error importConstant(const onnx::NodeProto &node);
  Error importConstantOfShape(const onnx::NodeProto &node);
  Error importShape(const onnx::NodeProto &node);
  Error importRange(const onnx::NodeProto &node);
  Error importCast(const onnx::NodeProto &node);
  Error importReshapeLike(const onnx::NodeProto &node);
  Error importTranspose(const onnx::NodeProto &node);
  Error importSlice(const onnx::NodeProto &node);
  Error importConcat(const onnx::NodeProto &node);
  Error importExpand(const onnx::NodeProto &node);
  Error importGather(const onnx::NodeProto &node);
  Error importWhere(const onnx::NodeProto &node);
  Error importMatMul(const onnx::NodeProto &node);
  Error importGemm(const onnx::NodeProto &node);
  Error importSoftmax(const onnx::NodeProto &node, bool log);
  Error importReduce(const onnx::NodeProto &node, StringRef kind);
  Error importPad(const onnx::NodeProto &node);
  Error importCrossEntropy(const onnx::NodeProto &node);
  Error importDropout(const onnx::NodeProto &node);
  Error importTopK(const onnx::NodeProto &node);
  Error importGatherND(const onnx::NodeProto &node);
  Error importSplit(const onnx::NodeProto &node);
  Error importClip(const onnx::NodeProto &node);

  /// Emits `vo.reshape` or reshapes a host constant.
  Error defineReshaped(const onnx::NodeProto &node, int inputIndex,
                       llvm::ArrayRef<int64_t> shape);

  MLIRContext &context;
  const onnx::ModelProto &model;
  std::string path;
  const OnnxImportOptions &options;
  OpBuilder builder;
  ModuleOp module;
  int64_t opset = 0;

  llvm::StringMap<ImportedValue> values;
  /// Trainable initializer name -> its host value, until declared.
  llvm::StringMap<HostTensor> trainable;
  // Under --random-init: each parameter's declared type (its values unread).
  llvm::StringMap<RankedTensorType> declaredTypes;
  llvm::StringMap<Value> paramRefs;
  Operation *lastParamRef = nullptr;
  llvm::StringSet<> declaredParameters;
};

//===----------------------------------------------------------------------===//
// Model-level checks
//===----------------------------------------------------------------------===//

Error OnnxImporter::checkOpset() {
  for (const onnx::OperatorSetIdProto &entry : model.opset_import()) {
    if (entry.domain().empty() || entry.domain() == "ai.onnx")
      opset = entry.version();
  }
  if (opset == 0)
    return makeError("the model imports no default-domain opset");
  if (opset < kMinOpset || opset > kMaxOpset)
    return makeError("opset " + llvm::Twine(opset) +
                     " is outside the range veomni-import reads (" +
                     llvm::Twine(kMinOpset) + " to " + llvm::Twine(kMaxOpset) +
                     ")");
  return Error::success();
}

// The torch exporter marks each kept parameter's value_info with
// `InputSpec.kind = PARAMETER` and its export placeholder name (`p_...`), and
// writes each node's FX node, which names the placeholders it read. A
// placeholder read by a node but kept by no initializer was folded into an
// unnamed constant or merged into another parameter by the exporter's
// optimizer: training that file would silently train a different model.
Error OnnxImporter::collectTrainable() {
  const onnx::GraphProto &graph = model.graph();
  llvm::StringMap<const onnx::TensorProto *> initializers;
  for (const onnx::TensorProto &init : graph.initializer())
    initializers[init.name()] = &init;

  auto isFloatInit = [&](const onnx::TensorProto *init) {
    auto dtype = hostDTypeFromOnnx(init->data_type());
    if (!dtype) {
      llvm::consumeError(dtype.takeError());
      return false;
    }
    return isFloatingPoint(*dtype);
  };

  if (!options.trainableRegex.empty()) {
    llvm::Regex regex("^(" + options.trainableRegex + ")$");
    std::string regexError;
    if (!regex.isValid(regexError))
      return makeError("invalid --trainable regex '" + options.trainableRegex +
                       "': " + regexError);
    for (auto &entry : initializers)
      if (isFloatInit(entry.second) && regex.match(entry.getKey()))
        trainable[entry.getKey()] = HostTensor();
    if (trainable.empty())
      return makeError("--trainable '" + options.trainableRegex +
                       "' matches no float initializer");
    return Error::success();
  }

  llvm::StringSet<> keptPlaceholders;
  bool sawExporterMetadata = false;
  for (const onnx::ValueInfoProto &info : graph.value_info()) {
    std::string kind, original;
    for (const onnx::StringStringEntryProto &prop : info.metadata_props()) {
      if (prop.key() == "pkg.torch.export.graph_signature.InputSpec.kind")
        kind = prop.value();
      else if (prop.key() == "pkg.torch.onnx.original_node_name")
        original = prop.value();
    }
    if (kind.empty())
      continue;
    sawExporterMetadata = true;
    if (kind != "PARAMETER" || !initializers.count(info.name()))
      continue;
    if (!isFloatInit(initializers[info.name()]))
      return makeError("parameter '" + info.name() +
                       "' is not a floating-point tensor");
    trainable[info.name()] = HostTensor();
    if (!original.empty())
      keptPlaceholders.insert(original);
  }
  if (!sawExporterMetadata)
    return makeError(
        "cannot tell trainable parameters from constants: the model has no "
        "torch exporter metadata (value_info InputSpec.kind); pass "
        "--trainable=REGEX to name them");

  llvm::Regex placeholder("%(p_[A-Za-z0-9_]+)");
  for (const onnx::NodeProto &node : graph.node()) {
    for (const onnx::StringStringEntryProto &prop : node.metadata_props()) {
      if (prop.key() != "pkg.torch.onnx.fx_node")
        continue;
      StringRef text = prop.value();
      SmallVector<StringRef, 2> match;
      while (placeholder.match(text, &match)) {
        if (!keptPlaceholders.contains(match[1]))
          return makeError(
              "parameter placeholder '" + match[1] + "' read by node '" +
              node.name() +
              "' has no initializer of its own: the exporter's optimizer "
              "folded it into a constant or merged it with an identical "
              "parameter, so this file cannot be trained as the original "
              "model; re-export keeping parameters (docs/frontends.md)");
        text = text.drop_front(match[0].data() - text.data() +
                               match[0].size());
      }
    }
  }
  return Error::success();
}

Error OnnxImporter::readTensor(const onnx::TensorProto &proto,
                               HostTensor &result) {
  auto dtype = hostDTypeFromOnnx(proto.data_type());
  if (!dtype)
    return makeError("tensor '" + proto.name() +
                     "': " + llvm::toString(dtype.takeError()));
  SmallVector<int64_t> shape(proto.dims().begin(), proto.dims().end());
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0)
      return makeError("tensor '" + proto.name() + "' has negative dim " +
                       llvm::Twine(d));
    count *= d;
  }
  int64_t width = hostDTypeBytes(*dtype);
  std::vector<uint8_t> bytes;

  if (proto.data_location() == onnx::TensorProto::EXTERNAL) {
    std::string location;
    int64_t offset = 0, length = -1;
    for (const onnx::StringStringEntryProto &entry : proto.external_data()) {
      if (entry.key() == "location")
        location = entry.value();
      else if (entry.key() == "offset")
        offset = std::stoll(entry.value());
      else if (entry.key() == "length")
        length = std::stoll(entry.value());
    }
    llvm::SmallString<256> file(llvm::sys::path::parent_path(path));
    llvm::sys::path::append(file, location);
    if (length < 0)
      length = count * width;
    uint64_t fileSize = 0;
    if (std::error_code error = llvm::sys::fs::file_size(file, fileSize))
      return makeError("tensor '" + proto.name() + "': cannot read external "
                       "data file '" + file + "': " + error.message());
    if (length != count * width || offset < 0 ||
        offset + length > static_cast<int64_t>(fileSize))
      return makeError("tensor '" + proto.name() +
                       "': external data range does not fit its shape or "
                       "its file");
    // Only this tensor's bytes: the file may hold gigabytes of others.
    auto buffer = llvm::MemoryBuffer::getFileSlice(file, length, offset);
    if (!buffer)
      return makeError("tensor '" + proto.name() + "': cannot read external "
                       "data file '" + file +
                       "': " + buffer.getError().message());
    const char *begin = (*buffer)->getBufferStart();
    bytes.assign(begin, begin + length);
  } else if (proto.has_raw_data()) {
    if (static_cast<int64_t>(proto.raw_data().size()) != count * width)
      return makeError("tensor '" + proto.name() + "' holds " +
                       llvm::Twine(proto.raw_data().size()) +
                       " bytes, its shape " + formatShape(shape) + " needs " +
                       llvm::Twine(count * width));
    bytes.assign(proto.raw_data().begin(), proto.raw_data().end());
  } else {
    bytes.resize(count * width);
    auto checkCount = [&](int64_t have) -> Error {
      if (have != count)
        return makeError("tensor '" + proto.name() + "' holds " +
                         llvm::Twine(have) + " values, its shape " +
                         formatShape(shape) + " needs " + llvm::Twine(count));
      return Error::success();
    };
    switch (*dtype) {
    case HostDType::F32:
      if (Error e = checkCount(proto.float_data_size()))
        return e;
      std::memcpy(bytes.data(), proto.float_data().data(), bytes.size());
      break;
    case HostDType::F64:
      if (Error e = checkCount(proto.double_data_size()))
        return e;
      std::memcpy(bytes.data(), proto.double_data().data(), bytes.size());
      break;
    case HostDType::I64:
      if (Error e = checkCount(proto.int64_data_size()))
        return e;
      std::memcpy(bytes.data(), proto.int64_data().data(), bytes.size());
      break;
    default: {
      // int32_data carries i32, i8, u8, bool and the 16-bit floats' bits.
      if (Error e = checkCount(proto.int32_data_size()))
        return e;
      for (int64_t i = 0; i < count; ++i) {
        int32_t v = proto.int32_data(i);
        std::memcpy(bytes.data() + i * width, &v, width);
      }
    }
    }
  }
  result = HostTensor(*dtype, shape, std::move(bytes));
  return Error::success();
}

Expected<RankedTensorType>
OnnxImporter::inputType(const onnx::ValueInfoProto &info) {
  if (!info.type().has_tensor_type())
    return makeError("graph input '" + info.name() + "' is not a tensor");
  const onnx::TypeProto::Tensor &tensor = info.type().tensor_type();
  auto dtype = hostDTypeFromOnnx(tensor.elem_type());
  if (!dtype)
    return makeError("graph input '" + info.name() +
                     "': " + llvm::toString(dtype.takeError()));
  if (!tensor.has_shape())
    return makeError("graph input '" + info.name() + "' has no shape");
  SmallVector<int64_t> shape;
  for (auto [index, dim] : llvm::enumerate(tensor.shape().dim())) {
    if (dim.has_dim_value()) {
      shape.push_back(dim.dim_value());
      continue;
    }
    auto bound = options.dims.find(dim.dim_param());
    if (dim.dim_param().empty() || bound == options.dims.end())
      return makeError("graph input '" + info.name() + "' dim " +
                       llvm::Twine(index) + " is symbolic ('" +
                       dim.dim_param() + "'); bind it with --dim " +
                       dim.dim_param() + "=N");
    shape.push_back(bound->second);
  }
  return RankedTensorType::get(shape, hostDTypeToVoElement(&context, *dtype));
}

Expected<OwningOpRef<ModuleOp>> OnnxImporter::run() {
  if (model.ir_version() <= 0 || !model.has_graph())
    return makeError("'" + path + "' is not an ONNX model (no IR version or "
                     "graph)");
  if (Error e = checkOpset())
    return std::move(e);
  if (Error e = collectTrainable())
    return std::move(e);
  const onnx::GraphProto &graph = model.graph();
  if (graph.output_size() == 0)
    return makeError("the ONNX graph has no outputs");

  Location fileLoc = FileLineColLoc::get(&context, path, 0, 0);
  OwningOpRef<ModuleOp> owned = ModuleOp::create(fileLoc);
  module = *owned;
  module->setAttr("vo.source", builder.getStringAttr("onnx"));
  module->setAttr("vo.opset", builder.getI64IntegerAttr(opset));
  if (!model.producer_name().empty())
    module->setAttr("vo.producer",
                    builder.getStringAttr(model.producer_name() + " " +
                                          model.producer_version()));

  // Initializers: trainable ones become parameters, the rest host constants.
  for (const onnx::TensorProto &init : graph.initializer()) {
    if (options.randomInitStd > 0 && trainable.count(init.name())) {
      auto dtype = hostDTypeFromOnnx(init.data_type());
      if (!dtype)
        return makeError("parameter '" + init.name() +
                         "': " + llvm::toString(dtype.takeError()));
      SmallVector<int64_t> shape(init.dims().begin(), init.dims().end());
      if (llvm::any_of(shape, [](int64_t d) { return d < 0; }))
        return makeError("parameter '" + init.name() + "' has a negative dim");
      HostDType stored = *dtype == HostDType::F64 ? HostDType::F32 : *dtype;
      declaredTypes[init.name()] = RankedTensorType::get(
          shape, hostDTypeToVoElement(&context, stored));
      continue;
    }
    HostTensor tensor;
    if (Error e = readTensor(init, tensor))
      return std::move(e);
    auto it = trainable.find(init.name());
    if (it != trainable.end())
      it->second = std::move(tensor);
    else
      values[init.name()].constant = std::move(tensor);
  }

  // Graph inputs that are not initializers become function arguments.
  SmallVector<Type> argTypes;
  SmallVector<std::string> argNames;
  for (const onnx::ValueInfoProto &input : graph.input()) {
    if (values.count(input.name()) || trainable.count(input.name()))
      continue;
    auto type = inputType(input);
    if (!type)
      return type.takeError();
    argTypes.push_back(*type);
    argNames.push_back(input.name());
  }

  builder.setInsertionPointToEnd(module.getBody());
  auto func = func::FuncOp::create(builder, fileLoc, "forward",
                                   builder.getFunctionType(argTypes, {}));
  Block *body = func.addEntryBlock();
  for (auto [index, name] : llvm::enumerate(argNames)) {
    values[name].value = body->getArgument(index);
    func.setArgAttr(index, "vo.name", builder.getStringAttr(name));
  }

  builder.setInsertionPointToEnd(body);
  for (const onnx::NodeProto &node : graph.node())
    if (Error e = importNode(node))
      return std::move(e);

  SmallVector<Value> results;
  for (const onnx::ValueInfoProto &output : graph.output()) {
    auto it = values.find(output.name());
    if (it == values.end())
      return makeError("graph output '" + output.name() +
                       "' is produced by no node");
    Value value = it->second.value
                      ? it->second.value
                      : materialize(*it->second.constant, fileLoc);
    results.push_back(value);
  }
  func::ReturnOp::create(builder, fileLoc, results);
  func.setType(builder.getFunctionType(argTypes, ValueRange(results).getTypes()));
  for (auto [index, output] : llvm::enumerate(graph.output()))
    func.setResultAttr(index, "vo.name", builder.getStringAttr(output.name()));

  // Parameters no node reads are dropped by the exporter already; declare
  // the rest in initializer order so the output is stable.
  builder.setInsertionPoint(func);
  for (const onnx::TensorProto &init : graph.initializer()) {
    if (!trainable.count(init.name()) || !paramRefs.count(init.name()))
      continue;
    if (auto declared = declaredTypes.find(init.name());
        declared != declaredTypes.end()) {
      RankedTensorType type = declared->second;
      auto rule =
          type.getRank() == 1
              ? vo::InitRuleAttr::get(&context, vo::InitKind::ones,
                                      llvm::APFloat(0.0))
              : vo::InitRuleAttr::get(&context, vo::InitKind::normal,
                                      llvm::APFloat(options.randomInitStd));
      vo::ParameterOp::create(builder, fileLoc,
                              builder.getStringAttr(init.name()),
                              TypeAttr::get(type), /*initial_value=*/nullptr,
                              rule);
      continue;
    }
    const HostTensor &tensor = trainable[init.name()];
    HostTensor stored = tensor.dtype() == HostDType::F64
                            ? tensor.castTo(HostDType::F32)
                            : tensor;
    auto type = RankedTensorType::get(
        stored.shape(), hostDTypeToVoElement(&context, stored.dtype()));
    auto blob = HeapAsmResourceBlob::allocateAndCopyWithAlign(
        llvm::ArrayRef<char>(reinterpret_cast<const char *>(
                                 stored.bytes().data()),
                             stored.bytes().size()),
        alignof(double));
    auto value = DenseResourceElementsAttr::get(type, init.name(),
                                                std::move(blob));
    vo::ParameterOp::create(builder, fileLoc, builder.getStringAttr(init.name()),
                            TypeAttr::get(type), value,
                            /*init=*/vo::InitRuleAttr());
  }

  if (failed(verify(module)))
    return makeError("the imported module does not verify (see the "
                     "diagnostics above)");
  return std::move(owned);
}

//===----------------------------------------------------------------------===//
// Node helpers
//===----------------------------------------------------------------------===//

Error OnnxImporter::nodeError(const onnx::NodeProto &node,
                              const llvm::Twine &message) {
  return makeError("node '" + node.name() + "' (" + node.op_type() +
                   "): " + message);
}

bool OnnxImporter::hasInput(const onnx::NodeProto &node, int index) const {
  return index < node.input_size() && !node.input(index).empty();
}

Expected<const ImportedValue *>
OnnxImporter::lookup(const onnx::NodeProto &node, int index) {
  if (!hasInput(node, index))
    return nodeError(node, "expects input " + llvm::Twine(index));
  StringRef name = node.input(index);
  if (trainable.count(name)) {
    // Parameters are SSA values only; keep a record so operand() works.
    ImportedValue &entry = values[name];
    if (!entry.value)
      entry.value = paramRef(name, locOf(node));
    return &entry;
  }
  auto it = values.find(name);
  if (it == values.end())
    return nodeError(node, "input '" + name + "' is not defined before use");
  return &it->second;
}

Expected<Value> OnnxImporter::operand(const onnx::NodeProto &node, int index) {
  auto entry = lookup(node, index);
  if (!entry)
    return entry.takeError();
  ImportedValue &value = values[node.input(index)];
  if (!value.value)
    value.value = materialize(*value.constant, locOf(node));
  return value.value;
}

Expected<HostTensor> OnnxImporter::constantOperand(const onnx::NodeProto &node,
                                                   int index, StringRef what) {
  auto entry = lookup(node, index);
  if (!entry)
    return entry.takeError();
  if (!(*entry)->constant)
    return nodeError(node, "expects " + what +
                               " to be a constant; it is computed at run time");
  return *(*entry)->constant;
}

Expected<std::vector<int64_t>> OnnxImporter::shapeOf(const onnx::NodeProto &node,
                                                     int index) {
  auto entry = lookup(node, index);
  if (!entry)
    return entry.takeError();
  if ((*entry)->constant) {
    llvm::ArrayRef<int64_t> shape = (*entry)->constant->shape();
    return std::vector<int64_t>(shape.begin(), shape.end());
  }
  auto shape = cast<RankedTensorType>((*entry)->value.getType()).getShape();
  return std::vector<int64_t>(shape.begin(), shape.end());
}

bool OnnxImporter::allInputsConstant(const onnx::NodeProto &node) {
  for (int i = 0; i < node.input_size(); ++i) {
    if (node.input(i).empty())
      continue;
    if (trainable.count(node.input(i)))
      return false;
    auto it = values.find(node.input(i));
    if (it == values.end() || !it->second.constant)
      return false;
  }
  return true;
}

const onnx::AttributeProto *OnnxImporter::attr(const onnx::NodeProto &node,
                                               StringRef name) const {
  for (const onnx::AttributeProto &a : node.attribute())
    if (a.name() == name)
      return &a;
  return nullptr;
}

int64_t OnnxImporter::intAttr(const onnx::NodeProto &node, StringRef name,
                              int64_t fallback) const {
  const onnx::AttributeProto *a = attr(node, name);
  return a ? a->i() : fallback;
}

float OnnxImporter::floatAttr(const onnx::NodeProto &node, StringRef name,
                              float fallback) const {
  const onnx::AttributeProto *a = attr(node, name);
  return a ? a->f() : fallback;
}

std::vector<int64_t> OnnxImporter::intsAttr(const onnx::NodeProto &node,
                                            StringRef name) const {
  const onnx::AttributeProto *a = attr(node, name);
  if (!a)
    return {};
  return std::vector<int64_t>(a->ints().begin(), a->ints().end());
}

std::string OnnxImporter::stringAttr(const onnx::NodeProto &node,
                                     StringRef name, StringRef fallback) const {
  const onnx::AttributeProto *a = attr(node, name);
  return a ? a->s() : fallback.str();
}

Expected<int64_t> OnnxImporter::normalizeAxis(const onnx::NodeProto &node,
                                              int64_t axis, int64_t rank) {
  int64_t normalized = axis < 0 ? axis + rank : axis;
  if (normalized < 0 || normalized >= rank)
    return nodeError(node, "axis " + llvm::Twine(axis) +
                               " is out of range for rank " +
                               llvm::Twine(rank));
  return normalized;
}

Location OnnxImporter::locOf(const onnx::NodeProto &node) {
  return NameLoc::get(builder.getStringAttr(node.name()));
}

void OnnxImporter::define(const onnx::NodeProto &node, int index, Value value) {
  values[node.output(index)] = ImportedValue{std::nullopt, value};
}

void OnnxImporter::define(const onnx::NodeProto &node, int index,
                          HostTensor constant) {
  values[node.output(index)] = ImportedValue{std::move(constant), Value()};
}

Value OnnxImporter::materialize(const HostTensor &constant, Location loc) {
  HostTensor stored = constant;
  if (stored.dtype() == HostDType::F64)
    stored = stored.castTo(HostDType::F32);
  else if (stored.dtype() == HostDType::I8 || stored.dtype() == HostDType::U8)
    stored = stored.castTo(HostDType::I32);
  Type element = hostDTypeToVoElement(&context, stored.dtype());
  auto type = RankedTensorType::get(stored.shape(), element);
  DenseElementsAttr attr;
  if (stored.dtype() == HostDType::Bool) {
    std::vector<int64_t> flags = stored.toInt64();
    SmallVector<bool> bits(flags.begin(), flags.end());
    attr = DenseElementsAttr::get(type, llvm::ArrayRef<bool>(bits));
  } else if (stored.isSplat()) {
    int64_t width = hostDTypeBytes(stored.dtype());
    llvm::ArrayRef<char> first(
        reinterpret_cast<const char *>(stored.bytes().data()), width);
    attr = DenseElementsAttr::getFromRawBuffer(
        RankedTensorType::get({}, element), first);
    attr = SplatElementsAttr::get(type, attr.getSplatValue<Attribute>());
  } else {
    attr = DenseElementsAttr::getFromRawBuffer(
        type, llvm::ArrayRef<char>(
                  reinterpret_cast<const char *>(stored.bytes().data()),
                  stored.bytes().size()));
  }
  return vo::ConstantOp::create(builder, loc, attr);
}

Value OnnxImporter::paramRef(StringRef name, Location loc) {
  auto it = paramRefs.find(name);
  if (it != paramRefs.end())
    return it->second;
  RankedTensorType type;
  if (auto declared = declaredTypes.find(name); declared != declaredTypes.end()) {
    type = declared->second;
  } else {
    const HostTensor &tensor = trainable[name];
    HostDType dtype =
        tensor.dtype() == HostDType::F64 ? HostDType::F32 : tensor.dtype();
    type = RankedTensorType::get(tensor.shape(),
                                 hostDTypeToVoElement(&context, dtype));
  }
  // Reads sit at the top of the function, in first-use order, so every later
  // use is dominated.
  OpBuilder::InsertionGuard guard(builder);
  if (lastParamRef)
    builder.setInsertionPointAfter(lastParamRef);
  else
    builder.setInsertionPointToStart(builder.getInsertionBlock());
  auto ref = vo::ParamOp::create(builder, loc, type,
                                 FlatSymbolRefAttr::get(&context, name));
  lastParamRef = ref;
  paramRefs[name] = ref;
  return ref;
}

Error OnnxImporter::importNode(const onnx::NodeProto &node) {
  if (!node.domain().empty() && node.domain() != "ai.onnx")
    return makeError("unsupported ONNX op '" + node.domain() +
                     "::" + node.op_type() + "' (node '" + node.name() +
                     "', opset " + llvm::Twine(opset) + ")");
  auto it = handlers().find(node.op_type());
  if (it == handlers().end())
    return makeError("unsupported ONNX op '" + node.op_type() + "' (node '" +
                     node.name() + "', opset " + llvm::Twine(opset) + ")");
  return it->second(*this, node);
}

Error OnnxImporter::defineReshaped(const onnx::NodeProto &node, int inputIndex,
                                   llvm::ArrayRef<int64_t> shape) {
  auto entry = lookup(node, inputIndex);
  if (!entry)
    return entry.takeError();
  if ((*entry)->constant) {
    auto reshaped = reshapeHost(*(*entry)->constant, shape);
    if (!reshaped)
      return nodeError(node, llvm::toString(reshaped.takeError()));
    define(node, 0, std::move(*reshaped));
    return Error::success();
  }
  auto input = operand(node, inputIndex);
  if (!input)
    return input.takeError();
  int64_t count = 1;
  for (int64_t d : shape)
    count *= d;
  if (count != cast<RankedTensorType>(input->getType()).getNumElements())
    return nodeError(node, "cannot reshape " +
                               formatShape(*shapeOf(node, inputIndex)) +
                               " to " + formatShape(shape));
  define(node, 0, vo::ReshapeOp::create(builder, locOf(node), *input, shape));
  return Error::success();
}

//===----------------------------------------------------------------------===//
// Op handlers
//===----------------------------------------------------------------------===//

Error OnnxImporter::importElementwise(const onnx::NodeProto &node,
                                      StringRef kind) {
  if (node.input_size() < 2)
    return nodeError(node, "expects two inputs");
  if (node.input_size() > 2 && kind != "max" && kind != "min")
    return nodeError(node, "expects two inputs");
  if (allInputsConstant(node)) {
    auto acc = constantOperand(node, 0, "input");
    if (!acc)
      return acc.takeError();
    HostTensor result = *acc;
    for (int i = 1; i < node.input_size(); ++i) {
      auto rhs = constantOperand(node, i, "input");
      if (!rhs)
        return rhs.takeError();
      HostTensor right = kind == "pow" ? rhs->castTo(result.dtype()) : *rhs;
      auto folded = foldElementwise(kind, result, right);
      if (!folded)
        return nodeError(node, llvm::toString(folded.takeError()));
      result = std::move(*folded);
    }
    define(node, 0, std::move(result));
    return Error::success();
  }

  auto lhs = operand(node, 0);
  if (!lhs)
    return lhs.takeError();
  Value acc = *lhs;
  Location loc = locOf(node);
  for (int i = 1; i < node.input_size(); ++i) {
    Type element = cast<RankedTensorType>(acc.getType()).getElementType();
    Value rhs;
    // A constant exponent of another dtype (Pow(x, 2)) converts on the host.
    auto entry = lookup(node, i);
    if (!entry)
      return entry.takeError();
    if ((*entry)->constant && kind == "pow" && isa<FloatType>(element) &&
        element != hostDTypeToVoElement(&context, (*entry)->constant->dtype())) {
      HostDType target = element.isF32()    ? HostDType::F32
                         : element.isBF16() ? HostDType::BF16
                                            : HostDType::F16;
      rhs = materialize((*entry)->constant->castTo(target), loc);
    } else {
      auto value = operand(node, i);
      if (!value)
        return value.takeError();
      rhs = *value;
    }
    if (cast<RankedTensorType>(rhs.getType()).getElementType() != element)
      return nodeError(node, "operands have different element types");
    auto lhsShape = cast<RankedTensorType>(acc.getType()).getShape();
    auto rhsShape = cast<RankedTensorType>(rhs.getType()).getShape();
    if (auto shape = broadcastHostShapes(lhsShape, rhsShape); !shape)
      return nodeError(node, llvm::toString(shape.takeError()));
    if (kind == "add")
      acc = vo::AddOp::create(builder, loc, acc, rhs);
    else if (kind == "sub")
      acc = vo::SubOp::create(builder, loc, acc, rhs);
    else if (kind == "mul")
      acc = vo::MulOp::create(builder, loc, acc, rhs);
    else if (kind == "div")
      acc = vo::DivOp::create(builder, loc, acc, rhs);
    else if (kind == "pow")
      acc = vo::PowOp::create(builder, loc, acc, rhs);
    else if (kind == "max")
      acc = vo::MaximumOp::create(builder, loc, acc, rhs);
    else if (kind == "min")
      acc = vo::MinimumOp::create(builder, loc, acc, rhs);
    else {
      vo::CmpPredicate predicate =
          llvm::StringSwitch<vo::CmpPredicate>(kind)
              .Case("eq", vo::CmpPredicate::eq)
              .Case("lt", vo::CmpPredicate::lt)
              .Case("gt", vo::CmpPredicate::gt)
              .Case("le", vo::CmpPredicate::le)
              .Default(vo::CmpPredicate::ge);
      acc = vo::CmpOp::create(builder, loc, predicate, acc, rhs);
    }
  }
  define(node, 0, acc);
  return Error::success();
}

Error OnnxImporter::importUnary(const onnx::NodeProto &node, StringRef kind) {
  if (allInputsConstant(node) && kind != "is_nan") {
    auto input = constantOperand(node, 0, "input");
    if (!input)
      return input.takeError();
    if (kind == "identity") {
      define(node, 0, *input);
      return Error::success();
    }
    if (kind == "neg" && !isFloatingPoint(input->dtype())) {
      std::vector<int64_t> v = input->toInt64();
      for (int64_t &x : v)
        x = -x;
      define(node, 0, HostTensor::fromInt64(input->shape(), v).castTo(
                          input->dtype()));
      return Error::success();
    }
    if (!isFloatingPoint(input->dtype()))
      return nodeError(node, "expects a floating-point input");
    std::vector<double> v = input->toDouble();
    for (double &x : v) {
      if (kind == "neg") x = -x;
      else if (kind == "sqrt") x = std::sqrt(x);
      else if (kind == "reciprocal") x = 1.0 / x;
      else if (kind == "exp") x = std::exp(x);
      else if (kind == "log") x = std::log(x);
      else if (kind == "tanh") x = std::tanh(x);
      else if (kind == "erf") x = std::erf(x);
      else if (kind == "cos") x = std::cos(x);
      else if (kind == "sin") x = std::sin(x);
      else if (kind == "sigmoid") x = 1.0 / (1.0 + std::exp(-x));
    }
    define(node, 0, HostTensor::fromDouble(input->dtype(), input->shape(), v));
    return Error::success();
  }
  auto input = operand(node, 0);
  if (!input)
    return input.takeError();
  Location loc = locOf(node);
  if (kind == "identity") {
    define(node, 0, *input);
    return Error::success();
  }
  if (kind != "neg" &&
      !isa<FloatType>(cast<RankedTensorType>(input->getType()).getElementType()))
    return nodeError(node, "expects a floating-point input");
  Value result;
  if (kind == "neg") result = vo::NegOp::create(builder, loc, *input);
  else if (kind == "sqrt") result = vo::SqrtOp::create(builder, loc, *input);
  else if (kind == "reciprocal")
    result = vo::ReciprocalOp::create(builder, loc, *input);
  else if (kind == "exp") result = vo::ExpOp::create(builder, loc, *input);
  else if (kind == "log") result = vo::LogOp::create(builder, loc, *input);
  else if (kind == "tanh") result = vo::TanhOp::create(builder, loc, *input);
  else if (kind == "erf") result = vo::ErfOp::create(builder, loc, *input);
  else if (kind == "cos") result = vo::CosOp::create(builder, loc, *input);
  else if (kind == "sin") result = vo::SinOp::create(builder, loc, *input);
  else if (kind == "sigmoid")
    result = vo::SigmoidOp::create(builder, loc, *input);
  else result = vo::IsNanOp::create(builder, loc, *input);
  define(node, 0, result);
  return Error::success();
}

Error OnnxImporter::importConstant(const onnx::NodeProto &node) {
  if (const onnx::AttributeProto *a = attr(node, "value")) {
    HostTensor tensor;
    if (Error e = readTensor(a->t(), tensor))
      return nodeError(node, llvm::toString(std::move(e)));
    define(node, 0, std::move(tensor));
  } else if (const onnx::AttributeProto *a = attr(node, "value_float")) {
    define(node, 0, HostTensor::fromDouble(HostDType::F32, {}, {a->f()}));
  } else if (const onnx::AttributeProto *a = attr(node, "value_floats")) {
    std::vector<double> v(a->floats().begin(), a->floats().end());
    define(node, 0,
           HostTensor::fromDouble(HostDType::F32,
                                  {static_cast<int64_t>(v.size())}, v));
  } else if (const onnx::AttributeProto *a = attr(node, "value_int")) {
    define(node, 0, HostTensor::fromInt64({}, {a->i()}));
  } else if (const onnx::AttributeProto *a = attr(node, "value_ints")) {
    std::vector<int64_t> v(a->ints().begin(), a->ints().end());
    define(node, 0,
           HostTensor::fromInt64({static_cast<int64_t>(v.size())}, v));
  } else {
    return nodeError(node, "has no value attribute veomni-import reads "
                           "(value, value_float(s), value_int(s))");
  }
  return Error::success();
}

Error OnnxImporter::importConstantOfShape(const onnx::NodeProto &node) {
  auto shape = constantOperand(node, 0, "shape");
  if (!shape)
    return shape.takeError();
  HostTensor fill = HostTensor::fromDouble(HostDType::F32, {1}, {0.0});
  if (const onnx::AttributeProto *a = attr(node, "value"))
    if (Error e = readTensor(a->t(), fill))
      return nodeError(node, llvm::toString(std::move(e)));
  auto scalar = reshapeHost(fill, {});
  if (!scalar)
    return nodeError(node, llvm::toString(scalar.takeError()));
  auto result = broadcastHost(*scalar, shape->toInt64());
  if (!result)
    return nodeError(node, llvm::toString(result.takeError()));
  define(node, 0, std::move(*result));
  return Error::success();
}

Error OnnxImporter::importShape(const onnx::NodeProto &node) {
  auto shape = shapeOf(node, 0);
  if (!shape)
    return shape.takeError();
  int64_t rank = shape->size();
  int64_t start = intAttr(node, "start", 0), end = intAttr(node, "end", rank);
  start = std::clamp<int64_t>(start < 0 ? start + rank : start, 0, rank);
  end = std::clamp<int64_t>(end < 0 ? end + rank : end, 0, rank);
  std::vector<int64_t> dims(shape->begin() + start,
                            shape->begin() + std::max(start, end));
  define(node, 0,
         HostTensor::fromInt64({static_cast<int64_t>(dims.size())}, dims));
  return Error::success();
}

Error OnnxImporter::importRange(const onnx::NodeProto &node) {
  auto start = constantOperand(node, 0, "start");
  if (!start)
    return start.takeError();
  auto limit = constantOperand(node, 1, "limit");
  if (!limit)
    return limit.takeError();
  auto delta = constantOperand(node, 2, "delta");
  if (!delta)
    return delta.takeError();
  double s = start->toDouble()[0], l = limit->toDouble()[0],
         d = delta->toDouble()[0];
  if (d == 0)
    return nodeError(node, "has delta 0");
  int64_t count = std::max<int64_t>(0, std::ceil((l - s) / d));
  std::vector<double> v(count);
  for (int64_t i = 0; i < count; ++i)
    v[i] = s + i * d;
  define(node, 0, HostTensor::fromDouble(start->dtype(), {count}, v));
  return Error::success();
}

Error OnnxImporter::importCast(const onnx::NodeProto &node) {
  auto dtype = hostDTypeFromOnnx(intAttr(node, "to", 0));
  if (!dtype)
    return nodeError(node, llvm::toString(dtype.takeError()));
  if (allInputsConstant(node)) {
    auto input = constantOperand(node, 0, "input");
    if (!input)
      return input.takeError();
    define(node, 0, input->castTo(*dtype));
    return Error::success();
  }
  if (*dtype == HostDType::F64 || *dtype == HostDType::I8 ||
      *dtype == HostDType::U8)
    return nodeError(node, llvm::Twine("casts to ") + hostDTypeName(*dtype) +
                               ", which vo does not compute in");
  auto input = operand(node, 0);
  if (!input)
    return input.takeError();
  define(node, 0,
         vo::CastOp::create(builder, locOf(node), *input,
                            hostDTypeToVoElement(&context, *dtype)));
  return Error::success();
}

Error OnnxImporter::importReshapeLike(const onnx::NodeProto &node) {
  auto inShape = shapeOf(node, 0);
  if (!inShape)
    return inShape.takeError();
  int64_t rank = inShape->size();
  std::vector<int64_t> shape;
  StringRef op = node.op_type();

  if (op == "Reshape") {
    auto target = constantOperand(node, 1, "the target shape");
    if (!target)
      return target.takeError();
    shape = target->toInt64();
    bool allowZero = intAttr(node, "allowzero", 0) != 0;
    int64_t known = 1, inferred = -1;
    for (auto [i, d] : llvm::enumerate(shape)) {
      if (d == 0 && !allowZero) {
        if (static_cast<int64_t>(i) >= rank)
          return nodeError(node, "copies dim " + llvm::Twine(i) +
                                     " of a rank-" + llvm::Twine(rank) +
                                     " input");
        d = (*inShape)[i];
      }
      if (d == -1) {
        if (inferred >= 0)
          return nodeError(node, "has more than one -1 in its shape");
        inferred = i;
        continue;
      }
      known *= d;
    }
    int64_t count = 1;
    for (int64_t d : *inShape)
      count *= d;
    if (inferred >= 0) {
      if (known == 0 || count % known != 0)
        return nodeError(node, "cannot reshape " + formatShape(*inShape) +
                                   " to " + formatShape(shape));
      shape[inferred] = count / known;
    }
  } else if (op == "Unsqueeze" || op == "Squeeze") {
    std::vector<int64_t> axes;
    if (hasInput(node, 1)) {
      auto axesTensor = constantOperand(node, 1, "axes");
      if (!axesTensor)
        return axesTensor.takeError();
      axes = axesTensor->toInt64();
    } else {
      axes = intsAttr(node, "axes");
    }
    if (op == "Unsqueeze") {
      int64_t outRank = rank + axes.size();
      std::vector<bool> inserted(outRank, false);
      for (int64_t a : axes) {
        auto axis = normalizeAxis(node, a, outRank);
        if (!axis)
          return axis.takeError();
        inserted[*axis] = true;
      }
      for (int64_t i = 0, next = 0; i < outRank; ++i)
        shape.push_back(inserted[i] ? 1 : (*inShape)[next++]);
    } else {
      std::vector<bool> removed(rank, axes.empty());
      for (int64_t a : axes) {
        auto axis = normalizeAxis(node, a, rank);
        if (!axis)
          return axis.takeError();
        if ((*inShape)[*axis] != 1)
          return nodeError(node, "squeezes dim " + llvm::Twine(*axis) +
                                     " of size " +
                                     llvm::Twine((*inShape)[*axis]));
        removed[*axis] = true;
      }
      for (int64_t i = 0; i < rank; ++i)
        if (!removed[i] || (*inShape)[i] != 1)
          shape.push_back((*inShape)[i]);
    }
  } else { // Flatten
    auto axis = intAttr(node, "axis", 1);
    if (axis < 0)
      axis += rank;
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < rank; ++i)
      (i < axis ? outer : inner) *= (*inShape)[i];
    shape = {outer, inner};
  }
  return defineReshaped(node, 0, shape);
}

Error OnnxImporter::importTranspose(const onnx::NodeProto &node) {
  auto inShape = shapeOf(node, 0);
  if (!inShape)
    return inShape.takeError();
  std::vector<int64_t> perm = intsAttr(node, "perm");
  if (perm.empty())
    for (int64_t i = inShape->size() - 1; i >= 0; --i)
      perm.push_back(i);
  if (perm.size() != inShape->size())
    return nodeError(node, "has perm of length " + llvm::Twine(perm.size()) +
                               " for a rank-" + llvm::Twine(inShape->size()) +
                               " input");
  if (allInputsConstant(node)) {
    auto input = constantOperand(node, 0, "input");
    if (!input)
      return input.takeError();
    define(node, 0, transposeHost(*input, perm));
    return Error::success();
  }
  auto input = operand(node, 0);
  if (!input)
    return input.takeError();
  define(node, 0, vo::TransposeOp::create(builder, locOf(node), *input, perm));
  return Error::success();
}

Error OnnxImporter::importSlice(const onnx::NodeProto &node) {
  auto inShape = shapeOf(node, 0);
  if (!inShape)
    return inShape.takeError();
  int64_t rank = inShape->size();
  auto starts = constantOperand(node, 1, "starts");
  if (!starts)
    return starts.takeError();
  auto ends = constantOperand(node, 2, "ends");
  if (!ends)
    return ends.takeError();
  std::vector<int64_t> s = starts->toInt64(), e = ends->toInt64(), axes, steps;
  if (hasInput(node, 3)) {
    auto t = constantOperand(node, 3, "axes");
    if (!t)
      return t.takeError();
    axes = t->toInt64();
  } else {
    for (int64_t i = 0, n = s.size(); i < n; ++i)
      axes.push_back(i);
  }
  if (hasInput(node, 4)) {
    auto t = constantOperand(node, 4, "steps");
    if (!t)
      return t.takeError();
    steps = t->toInt64();
  } else {
    steps.assign(s.size(), 1);
  }
  if (e.size() != s.size() || axes.size() != s.size() ||
      steps.size() != s.size())
    return nodeError(node, "has starts, ends, axes and steps of different "
                           "lengths");
  SmallVector<int64_t> start(rank, 0), limit(inShape->begin(), inShape->end()),
      stride(rank, 1);
  for (size_t i = 0; i < s.size(); ++i) {
    auto axis = normalizeAxis(node, axes[i], rank);
    if (!axis)
      return axis.takeError();
    int64_t dim = (*inShape)[*axis];
    if (steps[i] < 1)
      return nodeError(node, "has step " + llvm::Twine(steps[i]) +
                                 "; only positive steps are supported");
    auto clampIndex = [&](int64_t v) {
      if (v < 0)
        v += dim;
      return std::clamp<int64_t>(v, 0, dim);
    };
    start[*axis] = clampIndex(s[i]);
    limit[*axis] = std::max(start[*axis], clampIndex(e[i]));
    stride[*axis] = steps[i];
  }
  if (allInputsConstant(node)) {
    auto input = constantOperand(node, 0, "input");
    if (!input)
      return input.takeError();
    define(node, 0, sliceHost(*input, start, limit, stride));
    return Error::success();
  }
  auto input = operand(node, 0);
  if (!input)
    return input.takeError();
  define(node, 0,
         vo::SliceOp::create(builder, locOf(node), *input, start, limit,
                             stride));
  return Error::success();
}

Error OnnxImporter::importConcat(const onnx::NodeProto &node) {
  auto firstShape = shapeOf(node, 0);
  if (!firstShape)
    return firstShape.takeError();
  auto axis = normalizeAxis(node, intAttr(node, "axis", 0), firstShape->size());
  if (!axis)
    return axis.takeError();
  if (allInputsConstant(node)) {
    SmallVector<HostTensor> inputs;
    for (int i = 0; i < node.input_size(); ++i) {
      auto t = constantOperand(node, i, "input");
      if (!t)
        return t.takeError();
      inputs.push_back(std::move(*t));
    }
    auto result = concatHost(inputs, *axis);
    if (!result)
      return nodeError(node, llvm::toString(result.takeError()));
    define(node, 0, std::move(*result));
    return Error::success();
  }
  SmallVector<Value> inputs;
  for (int i = 0; i < node.input_size(); ++i) {
    auto v = operand(node, i);
    if (!v)
      return v.takeError();
    inputs.push_back(*v);
  }
  define(node, 0, vo::ConcatOp::create(builder, locOf(node), inputs, *axis));
  return Error::success();
}

Error OnnxImporter::importExpand(const onnx::NodeProto &node) {
  auto inShape = shapeOf(node, 0);
  if (!inShape)
    return inShape.takeError();
  auto target = constantOperand(node, 1, "the target shape");
  if (!target)
    return target.takeError();
  // ONNX Expand broadcasts both ways: the result is the broadcast shape.
  auto shape = broadcastHostShapes(*inShape, target->toInt64());
  if (!shape)
    return nodeError(node, llvm::toString(shape.takeError()));
  if (allInputsConstant(node)) {
    auto input = constantOperand(node, 0, "input");
    if (!input)
      return input.takeError();
    auto result = broadcastHost(*input, *shape);
    if (!result)
      return nodeError(node, llvm::toString(result.takeError()));
    define(node, 0, std::move(*result));
    return Error::success();
  }
  auto input = operand(node, 0);
  if (!input)
    return input.takeError();
  define(node, 0,
         vo::BroadcastToOp::create(builder, locOf(node), *input, *shape));
  return Error::success();
}

Error OnnxImporter::importGather(const onnx::NodeProto &node) {
  auto dataShape = shapeOf(node, 0);
  if (!dataShape)
    return dataShape.takeError();
  auto axis = normalizeAxis(node, intAttr(node, "axis", 0), dataShape->size());
  if (!axis)
    return axis.takeError();
  if (allInputsConstant(node)) {
    auto data = constantOperand(node, 0, "data");
    if (!data)
      return data.takeError();
    auto indices = constantOperand(node, 1, "indices");
    if (!indices)
      return indices.takeError();
    auto result = gatherHost(*data, *indices, *axis);
    if (!result)
      return nodeError(node, llvm::toString(result.takeError()));
    define(node, 0, std::move(*result));
    return Error::success();
  }
  auto data = operand(node, 0);
  if (!data)
    return data.takeError();
  auto indices = operand(node, 1);
  if (!indices)
    return indices.takeError();
  auto dataType = cast<RankedTensorType>(data->getType());
  auto indexType = cast<RankedTensorType>(indices->getType());
  bool integerIndices = indexType.getElementType().isInteger(64) ||
                        indexType.getElementType().isInteger(32);
  if (*axis != 0 || dataType.getRank() != 2 ||
      !isa<FloatType>(dataType.getElementType()) || !integerIndices)
    return nodeError(node,
                     "reads only an embedding lookup (float [vocab, hidden] "
                     "data, integer indices, axis 0) at run time, got data " +
                         formatShape(dataType.getShape()) + " and axis " +
                         llvm::Twine(*axis));
  define(node, 0,
         vo::EmbeddingOp::create(builder, locOf(node), *data, *indices));
  return Error::success();
}

Error OnnxImporter::importWhere(const onnx::NodeProto &node) {
  if (allInputsConstant(node)) {
    auto cond = constantOperand(node, 0, "condition");
    if (!cond)
      return cond.takeError();
    auto onTrue = constantOperand(node, 1, "X");
    if (!onTrue)
      return onTrue.takeError();
    auto onFalse = constantOperand(node, 2, "Y");
    if (!onFalse)
      return onFalse.takeError();
    auto result = foldSelect(*cond, *onTrue, *onFalse);
    if (!result)
      return nodeError(node, llvm::toString(result.takeError()));
    define(node, 0, std::move(*result));
    return Error::success();
  }
  auto cond = operand(node, 0);
  if (!cond)
    return cond.takeError();
  auto onTrue = operand(node, 1);
  if (!onTrue)
    return onTrue.takeError();
  auto onFalse = operand(node, 2);
  if (!onFalse)
    return onFalse.takeError();
  define(node, 0,
         vo::SelectOp::create(builder, locOf(node), *cond, *onTrue, *onFalse));
  return Error::success();
}

Error OnnxImporter::importMatMul(const onnx::NodeProto &node) {
  auto lhs = operand(node, 0);
  if (!lhs)
    return lhs.takeError();
  auto rhs = operand(node, 1);
  if (!rhs)
    return rhs.takeError();
  auto lhsType = cast<RankedTensorType>(lhs->getType());
  auto rhsType = cast<RankedTensorType>(rhs->getType());
  if (lhsType.getRank() < 2 || rhsType.getRank() < 2)
    return nodeError(node, "has a rank-1 operand; only matrices and batches "
                           "of matrices are supported");
  int64_t k = lhsType.getShape().back();
  int64_t rhsK = rhsType.getShape()[rhsType.getRank() - 2];
  if (k != rhsK)
    return nodeError(node, "contracts " + formatShape(lhsType.getShape()) +
                               " with " + formatShape(rhsType.getShape()));
  define(node, 0, vo::MatmulOp::create(builder, locOf(node), *lhs, *rhs));
  return Error::success();
}

Error OnnxImporter::importGemm(const onnx::NodeProto &node) {
  if (floatAttr(node, "alpha", 1.0f) != 1.0f ||
      floatAttr(node, "beta", 1.0f) != 1.0f)
    return nodeError(node, "has alpha or beta other than 1");
  auto a = operand(node, 0);
  if (!a)
    return a.takeError();
  auto b = operand(node, 1);
  if (!b)
    return b.takeError();
  Location loc = locOf(node);
  bool transA = intAttr(node, "transA", 0), transB = intAttr(node, "transB", 0);
  auto aShape = cast<RankedTensorType>(a->getType()).getShape();
  auto bShape = cast<RankedTensorType>(b->getType()).getShape();
  if (aShape.size() != 2 || bShape.size() != 2 ||
      aShape[transA ? 0 : 1] != bShape[transB ? 1 : 0])
    return nodeError(node, "contracts " + formatShape(aShape) + " with " +
                               formatShape(bShape));
  Value result = vo::MatmulOp::create(builder, loc, *a, *b, transA, transB);
  if (hasInput(node, 2)) {
    auto c = operand(node, 2);
    if (!c)
      return c.takeError();
    result = vo::AddOp::create(builder, loc, result, *c);
  }
  define(node, 0, result);
  return Error::success();
}

Error OnnxImporter::importSoftmax(const onnx::NodeProto &node, bool log) {
  auto input = operand(node, 0);
  if (!input)
    return input.takeError();
  auto axis = normalizeAxis(node, intAttr(node, "axis", -1),
                            cast<RankedTensorType>(input->getType()).getRank());
  if (!axis)
    return axis.takeError();
  if (log)
    define(node, 0,
           vo::LogSoftmaxOp::create(builder, locOf(node), *input, *axis));
  else
    define(node, 0, vo::SoftmaxOp::create(builder, locOf(node), *input, *axis));
  return Error::success();
}

Error OnnxImporter::importReduce(const onnx::NodeProto &node, StringRef kind) {
  auto input = operand(node, 0);
  if (!input)
    return input.takeError();
  int64_t rank = cast<RankedTensorType>(input->getType()).getRank();
  std::vector<int64_t> axes;
  if (hasInput(node, 1)) {
    auto t = constantOperand(node, 1, "axes");
    if (!t)
      return t.takeError();
    axes = t->toInt64();
  } else {
    axes = intsAttr(node, "axes");
  }
  if (axes.empty()) {
    if (intAttr(node, "noop_with_empty_axes", 0)) {
      define(node, 0, *input);
      return Error::success();
    }
    for (int64_t i = 0; i < rank; ++i)
      axes.push_back(i);
  }
  SmallVector<int64_t> normalized;
  for (int64_t a : axes) {
    auto axis = normalizeAxis(node, a, rank);
    if (!axis)
      return axis.takeError();
    normalized.push_back(*axis);
  }
  llvm::sort(normalized);
  bool keepDims = intAttr(node, "keepdims", 1) != 0;
  Location loc = locOf(node);
  Value result;
  if (kind == "mean")
    result = vo::ReduceMeanOp::create(builder, loc, *input, normalized, keepDims);
  else if (kind == "sum")
    result = vo::ReduceSumOp::create(builder, loc, *input, normalized, keepDims);
  else
    result = vo::ReduceMaxOp::create(builder, loc, *input, normalized, keepDims);
  define(node, 0, result);
  return Error::success();
}

// Constant padding becomes a concat with constant blocks, so vo needs no pad.
Error OnnxImporter::importPad(const onnx::NodeProto &node) {
  if (stringAttr(node, "mode", "constant") != "constant")
    return nodeError(node, "has mode '" + stringAttr(node, "mode", "") +
                               "'; only constant padding is supported");
  auto inShape = shapeOf(node, 0);
  if (!inShape)
    return inShape.takeError();
  int64_t rank = inShape->size();
  auto pads = constantOperand(node, 1, "pads");
  if (!pads)
    return pads.takeError();
  std::vector<int64_t> p = pads->toInt64();
  std::vector<int64_t> axes;
  if (hasInput(node, 3)) {
    auto t = constantOperand(node, 3, "axes");
    if (!t)
      return t.takeError();
    for (int64_t a : t->toInt64()) {
      auto axis = normalizeAxis(node, a, rank);
      if (!axis)
        return axis.takeError();
      axes.push_back(*axis);
    }
  } else {
    for (int64_t i = 0; i < rank; ++i)
      axes.push_back(i);
  }
  if (p.size() != 2 * axes.size())
    return nodeError(node, "has " + llvm::Twine(p.size()) + " pads for " +
                               llvm::Twine(axes.size()) + " axes");
  auto entry = lookup(node, 0);
  if (!entry)
    return entry.takeError();
  HostDType dtype;
  if ((*entry)->constant) {
    dtype = (*entry)->constant->dtype();
  } else {
    Type element =
        cast<RankedTensorType>((*entry)->value.getType()).getElementType();
    dtype = element.isF32()         ? HostDType::F32
            : element.isBF16()      ? HostDType::BF16
            : element.isF16()       ? HostDType::F16
            : element.isInteger(64) ? HostDType::I64
            : element.isInteger(32) ? HostDType::I32
                                    : HostDType::Bool;
  }
  HostTensor fill = HostTensor::fromDouble(dtype, {}, {0.0});
  if (hasInput(node, 2)) {
    auto value = constantOperand(node, 2, "constant_value");
    if (!value)
      return value.takeError();
    fill = value->castTo(dtype);
    auto scalar = reshapeHost(fill, {});
    if (!scalar)
      return nodeError(node, "expects a scalar constant_value");
    fill = *scalar;
  }

  bool constant = (*entry)->constant.has_value();
  HostTensor hostAcc = constant ? *(*entry)->constant : HostTensor();
  Value acc = constant ? Value() : (*entry)->value;
  std::vector<int64_t> shape = *inShape;
  Location loc = locOf(node);
  for (size_t i = 0; i < axes.size(); ++i) {
    int64_t axis = axes[i], before = p[i], after = p[i + axes.size()];
    if (before < 0 || after < 0)
      return nodeError(node, "has negative pads; use Slice to crop");
    if (before == 0 && after == 0)
      continue;
    auto block = [&](int64_t width) {
      std::vector<int64_t> blockShape = shape;
      blockShape[axis] = width;
      return *broadcastHost(fill, blockShape);
    };
    SmallVector<HostTensor> hostParts;
    SmallVector<Value> parts;
    if (before) {
      hostParts.push_back(block(before));
      if (!constant)
        parts.push_back(materialize(hostParts.back(), loc));
    }
    if (constant)
      hostParts.push_back(hostAcc);
    else
      parts.push_back(acc);
    if (after) {
      HostTensor b = block(after);
      if (constant)
        hostParts.push_back(b);
      else
        parts.push_back(materialize(b, loc));
    }
    if (constant) {
      auto joined = concatHost(hostParts, axis);
      if (!joined)
        return nodeError(node, llvm::toString(joined.takeError()));
      hostAcc = std::move(*joined);
    } else {
      acc = vo::ConcatOp::create(builder, loc, parts, axis);
    }
    shape[axis] += before + after;
  }
  if (constant)
    define(node, 0, std::move(hostAcc));
  else
    define(node, 0, acc);
  return Error::success();
}

Error OnnxImporter::importCrossEntropy(const onnx::NodeProto &node) {
  if (hasInput(node, 2))
    return nodeError(node, "has class weights, which are not supported");
  if (node.output_size() > 1 && !node.output(1).empty())
    return nodeError(node, "has a log_prob output, which is not supported");
  auto scores = operand(node, 0);
  if (!scores)
    return scores.takeError();
  auto labels = operand(node, 1);
  if (!labels)
    return labels.takeError();
  std::string reduction = stringAttr(node, "reduction", "mean");
  vo::Reduction kind = reduction == "mean" ? vo::Reduction::mean
                       : reduction == "sum" ? vo::Reduction::sum
                                            : vo::Reduction::none;
  if (reduction != "mean" && reduction != "sum" && reduction != "none")
    return nodeError(node, "has reduction '" + reduction + "'");
  // ONNX puts classes on axis 1; vo.cross_entropy wants them last.
  Location loc = locOf(node);
  Value logits = *scores;
  int64_t rank = cast<RankedTensorType>(logits.getType()).getRank();
  if (rank < 2)
    return nodeError(node, "expects scores of rank >= 2 [N, C, ...]");
  if (rank > 2) {
    SmallVector<int64_t> perm = {0};
    for (int64_t i = 2; i < rank; ++i)
      perm.push_back(i);
    perm.push_back(1);
    logits = vo::TransposeOp::create(builder, loc, logits, perm);
  }
  auto labelType = cast<RankedTensorType>(labels->getType());
  auto logitShape = cast<RankedTensorType>(logits.getType()).getShape();
  if (!llvm::equal(logitShape.drop_back(), labelType.getShape()))
    return nodeError(node, "has labels " + formatShape(labelType.getShape()) +
                               " that do not match scores " +
                               formatShape(*shapeOf(node, 0)));
  define(node, 0,
         vo::CrossEntropyOp::create(builder, loc, logits, *labels,
                                    intAttr(node, "ignore_index", -100), kind));
  return Error::success();
}

Error OnnxImporter::importDropout(const onnx::NodeProto &node) {
  if (node.output_size() > 1 && !node.output(1).empty())
    return nodeError(node, "has a mask output, which is not supported");
  if (hasInput(node, 1)) {
    auto ratio = constantOperand(node, 1, "ratio");
    if (!ratio)
      return ratio.takeError();
    if (ratio->toDouble()[0] != 0.0)
      return nodeError(node, "has a nonzero ratio; dropout is not supported "
                             "yet (export with dropout 0)");
  }
  auto input = lookup(node, 0);
  if (!input)
    return input.takeError();
  values[node.output(0)] = **input;
  return Error::success();
}

Error OnnxImporter::importTopK(const onnx::NodeProto &node) {
  auto input = operand(node, 0);
  if (!input)
    return input.takeError();
  auto k = constantOperand(node, 1, "k");
  if (!k)
    return k.takeError();
  int64_t rank = cast<RankedTensorType>(input->getType()).getRank();
  auto axis = normalizeAxis(node, intAttr(node, "axis", -1), rank);
  if (!axis)
    return axis.takeError();
  if (*axis != rank - 1 || intAttr(node, "largest", 1) != 1 ||
      intAttr(node, "sorted", 1) != 1)
    return nodeError(node, "reads only the sorted largest values along the "
                           "last axis");
  auto topK = vo::TopKOp::create(builder, locOf(node), *input, k->toInt64()[0]);
  define(node, 0, topK.getValues());
  if (node.output_size() > 1 && !node.output(1).empty())
    define(node, 1, topK.getIndices());
  return Error::success();
}

// GatherND with batch_dims 0 and one index per row picks rows of its data
// (expert weights by expert id): an embedding lookup of a higher-rank table.
Error OnnxImporter::importGatherND(const onnx::NodeProto &node) {
  if (intAttr(node, "batch_dims", 0) != 0)
    return nodeError(node, "has batch_dims other than 0");
  auto data = operand(node, 0);
  if (!data)
    return data.takeError();
  auto indices = operand(node, 1);
  if (!indices)
    return indices.takeError();
  auto indexType = cast<RankedTensorType>(indices->getType());
  if (indexType.getRank() < 1 || indexType.getShape().back() != 1)
    return nodeError(node, "reads only indices of one coordinate ([..., 1])");
  Location loc = locOf(node);
  Value ids = vo::ReshapeOp::create(builder, loc, *indices,
                                    indexType.getShape().drop_back());
  define(node, 0, vo::EmbeddingOp::create(builder, loc, *data, ids));
  return Error::success();
}

Error OnnxImporter::importSplit(const onnx::NodeProto &node) {
  auto shape = shapeOf(node, 0);
  if (!shape)
    return shape.takeError();
  auto axis = normalizeAxis(node, intAttr(node, "axis", 0), shape->size());
  if (!axis)
    return axis.takeError();
  std::vector<int64_t> sizes;
  if (hasInput(node, 1)) {
    auto split = constantOperand(node, 1, "split");
    if (!split)
      return split.takeError();
    sizes = split->toInt64();
  } else {
    int64_t parts = node.output_size();
    int64_t dim = (*shape)[*axis];
    int64_t chunk = (dim + parts - 1) / parts;
    for (int64_t i = 0; i < parts; ++i)
      sizes.push_back(std::min(chunk, dim - i * chunk));
  }
  if (static_cast<int>(sizes.size()) != node.output_size())
    return nodeError(node, "splits into " + llvm::Twine(sizes.size()) +
                               " parts for " + llvm::Twine(node.output_size()) +
                               " outputs");
  auto input = operand(node, 0);
  if (!input)
    return input.takeError();
  int64_t offset = 0;
  for (auto [i, size] : llvm::enumerate(sizes)) {
    SmallVector<int64_t> start(shape->size(), 0), limit(shape->begin(), shape->end()),
        stride(shape->size(), 1);
    start[*axis] = offset;
    limit[*axis] = offset + size;
    offset += size;
    if (limit[*axis] > (*shape)[*axis] || size < 0)
      return nodeError(node, "has split sizes that overrun the axis");
    define(node, i,
           vo::SliceOp::create(builder, locOf(node), *input, start, limit, stride));
  }
  return Error::success();
}

Error OnnxImporter::importClip(const onnx::NodeProto &node) {
  auto input = operand(node, 0);
  if (!input)
    return input.takeError();
  Value result = *input;
  Location loc = locOf(node);
  Type element = cast<RankedTensorType>(result.getType()).getElementType();
  for (auto [index, upper] : {std::pair(1, false), std::pair(2, true)}) {
    if (!hasInput(node, index))
      continue;
    auto bound = constantOperand(node, index, upper ? "max" : "min");
    if (!bound)
      return bound.takeError();
    HostDType dtype = element.isInteger(64)   ? HostDType::I64
                      : element.isInteger(32) ? HostDType::I32
                      : element.isBF16()      ? HostDType::BF16
                      : element.isF16()       ? HostDType::F16
                                              : HostDType::F32;
    Value limit = materialize(bound->castTo(dtype), loc);
    result = upper ? Value(vo::MinimumOp::create(builder, loc, result, limit))
                   : Value(vo::MaximumOp::create(builder, loc, result, limit));
  }
  define(node, 0, result);
  return Error::success();
}

const llvm::StringMap<OnnxImporter::NodeHandler> &OnnxImporter::handlers() {
  static const llvm::StringMap<NodeHandler> table = [] {
    llvm::StringMap<NodeHandler> t;
    auto binary = [&](StringRef op, StringRef kind) {
      std::string k = kind.str();
      t[op] = [k](OnnxImporter &i, const onnx::NodeProto &n) {
        return i.importElementwise(n, k);
      };
    };
    auto unary = [&](StringRef op, StringRef kind) {
      std::string k = kind.str();
      t[op] = [k](OnnxImporter &i, const onnx::NodeProto &n) {
        return i.importUnary(n, k);
      };
    };
    auto reduce = [&](StringRef op, StringRef kind) {
      std::string k = kind.str();
      t[op] = [k](OnnxImporter &i, const onnx::NodeProto &n) {
        return i.importReduce(n, k);
      };
    };
    binary("Add", "add");
    binary("Sub", "sub");
    binary("Mul", "mul");
    binary("Div", "div");
    binary("Pow", "pow");
    binary("Max", "max");
    binary("Min", "min");
    binary("Equal", "eq");
    binary("Less", "lt");
    binary("Greater", "gt");
    binary("LessOrEqual", "le");
    binary("GreaterOrEqual", "ge");
    unary("Neg", "neg");
    unary("Sqrt", "sqrt");
    unary("Reciprocal", "reciprocal");
    unary("Exp", "exp");
    unary("Log", "log");
    unary("Tanh", "tanh");
    unary("Erf", "erf");
    unary("Cos", "cos");
    unary("Sin", "sin");
    unary("Sigmoid", "sigmoid");
    unary("IsNaN", "is_nan");
    unary("Identity", "identity");
    reduce("ReduceMean", "mean");
    reduce("ReduceSum", "sum");
    reduce("ReduceMax", "max");
    t["Constant"] = &OnnxImporter::importConstant;
    t["ConstantOfShape"] = &OnnxImporter::importConstantOfShape;
    t["Shape"] = &OnnxImporter::importShape;
    t["Range"] = &OnnxImporter::importRange;
    t["Cast"] = &OnnxImporter::importCast;
    t["Reshape"] = &OnnxImporter::importReshapeLike;
    t["Unsqueeze"] = &OnnxImporter::importReshapeLike;
    t["Squeeze"] = &OnnxImporter::importReshapeLike;
    t["Flatten"] = &OnnxImporter::importReshapeLike;
    t["Transpose"] = &OnnxImporter::importTranspose;
    t["Slice"] = &OnnxImporter::importSlice;
    t["Concat"] = &OnnxImporter::importConcat;
    t["Expand"] = &OnnxImporter::importExpand;
    t["Gather"] = &OnnxImporter::importGather;
    t["Where"] = &OnnxImporter::importWhere;
    t["MatMul"] = &OnnxImporter::importMatMul;
    t["Gemm"] = &OnnxImporter::importGemm;
    t["Softmax"] = [](OnnxImporter &i, const onnx::NodeProto &n) {
      return i.importSoftmax(n, /*log=*/false);
    };
    t["LogSoftmax"] = [](OnnxImporter &i, const onnx::NodeProto &n) {
      return i.importSoftmax(n, /*log=*/true);
    };
    t["Pad"] = &OnnxImporter::importPad;
    t["SoftmaxCrossEntropyLoss"] = &OnnxImporter::importCrossEntropy;
    t["Dropout"] = &OnnxImporter::importDropout;
    t["TopK"] = &OnnxImporter::importTopK;
    t["GatherND"] = &OnnxImporter::importGatherND;
    t["Split"] = &OnnxImporter::importSplit;
    t["Clip"] = &OnnxImporter::importClip;
    return t;
  }();
  return table;
}

} // namespace

Expected<OwningOpRef<ModuleOp>>
veomni::importOnnxFile(MLIRContext &context, StringRef path,
                       const OnnxImportOptions &options) {
  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer)
    return makeError("cannot read '" + path +
                     "': " + buffer.getError().message());
  onnx::ModelProto model;
  if ((*buffer)->getBufferSize() > static_cast<size_t>(INT32_MAX) ||
      !model.ParseFromArray((*buffer)->getBufferStart(),
                            static_cast<int>((*buffer)->getBufferSize())))
    return makeError("'" + path +
                     "' is not a readable ONNX protobuf (truncated or not an "
                     "ONNX model)");
  context.loadDialect<vo::VoDialect, func::FuncDialect>();
  return OnnxImporter(context, model, path, options).run();
}
