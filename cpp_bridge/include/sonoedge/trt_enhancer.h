/*
 * sonoedge in-process enhancer (TensorRT), for devices that cannot run Python. Optional: built only
 * when CMake finds TensorRT and CUDA (the configure output says whether it did).
 *
 * It runs a bundle's grey enhancement model (task "enhance", scale 1) from a TensorRT engine plan
 * that `sonoedge build-engine` built and cached on this device, with the pre/post-processing of
 * runtime/frames.py: x / 127.5 - 1, reflect-pad bottom/right to the model stride, infer, crop,
 * rint((y + 1) * 127.5). Pixels outside the rectangle the caller names pass through unchanged.
 *
 *   sb_trt_enhancer *e;
 *   char why[512];
 *   if (sb_trt_enhancer_create("bundle/", "fp16", "engines/abc.plan", "engines/abc.json", &e, why, sizeof why))
 *       fprintf(stderr, "%s\n", why);
 *   sb_trt_enhancer_enhance(e, &info, raw, out, 0, 0, 0, 0);   (whole frame)
 *   sb_trt_enhancer_destroy(e);
 */
#ifndef SONOEDGE_TRT_ENHANCER_H
#define SONOEDGE_TRT_ENHANCER_H

#include <stddef.h>
#include <stdint.h>

#include "sonoedge/bridge.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sb_trt_status {
    SB_TRT_OK = 0,
    SB_TRT_ERR_BUNDLE = 1,           /* manifest missing, malformed, unsupported, precision absent or failed */
    SB_TRT_ERR_ENGINE = 2,           /* plan unreadable, not deserialisable, or without the manifest's tensors */
    SB_TRT_ERR_MISMATCH = 3,         /* the engine's sidecar names another model or precision */
    SB_TRT_ERR_CUDA = 4,             /* a CUDA call or the inference failed */
    SB_TRT_ERR_INVALID_ARGUMENT = 5, /* NULL pointer, non-GRAY8 frame, rectangle outside the frame */
    SB_TRT_ERR_FRAME_SIZE = 6,       /* the (padded) rectangle is outside the engine's shape profile */
    SB_TRT_ERR_NONFINITE = 7         /* the model produced NaN or Inf: the output was not written */
} sb_trt_status;

typedef struct sb_trt_enhancer sb_trt_enhancer;

/* Load bundle_dir/manifest.json for `precision` and the engine plan; `sidecar` (the cache's JSON
 * beside the plan; may be NULL to skip the check) must name the same model sha256 and precision.
 * On failure `error` (may be NULL) receives one sentence. */
sb_trt_status sb_trt_enhancer_create(const char *bundle_dir, const char *precision, const char *plan,
                                     const char *sidecar, sb_trt_enhancer **out, char *error, size_t error_bytes);

/* Enhance rectangle (x, y, w, h) of a GRAY8 frame (w = h = 0: the whole frame) into `out`, which has
 * the input's geometry (info->stride * info->height bytes); everything outside the rectangle is
 * copied unchanged. On SB_TRT_ERR_NONFINITE `out` holds the input unchanged (passthrough). */
sb_trt_status sb_trt_enhancer_enhance(sb_trt_enhancer *enhancer, const sb_frame_info *info, const uint8_t *in,
                                      uint8_t *out, uint32_t x, uint32_t y, uint32_t w, uint32_t h);

void sb_trt_enhancer_destroy(sb_trt_enhancer *enhancer);

const char *sb_trt_status_string(sb_trt_status status);

#ifdef __cplusplus
}
#endif

#endif /* SONOEDGE_TRT_ENHANCER_H */
