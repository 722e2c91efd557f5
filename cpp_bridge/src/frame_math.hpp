// Pre- and post-processing of the in-process enhancer, bit-compatible with runtime/frames.py:
// normalise x / 127.5 - 1, reflect-pad bottom/right to the model stride (numpy "reflect"), and back:
// crop, rint((y + 1) * 127.5) clipped to [0, 255], NaN/Inf refused.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace sb {

// numpy "reflect" index for position i (may be >= n) of an axis of length n >= 1.
size_t reflect_index(size_t i, size_t n);

// uint8 plane (h, w) with row `stride` bytes -> float32 (hp, wp) row-major in [-1, 1], written into
// `dst` (row `dst_stride` floats): rows and columns past h and w are reflected (numpy "reflect", any
// pad size). One pass, no allocation, the same float32 operations as frames.normalise (x / 127.5f,
// then - 1.0f), so bit-identical. The caller checks h, w >= 1, hp >= h, wp >= w.
void normalise_pad_into(const uint8_t *src, size_t stride, uint32_t h, uint32_t w, float *dst, size_t dst_stride,
                        uint32_t hp, uint32_t wp);

// float32 (h, w) with row `src_stride` floats, FINITE (the caller has checked), -> uint8 into dst
// (row `dst_stride`): rint((y + 1) * 127.5) clipped to [0, 255], round half to even, bit-identical
// to frames.denormalise. One pass, written so compilers vectorise it (no libm call).
void denormalise_finite_into(const float *src, size_t src_stride, uint32_t h, uint32_t w, uint8_t *dst,
                             size_t dst_stride);

// uint8 plane (h, w) with row `stride` bytes -> float32 (hp, wp) row-major in [-1, 1], hp and wp the
// next multiples of `multiple`; returns false on a zero size.
bool normalise_pad(const uint8_t *src, size_t stride, uint32_t h, uint32_t w, uint32_t multiple,
                   std::vector<float> *out, uint32_t *hp, uint32_t *wp);

// float32 (rows >= h, src_w >= w) row-major in [-1, 1] -> uint8 (h, w) into dst (row `dst_stride`);
// false (dst untouched) when any value in the crop is NaN or infinite.
bool denormalise_crop(const float *src, uint32_t src_w, uint32_t h, uint32_t w, uint8_t *dst, size_t dst_stride);

// IEEE 754 binary16 <-> binary32 (round to nearest even), for engines with fp16 inputs/outputs.
uint16_t float_to_half(float value);
float half_to_float(uint16_t bits);

}  // namespace sb
