//===- HostTensor.cpp - constant tensors seen by the importers ------------===//

#include "frontends/common/HostTensor.h"

#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/APFloat.h"
#include "llvm/ADT/STLExtras.h"

#include <cmath>
#include <cstring>

using namespace veomni;
using llvm::ArrayRef;
using llvm::SmallVector;

namespace {

llvm::Error makeError(const llvm::Twine &message) {
  return llvm::createStringError(llvm::inconvertibleErrorCode(), message);
}

std::string formatShape(ArrayRef<int64_t> shape) {
  std::string text = "[";
  for (auto [i, d] : llvm::enumerate(shape))
    text += (i ? ", " : "") + std::to_string(d);
  return text + "]";
}

int64_t product(ArrayRef<int64_t> shape) {
  int64_t count = 1;
  for (int64_t d : shape)
    count *= d;
  return count;
}

SmallVector<int64_t, 4> rowMajorStrides(ArrayRef<int64_t> shape) {
  SmallVector<int64_t, 4> strides(shape.size(), 1);
  for (int64_t i = static_cast<int64_t>(shape.size()) - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * shape[i + 1];
  return strides;
}

/// For each element of `outShape`, the flat index of the element of an
/// operand of shape `inShape` that broadcasts to it.
std::vector<int64_t> broadcastIndexMap(ArrayRef<int64_t> inShape,
                                       ArrayRef<int64_t> outShape) {
  int64_t offset = outShape.size() - inShape.size();
  SmallVector<int64_t, 4> inStrides = rowMajorStrides(inShape);
  std::vector<int64_t> map(product(outShape));
  SmallVector<int64_t, 4> index(outShape.size(), 0);
  for (int64_t flat = 0, e = map.size(); flat < e; ++flat) {
    int64_t source = 0;
    for (size_t d = 0; d < inShape.size(); ++d)
      if (inShape[d] != 1)
        source += index[d + offset] * inStrides[d];
    map[flat] = source;
    for (int64_t d = static_cast<int64_t>(outShape.size()) - 1; d >= 0; --d) {
      if (++index[d] < outShape[d])
        break;
      index[d] = 0;
    }
  }
  return map;
}

double halfToDouble(uint16_t bits) {
  llvm::APFloat value(llvm::APFloat::IEEEhalf(), llvm::APInt(16, bits));
  return value.convertToDouble();
}

uint16_t doubleToHalf(double value) {
  llvm::APFloat f(value);
  bool lost;
  f.convert(llvm::APFloat::IEEEhalf(), llvm::APFloat::rmNearestTiesToEven,
            &lost);
  return static_cast<uint16_t>(f.bitcastToAPInt().getZExtValue());
}

double bf16ToDouble(uint16_t bits) {
  uint32_t word = static_cast<uint32_t>(bits) << 16;
  float value;
  std::memcpy(&value, &word, 4);
  return value;
}

uint16_t doubleToBf16(double value) {
  llvm::APFloat f(value);
  bool lost;
  f.convert(llvm::APFloat::BFloat(), llvm::APFloat::rmNearestTiesToEven,
            &lost);
  return static_cast<uint16_t>(f.bitcastToAPInt().getZExtValue());
}

template <typename T> T load(const uint8_t *data, int64_t index) {
  T value;
  std::memcpy(&value, data + index * sizeof(T), sizeof(T));
  return value;
}

template <typename T> void store(uint8_t *data, int64_t index, T value) {
  std::memcpy(data + index * sizeof(T), &value, sizeof(T));
}

double loadAsDouble(HostDType dtype, const uint8_t *data, int64_t i) {
  switch (dtype) {
  case HostDType::F32:
    return load<float>(data, i);
  case HostDType::F64:
    return load<double>(data, i);
  case HostDType::F16:
    return halfToDouble(load<uint16_t>(data, i));
  case HostDType::BF16:
    return bf16ToDouble(load<uint16_t>(data, i));
  case HostDType::I64:
    return static_cast<double>(load<int64_t>(data, i));
  case HostDType::I32:
    return load<int32_t>(data, i);
  case HostDType::I8:
    return load<int8_t>(data, i);
  case HostDType::U8:
  case HostDType::Bool:
    return load<uint8_t>(data, i);
  }
  llvm_unreachable("unknown dtype");
}

int64_t loadAsInt64(HostDType dtype, const uint8_t *data, int64_t i) {
  switch (dtype) {
  case HostDType::I64:
    return load<int64_t>(data, i);
  case HostDType::I32:
    return load<int32_t>(data, i);
  case HostDType::I8:
    return load<int8_t>(data, i);
  case HostDType::U8:
  case HostDType::Bool:
    return load<uint8_t>(data, i);
  default:
    return static_cast<int64_t>(loadAsDouble(dtype, data, i));
  }
}

void storeDouble(HostDType dtype, uint8_t *data, int64_t i, double value) {
  switch (dtype) {
  case HostDType::F32:
    return store<float>(data, i, static_cast<float>(value));
  case HostDType::F64:
    return store<double>(data, i, value);
  case HostDType::F16:
    return store<uint16_t>(data, i, doubleToHalf(value));
  case HostDType::BF16:
    return store<uint16_t>(data, i, doubleToBf16(value));
  case HostDType::I64:
    return store<int64_t>(data, i, static_cast<int64_t>(value));
  case HostDType::I32:
    return store<int32_t>(data, i, static_cast<int32_t>(value));
  case HostDType::I8:
    return store<int8_t>(data, i, static_cast<int8_t>(value));
  case HostDType::U8:
    return store<uint8_t>(data, i, static_cast<uint8_t>(value));
  case HostDType::Bool:
    return store<uint8_t>(data, i, value != 0 ? 1 : 0);
  }
}

void storeInt64(HostDType dtype, uint8_t *data, int64_t i, int64_t value) {
  switch (dtype) {
  case HostDType::I64:
    return store<int64_t>(data, i, value);
  case HostDType::I32:
    return store<int32_t>(data, i, static_cast<int32_t>(value));
  case HostDType::I8:
    return store<int8_t>(data, i, static_cast<int8_t>(value));
  case HostDType::U8:
    return store<uint8_t>(data, i, static_cast<uint8_t>(value));
  case HostDType::Bool:
    return store<uint8_t>(data, i, value != 0 ? 1 : 0);
  default:
    return storeDouble(dtype, data, i, static_cast<double>(value));
  }
}

/// Copies elements picked by `sourceIndex` into a new tensor of `shape`.
HostTensor gatherElements(const HostTensor &input, ArrayRef<int64_t> shape,
                          ArrayRef<int64_t> sourceIndex) {
  int64_t width = hostDTypeBytes(input.dtype());
  std::vector<uint8_t> bytes(sourceIndex.size() * width);
  for (auto [i, source] : llvm::enumerate(sourceIndex))
    std::memcpy(bytes.data() + i * width,
                input.bytes().data() + source * width, width);
  return HostTensor(input.dtype(), shape, std::move(bytes));
}

} // namespace

llvm::StringRef veomni::hostDTypeName(HostDType dtype) {
  switch (dtype) {
  case HostDType::F32:
    return "f32";
  case HostDType::F64:
    return "f64";
  case HostDType::F16:
    return "f16";
  case HostDType::BF16:
    return "bf16";
  case HostDType::I64:
    return "i64";
  case HostDType::I32:
    return "i32";
  case HostDType::I8:
    return "i8";
  case HostDType::U8:
    return "u8";
  case HostDType::Bool:
    return "bool";
  }
  llvm_unreachable("unknown dtype");
}

int64_t veomni::hostDTypeBytes(HostDType dtype) {
  switch (dtype) {
  case HostDType::F64:
  case HostDType::I64:
    return 8;
  case HostDType::F32:
  case HostDType::I32:
    return 4;
  case HostDType::F16:
  case HostDType::BF16:
    return 2;
  case HostDType::I8:
  case HostDType::U8:
  case HostDType::Bool:
    return 1;
  }
  llvm_unreachable("unknown dtype");
}

bool veomni::isFloatingPoint(HostDType dtype) {
  return dtype == HostDType::F32 || dtype == HostDType::F64 ||
         dtype == HostDType::F16 || dtype == HostDType::BF16;
}

mlir::Type veomni::hostDTypeToVoElement(mlir::MLIRContext *context,
                                        HostDType dtype) {
  switch (dtype) {
  case HostDType::F32:
  case HostDType::F64:
    return mlir::Float32Type::get(context);
  case HostDType::F16:
    return mlir::Float16Type::get(context);
  case HostDType::BF16:
    return mlir::BFloat16Type::get(context);
  case HostDType::I64:
    return mlir::IntegerType::get(context, 64);
  case HostDType::I32:
  case HostDType::I8:
  case HostDType::U8:
    return mlir::IntegerType::get(context, 32);
  case HostDType::Bool:
    return mlir::IntegerType::get(context, 1);
  }
  llvm_unreachable("unknown dtype");
}

HostTensor::HostTensor(HostDType dtype, ArrayRef<int64_t> shape,
                       std::vector<uint8_t> bytes)
    : dtype_(dtype), shape_(shape.begin(), shape.end()),
      bytes_(std::move(bytes)) {
  assert(static_cast<int64_t>(bytes_.size()) ==
             product(shape) * hostDTypeBytes(dtype) &&
         "byte size does not match shape");
}

HostTensor HostTensor::fromInt64(ArrayRef<int64_t> shape,
                                 ArrayRef<int64_t> values) {
  std::vector<uint8_t> bytes(values.size() * 8);
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return HostTensor(HostDType::I64, shape, std::move(bytes));
}

HostTensor HostTensor::fromDouble(HostDType dtype, ArrayRef<int64_t> shape,
                                  ArrayRef<double> values) {
  std::vector<uint8_t> bytes(values.size() * hostDTypeBytes(dtype));
  for (auto [i, v] : llvm::enumerate(values))
    storeDouble(dtype, bytes.data(), i, v);
  return HostTensor(dtype, shape, std::move(bytes));
}

int64_t HostTensor::numElements() const { return product(shape_); }

std::vector<int64_t> HostTensor::toInt64() const {
  std::vector<int64_t> values(numElements());
  for (int64_t i = 0, e = values.size(); i < e; ++i)
    values[i] = loadAsInt64(dtype_, bytes_.data(), i);
  return values;
}

std::vector<double> HostTensor::toDouble() const {
  std::vector<double> values(numElements());
  for (int64_t i = 0, e = values.size(); i < e; ++i)
    values[i] = loadAsDouble(dtype_, bytes_.data(), i);
  return values;
}

HostTensor HostTensor::castTo(HostDType dtype) const {
  if (dtype == dtype_)
    return *this;
  std::vector<uint8_t> bytes(numElements() * hostDTypeBytes(dtype));
  bool integral = !isFloatingPoint(dtype_) && !isFloatingPoint(dtype);
  for (int64_t i = 0, e = numElements(); i < e; ++i) {
    if (integral)
      storeInt64(dtype, bytes.data(), i, loadAsInt64(dtype_, bytes_.data(), i));
    else
      storeDouble(dtype, bytes.data(), i,
                  loadAsDouble(dtype_, bytes_.data(), i));
  }
  return HostTensor(dtype, shape_, std::move(bytes));
}

bool HostTensor::isSplat() const {
  int64_t width = hostDTypeBytes(dtype_), count = numElements();
  if (count == 0)
    return false;
  for (int64_t i = 1; i < count; ++i)
    if (std::memcmp(bytes_.data(), bytes_.data() + i * width, width) != 0)
      return false;
  return true;
}

llvm::Expected<SmallVector<int64_t, 4>>
veomni::broadcastHostShapes(ArrayRef<int64_t> lhs, ArrayRef<int64_t> rhs) {
  size_t rank = std::max(lhs.size(), rhs.size());
  SmallVector<int64_t, 4> result(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t l = i < rank - lhs.size() ? 1 : lhs[i - (rank - lhs.size())];
    int64_t r = i < rank - rhs.size() ? 1 : rhs[i - (rank - rhs.size())];
    if (l != r && l != 1 && r != 1)
      return makeError("cannot broadcast shapes " + formatShape(lhs) +
                       " and " + formatShape(rhs));
    result[i] = l == 1 ? r : l;
  }
  return result;
}

llvm::Expected<HostTensor> veomni::foldElementwise(llvm::StringRef op,
                                                   const HostTensor &lhs,
                                                   const HostTensor &rhs) {
  if (lhs.dtype() != rhs.dtype())
    return makeError("operands of '" + op + "' have dtypes " +
                     hostDTypeName(lhs.dtype()) + " and " +
                     hostDTypeName(rhs.dtype()));
  auto shape = broadcastHostShapes(lhs.shape(), rhs.shape());
  if (!shape)
    return shape.takeError();
  std::vector<int64_t> lmap = broadcastIndexMap(lhs.shape(), *shape);
  std::vector<int64_t> rmap = broadcastIndexMap(rhs.shape(), *shape);
  bool compare = llvm::is_contained({"eq", "lt", "gt", "le", "ge"}, op);
  HostDType outType = compare ? HostDType::Bool : lhs.dtype();
  std::vector<uint8_t> bytes(lmap.size() * hostDTypeBytes(outType));
  const uint8_t *l = lhs.bytes().data(), *r = rhs.bytes().data();

  if (!isFloatingPoint(lhs.dtype())) {
    for (size_t i = 0; i < lmap.size(); ++i) {
      int64_t a = loadAsInt64(lhs.dtype(), l, lmap[i]);
      int64_t b = loadAsInt64(rhs.dtype(), r, rmap[i]);
      int64_t v;
      if (op == "add") v = a + b;
      else if (op == "sub") v = a - b;
      else if (op == "mul") v = a * b;
      else if (op == "div") {
        if (b == 0)
          return makeError("integer division by zero while folding constants");
        v = a / b;
      } else if (op == "max") v = std::max(a, b);
      else if (op == "min") v = std::min(a, b);
      else if (op == "pow") v = static_cast<int64_t>(std::pow(a, b));
      else if (op == "eq") v = a == b;
      else if (op == "lt") v = a < b;
      else if (op == "gt") v = a > b;
      else if (op == "le") v = a <= b;
      else if (op == "ge") v = a >= b;
      else return makeError("cannot fold elementwise '" + op + "'");
      storeInt64(outType, bytes.data(), i, v);
    }
  } else {
    for (size_t i = 0; i < lmap.size(); ++i) {
      double a = loadAsDouble(lhs.dtype(), l, lmap[i]);
      double b = loadAsDouble(rhs.dtype(), r, rmap[i]);
      double v;
      if (op == "add") v = a + b;
      else if (op == "sub") v = a - b;
      else if (op == "mul") v = a * b;
      else if (op == "div") v = a / b;
      else if (op == "max") v = std::max(a, b);
      else if (op == "min") v = std::min(a, b);
      else if (op == "pow") v = std::pow(a, b);
      else if (op == "eq") v = a == b;
      else if (op == "lt") v = a < b;
      else if (op == "gt") v = a > b;
      else if (op == "le") v = a <= b;
      else if (op == "ge") v = a >= b;
      else return makeError("cannot fold elementwise '" + op + "'");
      storeDouble(outType, bytes.data(), i, v);
    }
  }
  return HostTensor(outType, *shape, std::move(bytes));
}

llvm::Expected<HostTensor> veomni::foldSelect(const HostTensor &cond,
                                              const HostTensor &onTrue,
                                              const HostTensor &onFalse) {
  if (onTrue.dtype() != onFalse.dtype())
    return makeError(llvm::Twine("select branches have dtypes ") +
                     hostDTypeName(onTrue.dtype()) + " and " +
                     hostDTypeName(onFalse.dtype()));
  auto shape = broadcastHostShapes(onTrue.shape(), onFalse.shape());
  if (!shape)
    return shape.takeError();
  shape = broadcastHostShapes(cond.shape(), *shape);
  if (!shape)
    return shape.takeError();
  std::vector<int64_t> cmap = broadcastIndexMap(cond.shape(), *shape);
  std::vector<int64_t> tmap = broadcastIndexMap(onTrue.shape(), *shape);
  std::vector<int64_t> fmap = broadcastIndexMap(onFalse.shape(), *shape);
  int64_t width = hostDTypeBytes(onTrue.dtype());
  std::vector<uint8_t> bytes(cmap.size() * width);
  for (size_t i = 0; i < cmap.size(); ++i) {
    bool take = loadAsInt64(cond.dtype(), cond.bytes().data(), cmap[i]) != 0;
    const uint8_t *source = take ? onTrue.bytes().data() + tmap[i] * width
                                 : onFalse.bytes().data() + fmap[i] * width;
    std::memcpy(bytes.data() + i * width, source, width);
  }
  return HostTensor(onTrue.dtype(), *shape, std::move(bytes));
}

llvm::Expected<HostTensor> veomni::reshapeHost(const HostTensor &input,
                                               ArrayRef<int64_t> shape) {
  if (product(shape) != input.numElements())
    return makeError("cannot reshape " + formatShape(input.shape()) + " to " +
                     formatShape(shape));
  std::vector<uint8_t> bytes(input.bytes().begin(), input.bytes().end());
  return HostTensor(input.dtype(), shape, std::move(bytes));
}

llvm::Expected<HostTensor> veomni::broadcastHost(const HostTensor &input,
                                                 ArrayRef<int64_t> shape) {
  auto result = broadcastHostShapes(input.shape(), shape);
  if (!result)
    return result.takeError();
  if (!llvm::equal(*result, shape))
    return makeError("cannot broadcast " + formatShape(input.shape()) +
                     " to " + formatShape(shape));
  return gatherElements(input, shape, broadcastIndexMap(input.shape(), shape));
}

llvm::Expected<HostTensor> veomni::gatherHost(const HostTensor &input,
                                              const HostTensor &indices,
                                              int64_t axis) {
  if (axis < 0 || axis >= input.rank())
    return makeError("gather axis " + llvm::Twine(axis) +
                     " is out of range for rank " + llvm::Twine(input.rank()));
  ArrayRef<int64_t> in = input.shape();
  int64_t outer = product(in.take_front(axis));
  int64_t inner = product(in.drop_front(axis + 1));
  int64_t extent = in[axis];
  std::vector<int64_t> picks = indices.toInt64();
  SmallVector<int64_t, 4> shape(in.take_front(axis));
  shape.append(indices.shape().begin(), indices.shape().end());
  shape.append(in.begin() + axis + 1, in.end());
  std::vector<int64_t> source;
  source.reserve(outer * picks.size() * inner);
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t pick : picks) {
      int64_t row = pick < 0 ? pick + extent : pick;
      if (row < 0 || row >= extent)
        return makeError("gather index " + llvm::Twine(pick) +
                         " is out of range for dim of size " +
                         llvm::Twine(extent));
      for (int64_t i = 0; i < inner; ++i)
        source.push_back((o * extent + row) * inner + i);
    }
  }
  return gatherElements(input, shape, source);
}

HostTensor veomni::sliceHost(const HostTensor &input, ArrayRef<int64_t> start,
                             ArrayRef<int64_t> limit,
                             ArrayRef<int64_t> stride) {
  SmallVector<int64_t, 4> shape;
  for (size_t d = 0; d < start.size(); ++d)
    shape.push_back((limit[d] - start[d] + stride[d] - 1) / stride[d]);
  SmallVector<int64_t, 4> inStrides = rowMajorStrides(input.shape());
  std::vector<int64_t> source(product(shape));
  SmallVector<int64_t, 4> index(shape.size(), 0);
  for (int64_t flat = 0, e = source.size(); flat < e; ++flat) {
    int64_t offset = 0;
    for (size_t d = 0; d < shape.size(); ++d)
      offset += (start[d] + index[d] * stride[d]) * inStrides[d];
    source[flat] = offset;
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      if (++index[d] < shape[d])
        break;
      index[d] = 0;
    }
  }
  return gatherElements(input, shape, source);
}

llvm::Expected<HostTensor> veomni::concatHost(ArrayRef<HostTensor> inputs,
                                              int64_t axis) {
  const HostTensor &first = inputs.front();
  SmallVector<int64_t, 4> shape(first.shape());
  for (const HostTensor &t : inputs.drop_front()) {
    if (t.dtype() != first.dtype() || t.rank() != first.rank())
      return makeError("concat inputs differ in dtype or rank");
    for (int64_t d = 0; d < first.rank(); ++d)
      if (d != axis && t.shape()[d] != first.shape()[d])
        return makeError("concat inputs " + formatShape(first.shape()) +
                         " and " + formatShape(t.shape()) +
                         " differ outside axis " + llvm::Twine(axis));
    shape[axis] += t.shape()[axis];
  }
  int64_t width = hostDTypeBytes(first.dtype());
  int64_t outer = product(first.shape().take_front(axis));
  std::vector<uint8_t> bytes;
  bytes.reserve(product(shape) * width);
  for (int64_t o = 0; o < outer; ++o) {
    for (const HostTensor &t : inputs) {
      int64_t chunk = product(t.shape().drop_front(axis)) * width;
      const uint8_t *begin = t.bytes().data() + o * chunk;
      bytes.insert(bytes.end(), begin, begin + chunk);
    }
  }
  return HostTensor(first.dtype(), shape, std::move(bytes));
}

HostTensor veomni::transposeHost(const HostTensor &input,
                                 ArrayRef<int64_t> permutation) {
  SmallVector<int64_t, 4> shape;
  for (int64_t p : permutation)
    shape.push_back(input.shape()[p]);
  SmallVector<int64_t, 4> inStrides = rowMajorStrides(input.shape());
  std::vector<int64_t> source(input.numElements());
  SmallVector<int64_t, 4> index(shape.size(), 0);
  for (int64_t flat = 0, e = source.size(); flat < e; ++flat) {
    int64_t offset = 0;
    for (size_t d = 0; d < shape.size(); ++d)
      offset += index[d] * inStrides[permutation[d]];
    source[flat] = offset;
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      if (++index[d] < shape[d])
        break;
      index[d] = 0;
    }
  }
  return gatherElements(input, shape, source);
}
