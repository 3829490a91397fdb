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
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/types.h>
#include <caffe2/serialize/inline_container.h>

#include "llvm/Support/JSON.h"

#include <cstring>

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
  /// A tuple or list with run-time tensors among its elements.
  std::vector<torch::jit::Value *> elements;
  bool isSequence = false;
  /// A list of run-time tensors an op made (chunk).
  SmallVector<Value> madeTensors;
};

/// Ops that draw random numbers: folding them would bake one draw into the
/// model.
bool isRandom(const std::string &kind) {
  return kind == "aten::dropout" || kind == "aten::rand" || kind == "aten::randn" ||
         kind == "aten::randint" || kind == "aten::bernoulli" || kind == "aten::normal" ||
         kind == "aten::uniform_" || kind == "aten::randperm" || kind == "aten::rand_like" ||
         kind == "aten::randn_like" || kind == "aten::feature_dropout";
}

class Importer {
 public:
  Importer(MLIRContext &context, const TorchScriptImportOptions &options)
      : context(context), builder(&context), options(options) {}

  Expected<OwningOpRef<ModuleOp>> run(torch::jit::Module &module, StringRef path) {
    std::shared_ptr<torch::jit::Graph> graph = module.get_method("forward").graph()->copy();
    torch::jit::Inline(*graph);
    // Inputs: self, then tensors whose shapes the caller gives.
    std::vector<GraphInput> bindings(1);
    bindings[0].kind = GraphInput::kSelf;
    bindings[0].value = module._ivalue();
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
      GraphInput input;
      input.name = name;
      input.type = RankedTensorType::get(given->second.shape, element);
      bindings.push_back(input);
    }
    for (const auto &[name, input] : options.inputs)
      if (llvm::none_of(bindings, [&](const GraphInput &b) { return b.name == name; }))
        return makeError("--input " + name + ": the TorchScript forward has no input '" +
                         name + "'");
    return runGraph(*graph, bindings, path, "torchscript");
  }

  Type f32() { return builder.getF32Type(); }
  Type i64() { return builder.getI64Type(); }
  Type i32() { return builder.getI32Type(); }
  Type i1() { return builder.getI1Type(); }

  /// What a graph input is bound to.
  struct GraphInput {
    enum Kind { kUser, kSelf, kParameter, kConstant } kind = kUser;
    std::string name;          // user inputs and parameters
    RankedTensorType type;     // user inputs
    c10::IValue value;         // self (the module), parameters and constants
  };

  Expected<OwningOpRef<ModuleOp>> runGraph(torch::jit::Graph &graph,
                                           const std::vector<GraphInput> &bindings,
                                           StringRef path, StringRef source) {
    Location fileLoc = FileLineColLoc::get(&context, path, 0, 0);
    OwningOpRef<ModuleOp> owned = ModuleOp::create(fileLoc);
    moduleOp = *owned;
    moduleOp->setAttr("vo.source", builder.getStringAttr(source));
    SmallVector<Type> argTypes;
    SmallVector<std::string> argNames;
    for (const GraphInput &input : bindings)
      if (input.kind == GraphInput::kUser) {
        argTypes.push_back(input.type);
        argNames.push_back(input.name);
      }
    builder.setInsertionPointToEnd(moduleOp.getBody());
    func = func::FuncOp::create(builder, fileLoc, "forward",
                                builder.getFunctionType(argTypes, {}));
    Block *body = func.addEntryBlock();
    auto inputs = graph.inputs();
    size_t argument = 0;
    for (size_t i = 0; i < inputs.size(); ++i) {
      const GraphInput &input = bindings[i];
      Imported &value = values[inputs[i]];
      switch (input.kind) {
      case GraphInput::kSelf:
        value.object = input.value;
        break;
      case GraphInput::kConstant:
        value.constant = input.value;
        break;
      case GraphInput::kParameter: {
        auto ref = parameter(input.name, input.value.toTensor(), fileLoc);
        if (!ref)
          return ref.takeError();
        value.tensor = *ref;
        break;
      }
      case GraphInput::kUser:
        value.tensor = body->getArgument(argument);
        func.setArgAttr(argument, "vo.name", builder.getStringAttr(input.name));
        ++argument;
        break;
      }
    }

    builder.setInsertionPointToEnd(body);
    for (torch::jit::Node *node : graph.nodes())
      if (Error error = importNode(node))
        return std::move(error);

    SmallVector<Value> results;
    for (torch::jit::Value *output : graph.outputs()) {
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

  /// Where the trace recorded `node`: the first frame of the Python stack
  /// TorchScript keeps with it ("modeling_qwen3.py(63): forward"), parsed
  /// into file and line; empty file when it kept none.
  std::pair<std::string, unsigned> sourceOf(torch::jit::Node *node) const {
    if (auto found = nodeSources.find(node); found != nodeSources.end())
      return found->second;
    std::string text;
    try {
      text = node->sourceRange().str();
    } catch (const std::exception &) {
      return {"", 0};
    }
    std::string first = text.substr(0, text.find('\n'));
    size_t open = first.rfind("("), close = first.rfind("): ");
    if (open == std::string::npos || close == std::string::npos || close < open)
      return {"", 0};
    unsigned line = 0;
    if (StringRef(first).slice(open + 1, close).getAsInteger(10, line))
      return {"", 0};
    return {first.substr(0, open), line};
  }

  Location locOf(torch::jit::Node *node) {
    auto [file, line] = sourceOf(node);
    StringAttr kind = builder.getStringAttr(node->kind().toQualString());
    if (file.empty())
      return NameLoc::get(kind);
    return NameLoc::get(kind, FileLineColLoc::get(&context, file, line, 0));
  }

  Expected<Value> tensorOf(torch::jit::Node *node, size_t index) {
    return tensorOfValue(node, node->input(index), index);
  }

  /// A run-time tensor, or a constant tensor (a buffer, or what the trace
  /// computed from constants: masks, positions, RoPE tables) as vo.constant.
  Expected<Value> tensorOfValue(torch::jit::Node *node, torch::jit::Value *value,
                                size_t index) {
    Imported &in = values[value];
    if (in.tensor)
      return in.tensor;
    if (in.constant && in.constant->isTensor()) {
      auto materialized = materialize(in.constant->toTensor(), locOf(node));
      if (!materialized)
        return materialized.takeError();
      in.tensor = *materialized;
      return in.tensor;
    }
    return makeError(std::string(node->kind().toQualString()) + ": operand " +
                     std::to_string(index) + " is not a tensor");
  }

  Expected<Value> materialize(const at::Tensor &tensor, Location loc) {
    at::Tensor host = tensor.detach().cpu().contiguous();
    Type element;
    switch (host.scalar_type()) {
    case at::kDouble:
    case at::kHalf:
    case at::kBFloat16:
      host = host.to(at::kFloat);
      [[fallthrough]];
    case at::kFloat:
      element = builder.getF32Type();
      break;
    case at::kLong:
      element = builder.getI64Type();
      break;
    case at::kInt:
    case at::kShort:
    case at::kChar:
    case at::kByte:
      host = host.to(at::kInt);
      element = builder.getI32Type();
      break;
    case at::kBool:
      element = builder.getI1Type();
      break;
    default:
      return makeError(std::string("a constant tensor of dtype ") +
                       c10::toString(host.scalar_type()) + " is not supported");
    }
    SmallVector<int64_t> shape(host.sizes().begin(), host.sizes().end());
    auto type = RankedTensorType::get(shape, element);
    // Splats stay splats, as the ONNX importer writes them (vo-raise matches
    // splat constants).
    bool splat = host.numel() > 0 && host.eq(host.flatten()[0]).all().item<bool>();
    at::Tensor data = splat ? host.flatten().slice(0, 0, 1).contiguous() : host;
    auto dataType = splat ? RankedTensorType::get({}, element) : type;
    DenseElementsAttr attr;
    if (host.scalar_type() == at::kBool) {
      SmallVector<bool> bits;
      for (int64_t i = 0; i < data.numel(); ++i)
        bits.push_back(data.data_ptr<bool>()[i]);
      attr = DenseElementsAttr::get(dataType, llvm::ArrayRef<bool>(bits));
    } else {
      attr = DenseElementsAttr::getFromRawBuffer(
          dataType, llvm::ArrayRef<char>(static_cast<const char *>(data.data_ptr()),
                                         data.numel() * data.element_size()));
    }
    if (splat)
      attr = SplatElementsAttr::get(type, attr.getSplatValue<Attribute>());
    return vo::ConstantOp::create(builder, loc, attr).getResult();
  }

  /// A constant int operand (a dim, a size).
  Expected<int64_t> intOf(torch::jit::Node *node, size_t index) {
    Imported &in = values[node->input(index)];
    if (in.constant && in.constant->isInt())
      return in.constant->toInt();
    // A traced size often arrives as a one-element integer tensor.
    if (in.constant && in.constant->isTensor() && in.constant->toTensor().numel() == 1 &&
        !at::isFloatingType(in.constant->toTensor().scalar_type()))
      return in.constant->toTensor().item<int64_t>();
    return makeError(std::string(node->kind().toQualString()) + ": operand " +
                     std::to_string(index) + " must be a constant integer");
  }

  /// A constant int list operand.
  Expected<SmallVector<int64_t>> intsOf(torch::jit::Node *node, size_t index) {
    Imported &in = values[node->input(index)];
    SmallVector<int64_t> ints;
    if (in.constant && in.constant->isList()) {
      for (const c10::IValue &item : in.constant->toListRef()) {
        if (!item.isInt())
          break;
        ints.push_back(item.toInt());
      }
      if (ints.size() == in.constant->toListRef().size())
        return ints;
    }
    if (in.constant && in.constant->isInt())
      return SmallVector<int64_t>{in.constant->toInt()};
    return makeError(std::string(node->kind().toQualString()) + ": operand " +
                     std::to_string(index) + " must be a constant list of integers");
  }

  static int64_t normalizeDim(int64_t dim, int64_t rank) { return dim < 0 ? dim + rank : dim; }
  static ArrayRef<int64_t> shapeOf(Value value) {
    return cast<RankedTensorType>(value.getType()).getShape();
  }

  /// Runs a node whose operands are all constants with LibTorch itself, so
  /// the trace's shape arithmetic, masks and position tables become
  /// constants of the imported graph.
  Error evaluate(torch::jit::Node *node) {
    std::string kind = node->kind().toQualString();
    torch::jit::Stack stack;
    for (torch::jit::Value *input : node->inputs())
      stack.push_back(*values[input].constant);
    try {
      node->getOperation()(stack);
    } catch (const std::exception &error) {
      std::string message = error.what();
      return makeError("folding " + kind + " on constants failed: " +
                       message.substr(0, message.find('\n')));
    }
    if (stack.size() != node->outputs().size())
      return makeError("folding " + kind + " gave " + std::to_string(stack.size()) +
                       " values for " + std::to_string(node->outputs().size()) + " outputs");
    for (size_t i = 0; i < stack.size(); ++i)
      values[node->output(i)].constant = stack[i];
    return Error::success();
  }

  /// A scalar operand as a rank-0 tensor of `like`'s element type.
  Expected<Value> tensorOrScalar(torch::jit::Node *node, size_t index, Value like) {
    Imported &in = values[node->input(index)];
    if (in.tensor || (in.constant && in.constant->isTensor()))
      return tensorOf(node, index);
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
    // Tied weights (an LM head sharing the embedding) are one tensor under
    // two names: one parameter, named where it is first read.
    auto found = params.find(tensor.unsafeGetTensorImpl());
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
    params[tensor.unsafeGetTensorImpl()] = ref;
    return ref;
  }

  Error importNode(torch::jit::Node *node) {
    std::string kind = node->kind().toQualString();
    Location loc = locOf(node);
    auto define = [&](Value value) { values[node->output()].tensor = value; };
    auto allConstant = [&] {
      return llvm::all_of(node->inputs(), [&](torch::jit::Value *input) {
        return values[input].constant.has_value();
      });
    };
    if (kind == "prim::Constant") {
      values[node->output()].constant = torch::jit::toIValue(node->output()).value_or(c10::IValue());
      return Error::success();
    }
    if (kind == "prim::ListConstruct" || kind == "prim::TupleConstruct") {
      Imported &out = values[node->output()];
      if (!allConstant()) {
        out.isSequence = true;
        out.elements.assign(node->inputs().begin(), node->inputs().end());
        return Error::success();
      }
      std::vector<c10::IValue> items;
      for (torch::jit::Value *input : node->inputs())
        items.push_back(*values[input].constant);
      if (kind == "prim::TupleConstruct") {
        out.constant = c10::ivalue::Tuple::create(std::move(items));
        return Error::success();
      }
      // Typed as the graph types it, so folded ops read int[] as int[].
      c10::TypePtr element = node->output()->type()->containedTypes().empty()
                                 ? c10::AnyType::get()
                                 : node->output()->type()->containedType(0);
      c10::impl::GenericList list(element);
      for (c10::IValue &item : items)
        list.push_back(std::move(item));
      out.constant = c10::IValue(list);
      return Error::success();
    }
    if (kind == "prim::TupleUnpack" || kind == "prim::ListUnpack") {
      Imported in = values[node->input(0)];
      for (size_t i = 0; i < node->outputs().size(); ++i) {
        if (!in.madeTensors.empty() && i < in.madeTensors.size()) {
          values[node->output(i)].tensor = in.madeTensors[i];
        } else if (in.isSequence && i < in.elements.size()) {
          values[node->output(i)] = values[in.elements[i]];
        } else if (in.constant && in.constant->isTuple() &&
                   i < in.constant->toTupleRef().elements().size()) {
          values[node->output(i)].constant = in.constant->toTupleRef().elements()[i];
        } else if (in.constant && in.constant->isList() &&
                   i < in.constant->toListRef().size()) {
          values[node->output(i)].constant = in.constant->toListRef()[i];
        } else {
          return makeError(kind + " of something that is not a tuple or list of " +
                           std::to_string(node->outputs().size()));
        }
      }
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
        if (!object->type()->is_parameter(slot)) {
          // A buffer (RoPE's inv_freq): a constant of the model.
          values[node->output()].constant = attribute;
          return Error::success();
        }
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
    if (kind == "aten::size" && values[node->input(0)].tensor) {
      // Shapes are static here: the trace's shape arithmetic folds.
      ArrayRef<int64_t> shape = shapeOf(values[node->input(0)].tensor);
      if (node->inputs().size() == 1) {
        values[node->output()].constant = c10::IValue(std::vector<int64_t>(shape.begin(), shape.end()));
        return Error::success();
      }
      auto dim = intOf(node, 1);
      if (!dim) return dim.takeError();
      int64_t d = normalizeDim(*dim, shape.size());
      if (d < 0 || d >= static_cast<int64_t>(shape.size()))
        return makeError("aten::size: dim " + std::to_string(*dim) + " of a rank-" +
                         std::to_string(shape.size()) + " tensor");
      values[node->output()].constant = c10::IValue(shape[d]);
      return Error::success();
    }
    if (allConstant() && node->outputs().size() > 0) {
      if (isRandom(kind)) {
        // dropout(x, p=0) and dropout in eval mode are the identity.
        bool identity = kind == "aten::dropout" && node->inputs().size() == 3 &&
                        ((values[node->input(1)].constant->isDouble() &&
                          values[node->input(1)].constant->toDouble() == 0.0) ||
                         (values[node->input(2)].constant->isBool() &&
                          !values[node->input(2)].constant->toBool()));
        if (!identity)
          return makeError(kind + " draws random numbers; a model with it cannot be imported");
        values[node->output()].constant = *values[node->input(0)].constant;
        return Error::success();
      }
      return evaluate(node);
    }
    if (kind == "aten::dropout" || kind == "aten::feature_dropout") {
      auto x = tensorOf(node, 0);
      if (!x) return x.takeError();
      Imported &p = values[node->input(1)], &train = values[node->input(2)];
      bool identity = (p.constant && p.constant->isDouble() && p.constant->toDouble() == 0.0) ||
                      (train.constant && train.constant->isBool() && !train.constant->toBool());
      if (!identity)
        return makeError(kind + " with p > 0 in training is not supported (veomni has no "
                                "dropout); export with dropout 0");
      define(*x);
      return Error::success();
    }
    if (kind == "aten::detach" || kind == "aten::detach_") {
      // Constants fold above; a run-time value would need a stop-gradient.
      return makeError(kind + " of a run-time tensor (computed under torch.no_grad or "
                              "detached) is not supported: gradients would flow where "
                              "PyTorch's do not");
    }
    if (kind == "aten::contiguous" || kind == "aten::clone" || kind == "aten::alias") {
      auto x = tensorOf(node, 0);
      if (!x) return x.takeError();
      define(*x);
      return Error::success();
    }
    if (kind == "aten::to" || kind == "aten::type_as") {
      auto x = tensorOf(node, 0);
      if (!x) return x.takeError();
      Type current = cast<RankedTensorType>(x->getType()).getElementType();
      Type element = current;
      // The overloads name the target `dtype` (an int, or None: keep) or
      // take it from `other`.
      std::optional<int> dtypeIndex = node->schema().argumentIndexWithName("dtype");
      std::optional<int> otherIndex = node->schema().argumentIndexWithName("other");
      if (dtypeIndex) {
        Imported &dtype = values[node->input(*dtypeIndex)];
        if (!dtype.constant || !(dtype.constant->isInt() || dtype.constant->isNone()))
          return makeError(kind + ": the dtype must be a constant");
        if (dtype.constant->isInt()) {
          auto target = static_cast<c10::ScalarType>(dtype.constant->toInt());
          element = target == at::kLong   ? Type(builder.getI64Type())
                    : target == at::kInt  ? Type(builder.getI32Type())
                    : target == at::kBool ? Type(builder.getI1Type())
                                          : Type(builder.getF32Type());
        }
      } else if (otherIndex) {
        auto other = tensorOf(node, *otherIndex);
        if (!other) return other.takeError();
        element = cast<RankedTensorType>(other->getType()).getElementType();
      }
      define(current == element ? *x
                                : vo::CastOp::create(builder, loc, *x, TypeAttr::get(element))
                                      .getResult());
      return Error::success();
    }
    if (kind == "aten::rsqrt" || kind == "aten::neg" || kind == "aten::cos" ||
        kind == "aten::sin" || kind == "aten::exp" || kind == "aten::sigmoid" ||
        kind == "aten::tanh" || kind == "aten::sqrt" || kind == "aten::log" ||
        kind == "aten::reciprocal") {
      auto x = tensorOf(node, 0);
      if (!x) return x.takeError();
      Value result =
          kind == "aten::rsqrt"     ? vo::RsqrtOp::create(builder, loc, *x).getResult()
          : kind == "aten::neg"     ? vo::NegOp::create(builder, loc, *x).getResult()
          : kind == "aten::cos"     ? vo::CosOp::create(builder, loc, *x).getResult()
          : kind == "aten::sin"     ? vo::SinOp::create(builder, loc, *x).getResult()
          : kind == "aten::exp"     ? vo::ExpOp::create(builder, loc, *x).getResult()
          : kind == "aten::sigmoid" ? vo::SigmoidOp::create(builder, loc, *x).getResult()
          : kind == "aten::tanh"    ? vo::TanhOp::create(builder, loc, *x).getResult()
          : kind == "aten::sqrt"    ? vo::SqrtOp::create(builder, loc, *x).getResult()
          : kind == "aten::log"     ? vo::LogOp::create(builder, loc, *x).getResult()
                                    : vo::ReciprocalOp::create(builder, loc, *x).getResult();
      define(result);
      return Error::success();
    }
    if (kind == "aten::transpose" || kind == "aten::permute") {
      auto x = tensorOf(node, 0);
      if (!x) return x.takeError();
      int64_t rank = shapeOf(*x).size();
      SmallVector<int64_t> perm;
      if (kind == "aten::permute") {
        auto dims = intsOf(node, 1);
        if (!dims) return dims.takeError();
        for (int64_t d : *dims)
          perm.push_back(normalizeDim(d, rank));
      } else {
        auto a = intOf(node, 1), b = intOf(node, 2);
        if (!a) return a.takeError();
        if (!b) return b.takeError();
        for (int64_t d = 0; d < rank; ++d)
          perm.push_back(d);
        std::swap(perm[normalizeDim(*a, rank)], perm[normalizeDim(*b, rank)]);
      }
      define(vo::TransposeOp::create(builder, loc, *x, perm));
      return Error::success();
    }
    if (kind == "aten::unsqueeze" || kind == "aten::squeeze" || kind == "aten::flatten") {
      auto x = tensorOf(node, 0);
      if (!x) return x.takeError();
      SmallVector<int64_t> shape(shapeOf(*x));
      int64_t rank = shape.size();
      if (kind == "aten::unsqueeze") {
        auto dim = intOf(node, 1);
        if (!dim) return dim.takeError();
        int64_t d = *dim < 0 ? *dim + rank + 1 : *dim;
        shape.insert(shape.begin() + d, 1);
      } else if (kind == "aten::squeeze") {
        if (node->inputs().size() == 1) {
          llvm::erase_if(shape, [](int64_t size) { return size == 1; });
        } else {
          auto dim = intOf(node, 1);
          if (!dim) return dim.takeError();
          int64_t d = normalizeDim(*dim, rank);
          if (shape[d] == 1)
            shape.erase(shape.begin() + d);
        }
      } else {
        auto first = intOf(node, 1), last = intOf(node, 2);
        if (!first) return first.takeError();
        if (!last) return last.takeError();
        int64_t a = normalizeDim(*first, rank), b = normalizeDim(*last, rank);
        int64_t merged = 1;
        for (int64_t d = a; d <= b; ++d)
          merged *= shape[d];
        shape.erase(shape.begin() + a, shape.begin() + b + 1);
        shape.insert(shape.begin() + a, merged);
      }
      define(vo::ReshapeOp::create(builder, loc, *x, shape));
      return Error::success();
    }
    if (kind == "aten::expand") {
      auto x = tensorOf(node, 0);
      if (!x) return x.takeError();
      auto sizes = intsOf(node, 1);
      if (!sizes) return sizes.takeError();
      ArrayRef<int64_t> shape = shapeOf(*x);
      SmallVector<int64_t> target(*sizes);
      int64_t offset = static_cast<int64_t>(target.size()) - static_cast<int64_t>(shape.size());
      if (offset < 0)
        return makeError("aten::expand to fewer dims than the tensor has");
      for (size_t d = 0; d < target.size(); ++d)
        if (target[d] == -1) {
          if (static_cast<int64_t>(d) < offset)
            return makeError("aten::expand: -1 for a new leading dim");
          target[d] = shape[d - offset];
        }
      if (ArrayRef<int64_t>(target) == shape) {
        define(*x);
        return Error::success();
      }
      define(vo::BroadcastToOp::create(builder, loc, *x, target));
      return Error::success();
    }
    if (kind == "aten::slice") {
      // (self, dim, start, end, step); None start/end mean the whole dim.
      auto x = tensorOf(node, 0);
      if (!x) return x.takeError();
      SmallVector<int64_t> shape(shapeOf(*x));
      auto dim = intOf(node, 1);
      if (!dim) return dim.takeError();
      int64_t d = normalizeDim(*dim, shape.size());
      auto bound = [&](size_t index, int64_t otherwise) -> Expected<int64_t> {
        Imported &in = values[node->input(index)];
        if (in.constant && in.constant->isNone())
          return otherwise;
        return intOf(node, index);
      };
      auto start = bound(2, 0), end = bound(3, shape[d]), step = intOf(node, 4);
      if (!start) return start.takeError();
      if (!end) return end.takeError();
      if (!step) return step.takeError();
      auto clamp = [&](int64_t v) {
        if (v < 0) v += shape[d];
        return std::min(std::max<int64_t>(v, 0), shape[d]);
      };
      int64_t from = clamp(*start), to = std::max(clamp(*end), clamp(*start));
      if (from == 0 && to == shape[d] && *step == 1) {
        define(*x);
        return Error::success();
      }
      SmallVector<int64_t> starts(shape.size(), 0), limits(shape), strides(shape.size(), 1);
      starts[d] = from;
      limits[d] = to;
      strides[d] = *step;
      define(vo::SliceOp::create(builder, loc, *x, starts, limits, strides));
      return Error::success();
    }
    if (kind == "aten::cat") {
      Imported &list = values[node->input(0)];
      auto dim = intOf(node, 1);
      if (!dim) return dim.takeError();
      SmallVector<Value> parts;
      if (!list.isSequence)
        return makeError("aten::cat of something that is not a list of tensors");
      for (auto [i, element] : llvm::enumerate(list.elements)) {
        auto part = tensorOfValue(node, element, i);
        if (!part) return part.takeError();
        parts.push_back(*part);
      }
      int64_t axis = normalizeDim(*dim, shapeOf(parts.front()).size());
      define(vo::ConcatOp::create(builder, loc, parts, axis));
      return Error::success();
    }
    if (kind == "aten::topk") {
      // (self, k, dim, largest, sorted): the router's top k, descending.
      auto x = tensorOf(node, 0);
      if (!x) return x.takeError();
      auto k = intOf(node, 1), dim = intOf(node, 2);
      if (!k) return k.takeError();
      if (!dim) return dim.takeError();
      Imported &largest = values[node->input(3)];
      int64_t rank = shapeOf(*x).size();
      if (normalizeDim(*dim, rank) != rank - 1 || !largest.constant ||
          !largest.constant->isBool() || !largest.constant->toBool())
        return makeError("aten::topk: only the largest k along the last dim are supported");
      auto topK = vo::TopKOp::create(builder, loc, *x, *k);
      values[node->output(0)].tensor = topK.getValues();
      values[node->output(1)].tensor = topK.getIndices();
      return Error::success();
    }
    if (kind == "aten::chunk") {
      // (self, chunks, dim) -> a list of slices, as torch.chunk cuts them.
      auto x = tensorOf(node, 0);
      if (!x) return x.takeError();
      auto chunks = intOf(node, 1), dim = intOf(node, 2);
      if (!chunks) return chunks.takeError();
      if (!dim) return dim.takeError();
      SmallVector<int64_t> shape(shapeOf(*x));
      int64_t d = normalizeDim(*dim, shape.size());
      int64_t size = (shape[d] + *chunks - 1) / *chunks;
      Imported &out = values[node->output()];
      for (int64_t start = 0; start < shape[d]; start += size) {
        SmallVector<int64_t> starts(shape.size(), 0), limits(shape), strides(shape.size(), 1);
        starts[d] = start;
        limits[d] = std::min(start + size, shape[d]);
        out.madeTensors.push_back(vo::SliceOp::create(builder, loc, *x, starts, limits, strides));
      }
      return Error::success();
    }
    if (kind == "aten::index") {
      // self[indices]: one index tensor on dim 0 gathers rows (the experts'
      // weights by expert id), which is what vo.embedding does.
      Imported &list = values[node->input(1)];
      auto table = tensorOf(node, 0);
      if (!table) return table.takeError();
      if (!list.isSequence || list.elements.size() != 1)
        return makeError("aten::index: only one index tensor, on dim 0, is supported");
      auto ids = tensorOfValue(node, list.elements[0], 1);
      if (!ids) return ids.takeError();
      if (!isa<IntegerType>(cast<RankedTensorType>(ids->getType()).getElementType()) ||
          !isa<FloatType>(cast<RankedTensorType>(table->getType()).getElementType()))
        return makeError("aten::index: only float rows picked by integer ids are supported");
      define(vo::EmbeddingOp::create(builder, loc, *table, *ids));
      return Error::success();
    }
    if (kind == "aten::clamp") {
      // (self, min, max) with constant bounds (None: unbounded).
      auto x = tensorOf(node, 0);
      if (!x) return x.takeError();
      Value result = *x;
      for (size_t i : {1, 2}) {
        Imported &bound = values[node->input(i)];
        if (bound.constant && bound.constant->isNone())
          continue;
        auto limit = tensorOrScalar(node, i, result);
        if (!limit) return limit.takeError();
        result = i == 1 ? vo::MaximumOp::create(builder, loc, result, *limit).getResult()
                        : vo::MinimumOp::create(builder, loc, result, *limit).getResult();
      }
      define(result);
      return Error::success();
    }
    if (kind == "aten::bmm") {
      auto a = tensorOf(node, 0), b = tensorOf(node, 1);
      if (!a) return a.takeError();
      if (!b) return b.takeError();
      define(vo::MatmulOp::create(builder, loc, *a, *b, false, false));
      return Error::success();
    }
    if (kind == "aten::repeat_interleave") {
      // (self, repeats: int, dim): each slice along dim repeated in place.
      auto x = tensorOf(node, 0);
      if (!x) return x.takeError();
      auto repeats = intOf(node, 1);
      if (!repeats) return repeats.takeError();
      Imported &dimValue = values[node->input(2)];
      if (!dimValue.constant || !dimValue.constant->isInt())
        return makeError("aten::repeat_interleave needs a dim");
      SmallVector<int64_t> shape(shapeOf(*x));
      int64_t d = normalizeDim(dimValue.constant->toInt(), shape.size());
      SmallVector<int64_t> unsqueezed(shape), repeated(shape), merged(shape);
      unsqueezed.insert(unsqueezed.begin() + d + 1, 1);
      repeated.insert(repeated.begin() + d + 1, *repeats);
      merged[d] *= *repeats;
      Value result = vo::ReshapeOp::create(builder, loc, *x, unsqueezed);
      result = vo::BroadcastToOp::create(builder, loc, result, repeated);
      define(vo::ReshapeOp::create(builder, loc, result, merged));
      return Error::success();
    }
    if (kind == "aten::softmax") {
      auto x = tensorOf(node, 0);
      if (!x) return x.takeError();
      auto dim = intOf(node, 1);
      if (!dim) return dim.takeError();
      define(vo::SoftmaxOp::create(builder, loc, *x, normalizeDim(*dim, shapeOf(*x).size())));
      return Error::success();
    }
    if (kind == "aten::pad") {
      // (self, pad, mode, value): constant padding of the last dims.
      auto x = tensorOf(node, 0);
      if (!x) return x.takeError();
      auto pad = intsOf(node, 1);
      if (!pad) return pad.takeError();
      Imported &mode = values[node->input(2)];
      Imported &fill = values[node->input(3)];
      if (!mode.constant || !mode.constant->isString() || mode.constant->toStringRef() != "constant")
        return makeError("aten::pad: only mode 'constant' is supported");
      double value = 0.0;
      if (fill.constant && (fill.constant->isDouble() || fill.constant->isInt()))
        value = fill.constant->isDouble() ? fill.constant->toDouble()
                                          : static_cast<double>(fill.constant->toInt());
      Value result = *x;
      auto type = cast<RankedTensorType>(result.getType());
      for (size_t pair = 0; pair * 2 + 1 < pad->size(); ++pair) {
        int64_t d = static_cast<int64_t>(type.getRank()) - 1 - static_cast<int64_t>(pair);
        int64_t before = (*pad)[pair * 2], after = (*pad)[pair * 2 + 1];
        if (before < 0 || after < 0)
          return makeError("aten::pad with negative padding is not supported");
        SmallVector<Value> parts;
        for (int64_t width : {before, int64_t{-1}, after}) {
          if (width == -1) {
            parts.push_back(result);
            continue;
          }
          if (width == 0)
            continue;
          SmallVector<int64_t> shape(cast<RankedTensorType>(result.getType()).getShape());
          shape[d] = width;
          auto blockType = RankedTensorType::get(shape, type.getElementType());
          Attribute element =
              isa<FloatType>(type.getElementType())
                  ? Attribute(builder.getFloatAttr(type.getElementType(), value))
                  : Attribute(builder.getIntegerAttr(type.getElementType(),
                                                     static_cast<int64_t>(value)));
          parts.push_back(vo::ConstantOp::create(builder, loc,
                                                 SplatElementsAttr::get(blockType, element)));
        }
        if (parts.size() > 1)
          result = vo::ConcatOp::create(builder, loc, parts, d);
      }
      define(result);
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
    // In-place arithmetic (routing_weights /= sum) yields the updated value,
    // which is what later reads use in traced and exported graphs.
    if (kind == "aten::div_" || kind == "aten::mul_" || kind == "aten::add_" ||
        kind == "aten::sub_")
      kind.pop_back();
    if (kind == "aten::add" || kind == "aten::sub" || kind == "aten::mul" ||
        kind == "aten::div" || kind == "aten::pow" || kind == "aten::rsub") {
      // Either side may be the run-time tensor; a scalar takes its type.
      bool firstIsTensor = values[node->input(0)].tensor ||
                           (values[node->input(0)].constant &&
                            values[node->input(0)].constant->isTensor());
      Expected<Value> a = firstIsTensor ? tensorOf(node, 0) : tensorOf(node, 1);
      if (!a) return a.takeError();
      Expected<Value> b = tensorOrScalar(node, firstIsTensor ? 1 : 0, *a);
      if (!b) return b.takeError();
      if (!firstIsTensor)
        std::swap(*a, *b);
      if (kind == "aten::div" && node->inputs().size() > 2 &&
          !(values[node->input(2)].constant && values[node->input(2)].constant->isNone()))
        return makeError("aten::div with a rounding mode is not supported");
      if (kind == "aten::rsub") {
        // rsub(a, b, alpha) = b - alpha * a.
        std::swap(*a, *b);
      }
      if ((kind == "aten::add" || kind == "aten::sub" || kind == "aten::rsub") &&
          node->inputs().size() > 2) {
        Imported &alpha = values[node->input(2)];
        if (!alpha.constant || !alpha.constant->isInt() || alpha.constant->toInt() != 1)
          return makeError(kind + " with alpha other than 1 is not supported");
      }
      Value result =
          kind == "aten::add"                          ? vo::AddOp::create(builder, loc, *a, *b).getResult()
          : kind == "aten::sub" || kind == "aten::rsub" ? vo::SubOp::create(builder, loc, *a, *b).getResult()
          : kind == "aten::mul"                        ? vo::MulOp::create(builder, loc, *a, *b).getResult()
          : kind == "aten::div"                        ? vo::DivOp::create(builder, loc, *a, *b).getResult()
                                                       : vo::PowOp::create(builder, loc, *a, *b).getResult();
      define(result);
      return Error::success();
    }
    if (kind == "aten::mean" || kind == "aten::sum") {
      auto x = tensorOf(node, 0);
      if (!x) return x.takeError();
      int64_t rank = cast<RankedTensorType>(x->getType()).getRank();
      SmallVector<int64_t> axes;
      bool keepDims = false;
      size_t dtypeIndex = 1;
      if (node->inputs().size() >= 4) {
        // (self, dim, keepdim, dtype): over the given dims.
        auto dims = intsOf(node, 1);
        if (!dims) return dims.takeError();
        for (int64_t d : *dims)
          axes.push_back(normalizeDim(d, rank));
        llvm::sort(axes);
        Imported &keep = values[node->input(2)];
        if (!keep.constant || !keep.constant->isBool())
          return makeError(kind + ": keepdim must be a constant");
        keepDims = keep.constant->toBool();
        dtypeIndex = 3;
      } else {
        for (int64_t d = 0; d < rank; ++d)
          axes.push_back(d);
      }
      if (!values[node->input(dtypeIndex)].constant ||
          !values[node->input(dtypeIndex)].constant->isNone())
        return makeError(kind + " with a dtype is not supported");
      define(kind == "aten::mean"
                 ? vo::ReduceMeanOp::create(builder, loc, *x, axes, keepDims).getResult()
                 : vo::ReduceSumOp::create(builder, loc, *x, axes, keepDims).getResult());
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
    auto [file, line] = sourceOf(node);
    return makeError("unsupported TorchScript op '" + kind + "'" +
                     (file.empty() ? std::string()
                                   : " (traced at " + file + ":" + std::to_string(line) + ")"));
  }

  MLIRContext &context;
  OpBuilder builder;
  const TorchScriptImportOptions &options;
  ModuleOp moduleOp;
  func::FuncOp func;
  std::unordered_map<torch::jit::Value *, Imported> values;
  std::map<const void *, Value> params;

 public:
  /// Where a node of a torch.export graph came from (its stack_trace).
  std::unordered_map<torch::jit::Node *, std::pair<std::string, unsigned>> nodeSources;
};

//===----------------------------------------------------------------------===//
// torch.export archives (.pt2)
//===----------------------------------------------------------------------===//

/// The ExportedProgram schema's enums (torch/_export/serde/schema.py), which
/// number differently from c10's.
std::optional<c10::ScalarType> scalarTypeOf(int64_t code) {
  switch (code) {
  case 1: return at::kByte;
  case 2: return at::kChar;
  case 3: return at::kShort;
  case 4: return at::kInt;
  case 5: return at::kLong;
  case 6: return at::kHalf;
  case 7: return at::kFloat;
  case 8: return at::kDouble;
  case 12: return at::kBool;
  case 13: return at::kBFloat16;
  default: return std::nullopt;
  }
}

/// The schema versions this reader was written against and tested with.
constexpr int64_t kExportSchemaMajor = 8;

class ExportReader {
 public:
  ExportReader(StringRef path) : path(path.str()) {}

  Error open() {
    try {
      reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
    } catch (const std::exception &error) {
      // LibTorch's first sentence says what is wrong; the rest is advice
      // about checkpoints.
      std::string message = error.what();
      message = message.substr(0, message.find('\n'));
      message = message.substr(0, message.find(". "));
      return makeError("'" + path + "' is not a torch.export archive (not a readable zip: " +
                       message + ")");
    }
    auto format = record("archive_format");
    if (!format || StringRef(*format).trim() != "pt2")
      return makeError("'" + path + "' is not a torch.export archive (no archive_format pt2)");
    std::vector<std::string> models;
    for (const std::string &name : reader->getAllRecords())
      if (StringRef(name).starts_with("models/") && StringRef(name).ends_with(".json"))
        models.push_back(name);
    if (models.size() != 1)
      return makeError("'" + path + "' holds " + std::to_string(models.size()) +
                       " exported programs; veomni-import reads archives with one");
    modelName = StringRef(models[0]).drop_front(7).drop_back(5).str();
    auto text = record(models[0]);
    auto parsed = llvm::json::parse(*text);
    if (!parsed)
      return makeError("'" + path + "': " + models[0] + " is not JSON: " +
                       llvm::toString(parsed.takeError()));
    program = std::move(*parsed);
    const llvm::json::Object *root = program.getAsObject();
    const llvm::json::Object *version = root ? root->getObject("schema_version") : nullptr;
    std::optional<int64_t> major = version ? version->getInteger("major") : std::nullopt;
    std::optional<int64_t> minor = version ? version->getInteger("minor") : std::nullopt;
    if (!major || *major != kExportSchemaMajor)
      return makeError("'" + path + "' was written with torch.export schema version " +
                       (major ? std::to_string(*major) + "." + std::to_string(minor.value_or(0))
                              : std::string("(none)")) +
                       "; veomni-import reads version " + std::to_string(kExportSchemaMajor) +
                       ".x (torch 2.11)");
    return Error::success();
  }

  std::optional<std::string> record(const std::string &name) {
    if (!reader->hasRecord(name))
      return std::nullopt;
    auto [data, size] = reader->getRecord(name);
    return std::string(static_cast<const char *>(data.get()), size);
  }

  /// A tensor of the archive's weights or constants directory, as its config
  /// describes it.
  Expected<at::Tensor> tensor(StringRef dir, const llvm::json::Object &entry,
                              const std::string &what) {
    const llvm::json::Object *meta = entry.getObject("tensor_meta");
    std::optional<StringRef> file = entry.getString("path_name");
    if (!meta || !file)
      return makeError("'" + path + "': " + what + " has no path or tensor_meta");
    if (entry.getBoolean("use_pickle").value_or(false))
      return makeError("'" + path + "': " + what + " is pickled; veomni-import reads raw weights");
    auto dtype = scalarTypeOf(meta->getInteger("dtype").value_or(0));
    if (!dtype)
      return makeError("'" + path + "': " + what + " has an unsupported dtype");
    auto ints = [&](StringRef key) {
      std::vector<int64_t> out;
      if (const llvm::json::Array *array = meta->getArray(key))
        for (const llvm::json::Value &item : *array)
          if (const llvm::json::Object *sym = item.getAsObject())
            out.push_back(sym->getInteger("as_int").value_or(0));
      return out;
    };
    std::vector<int64_t> sizes = ints("sizes"), strides = ints("strides");
    int64_t offset = 0;
    if (const llvm::json::Object *o = meta->getObject("storage_offset"))
      offset = o->getInteger("as_int").value_or(0);
    auto bytes = record((dir + *file).str());
    if (!bytes)
      return makeError("'" + path + "': " + what + "'s data " + (dir + *file).str() +
                       " is missing");
    at::Tensor storage =
        torch::empty({static_cast<int64_t>(bytes->size())}, torch::dtype(at::kByte));
    std::memcpy(storage.data_ptr(), bytes->data(), bytes->size());
    int64_t element = c10::elementSize(*dtype);
    int64_t needed = offset;
    for (size_t d = 0; d < sizes.size(); ++d)
      needed += sizes[d] == 0 ? 0 : (sizes[d] - 1) * strides[d];
    if ((needed + 1) * element > static_cast<int64_t>(bytes->size()) && !sizes.empty())
      return makeError("'" + path + "': " + what + "'s data is shorter than its shape");
    return storage.view(*dtype).as_strided(sizes, strides, offset).clone();
  }

  std::string path, modelName;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  llvm::json::Value program = nullptr;
};

/// Builds a TorchScript graph of an ExportedProgram's nodes (each ATen call
/// with its arguments in schema order), so the TorchScript importer walks
/// it; records the bindings of its inputs.
class ExportGraphBuilder {
 public:
  ExportGraphBuilder(ExportReader &archive) : archive(archive) {}

  Error build(Importer &importer, std::vector<Importer::GraphInput> &bindings) {
    const llvm::json::Object *root = archive.program.getAsObject();
    const llvm::json::Object *module = root->getObject("graph_module");
    const llvm::json::Object *graphJson = module ? module->getObject("graph") : nullptr;
    const llvm::json::Object *signature = module ? module->getObject("signature") : nullptr;
    if (!graphJson || !signature)
      return fail("has no graph_module.graph or signature");
    tensorValues = graphJson->getObject("tensor_values");
    if (!tensorValues)
      return fail("has no tensor_values");
    auto weights = config("data/weights/", archive.modelName + "_weights_config.json");
    auto constants = config("data/constants/", archive.modelName + "_constants_config.json");
    if (!weights)
      return weights.takeError();
    if (!constants)
      return constants.takeError();

    // Inputs, bound by the signature's input_specs (one per graph input).
    const llvm::json::Array *specs = signature->getArray("input_specs");
    const llvm::json::Array *inputs = graphJson->getArray("inputs");
    if (!specs || !inputs || specs->size() != inputs->size())
      return fail("has input_specs that do not match the graph's inputs");
    for (size_t i = 0; i < inputs->size(); ++i) {
      std::optional<StringRef> name = tensorName((*inputs)[i]);
      if (!name)
        return fail("has a graph input that is not a tensor");
      torch::jit::Value *value = graph->addInput();
      auto type = tensorType(*name);
      if (!type)
        return type.takeError();
      value->setType(*type);
      named[name->str()] = value;
      const llvm::json::Object *spec = (*specs)[i].getAsObject();
      Importer::GraphInput binding;
      if (const llvm::json::Object *p = spec ? spec->getObject("parameter") : nullptr) {
        std::string target = p->getString("parameter_name").value_or("").str();
        auto tensor = weightOf(*weights, "data/weights/", target);
        if (!tensor)
          return tensor.takeError();
        binding.kind = Importer::GraphInput::kParameter;
        binding.name = target;
        binding.value = *tensor;
      } else if (const llvm::json::Object *b = spec ? spec->getObject("buffer") : nullptr) {
        std::string target = b->getString("buffer_name").value_or("").str();
        bool persistent = b->getBoolean("persistent").value_or(true);
        auto tensor = persistent ? weightOf(*weights, "data/weights/", target)
                                 : weightOf(*constants, "data/constants/", target);
        if (!tensor)
          return tensor.takeError();
        binding.kind = Importer::GraphInput::kConstant;
        binding.value = *tensor;
      } else if (const llvm::json::Object *c =
                     spec ? spec->getObject("tensor_constant") : nullptr) {
        auto tensor = weightOf(*constants, "data/constants/",
                               c->getString("tensor_constant_name").value_or("").str());
        if (!tensor)
          return tensor.takeError();
        binding.kind = Importer::GraphInput::kConstant;
        binding.value = *tensor;
      } else if (spec && spec->getObject("user_input")) {
        binding.kind = Importer::GraphInput::kUser;
        binding.name = name->str();
        auto shaped = (*type)->cast<c10::TensorType>();
        std::vector<int64_t> concrete = *shaped->sizes().concrete_sizes();
        SmallVector<int64_t> shape(concrete.begin(), concrete.end());
        c10::ScalarType dtype = *shaped->scalarType();
        Type element = dtype == at::kLong  ? Type(importer.i64())
                       : dtype == at::kInt ? Type(importer.i32())
                       : dtype == at::kBool ? Type(importer.i1())
                                            : Type(importer.f32());
        binding.type = RankedTensorType::get(shape, element);
      } else {
        return fail("has an input kind veomni-import does not read (input " +
                    std::to_string(i) + ")");
      }
      bindings.push_back(binding);
    }

    // Nodes.
    const llvm::json::Array *nodes = graphJson->getArray("nodes");
    if (!nodes)
      return fail("has no nodes");
    for (const llvm::json::Value &entry : *nodes)
      if (Error error = node(*entry.getAsObject(), importer))
        return error;

    // Outputs: the user's.
    const llvm::json::Array *outputSpecs = signature->getArray("output_specs");
    for (const llvm::json::Value &entry : outputSpecs ? *outputSpecs : llvm::json::Array()) {
      const llvm::json::Object *spec = entry.getAsObject();
      const llvm::json::Object *user = spec ? spec->getObject("user_output") : nullptr;
      if (!user)
        return fail("has an output that is not a user output (buffer mutations and "
                    "gradients are not read)");
      std::optional<StringRef> name = tensorName(*user->get("arg"));
      if (!name || !named.count(name->str()))
        return fail("returns something that is not a tensor of its graph");
      graph->registerOutput(named[name->str()]);
    }
    return Error::success();
  }

  std::shared_ptr<torch::jit::Graph> graph = std::make_shared<torch::jit::Graph>();

 private:
  Error fail(const std::string &message) {
    return makeError("'" + archive.path + "' " + message);
  }

  Expected<llvm::json::Object> config(const std::string &dir, const std::string &file) {
    auto text = archive.record(dir + file);
    if (!text)
      return llvm::json::Object();
    auto parsed = llvm::json::parse(*text);
    if (!parsed)
      return makeError("'" + archive.path + "': " + dir + file + " is not JSON");
    const llvm::json::Object *object = parsed->getAsObject();
    const llvm::json::Object *entries = object ? object->getObject("config") : nullptr;
    return entries ? *entries : llvm::json::Object();
  }

  /// A weight by name; names whose data is one file (tied weights) get one
  /// tensor, which the importer makes one parameter.
  Expected<at::Tensor> weightOf(const llvm::json::Object &entries, StringRef dir,
                                const std::string &name) {
    const llvm::json::Object *entry = entries.getObject(name);
    if (!entry)
      return makeError("'" + archive.path + "' has no data for '" + name + "'");
    std::string file = (dir + entry->getString("path_name").value_or("")).str();
    if (auto found = loaded.find(file); found != loaded.end())
      return found->second;
    auto tensor = archive.tensor(dir, *entry, "'" + name + "'");
    if (tensor)
      loaded[file] = *tensor;
    return tensor;
  }

  static std::optional<StringRef> tensorName(const llvm::json::Object &argument) {
    const llvm::json::Object *tensor = argument.getObject("as_tensor");
    return tensor ? tensor->getString("name") : std::nullopt;
  }
  static std::optional<StringRef> tensorName(const llvm::json::Value &argument) {
    const llvm::json::Object *object = argument.getAsObject();
    return object ? tensorName(*object) : std::nullopt;
  }

  Expected<c10::TypePtr> tensorType(StringRef name) {
    const llvm::json::Object *meta = tensorValues->getObject(name);
    if (!meta)
      return fail("has no tensor_values entry for '" + name.str() + "'");
    auto dtype = scalarTypeOf(meta->getInteger("dtype").value_or(0));
    if (!dtype)
      return fail("'" + name.str() + "' has an unsupported dtype");
    std::vector<int64_t> sizes;
    for (const llvm::json::Value &item : *meta->getArray("sizes")) {
      std::optional<int64_t> size = item.getAsObject()->getInteger("as_int");
      if (!size)
        return fail("'" + name.str() + "' has a symbolic dim; export with static shapes");
      sizes.push_back(*size);
    }
    return c10::TypePtr(c10::TensorType::createContiguous(*dtype, at::kCPU, sizes));
  }

  /// One argument as a graph value: a tensor of the graph, or a constant.
  Expected<torch::jit::Value *> argument(const llvm::json::Object &arg, StringRef target) {
    auto ints = [](const llvm::json::Array &array) {
      std::vector<int64_t> out;
      for (const llvm::json::Value &item : array) {
        if (std::optional<int64_t> value = item.getAsInteger())
          out.push_back(*value);
        else if (const llvm::json::Object *sym = item.getAsObject())
          out.push_back(sym->getInteger("as_int").value_or(0));
      }
      return out;
    };
    if (std::optional<StringRef> name = tensorName(arg)) {
      auto found = named.find(name->str());
      if (found == named.end())
        return fail(target.str() + " reads '" + name->str() + "' before it is defined");
      return found->second;
    }
    if (const llvm::json::Array *tensors = arg.getArray("as_tensors")) {
      std::vector<torch::jit::Value *> items;
      for (const llvm::json::Value &item : *tensors) {
        auto found = named.find(item.getAsObject()->getString("name").value_or("").str());
        if (found == named.end())
          return fail(target.str() + " reads a tensor before it is defined");
        items.push_back(found->second);
      }
      torch::jit::Node *list = graph->insertNode(graph->createList(c10::TensorType::get(), items));
      return list->output();
    }
    if (arg.get("as_none"))
      return graph->insertConstant(c10::IValue());
    if (std::optional<int64_t> v = arg.getInteger("as_int"))
      return graph->insertConstant(*v);
    if (const llvm::json::Object *sym = arg.getObject("as_sym_int")) {
      if (std::optional<int64_t> v = sym->getInteger("as_int"))
        return graph->insertConstant(*v);
      return fail(target.str() + " takes a symbolic int; export with static shapes");
    }
    if (std::optional<double> v = arg.getNumber("as_float"))
      return graph->insertConstant(*v);
    if (std::optional<bool> v = arg.getBoolean("as_bool"))
      return graph->insertConstant(*v);
    if (std::optional<StringRef> v = arg.getString("as_string"))
      return graph->insertConstant(v->str());
    if (const llvm::json::Array *v = arg.getArray("as_ints"))
      return graph->insertConstant(ints(*v));
    if (const llvm::json::Array *v = arg.getArray("as_sym_ints"))
      return graph->insertConstant(ints(*v));
    if (const llvm::json::Array *v = arg.getArray("as_floats")) {
      std::vector<double> out;
      for (const llvm::json::Value &item : *v)
        out.push_back(item.getAsNumber().value_or(0.0));
      return graph->insertConstant(out);
    }
    if (const llvm::json::Array *v = arg.getArray("as_bools")) {
      c10::List<bool> out;
      for (const llvm::json::Value &item : *v)
        out.push_back(item.getAsBoolean().value_or(false));
      return graph->insertConstant(out);
    }
    if (std::optional<int64_t> v = arg.getInteger("as_scalar_type")) {
      auto dtype = scalarTypeOf(*v);
      if (!dtype)
        return fail(target.str() + " takes an unsupported dtype");
      return graph->insertConstant(static_cast<int64_t>(*dtype));
    }
    if (std::optional<int64_t> v = arg.getInteger("as_memory_format")) {
      // Schema: 1 contiguous, 2 channels last, 3 channels last 3d, 4 preserve.
      c10::MemoryFormat format = *v == 2   ? c10::MemoryFormat::ChannelsLast
                                 : *v == 3 ? c10::MemoryFormat::ChannelsLast3d
                                 : *v == 4 ? c10::MemoryFormat::Preserve
                                           : c10::MemoryFormat::Contiguous;
      return graph->insertConstant(static_cast<int64_t>(format));
    }
    if (arg.getInteger("as_layout"))
      return graph->insertConstant(static_cast<int64_t>(c10::kStrided));
    if (const llvm::json::Object *device = arg.getObject("as_device")) {
      if (device->getString("type").value_or("cpu") != "cpu")
        return fail(target.str() + " places a tensor on a device; export on the CPU");
      return graph->insertConstant(c10::Device(c10::kCPU));
    }
    return fail(target.str() + " has an argument kind veomni-import does not read");
  }

  /// torch.ops.higher_order.wrap_with_set_grad_enabled(enabled, graph, *args)
  /// (a region under torch.no_grad, as HF computes RoPE tables): the region's
  /// nodes inline. Its results under no_grad are detached, which folds where
  /// they are constants and is refused where they are not (vo has no
  /// stop-gradient), so gradients never flow where PyTorch's would not.
  Error inlineGradRegion(const llvm::json::Object &entry, Importer &importer) {
    const llvm::json::Array *inputs = entry.getArray("inputs");
    if (!inputs || inputs->size() < 2)
      return fail("has a malformed wrap_with_set_grad_enabled");
    const llvm::json::Object *enabledArg = (*inputs)[0].getAsObject()->getObject("arg");
    const llvm::json::Object *graphArg = (*inputs)[1].getAsObject()->getObject("arg");
    const llvm::json::Object *region =
        graphArg && graphArg->getObject("as_graph")
            ? graphArg->getObject("as_graph")->getObject("graph")
            : nullptr;
    if (!enabledArg || !region)
      return fail("has a malformed wrap_with_set_grad_enabled");
    bool enabled = enabledArg->getBoolean("as_bool").value_or(true);
    const llvm::json::Array *regionInputs = region->getArray("inputs");
    if (!regionInputs || regionInputs->size() != inputs->size() - 2)
      return fail("has a wrap_with_set_grad_enabled whose region takes other inputs");
    for (size_t i = 0; i < regionInputs->size(); ++i) {
      auto outer = argument(*(*inputs)[i + 2].getAsObject()->getObject("arg"), "a grad region");
      if (!outer)
        return outer.takeError();
      std::optional<StringRef> inner = tensorName((*regionInputs)[i]);
      if (!inner)
        return fail("has a grad region with a non-tensor input");
      named[inner->str()] = *outer;
    }
    const llvm::json::Object *saved = tensorValues;
    if (const llvm::json::Object *own = region->getObject("tensor_values"))
      tensorValues = own;
    for (const llvm::json::Value &inner : *region->getArray("nodes"))
      if (Error error = node(*inner.getAsObject(), importer))
        return error;
    tensorValues = saved;
    const llvm::json::Array *regionOutputs = region->getArray("outputs");
    const llvm::json::Array *outputs = entry.getArray("outputs");
    // The HOP's outputs: one as_tensor each, or one as_tensors list.
    std::vector<std::string> outerNames;
    for (const llvm::json::Value &output : outputs ? *outputs : llvm::json::Array()) {
      if (std::optional<StringRef> name = tensorName(output)) {
        outerNames.push_back(name->str());
      } else if (const llvm::json::Array *list =
                     output.getAsObject() ? output.getAsObject()->getArray("as_tensors")
                                          : nullptr) {
        for (const llvm::json::Value &item : *list)
          outerNames.push_back(item.getAsObject()->getString("name").value_or("").str());
      }
    }
    if (!regionOutputs || regionOutputs->size() != outerNames.size())
      return fail("has a grad region whose outputs do not match its call's");
    for (size_t i = 0; i < outerNames.size(); ++i) {
      std::optional<StringRef> inner = tensorName((*regionOutputs)[i]);
      if (!inner || !named.count(inner->str()))
        return fail("has a grad region returning something it does not define");
      torch::jit::Value *value = named[inner->str()];
      if (!enabled) {
        torch::jit::Node *detach = graph->insertNode(
            graph->create(c10::Symbol::fromQualString("aten::detach"), {value}, 1));
        detach->output()->setType(value->type());
        value = detach->output();
      }
      named[outerNames[i]] = value;
    }
    return Error::success();
  }

  Error node(const llvm::json::Object &entry, Importer &importer) {
    StringRef target = entry.getString("target").value_or("");
    if (target == "torch.ops.higher_order.wrap_with_set_grad_enabled")
      return inlineGradRegion(entry, importer);
    // Checks of static metadata the export already guarantees.
    if (target == "torch.ops.aten._assert_tensor_metadata.default" ||
        target == "torch.ops.aten._assert_scalar.default")
      return Error::success();
    // "torch.ops.aten.linear.default" -> aten::linear, overload "".
    SmallVector<StringRef> parts;
    target.split(parts, '.');
    if (parts.size() != 5 || parts[0] != "torch" || parts[1] != "ops")
      return fail("calls '" + target.str() + "', which is not an ATen operator");
    std::string op = (parts[2] + "::" + parts[3]).str();
    std::string overload = parts[4] == "default" ? "" : parts[4].str();
    auto handle = c10::Dispatcher::singleton().findSchema({op, overload});
    if (!handle)
      return fail("calls '" + target.str() + "', which this LibTorch does not know");
    const c10::FunctionSchema &schema = handle->schema();
    std::map<std::string, const llvm::json::Object *> given;
    if (const llvm::json::Array *inputs = entry.getArray("inputs"))
      for (const llvm::json::Value &input : *inputs)
        if (const llvm::json::Object *object = input.getAsObject())
          given[object->getString("name").value_or("").str()] = object->getObject("arg");
    std::vector<torch::jit::Value *> operands;
    for (const c10::Argument &formal : schema.arguments()) {
      auto found = given.find(formal.name());
      if (found != given.end() && found->second) {
        auto value = argument(*found->second, target);
        if (!value)
          return value.takeError();
        operands.push_back(*value);
      } else if (formal.default_value()) {
        operands.push_back(graph->insertConstant(*formal.default_value()));
      } else {
        return fail("calls '" + target.str() + "' without its argument '" + formal.name() +
                    "'");
      }
    }
    const llvm::json::Array *outputs = entry.getArray("outputs");
    size_t count = outputs ? outputs->size() : 0;
    torch::jit::Node *created =
        graph->insertNode(graph->create(c10::Symbol::fromQualString(op), operands, count));
    // An op returning a list of tensors (chunk, split): its items unpacked.
    if (count == 1 && (*outputs)[0].getAsObject() &&
        (*outputs)[0].getAsObject()->getArray("as_tensors")) {
      const llvm::json::Array &items = *(*outputs)[0].getAsObject()->getArray("as_tensors");
      created->output()->setType(c10::ListType::ofTensors());
      torch::jit::Node *unpack = graph->insertNode(
          graph->create(c10::prim::ListUnpack, {created->output()}, items.size()));
      for (size_t i = 0; i < items.size(); ++i) {
        std::string name = items[i].getAsObject()->getString("name").value_or("").str();
        auto type = tensorType(name);
        if (!type)
          return type.takeError();
        unpack->output(i)->setType(*type);
        named[name] = unpack->output(i);
      }
      count = 0;
    }
    for (size_t i = 0; i < count; ++i) {
      std::optional<StringRef> name = tensorName((*outputs)[i]);
      if (!name) {
        // Non-tensor outputs (a symbolic size) are never read in static
        // exports; leave them untyped.
        continue;
      }
      auto type = tensorType(*name);
      if (!type)
        return type.takeError();
      created->output(i)->setType(*type);
      named[name->str()] = created->output(i);
    }
    // The first frame of the node's stack trace, for locations and errors.
    if (const llvm::json::Object *metadata = entry.getObject("metadata"))
      if (std::optional<StringRef> trace = metadata->getString("stack_trace")) {
        // 'File "x.py", line 34, in forward' (the innermost user frame first).
        StringRef line = trace->split('\n').first;
        size_t quote = line.find('"'), close = line.find('"', quote + 1);
        size_t at = line.find("line ");
        unsigned number = 0;
        if (quote != StringRef::npos && close != StringRef::npos && at != StringRef::npos &&
            !line.drop_front(at + 5).take_while([](char c) { return c >= '0' && c <= '9'; }).getAsInteger(10, number))
          importer.nodeSources[created] = {line.slice(quote + 1, close).str(), number};
      }
    return Error::success();
  }

  ExportReader &archive;
  std::map<std::string, at::Tensor> loaded;  // by archive file
  const llvm::json::Object *tensorValues = nullptr;
  std::map<std::string, torch::jit::Value *> named;
};

} // namespace

Expected<OwningOpRef<ModuleOp>> importTorchExportFile(MLIRContext &context, StringRef path) {
  ExportReader archive(path);
  if (Error error = archive.open())
    return std::move(error);
  context.loadDialect<func::FuncDialect, vo::VoDialect>();
  TorchScriptImportOptions options;
  Importer importer(context, options);
  ExportGraphBuilder builder(archive);
  std::vector<Importer::GraphInput> bindings;
  try {
    if (Error error = builder.build(importer, bindings))
      return std::move(error);
  } catch (const std::exception &error) {
    std::string message = error.what();
    return makeError("'" + path + "': " + message.substr(0, message.find('\n')));
  }
  return importer.runGraph(*builder.graph, bindings, path, "torch.export");
}

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
