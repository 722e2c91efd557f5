#include "frame_math.hpp"

#include <cmath>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace sb {

size_t reflect_index(size_t i, size_t n) {
    if (n <= 1) return 0;
    const size_t period = 2 * (n - 1);  // 0 1 .. n-1 n-2 .. 1 | 0 1 ..
    size_t m = i % period;
    return m < n ? m : period - m;
}

void normalise_pad_into(const uint8_t *src, size_t stride, uint32_t h, uint32_t w, float *dst, size_t dst_stride,
                        uint32_t hp, uint32_t wp) {
    for (uint32_t y = 0; y < hp; ++y) {
        const uint8_t *row = src + reflect_index(y, h) * stride;
        float *out = dst + static_cast<size_t>(y) * dst_stride;
        for (uint32_t x = 0; x < w; ++x) out[x] = static_cast<float>(row[x]) / 127.5f - 1.0f;  // vectorised
        for (uint32_t x = w; x < wp; ++x) out[x] = static_cast<float>(row[reflect_index(x, w)]) / 127.5f - 1.0f;
    }
}

namespace {

// One pixel of denormalise_finite_into, scalar: the tail of a row and the reference for the vector loop.
inline uint8_t denormalise_one(float x) {
    float v = (x + 1.0f) * 127.5f;  // two roundings, as numpy's (plane + 1.0) * 127.5
    v = v > 0.0f ? v : 0.0f;  // clipping before rounding gives the same integer in [0, 255]
    v = v < 255.0f ? v : 255.0f;
    return static_cast<uint8_t>(static_cast<int32_t>(std::nearbyint(v)));
}

}  // namespace

void denormalise_finite_into(const float *src, size_t src_stride, uint32_t h, uint32_t w, uint8_t *dst,
                             size_t dst_stride) {
#if defined(__SSE2__)
    // SSE2 (every x86-64), 16 pixels a step; compilers do not vectorise the scalar form (without
    // -ffast-math the clamps' NaN semantics count as control flow, and nearbyint is a libm call).
    // maxps/minps equal the scalar clamps on finite values; cvtps2dq rounds in the current rounding
    // mode, round half to even by default (as nearbyint); the two packs saturate, which the clamp
    // has made a no-op. Elsewhere (aarch64) the scalar loop below does every pixel.
    const __m128 one = _mm_set1_ps(1.0f), scale = _mm_set1_ps(127.5f), zero = _mm_setzero_ps(),
                 top = _mm_set1_ps(255.0f);
    auto four = [&](const float *p) {
        const __m128 v = _mm_mul_ps(_mm_add_ps(_mm_loadu_ps(p), one), scale);
        return _mm_cvtps_epi32(_mm_min_ps(_mm_max_ps(v, zero), top));
    };
#endif
    for (uint32_t y = 0; y < h; ++y) {
        const float *in = src + static_cast<size_t>(y) * src_stride;
        uint8_t *out = dst + static_cast<size_t>(y) * dst_stride;
        uint32_t x = 0;
#if defined(__SSE2__)
        for (; x + 16 <= w; x += 16) {
            const __m128i lo = _mm_packs_epi32(four(in + x), four(in + x + 4));
            const __m128i hi = _mm_packs_epi32(four(in + x + 8), four(in + x + 12));
            _mm_storeu_si128(reinterpret_cast<__m128i *>(out + x), _mm_packus_epi16(lo, hi));
        }
#endif
        for (; x < w; ++x) {
            float v = (in[x] + 1.0f) * 127.5f;  // two roundings, as numpy's (plane + 1.0) * 127.5
            v = v > 0.0f ? v : 0.0f;  // clipping before rounding gives the same integer in [0, 255]
            v = v < 255.0f ? v : 255.0f;
            out[x] = static_cast<uint8_t>(std::nearbyint(v));  // half to even, as numpy.rint
        }
    }
}

bool normalise_pad(const uint8_t *src, size_t stride, uint32_t h, uint32_t w, uint32_t multiple,
                   std::vector<float> *out, uint32_t *hp, uint32_t *wp) {
    if (h == 0 || w == 0 || multiple == 0) return false;
    *hp = (h + multiple - 1) / multiple * multiple;
    *wp = (w + multiple - 1) / multiple * multiple;
    out->resize(static_cast<size_t>(*hp) * *wp);
    normalise_pad_into(src, stride, h, w, out->data(), *wp, *hp, *wp);
    return true;
}

bool denormalise_crop(const float *src, uint32_t src_w, uint32_t h, uint32_t w, uint8_t *dst, size_t dst_stride) {
    for (uint32_t y = 0; y < h; ++y)
        for (uint32_t x = 0; x < w; ++x)
            if (!std::isfinite(src[static_cast<size_t>(y) * src_w + x])) return false;
    denormalise_finite_into(src, src_w, h, w, dst, dst_stride);
    return true;
}

uint16_t float_to_half(float value) {
    uint32_t f;
    std::memcpy(&f, &value, sizeof(f));
    const uint32_t sign = (f >> 16) & 0x8000u;
    const uint32_t exponent = (f >> 23) & 0xFFu;
    uint32_t mantissa = f & 0x7FFFFFu;
    if (exponent == 0xFF) return static_cast<uint16_t>(sign | 0x7C00u | (mantissa ? 0x200u : 0u));  // Inf, NaN
    int e = static_cast<int>(exponent) - 127 + 15;
    if (e >= 31) return static_cast<uint16_t>(sign | 0x7C00u);  // overflow: Inf
    if (e <= 0) {  // subnormal half (or zero)
        if (e < -10) return static_cast<uint16_t>(sign);
        mantissa |= 0x800000u;
        const uint32_t shift = static_cast<uint32_t>(14 - e);
        uint32_t half = mantissa >> shift;
        const uint32_t rest = mantissa & ((1u << shift) - 1), halfway = 1u << (shift - 1);
        if (rest > halfway || (rest == halfway && (half & 1u))) ++half;
        return static_cast<uint16_t>(sign | half);
    }
    uint32_t half = (static_cast<uint32_t>(e) << 10) | (mantissa >> 13);
    const uint32_t rest = mantissa & 0x1FFFu;
    if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) ++half;  // may carry into the exponent: fine
    return static_cast<uint16_t>(sign | half);
}

float half_to_float(uint16_t bits) {
    const uint32_t sign = (bits & 0x8000u) << 16;
    uint32_t exponent = (bits >> 10) & 0x1Fu, mantissa = bits & 0x3FFu, f;
    if (exponent == 0x1F) {
        f = sign | 0x7F800000u | (mantissa << 13);
    } else if (exponent == 0) {
        if (mantissa == 0) {
            f = sign;
        } else {  // subnormal: normalise
            int e = -1;
            do {
                ++e;
                mantissa <<= 1;
            } while ((mantissa & 0x400u) == 0);
            f = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mantissa & 0x3FFu) << 13);
        }
    } else {
        f = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    }
    float out;
    std::memcpy(&out, &f, sizeof(out));
    return out;
}

}  // namespace sb
