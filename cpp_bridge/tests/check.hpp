// A tiny test harness: CHECK and CHECK_STATUS report the failing line and keep going; main returns
// non-zero when anything failed, which is what ctest looks at.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <string>

#include "sonoedge/bridge.h"

namespace check {

inline int &failures() {
    static int count = 0;
    return count;
}

inline void fail(const char *file, int line, const std::string &what) {
    std::fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what.c_str());
    ++failures();
}

// A channel name no other test (or a parallel ctest run) uses.
inline std::string unique_name(const char *tag) {
    static int counter = 0;
    return std::string("sbtest-") + tag + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

inline sb_channel_config fast_config(uint32_t slots, uint64_t slot_bytes) {
    sb_channel_config cfg;
    sb_channel_config_default(&cfg);
    cfg.slot_count = slots;
    cfg.slot_bytes = slot_bytes;
    cfg.peer_timeout_ms = 300;  // tests wait for liveness verdicts; keep them short
    cfg.heartbeat_ms = 20;
    return cfg;
}

// The info of a tightly packed 8-bit grey frame, w x h, with id `id`.
inline sb_frame_info grey(uint32_t w, uint32_t h, uint64_t id) {
    sb_frame_info f{};
    f.width = w;
    f.height = h;
    f.stride = w;
    f.format = SB_FORMAT_GRAY8;
    f.frame_id = id;
    return f;
}

}  // namespace check

#define CHECK(cond)                                                      \
    do {                                                                 \
        if (!(cond)) check::fail(__FILE__, __LINE__, #cond);             \
    } while (0)

#define CHECK_STATUS(expr, expected)                                                         \
    do {                                                                                     \
        sb_status got_ = (expr);                                                             \
        if (got_ != (expected))                                                              \
            check::fail(__FILE__, __LINE__, std::string(#expr) + " returned " +              \
                                                sb_status_string(got_) + ", expected " +     \
                                                sb_status_string(expected));                 \
    } while (0)

#define RUN(test)                                             \
    do {                                                      \
        int before_ = check::failures();                      \
        test();                                               \
        std::printf("%s %s\n", check::failures() == before_ ? "ok  " : "FAIL", #test); \
        std::fflush(stdout);                                  \
    } while (0)
