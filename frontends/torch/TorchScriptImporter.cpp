//===- TorchScriptImporter.cpp - TorchScript into vo ----------------------===//

#include "frontends/torch/TorchScriptImporter.h"

#include "dialects/vo/VoOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/Verifier.h"

#include <torch/csrc/jit/api/module.h>
#include <torch/csrc/jit/ir/constants.h>
#include <torch/csrc/jit/passes/inliner.h>
#include <torch/csrc/jit/serialization/import.h>

#include <variant>

using namespace mlir;
using llvm::Error;
using llvm::Expected;

namespace veomni {
namespace {

Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

/// What a TorchScript value is while importing: an SSA tensor, a module
/// object (with its dotted path), or a constant scalar, list or None.
struct Imported {
  Value tensor;
  c10::IValue object;
  std::string path;
  std::optional<c10::IValue> constant;
};

class Importer {
 public:
  Importer(MLIRContext &context, const TorchScriptImportOptions &options)
      : context(context), builder(&context), options(options) {}

  Expected<OwningOpRef<ModuleOp>> run(torch::jit::Module &module, StringRef path) {
    std::shared_ptr<torch::jit::Graph> graph = module.get_method("forward").graph()->copy();
    torch::jit::Inline(*graph);
    Location fileLoc = FileLineColLoc::get(&context, path, 0, 0);
    OwningOpRef<ModuleOp> owned = ModuleOp::create(fileLoc);
    moduleOp = *owned;
    moduleOp->setAttr("vo.source", builder.getStringAttr("torchscript"));

    // Inputs: self, then tensors whose shapes the caller gives.
    SmallVector<Type> argTypes;
    SmallVector<std::string> argNames;
    auto inputs = graph->inputs();
    for (size_t i = 1; i < inputs.size(); ++i) {
      std::string name = baseName(inputs[i]->debugName());
      auto given = options.inputs.find(name);
      if (given == options.inputs.end())
        return makeError("TorchScript input '" + name + "' needs its shape: --input " + name +
                         "=SHAPExTYPE (e.g. 2x32xi64)");
      Type element = given->second.element == "f32"   ? Type(builder.getF32Type())
                     : given->second.element == "i64" ? Type(builder.getI64Type())
                                                      : Type(builder.getI32Type());
      argTypes.push_back(RankedTensorType::get(given->second.shape, element));
      argNames.push_back(name);
    }
    for (const auto &[name, input] : options.inputs)
      if (!llvm::is_contained(argNames, name))
        return makeError("--input " + name + ": the TorchScript forward has no input '" +
                         name + "'");
    builder.setInsertionPointToEnd(moduleOp.getBody());
    func = func::FuncOp::create(builder, fileLoc, "forward",
                                builder.getFunctionType(argTypes, {}));
    Block *body = func.addEntryBlock();
    for (auto [index, name] : llvm::enumerate(argNames)) {
      values[inputs[index + 1]].tensor = body->getArgument(index);
      func.setArgAttr(index, "vo.name", builder.getStringAttr(name));
    }
    values[inputs[0]].object = module._ivalue();

    builder.setInsertionPointToEnd(body);
    for (torch::jit::Node *node : graph->nodes())
      if (Error error = importNode(node))
        return std::move(error);

    SmallVector<Value> results;
    for (torch::jit::Value *output : graph->outputs()) {
      Value value = values[output].tensor;
      if (!value)
        return makeError("the forward must return tensors");
      results.push_back(value);
    }
    func::ReturnOp::create(builder, fileLoc, results);
    func.setType(builder.getFunctionType(argTypes, ValueRange(results).getTypes()));
    if (failed(verify(moduleOp)))
      return makeError("the imported module does not verify (see the diagnostics above)");
    return std::move(owned);
  }

 private:
  static std::string baseName(const std::string &debugName) {
    // TorchScript renames values x, x.1, x.2...; the user knows `x`.
    size_t dot = debugName.rfind('.');
    if (dot != std::string::npos &&
        debugName.find_first_not_of("0123456789", dot + 1) == std::string::npos)
      return debugName.substr(0, dot);
    return debugName;
  }

  Location locOf(torch::jit::Node *node) {
    return NameLoc::get(builder.getStringAttr(node->kind().toQualString()));
  }

  Expected<Value> tensorOf(torch::jit::Node *node, size_t index) {
    Imported &in = values[node->input(index)];
    if (in.tensor)
      return in.tensor;
    return makeError(std::string(node->kind().toQualString()) + ": operand " +
                     std::to_string(index) + " is not a tensor");
  }

  /// A scalar operand as a rank-0 tensor of `like`'s element type.
  Expected<Value> tensorOrScalar(torch::jit::Node *node, size_t index, Value like) {
    Imported &in = values[node->input(index)];
    if (in.tensor)
      return in.tensor;
    if (in.constant && (in.constant->isDouble() || in.constant->isInt())) {
      auto type = RankedTensorType::get({}, cast<RankedTensorType>(like.getType()).getElementType());
      double scalar = in.constant->isDouble() ? in.constant->toDouble()
                                              : static_cast<double>(in.constant->toInt());
      Attribute value = isa<FloatType>(type.getElementType())
                            ? Attribute(builder.getFloatAttr(type.getElementType(), scalar))
                            : Attribute(builder.getIntegerAttr(type.getElementType(),
                                                               static_cast<int64_t>(scalar)));
      return vo::ConstantOp::create(builder, locOf(node), DenseElementsAttr::get(type, value))
          .getResult();
    }
    return makeError(std::string(node->kind().toQualString()) + ": operand " +
                     std::to_string(index) + " is neither a tensor nor a number");
  }

  Expected<Value> parameter(const std::string &name, const at::Tensor &tensor, Location loc) {
    auto found = params.find(name);
    if (found != params.end())
      return found->second;
    at::Tensor contiguous = tensor.detach().to(at::kFloat).contiguous().cpu();
    SmallVector<int64_t> shape(contiguous.sizes().begin(), contiguous.sizes().end());
    auto type = RankedTensorType::get(shape, builder.getF32Type());
    auto blob = HeapAsmResourceBlob::allocateAndCopyWithAlign(
        llvm::ArrayRef<char>(static_cast<const char *>(contiguous.data_ptr()),
                             contiguous.numel() * sizeof(float)),
        alignof(double));
    {
      OpBuilder::InsertionGuard guard(builder);
      builder.setInsertionPoint(func);
      vo::ParameterOp::create(builder, loc, builder.getStringAttr(name), TypeAttr::get(type),
                              DenseResourceElementsAttr::get(type, name, std::move(blob)),
                              /*init=*/vo::InitRuleAttr());
    }
    OpBuilder::InsertionGuard guard(builder);
    builder.setInsertionPointToStart(&func.getBody().front());
    Value ref = vo::ParamOp::create(builder, loc, type, FlatSymbolRefAttr::get(&context, name));
    params[name] = ref;
    return ref;
  }

  Error importNode(torch::jit::Node *node) {
    std::string kind = node->kind().toQualString();
    Location loc = locOf(node);
    auto define = [&](Value value) { values[node->output()].tensor = value; };
    if (kind == "prim::Constant") {
      values[node->output()].constant = torch::jit::toIValue(node->output()).value_or(c10::IValue());
      return Error::success();
    }
    if (kind == "prim::ListConstruct") {
      c10::impl::GenericList list(c10::AnyType::get());
      for (torch::jit::Value *input : node->inputs()) {
        Imported &in = values[input];
        if (!in.constant)
          return makeError("prim::ListConstruct of non-constants is not supported");
        list.push_back(*in.constant);
      }
      values[node->output()].constant = c10::IValue(list);
      return Error::success();
    }
    if (kind == "prim::GetAttr") {
      Imported &owner = values[node->input(0)];
      if (!owner.object.isObject())
        return makeError("prim::GetAttr on something that is not a module");
      std::string name = node->s(c10::attr::name);
      auto object = owner.object.toObject();
      c10::IValue attribute = object->getAttr(name);
      std::string path = owner.path.empty() ? name : owner.path + "." + name;
      if (attribute.isTensor()) {
        size_t slot = object->type()->getAttributeSlot(name);
        if (!object->type()->is_parameter(slot))
          return makeError("buffer '" + path + "' is not supported yet (only parameters)");
        auto ref = parameter(path, attribute.toTensor(), loc);
        if (!ref)
          return ref.takeError();
        define(*ref);
        return Error::success();
      }
      values[node->output()].object = attribute;
      values[node->output()].path = path;
      return Error::success();
    }
    if (kind == "aten::linear") {
      auto x = tensorOf(node, 0), w = tensorOf(node, 1);
      if (!x) return x.takeError();
      if (!w) return w.takeError();
      Value result = vo::MatmulOp::create(builder, loc, *x, *w, false, true);
      if (values[node->input(2)].tensor)
        result = vo::AddOp::create(builder, loc, result, values[node->input(2)].tensor);
      define(result);
      return Error::success();
    }
    if (kind == "aten::matmul") {
      auto a = tensorOf(node, 0), b = tensorOf(node, 1);
      if (!a) return a.takeError();
      if (!b) return b.takeError();
      define(vo::MatmulOp::create(builder, loc, *a, *b, false, false));
      return Error::success();
    }
    if (kind == "aten::silu") {
      auto x = tensorOf(node, 0);
      if (!x) return x.takeError();
      define(vo::SiluOp::create(builder, loc, *x));
      return Error::success();
    }
    if (kind == "aten::add" || kind == "aten::sub" || kind == "aten::mul" || kind == "aten::pow") {
      auto a = tensorOf(node, 0);
      if (!a) return a.takeError();
      auto b = tensorOrScalar(node, 1, *a);
      if (!b) return b.takeError();
      if ((kind == "aten::add" || kind == "aten::sub") && node->inputs().size() > 2) {
        Imported &alpha = values[node->input(2)];
        if (!alpha.constant || !alpha.constant->isInt() || alpha.constant->toInt() != 1)
          return makeError(kind + " with alpha other than 1 is not supported");
      }
      Value result = kind == "aten::add"   ? vo::AddOp::create(builder, loc, *a, *b).getResult()
                     : kind == "aten::sub" ? vo::SubOp::create(builder, loc, *a, *b).getResult()
                     : kind == "aten::mul" ? vo::MulOp::create(builder, loc, *a, *b).getResult()
                                           : vo::PowOp::create(builder, loc, *a, *b).getResult();
      define(result);
      return Error::success();
    }
    if (kind == "aten::mean" || kind == "aten::sum") {
      auto x = tensorOf(node, 0);
      if (!x) return x.takeError();
      // The overloads without dims (the dtype argument must be None).
      if (node->inputs().size() != 2 || !values[node->input(1)].constant ||
          !values[node->input(1)].constant->isNone())
        return makeError(kind + " over given dims is not supported yet");
      SmallVector<int64_t> axes;
      for (int64_t d = 0; d < cast<RankedTensorType>(x->getType()).getRank(); ++d)
        axes.push_back(d);
      define(kind == "aten::mean"
                 ? vo::ReduceMeanOp::create(builder, loc, *x, axes, false).getResult()
                 : vo::ReduceSumOp::create(builder, loc, *x, axes, false).getResult());
      return Error::success();
    }
    if (kind == "aten::embedding") {
      // (weight, indices, padding_idx, scale_grad_by_freq, sparse): the
      // plain lookup only.
      auto table = tensorOf(node, 0), ids = tensorOf(node, 1);
      if (!table) return table.takeError();
      if (!ids) return ids.takeError();
      for (size_t i = 2; i < node->inputs().size(); ++i) {
        Imported &flag = values[node->input(i)];
        bool plain = flag.constant && ((i == 2 && flag.constant->isInt() &&
                                        flag.constant->toInt() == -1) ||
                                       (i > 2 && flag.constant->isBool() &&
                                        !flag.constant->toBool()));
        if (!plain)
          return makeError("aten::embedding with padding_idx, scale_grad_by_freq or sparse "
                           "is not supported");
      }
      define(vo::EmbeddingOp::create(builder, loc, *table, *ids));
      return Error::success();
    }
    if (kind == "aten::reshape" || kind == "aten::view") {
      auto x = tensorOf(node, 0);
      if (!x) return x.takeError();
      Imported &shapeValue = values[node->input(1)];
      if (!shapeValue.constant || !shapeValue.constant->isList())
        return makeError(kind + " needs a constant shape");
      auto type = cast<RankedTensorType>(x->getType());
      SmallVector<int64_t> shape;
      int64_t known = 1, inferred = -1;
      for (const c10::IValue &dim : shapeValue.constant->toListRef()) {
        if (!dim.isInt())
          return makeError(kind + " needs integer dims");
        int64_t size = dim.toInt();
        if (size == -1) {
          if (inferred >= 0)
            return makeError(kind + " with two -1 dims");
          inferred = static_cast<int64_t>(shape.size());
        } else {
          known *= size;
        }
        shape.push_back(size);
      }
      if (inferred >= 0 && known > 0)
        shape[inferred] = type.getNumElements() / known;
      define(vo::ReshapeOp::create(builder, loc, *x, shape));
      return Error::success();
    }
    if (kind == "aten::cross_entropy_loss") {
      // (input, target, weight, reduction, ignore_index, label_smoothing)
      auto logits = tensorOf(node, 0), labels = tensorOf(node, 1);
      if (!logits) return logits.takeError();
      if (!labels) return labels.takeError();
      Imported &weight = values[node->input(2)];
      Imported &reduction = values[node->input(3)];
      Imported &ignore = values[node->input(4)];
      Imported &smoothing = values[node->input(5)];
      if (!weight.constant || !weight.constant->isNone() || !reduction.constant ||
          !reduction.constant->isInt() || !ignore.constant || !ignore.constant->isInt() ||
          !smoothing.constant || !smoothing.constant->isDouble() ||
          smoothing.constant->toDouble() != 0.0)
        return makeError("aten::cross_entropy_loss with class weights or label smoothing is "
                         "not supported");
      // at::Reduction: 0 none, 1 mean, 2 sum.
      int64_t mode = reduction.constant->toInt();
      vo::Reduction kindOf = mode == 1   ? vo::Reduction::mean
                             : mode == 2 ? vo::Reduction::sum
                                         : vo::Reduction::none;
      define(vo::CrossEntropyOp::create(builder, loc, *logits, *labels,
                                        ignore.constant->toInt(), kindOf));
      return Error::success();
    }
    return makeError("unsupported TorchScript op '" + kind + "'");
  }

  MLIRContext &context;
  OpBuilder builder;
  const TorchScriptImportOptions &options;
  ModuleOp moduleOp;
  func::FuncOp func;
  std::unordered_map<torch::jit::Value *, Imported> values;
  std::map<std::string, Value> params;
};

} // namespace

Expected<OwningOpRef<ModuleOp>>
importTorchScriptFile(MLIRContext &context, StringRef path,
                      const TorchScriptImportOptions &options) {
  torch::jit::Module module;
  try {
    module = torch::jit::load(path.str());
  } catch (const std::exception &error) {
    std::string message = error.what();
    return makeError("cannot load TorchScript '" + path + "': " +
                     message.substr(0, message.find('\n')));
  }
  context.loadDialect<func::FuncDialect, vo::VoDialect>();
  Importer importer(context, options);
  return importer.run(module, path);
}

} // namespace veomni
