// C++ convenience over the C ABI of bridge.h: an owning, move-only channel handle. Header-only;
// status codes stay status codes (no exceptions), so device code keeps one error path.
//
//   sonoedge::Channel ch;
//   if (sb_status st = ch.open("probe", SB_ROLE_CLIENT, cfg); st != SB_OK) { log(sb_status_string(st)); }
//   ch.write(info, pixels, 10);
//   sb_status st = ch.read(&got, buffer.data(), buffer.size(), 40);
#pragma once

#include <cstddef>
#include <utility>

#include "sonoedge/bridge.h"

namespace sonoedge {

class Channel {
  public:
    Channel() = default;
    Channel(const Channel &) = delete;
    Channel &operator=(const Channel &) = delete;
    Channel(Channel &&other) noexcept : ch_(std::exchange(other.ch_, nullptr)) {}
    Channel &operator=(Channel &&other) noexcept {
        if (this != &other) {
            close();
            ch_ = std::exchange(other.ch_, nullptr);
        }
        return *this;
    }
    ~Channel() { close(); }

    // Attach (closing any channel this object held first).
    sb_status open(const char *name, sb_role role, const sb_channel_config &config) {
        close();
        return sb_channel_open(name, role, &config, &ch_);
    }

    void close() noexcept {
        if (ch_ != nullptr) sb_channel_close(ch_);
        ch_ = nullptr;
    }

    sb_status write(const sb_frame_info &info, const void *pixels, int timeout_ms) {
        return sb_channel_write(ch_, &info, pixels, timeout_ms);
    }

    sb_status read(sb_frame_info *info, void *pixels, size_t capacity, int timeout_ms) {
        return sb_channel_read(ch_, info, pixels, capacity, timeout_ms);
    }

    sb_peer_state peer(uint32_t *generation = nullptr) const { return sb_channel_peer(ch_, generation); }

    sb_stats stats() const {
        sb_stats s{};
        sb_channel_stats(ch_, &s);
        return s;
    }

    bool is_open() const { return ch_ != nullptr; }
    sb_channel *get() const { return ch_; }

  private:
    sb_channel *ch_ = nullptr;
};

}  // namespace sonoedge
