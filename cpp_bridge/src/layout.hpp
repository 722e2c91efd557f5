// The shared-memory layout of a channel (internal; both sides map the same bytes).
//
//   [ChannelHeader][ring 0 slots: N x (SlotHeader + slot_bytes)][ring 1 slots: ...]
//
// Ring 0 is "in" (client -> server, raw frames), ring 1 is "out" (server -> client, enhanced).
// Every field shared between processes is a lock-free std::atomic placed in the mapping, so the
// memory orders below are the whole synchronisation story; there are no locks to be left held by a
// process that dies.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "sonoedge/bridge.h"

namespace sb {

constexpr uint32_t kChannelMagic = 0x534F4E43u;  // "SONC"
constexpr uint32_t kSlotMagic = 0x534F4652u;     // "SOFR"
constexpr uint32_t kRingIn = 0;                  // client writes, server reads
constexpr uint32_t kRingOut = 1;                 // server writes, client reads
constexpr size_t kAlign = 64;                    // one cache line: no false sharing between sides
constexpr uint32_t kMaxSlots = 4096;
constexpr uint64_t kMaxSlotBytes = UINT32_MAX;   // a slot header says a frame's size in 32 bits
constexpr uint64_t kMaxTotalBytes = 1ull << 36;  // 64 GiB: a typo, not a channel
constexpr uint64_t kMaxSeq = 1ull << 62;         // frames per ring: centuries at any rate; 2k + 2 never wraps

static_assert(std::atomic<uint64_t>::is_always_lock_free, "64-bit atomics must be lock-free to be shared");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "32-bit atomics must be lock-free to be shared");
static_assert(std::atomic<int32_t>::is_always_lock_free, "32-bit atomics must be lock-free to be shared");

// One side (client or server): who holds it and whether it is alive.
struct alignas(kAlign) SideState {
    std::atomic<int32_t> pid;            // 0: detached
    std::atomic<uint32_t> generation;    // attaches so far
    std::atomic<uint64_t> heartbeat_ns;  // CLOCK_MONOTONIC of the last sign of life
    std::atomic<uint64_t> pid_namespace; // inode of /proc/self/ns/pid (0: unknown): pids compare only within one
};

// Control block of one ring. The producer owns the first line, the consumer the second.
struct alignas(kAlign) RingControl {
    std::atomic<uint64_t> write_seq;       // frames published so far; frame k lives in slot k % N
    std::atomic<uint32_t> notify;          // futex word, bumped after every publish
    std::atomic<uint32_t> waiters;         // readers sleeping on `notify`
    std::atomic<uint64_t> writes_refused;  // SB_ERR_RING_FULL count
    alignas(kAlign) std::atomic<uint64_t> reading;  // k + 1 while the consumer copies frame k, else 0
    std::atomic<uint64_t> consumed;        // k + 1 of the newest frame read (0: none yet)
    std::atomic<uint64_t> frames_read;
    std::atomic<uint64_t> frames_dropped;  // published and never read (skipped by newest-frame reads)
};

struct alignas(kAlign) ChannelHeader {
    uint32_t magic;          // kChannelMagic, written last-but-one by the creator
    uint32_t version;        // SB_LAYOUT_VERSION
    uint32_t header_bytes;   // sizeof(ChannelHeader)
    uint32_t slot_count;
    uint64_t slot_bytes;     // pixel capacity of one slot
    uint64_t slot_stride;    // sizeof(SlotHeader) + slot_bytes rounded up to kAlign
    uint64_t ring_offset[2]; // from the start of the mapping
    uint64_t total_bytes;
    std::atomic<uint32_t> ready;  // 1 once the creator has initialised everything (release)
    SideState side[2];            // indexed by sb_role
    RingControl ring[2];
};

// Per-slot header. `seq` is a seqlock: 2k + 1 while frame k is written, 2k + 2 once it is complete.
struct alignas(kAlign) SlotHeader {
    std::atomic<uint64_t> seq;
    uint32_t magic;    // kSlotMagic
    uint32_t version;  // SB_LAYOUT_VERSION
    uint32_t width, height, stride, format;
    uint64_t frame_id, timestamp_ns;
    uint32_t flags, payload_bytes;
    uint32_t reader_generation;  // the reader side's generation when written (0: no reader yet)
};

// The fixed fields of a ChannelHeader as this process checked them once at attach. Every slot
// address comes from this private copy; the shared one is never read again.
struct Geometry {
    uint32_t slot_count = 0;
    uint64_t slot_bytes = 0;
    uint64_t slot_stride = 0;
    uint64_t ring_offset[2] = {0, 0};
    uint64_t total_bytes = 0;
};

// Callers bound `value` first (slot_bytes <= kMaxSlotBytes), so this never wraps.
inline uint64_t round_up(uint64_t value, uint64_t align) { return (value + align - 1) / align * align; }

inline uint64_t slot_stride(uint64_t slot_bytes) { return round_up(sizeof(SlotHeader) + slot_bytes, kAlign); }

inline uint64_t total_bytes(uint32_t slot_count, uint64_t slot_bytes) {
    return round_up(sizeof(ChannelHeader), kAlign) + 2ull * slot_count * slot_stride(slot_bytes);
}

// The ring this role writes and the ring it reads.
inline uint32_t write_ring(sb_role role) { return role == SB_ROLE_CLIENT ? kRingIn : kRingOut; }
inline uint32_t read_ring(sb_role role) { return role == SB_ROLE_CLIENT ? kRingOut : kRingIn; }

}  // namespace sb
