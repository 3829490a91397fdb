// Conversions between f32 and the 16-bit float formats, by bit manipulation
// so that the runtime needs no compiler support for bf16/f16. Both directions
// round to nearest even; NaN stays NaN and overflow becomes infinity.

#ifndef VEOMNI_RUNTIME_BASE_FLOATBITS_H
#define VEOMNI_RUNTIME_BASE_FLOATBITS_H

#include <cstdint>
#include <cstring>

namespace veomni::runtime {

inline uint32_t FloatToBits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof(bits));
  return bits;
}

inline float BitsToFloat(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof(value));
  return value;
}

inline uint16_t FloatToBFloat16Bits(float value) {
  uint32_t bits = FloatToBits(value);
  if ((bits & 0x7fffffffu) > 0x7f800000u) {
    // Rounding could carry a NaN's payload into infinity; force a quiet NaN.
    return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  }
  uint32_t round_to_nearest_even = 0x7fffu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + round_to_nearest_even) >> 16);
}

inline float BFloat16BitsToFloat(uint16_t bits) {
  return BitsToFloat(static_cast<uint32_t>(bits) << 16);
}

inline uint16_t FloatToHalfBits(float value) {
  uint32_t bits = FloatToBits(value);
  uint32_t sign = (bits >> 16) & 0x8000u;
  uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);
  // 65520 is halfway between the largest half (65504) and 2^16; it and
  // everything above round to infinity.
  if (magnitude >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (magnitude >= 0x38800000u) {
    // Normal half: rebias the exponent (127 -> 15) and round the 13 dropped
    // mantissa bits to nearest even; a carry correctly bumps the exponent.
    uint32_t odd = (magnitude >> 13) & 1u;
    magnitude += 0xc8000fffu + odd;
    return static_cast<uint16_t>(sign | (magnitude >> 13));
  }
  // Subnormal half (units of 2^-24): adding 0.5f makes the FPU round the value
  // to a multiple of 2^-24, which then sits in the low mantissa bits.
  float rounded = BitsToFloat(magnitude) + 0.5f;
  return static_cast<uint16_t>(sign | (FloatToBits(rounded) - 0x3f000000u));
}

inline float HalfBitsToFloat(uint16_t bits) {
  uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
  uint32_t exponent = (bits >> 10) & 0x1fu;
  uint32_t mantissa = bits & 0x3ffu;
  if (exponent == 0) {
    float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;  // 2^-24
    return BitsToFloat(sign | FloatToBits(magnitude));
  }
  if (exponent == 31) return BitsToFloat(sign | 0x7f800000u | (mantissa << 13));
  return BitsToFloat(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

}  // namespace veomni::runtime

#endif  // VEOMNI_RUNTIME_BASE_FLOATBITS_H
