// The single-producer single-consumer frame ring: publish a frame, copy out the newest one.
//
// Frame k lives in slot k % N. A slot's `seq` is a seqlock (Boehm, "Can seqlocks get along with
// programming language memory models?", 2012): the writer stores 2k + 1, a release fence, the
// header and pixels, then 2k + 2 with release; the reader loads seq with acquire, copies, issues
// an acquire fence and loads seq again, and keeps the copy only if both loads saw 2k + 2. The
// consumer also advertises the frame it is copying (`reading`), so the producer does not overwrite
// that slot while the copy runs (it waits up to its timeout, then reports SB_ERR_RING_FULL).
//
// Nothing the other side writes is trusted: the slot address comes from the geometry checked at
// attach, our own positions (`write_next`, `consumed`) are private, the peer's counter is checked
// against our position and against the slot it names (a counter that cannot be right is
// SB_ERR_PROTOCOL, and the reader resynchronises on it), every slot header is checked before its
// sizes are used, and every retry comes back through the deadline.
#include <time.h>

#include <cstring>

#include "channel.hpp"

namespace {

constexpr uint64_t kMaxSleepNs = 50'000'000ull;  // re-check the peer's liveness at least every 50 ms
constexpr uint64_t kSlotBusyPollNs = 20'000ull;  // a copy of one frame takes microseconds
constexpr unsigned kFreeRetries = 4;  // torn or lapped copies retried at once, even past the deadline (timeout 0)
constexpr uint64_t kLagGraceNs = 1'000'000ull;  // a counter behind its own slot for longer than this is a lie
constexpr uint32_t kKnownFlags = SB_FLAG_ENHANCED | SB_FLAG_PASSTHROUGH | SB_FLAG_END_OF_STREAM;

uint64_t deadline_of(int timeout_ms) {
    return timeout_ms < 0 ? UINT64_MAX : sb_now_ns() + 1'000'000ull * static_cast<uint64_t>(timeout_ms);
}

sb_status check_frame(const sb_frame_info &f, uint64_t slot_bytes, uint64_t *payload) {
    *payload = 0;
    if ((f.flags & ~kKnownFlags) != 0) return SB_ERR_INVALID_ARGUMENT;
    if ((f.flags & SB_FLAG_END_OF_STREAM) && f.width == 0 && f.height == 0) return SB_OK;
    uint32_t bpp = sb_format_bytes_per_pixel(f.format);
    if (bpp == 0 || f.width == 0 || f.height == 0) return SB_ERR_INVALID_ARGUMENT;
    if (static_cast<uint64_t>(f.stride) < static_cast<uint64_t>(f.width) * bpp) return SB_ERR_INVALID_ARGUMENT;
    *payload = static_cast<uint64_t>(f.stride) * f.height;
    if (*payload > slot_bytes || *payload > UINT32_MAX) return SB_ERR_FRAME_TOO_LARGE;
    return SB_OK;
}

// A plain copy of a slot header without its seqlock.
struct SlotFields {
    uint32_t magic, version, width, height, stride, format;
    uint64_t frame_id, timestamp_ns;
    uint32_t flags, payload_bytes, reader_generation;
};

SlotFields fields_of(const sb::SlotHeader &s) {
    return SlotFields{s.magic, s.version, s.width, s.height, s.stride, s.format,
                      s.frame_id, s.timestamp_ns, s.flags, s.payload_bytes, s.reader_generation};
}

// What a reader checks before trusting a slot it copied consistently.
sb_status check_slot(const SlotFields &s, uint64_t slot_bytes) {
    if (s.magic != sb::kSlotMagic) return SB_ERR_BAD_MAGIC;
    if (s.version != SB_LAYOUT_VERSION) return SB_ERR_VERSION_MISMATCH;
    if (s.payload_bytes > slot_bytes) return SB_ERR_FRAME_TOO_LARGE;
    sb_frame_info f{s.width, s.height, s.stride, s.format, 0, 0, s.flags, 0};
    uint64_t payload = 0;
    if (check_frame(f, slot_bytes, &payload) != SB_OK || payload != s.payload_bytes) return SB_ERR_CORRUPT_HEADER;
    return SB_OK;
}

void sleep_ns(uint64_t ns) {
    timespec ts{static_cast<time_t>(ns / 1'000'000'000ull), static_cast<long>(ns % 1'000'000'000ull)};
    nanosleep(&ts, nullptr);
}

// Wait until the consumer is not copying the slot of frame `k`, the next one we write; false on
// timeout. Its claim (`reading` = j + 1 while it copies frame j) counts only for a frame we have
// published (j < k) and only while it is alive: a dead or absent consumer copies nothing.
bool wait_slot_free(sb_channel *ch, sb::RingControl &r, uint64_t k, int timeout_ms) {
    const uint32_t slots = ch->geo.slot_count;
    uint64_t deadline = deadline_of(timeout_ms);
    for (;;) {
        uint64_t busy = r.reading.load(std::memory_order_acquire);
        if (busy == 0 || busy > k || (busy - 1) % slots != k % slots) return true;
        if (sb::peer_state(ch) != SB_PEER_ALIVE) return true;
        if (timeout_ms == 0 || sb_now_ns() >= deadline) return false;
        sleep_ns(kSlotBusyPollNs);
    }
}

// What a slot's seqlock says about frame k, which the writer's counter claims is complete there.
enum class Seq { kComplete, kLater, kImpossible };

Seq classify(uint64_t seq, uint64_t k, uint32_t slots) {
    if (seq == 2 * k + 2) return Seq::kComplete;
    // The writer completes a slot before it counts the frame published: behind it, or half
    // written, is a lie; so is a frame that does not live in this slot or could never be counted.
    if (seq < 2 * k + 2 || seq > 2 * sb::kMaxSeq + 2) return Seq::kImpossible;
    const uint64_t frame = (seq - 1) / 2;  // 2j + 1 while frame j is written, 2j + 2 once complete
    return frame % slots == k % slots ? Seq::kLater : Seq::kImpossible;
}

// A counter that cannot be right: take the writer at its word from here on (frames before it are
// not counted as dropped; the number means nothing), so the ring heals if it goes on correctly.
sb_status protocol_error(sb_channel *ch, sb::RingControl &r, uint64_t published) {
    ch->consumed = published;
    r.consumed.store(published, std::memory_order_release);
    return SB_ERR_PROTOCOL;
}

sb_status timed_out(sb_channel *ch) { return sb::peer_state(ch) == SB_PEER_DEAD ? SB_ERR_PEER_GONE : SB_ERR_TIMEOUT; }

// Frame k read (or skipped): frames between the previous one and it were dropped.
void take(sb_channel *ch, sb::RingControl &r, uint64_t k, uint64_t dropped) {
    if (dropped != 0) r.frames_dropped.fetch_add(dropped, std::memory_order_relaxed);
    ch->consumed = k + 1;
    r.consumed.store(k + 1, std::memory_order_release);
}

void fill_info(sb_frame_info *info, const SlotFields &s) {
    info->width = s.width;
    info->height = s.height;
    info->stride = s.stride;
    info->format = s.format;
    info->frame_id = s.frame_id;
    info->timestamp_ns = s.timestamp_ns;
    info->flags = s.flags;
    info->payload_bytes = s.payload_bytes;
}

}  // namespace

extern "C" {

sb_status sb_channel_write(sb_channel *ch, const sb_frame_info *info, const void *pixels, int timeout_ms) {
    if (ch == nullptr || info == nullptr) return SB_ERR_INVALID_ARGUMENT;
    uint64_t payload = 0;
    sb_status st = check_frame(*info, ch->geo.slot_bytes, &payload);
    if (st != SB_OK) return st;
    if (payload != 0 && pixels == nullptr) return SB_ERR_INVALID_ARGUMENT;
    if (!sb::intact(ch)) return SB_ERR_PROTOCOL;

    const uint32_t ring = sb::write_ring(ch->role);
    sb::RingControl &r = ch->header->ring[ring];
    const uint64_t k = ch->write_next.load(std::memory_order_relaxed);  // ours: we are the only producer
    if (k >= sb::kMaxSeq) return SB_ERR_PROTOCOL;  // not in this universe's lifetime
    if (!wait_slot_free(ch, r, k, timeout_ms)) {
        r.writes_refused.fetch_add(1, std::memory_order_relaxed);
        return SB_ERR_RING_FULL;
    }
    auto *slot = reinterpret_cast<sb::SlotHeader *>(sb::slot_base(ch, ring, k));
    slot->seq.store(2 * k + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    slot->magic = sb::kSlotMagic;
    slot->version = SB_LAYOUT_VERSION;
    slot->width = info->width;
    slot->height = info->height;
    slot->stride = info->stride;
    slot->format = info->format;
    slot->frame_id = info->frame_id;
    slot->timestamp_ns = info->timestamp_ns;
    slot->flags = info->flags;
    slot->payload_bytes = static_cast<uint32_t>(payload);
    slot->reader_generation = ch->header->side[1 - ch->role].generation.load(std::memory_order_acquire);
    if (payload != 0) std::memcpy(reinterpret_cast<uint8_t *>(slot) + sizeof(sb::SlotHeader), pixels, payload);
    slot->seq.store(2 * k + 2, std::memory_order_release);
    ch->write_next.store(k + 1, std::memory_order_relaxed);
    r.write_seq.store(k + 1, std::memory_order_release);
    r.notify.fetch_add(1, std::memory_order_seq_cst);
    if (r.waiters.load(std::memory_order_seq_cst) != 0) sb::futex_wake_all(&r.notify);
    sb::beat(ch);
    return SB_OK;
}

sb_status sb_channel_read(sb_channel *ch, sb_frame_info *info, void *pixels, size_t capacity, int timeout_ms) {
    if (ch == nullptr || info == nullptr || (pixels == nullptr && capacity != 0)) return SB_ERR_INVALID_ARGUMENT;
    if (!sb::intact(ch)) return SB_ERR_PROTOCOL;
    const uint32_t ring = sb::read_ring(ch->role);
    sb::RingControl &r = ch->header->ring[ring];
    const uint32_t slots = ch->geo.slot_count;
    const uint64_t slot_bytes = ch->geo.slot_bytes;
    const uint64_t deadline = deadline_of(timeout_ms);
    uint64_t lagging_since = 0;  // when the writer's counter was first seen behind its own slot
    for (unsigned attempt = 0;; ++attempt) {
        // Every path that looks again comes back here, so whatever the writer does, the call ends
        // by its deadline; a few quick retries first, then a short pause so a lie costs no CPU.
        if (attempt >= kFreeRetries) {
            if (sb_now_ns() >= deadline) return timed_out(ch);
            sleep_ns(kSlotBusyPollNs);
        }
        const uint32_t ticket = r.notify.load(std::memory_order_seq_cst);  // before write_seq: no lost wake-up
        const uint64_t published = r.write_seq.load(std::memory_order_acquire);
        const uint64_t consumed = ch->consumed;  // ours: we are the only consumer
        if (published != consumed && (published < consumed || published > sb::kMaxSeq))
            return protocol_error(ch, r, published);  // went backwards, or past anything countable
        if (published > consumed) {
            const uint64_t k = published - 1;  // the newest frame
            r.reading.store(k + 1, std::memory_order_seq_cst);
            auto *slot = reinterpret_cast<sb::SlotHeader *>(sb::slot_base(ch, ring, k));
            const uint64_t before = slot->seq.load(std::memory_order_acquire);
            const Seq verdict_seq = classify(before, k, slots);
            if (verdict_seq != Seq::kComplete) {
                r.reading.store(0, std::memory_order_release);
                if (verdict_seq == Seq::kImpossible) return protocol_error(ch, r, published);
                // A later lap is in the slot: the writer has counted it by now, unless it lies.
                if (r.write_seq.load(std::memory_order_acquire) == published) {
                    const uint64_t now = sb_now_ns();
                    if (lagging_since == 0) lagging_since = now;
                    if (now - lagging_since > kLagGraceNs) return protocol_error(ch, r, published);
                }
                continue;
            }
            lagging_since = 0;
            const SlotFields copy = fields_of(*slot);
            const sb_status verdict = check_slot(copy, slot_bytes);
            const bool fits = verdict == SB_OK && copy.payload_bytes <= capacity;
            if (fits && copy.payload_bytes != 0)
                std::memcpy(pixels, reinterpret_cast<const uint8_t *>(slot) + sizeof(sb::SlotHeader), copy.payload_bytes);
            std::atomic_thread_fence(std::memory_order_acquire);
            const uint64_t after = slot->seq.load(std::memory_order_relaxed);
            r.reading.store(0, std::memory_order_release);
            if (after != before) continue;  // torn: the writer lapped us mid-copy
            sb::beat(ch);
            if (verdict != SB_OK) {  // a consistent but invalid slot: skip it, count it as dropped
                take(ch, r, k, k + 1 - consumed);
                return verdict;
            }
            if (copy.reader_generation != 0 && copy.reader_generation != ch->generation) {
                // Written for a reader that has since died or left (we re-attached in its place):
                // stale, e.g. an enhanced frame of the previous device session. Skip it.
                take(ch, r, k, k + 1 - consumed);
                continue;
            }
            fill_info(info, copy);
            if (!fits) return SB_ERR_BUFFER_TOO_SMALL;  // left unread: retry with a larger buffer
            r.frames_read.fetch_add(1, std::memory_order_relaxed);
            take(ch, r, k, k - consumed);
            return SB_OK;
        }
        // Nothing new. A writer that died is reported at once, the first time; later calls wait
        // for a re-attached writer and say SB_ERR_PEER_GONE instead of SB_ERR_TIMEOUT.
        bool peer_dead = sb::peer_state(ch) == SB_PEER_DEAD;
        if (peer_dead) {
            uint32_t generation = ch->header->side[1 - ch->role].generation.load(std::memory_order_acquire);
            if (ch->death_reported != generation) {
                ch->death_reported = generation;
                return SB_ERR_PEER_GONE;
            }
        }
        const uint64_t now = sb_now_ns();
        if (timeout_ms == 0 || now >= deadline) return peer_dead ? SB_ERR_PEER_GONE : SB_ERR_TIMEOUT;
        sb::beat(ch);
        r.waiters.fetch_add(1, std::memory_order_seq_cst);
        if (r.notify.load(std::memory_order_seq_cst) == ticket) {
            uint64_t left = deadline - now;
            sb::futex_wait(&r.notify, ticket, left < kMaxSleepNs ? left : kMaxSleepNs);
        }
        r.waiters.fetch_sub(1, std::memory_order_seq_cst);
        if (!sb::intact(ch)) return SB_ERR_PROTOCOL;
        attempt = 0;  // woken (or a slice of the wait over): quick retries again
    }
}

const char *sb_status_string(sb_status status) {
    switch (status) {
        case SB_OK: return "SB_OK: success";
        case SB_ERR_TIMEOUT: return "SB_ERR_TIMEOUT: no new frame within the timeout";
        case SB_ERR_RING_FULL: return "SB_ERR_RING_FULL: the next slot is still being read by the consumer";
        case SB_ERR_FRAME_TOO_LARGE: return "SB_ERR_FRAME_TOO_LARGE: the frame exceeds the channel's slot size";
        case SB_ERR_BUFFER_TOO_SMALL: return "SB_ERR_BUFFER_TOO_SMALL: the caller's buffer cannot hold the frame";
        case SB_ERR_BAD_MAGIC: return "SB_ERR_BAD_MAGIC: not a sonoedge frame ring (wrong magic number)";
        case SB_ERR_VERSION_MISMATCH: return "SB_ERR_VERSION_MISMATCH: the peer uses another shared-memory layout version";
        case SB_ERR_GEOMETRY_MISMATCH: return "SB_ERR_GEOMETRY_MISMATCH: the channel exists with another slot count or size";
        case SB_ERR_CORRUPT_HEADER: return "SB_ERR_CORRUPT_HEADER: a frame header is inconsistent";
        case SB_ERR_PEER_GONE: return "SB_ERR_PEER_GONE: the other side of the channel died or stopped its heartbeat";
        case SB_ERR_ROLE_TAKEN: return "SB_ERR_ROLE_TAKEN: a live process already holds this side of the channel";
        case SB_ERR_INVALID_ARGUMENT: return "SB_ERR_INVALID_ARGUMENT: invalid argument (name, format, size or pointer)";
        case SB_ERR_NOT_FOUND: return "SB_ERR_NOT_FOUND: no channel of that name";
        case SB_ERR_SYSTEM: return "SB_ERR_SYSTEM: a system call failed (see errno)";
        case SB_ERR_NO_MEMORY: return "SB_ERR_NO_MEMORY: out of memory";
        case SB_ERR_PROTOCOL: return "SB_ERR_PROTOCOL: the other side broke the channel protocol (a sequence counter that cannot be right, or the shared object shrunk)";
        case SB_ERR_PERMISSION: return "SB_ERR_PERMISSION: the shared object belongs to another user or is open to group/others (it must be 0600 and ours)";
    }
    return "unknown sb_status";
}

}  // extern "C"
