// Links the TensorRT enhancer against stub libnvinfer/libcudart and runs what needs no GPU: argument
// checks, the bundle check, and the engine-load failure path (the stub runtime factory returns NULL).
#include <cstdio>
#include <cstring>

#include "sonoedge/trt_enhancer.h"

#define CHECK(cond)                                                     \
    do {                                                                \
        if (!(cond)) {                                                  \
            std::fprintf(stderr, "check failed: %s (line %d)\n", #cond, __LINE__); \
            return 1;                                                   \
        }                                                               \
    } while (0)

int main(int argc, char **argv) {
    CHECK(argc == 3);  // bundle dir, a plan file
    char why[512] = {0};
    sb_trt_enhancer *e = nullptr;
    CHECK(sb_trt_enhancer_create(nullptr, "fp32", "x.plan", nullptr, &e, why, sizeof why) == SB_TRT_ERR_INVALID_ARGUMENT);
    CHECK(sb_trt_enhancer_create("/nonexistent", "fp32", "x.plan", nullptr, &e, why, sizeof why) == SB_TRT_ERR_BUNDLE);
    CHECK(sb_trt_enhancer_create(argv[1], "fp32", argv[2], nullptr, &e, why, sizeof why) == SB_TRT_ERR_ENGINE);
    CHECK(e == nullptr && std::strstr(why, "does not load on this GPU/TensorRT") != nullptr);
    for (int s = SB_TRT_OK; s <= SB_TRT_ERR_NONFINITE; ++s)
        CHECK(std::strncmp(sb_trt_status_string(static_cast<sb_trt_status>(s)), "SB_TRT_", 7) == 0);
    std::printf("trt_enhancer ok: %s\n", why);
    return 0;
}
