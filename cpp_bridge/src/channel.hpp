// The process-local handle behind sb_channel (internal).
#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "layout.hpp"

struct sb_channel {
    std::string shm_name;  // "/sonoedge-<name>"
    sb_role role = SB_ROLE_CLIENT;
    sb::ChannelHeader *header = nullptr;  // start of the mapping
    size_t mapped_bytes = 0;
    int fd = -1;           // the shared object, kept to notice when a peer shrinks it under us
    sb::Geometry geo;      // checked once at attach; never re-read from shared memory
    std::atomic<uint64_t> write_next{0};  // the next frame we publish on the ring we write (its only producer)
    uint64_t consumed = 0;    // k + 1 of the newest frame we took from the ring we read (its only consumer)
    uint64_t peer_timeout_ns = 0;
    int32_t pid = 0;
    uint64_t pid_namespace = 0;  // ours; a peer's pid means something to kill() only in the same one
    bool created = false;  // this handle created the shared object
    uint32_t generation = 0;      // this side's generation, from its attach
    uint32_t death_reported = 0;  // the peer generation whose death sb_channel_read last reported

    // background heartbeat
    std::thread heartbeat_thread;
    std::mutex heartbeat_mutex;
    std::condition_variable heartbeat_wake;
    bool heartbeat_stop = false;
};

namespace sb {

uint8_t *slot_base(sb_channel *channel, uint32_t ring, uint64_t index);  // SlotHeader, then pixels
bool intact(sb_channel *channel);  // the shared object still holds the whole channel (fstat)
void beat(sb_channel *channel);                                          // refresh our heartbeat
sb_peer_state peer_state(sb_channel *channel);
void futex_wait(std::atomic<uint32_t> *word, uint32_t expected, uint64_t timeout_ns);
void futex_wake_all(std::atomic<uint32_t> *word);

}  // namespace sb

// Test hook: the start of the shared mapping, so tests can corrupt headers on purpose.
extern "C" void *sb_channel_debug_base(sb_channel *channel);
