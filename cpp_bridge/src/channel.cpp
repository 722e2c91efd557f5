// Channel lifecycle: create or attach, liveness (pid + heartbeat per side), detach.
#include "channel.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <new>

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

namespace {

constexpr uint32_t kDefaultSlots = 8;                    // a few frames of slack at 30-60 fps
constexpr uint64_t kDefaultSlotBytes = 1920ull * 1080 * 3;  // one full-HD RGB screen capture
constexpr uint32_t kDefaultPeerTimeoutMs = 2000;
constexpr uint32_t kDefaultHeartbeatMs = 100;
constexpr uint64_t kAttachWaitNs = 2'000'000'000ull;     // for a creator to finish initialising

bool valid_name(const char *name) {
    if (name == nullptr) return false;
    size_t n = std::strlen(name);
    if (n == 0 || n > 200) return false;
    for (size_t i = 0; i < n; ++i) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

std::string shm_name_of(const char *name) { return std::string("/sonoedge-") + name; }

void sleep_ns(uint64_t ns) {
    timespec ts{static_cast<time_t>(ns / 1'000'000'000ull), static_cast<long>(ns % 1'000'000'000ull)};
    nanosleep(&ts, nullptr);
}

uint64_t own_pid_namespace() {
    struct stat st {};
    return stat("/proc/self/ns/pid", &st) == 0 ? static_cast<uint64_t>(st.st_ino) : 0;
}

// Alive: the process exists and its heartbeat is fresh. A zombie (killed, not yet reaped) still
// exists for kill(), so the stale heartbeat is what catches it. A peer in another pid namespace
// (a container sharing /dev/shm) is judged by its heartbeat alone: its pid is not ours to probe.
// A pid that is not a process id (kill() would take it for a process group) or a heartbeat from
// further in the future than a timeout (it would keep a dead side alive for ever) is a dead side.
bool side_alive(const sb::SideState &side, uint64_t timeout_ns, uint64_t our_namespace) {
    int32_t pid = side.pid.load(std::memory_order_acquire);
    if (pid <= 0) return false;
    uint64_t ns = side.pid_namespace.load(std::memory_order_acquire);
    bool same_namespace = ns != 0 && ns == our_namespace;
    if (same_namespace && kill(pid, 0) == -1 && errno == ESRCH) return false;
    uint64_t beat = side.heartbeat_ns.load(std::memory_order_acquire);
    uint64_t now = sb_now_ns();
    return now <= beat ? beat - now <= timeout_ns : now - beat <= timeout_ns;
}

// Bytes of both rings for this geometry, or false when it overflows 64 bits.
bool rings_bytes(uint32_t slot_count, uint64_t slot_stride, uint64_t *out) {
    uint64_t one = 0;
    return !__builtin_mul_overflow(static_cast<uint64_t>(slot_count), slot_stride, &one) &&
           !__builtin_mul_overflow(one, uint64_t{2}, out);
}

// The geometry a channel header claims (into `out`, as read), checked field by field against the
// layout it must have and against the size of the object that holds it; SB_ERR_CORRUPT_HEADER on
// any disagreement.
sb_status geometry_of(const sb::ChannelHeader &h, uint64_t file_bytes, sb::Geometry *out) {
    sb::Geometry &g = *out;
    g.slot_count = h.slot_count;  // one read of each field: the peer may change them meanwhile
    g.slot_bytes = h.slot_bytes;
    g.slot_stride = h.slot_stride;
    g.ring_offset[0] = h.ring_offset[0];
    g.ring_offset[1] = h.ring_offset[1];
    g.total_bytes = h.total_bytes;
    if (g.slot_count < 2 || g.slot_count > sb::kMaxSlots || g.slot_bytes == 0 || g.slot_bytes > sb::kMaxSlotBytes)
        return SB_ERR_CORRUPT_HEADER;
    if (g.slot_stride != sb::slot_stride(g.slot_bytes)) return SB_ERR_CORRUPT_HEADER;
    const uint64_t first = sb::round_up(sizeof(sb::ChannelHeader), sb::kAlign);
    uint64_t rings = 0, total = 0;
    if (!rings_bytes(g.slot_count, g.slot_stride, &rings) || __builtin_add_overflow(first, rings, &total))
        return SB_ERR_CORRUPT_HEADER;
    if (g.ring_offset[sb::kRingIn] != first || g.ring_offset[sb::kRingOut] != first + rings / 2 ||
        g.total_bytes != total || total > sb::kMaxTotalBytes || total > file_bytes)
        return SB_ERR_CORRUPT_HEADER;
    return SB_OK;
}

void init_header(sb::ChannelHeader *h, uint32_t slot_count, uint64_t slot_bytes, uint64_t total) {
    new (h) sb::ChannelHeader();  // value-initialises every atomic to 0
    h->version = SB_LAYOUT_VERSION;
    h->header_bytes = sizeof(sb::ChannelHeader);
    h->slot_count = slot_count;
    h->slot_bytes = slot_bytes;
    h->slot_stride = sb::slot_stride(slot_bytes);  // slot_count and slot_bytes bounded by map_channel
    uint64_t first = sb::round_up(sizeof(sb::ChannelHeader), sb::kAlign);
    h->ring_offset[sb::kRingIn] = first;
    h->ring_offset[sb::kRingOut] = first + slot_count * h->slot_stride;
    h->total_bytes = total;
    auto *base = reinterpret_cast<uint8_t *>(h);
    for (uint32_t ring = 0; ring < 2; ++ring) {
        for (uint32_t i = 0; i < slot_count; ++i) {
            auto *slot = new (base + h->ring_offset[ring] + i * h->slot_stride) sb::SlotHeader();
            slot->magic = sb::kSlotMagic;
            slot->version = SB_LAYOUT_VERSION;
        }
    }
    h->magic = sb::kChannelMagic;
    h->ready.store(1, std::memory_order_release);
}

sb_status create_new(sb_channel *ch, int fd, uint32_t slot_count, uint64_t slot_bytes) {
    uint64_t total = sb::total_bytes(slot_count, slot_bytes);
    if (fchmod(fd, 0600) != 0) return SB_ERR_SYSTEM;  // exactly 0600, whatever the umask made of it
    if (ftruncate(fd, static_cast<off_t>(total)) != 0) return SB_ERR_SYSTEM;
    void *base = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) return SB_ERR_SYSTEM;
    ch->header = static_cast<sb::ChannelHeader *>(base);
    ch->mapped_bytes = total;
    ch->created = true;
    init_header(ch->header, slot_count, slot_bytes, total);
    sb::Geometry g;
    sb_status st = geometry_of(*ch->header, total, &g);
    if (st == SB_OK) ch->geo = g;
    return st;
}

// Wait for the creator to finish, then check everything we are about to trust and keep our own
// copy of the geometry.
sb_status check_existing(sb_channel *ch, const sb_channel_config &cfg, uint64_t file_bytes) {
    const sb::ChannelHeader *h = ch->header;
    uint64_t deadline = sb_now_ns() + kAttachWaitNs;
    while (h->ready.load(std::memory_order_acquire) != 1) {
        if (h->magic != 0 && h->magic != sb::kChannelMagic) return SB_ERR_BAD_MAGIC;
        if (sb_now_ns() > deadline) return SB_ERR_BAD_MAGIC;  // never initialised: not a ring
        sleep_ns(1'000'000);
    }
    if (h->magic != sb::kChannelMagic) return SB_ERR_BAD_MAGIC;
    if (h->version != SB_LAYOUT_VERSION || h->header_bytes != sizeof(sb::ChannelHeader))
        return SB_ERR_VERSION_MISMATCH;
    sb::Geometry g;
    sb_status st = geometry_of(*h, file_bytes, &g);
    if ((cfg.slot_count != 0 && cfg.slot_count != g.slot_count) || (cfg.slot_bytes != 0 && cfg.slot_bytes != g.slot_bytes))
        return SB_ERR_GEOMETRY_MISMATCH;
    if (st != SB_OK) return st;
    ch->geo = g;
    return SB_OK;
}

// A channel is only as private as its shared object: one made by another user, or that group or
// others may open, could be forged or read by them, so it is refused before it is mapped.
sb_status check_owner(const struct stat &st) {
    if (st.st_uid != geteuid() || (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) return SB_ERR_PERMISSION;
    return S_ISREG(st.st_mode) ? SB_OK : SB_ERR_BAD_MAGIC;
}

sb_status attach_existing(sb_channel *ch, int fd, const sb_channel_config &cfg) {
    struct stat st {};
    uint64_t deadline = sb_now_ns() + kAttachWaitNs;
    for (;;) {  // the creator may not have sized the object yet
        if (fstat(fd, &st) != 0) return SB_ERR_SYSTEM;
        sb_status owner = check_owner(st);
        if (owner != SB_OK) return owner;
        if (static_cast<uint64_t>(st.st_size) >= sizeof(sb::ChannelHeader)) break;
        if (sb_now_ns() > deadline) return SB_ERR_BAD_MAGIC;
        sleep_ns(1'000'000);
    }
    uint64_t file_bytes = static_cast<uint64_t>(st.st_size);
    if (file_bytes > sb::kMaxTotalBytes) return SB_ERR_CORRUPT_HEADER;  // no channel is that large
    void *base = mmap(nullptr, file_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (base == MAP_FAILED) return SB_ERR_SYSTEM;
    ch->header = static_cast<sb::ChannelHeader *>(base);
    ch->mapped_bytes = file_bytes;
    return check_existing(ch, cfg, file_bytes);
}

sb_status map_channel(sb_channel *ch, const sb_channel_config &cfg) {
    uint32_t slots = cfg.slot_count ? cfg.slot_count : kDefaultSlots;
    uint64_t bytes = cfg.slot_bytes ? cfg.slot_bytes : kDefaultSlotBytes;
    if (slots < 2 || slots > sb::kMaxSlots || bytes > sb::kMaxSlotBytes || sb::total_bytes(slots, bytes) > sb::kMaxTotalBytes)
        return SB_ERR_INVALID_ARGUMENT;
    const bool may_create = (cfg.open_flags & SB_OPEN_NO_CREATE) == 0;
    for (int attempt = 0; attempt < 8; ++attempt) {  // create/unlink races: try again
        int fd = may_create ? shm_open(ch->shm_name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600) : -1;
        if (fd >= 0) {
            ch->fd = fd;
            sb_status st = create_new(ch, fd, slots, bytes);
            if (st != SB_OK) shm_unlink(ch->shm_name.c_str());
            return st;
        }
        if (may_create && errno != EEXIST) return SB_ERR_SYSTEM;
        fd = shm_open(ch->shm_name.c_str(), O_RDWR, 0600);
        if (fd < 0) {
            if (errno != ENOENT) return SB_ERR_SYSTEM;
            if (!may_create) return SB_ERR_NOT_FOUND;
            continue;  // removed between our two calls
        }
        ch->fd = fd;
        return attach_existing(ch, fd, cfg);
    }
    return SB_ERR_SYSTEM;
}

sb_status attach_side(sb_channel *ch) {
    sb::SideState &side = ch->header->side[ch->role];
    sb::RingControl &ours = ch->header->ring[sb::write_ring(ch->role)];
    sb::RingControl &theirs = ch->header->ring[sb::read_ring(ch->role)];
    // We carry on from the counters our side left; they are ours from now on, kept privately.
    const uint64_t written = ours.write_seq.load(std::memory_order_acquire);
    const uint64_t published = theirs.write_seq.load(std::memory_order_acquire);
    const uint64_t consumed = theirs.consumed.load(std::memory_order_acquire);
    if (written > sb::kMaxSeq) return SB_ERR_CORRUPT_HEADER;
    int32_t old = side.pid.load(std::memory_order_acquire);
    if (old != 0 && side_alive(side, ch->peer_timeout_ns, ch->pid_namespace)) return SB_ERR_ROLE_TAKEN;
    side.heartbeat_ns.store(sb_now_ns(), std::memory_order_release);
    side.pid_namespace.store(ch->pid_namespace, std::memory_order_release);
    if (!side.pid.compare_exchange_strong(old, ch->pid, std::memory_order_acq_rel)) return SB_ERR_ROLE_TAKEN;
    ch->generation = side.generation.fetch_add(1, std::memory_order_acq_rel) + 1;
    ch->write_next.store(written, std::memory_order_relaxed);
    // A counter the writer never reached is not taken: the first read reports it (SB_ERR_PROTOCOL).
    ch->consumed = consumed <= published ? consumed : 0;
    // A consumer that died mid-copy left its claim on a slot; we are the consumer now.
    theirs.reading.store(0, std::memory_order_release);
    return SB_OK;
}

void unmap(sb_channel *ch) {
    if (ch->header != nullptr) munmap(ch->header, ch->mapped_bytes);
    ch->header = nullptr;
    if (ch->fd >= 0) close(ch->fd);
    ch->fd = -1;
}

void heartbeat_loop(sb_channel *ch, uint32_t period_ms) {
    std::unique_lock<std::mutex> lock(ch->heartbeat_mutex);
    while (!ch->heartbeat_stop) {
        if (sb::intact(ch)) sb::beat(ch);
        ch->heartbeat_wake.wait_for(lock, std::chrono::milliseconds(period_ms));
    }
}

}  // namespace

namespace sb {

// Within the mapping for any index: geometry_of bounded ring_offset + slot_count * slot_stride.
uint8_t *slot_base(sb_channel *ch, uint32_t ring, uint64_t index) {
    auto *base = reinterpret_cast<uint8_t *>(ch->header);
    return base + ch->geo.ring_offset[ring] + (index % ch->geo.slot_count) * ch->geo.slot_stride;
}

// A peer (or anyone with write access) that shrinks the object would turn our next access to the
// lost pages into SIGBUS; every call looks first. A shrink between this check and the access still
// faults: a POSIX shm object cannot be sealed against it (only a memfd can), and the owner check
// at attach leaves only processes of our own user able to do it.
bool intact(sb_channel *ch) {
    struct stat st {};
    return ch->fd >= 0 && fstat(ch->fd, &st) == 0 && static_cast<uint64_t>(st.st_size) >= ch->geo.total_bytes;
}

void beat(sb_channel *ch) {
    ch->header->side[ch->role].heartbeat_ns.store(sb_now_ns(), std::memory_order_release);
}

sb_peer_state peer_state(sb_channel *ch) {
    const SideState &peer = ch->header->side[1 - ch->role];
    if (peer.pid.load(std::memory_order_acquire) == 0) return SB_PEER_ABSENT;
    return side_alive(peer, ch->peer_timeout_ns, ch->pid_namespace) ? SB_PEER_ALIVE : SB_PEER_DEAD;
}

void futex_wait(std::atomic<uint32_t> *word, uint32_t expected, uint64_t timeout_ns) {
#if defined(__linux__)
    // Shared (not FUTEX_PRIVATE): the waker is another process mapping the same page.
    timespec ts{static_cast<time_t>(timeout_ns / 1'000'000'000ull), static_cast<long>(timeout_ns % 1'000'000'000ull)};
    syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAIT, expected, &ts, nullptr, 0);
#else
    (void)word;
    (void)expected;
    sleep_ns(timeout_ns < 200'000 ? timeout_ns : 200'000);
#endif
}

void futex_wake_all(std::atomic<uint32_t> *word) {
#if defined(__linux__)
    syscall(SYS_futex, reinterpret_cast<uint32_t *>(word), FUTEX_WAKE, INT32_MAX, nullptr, nullptr, 0);
#else
    (void)word;
#endif
}

}  // namespace sb

extern "C" {

uint64_t sb_now_ns(void) {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<uint64_t>(ts.tv_nsec);
}

uint32_t sb_format_bytes_per_pixel(uint32_t format) {
    switch (format) {
        case SB_FORMAT_GRAY8: return 1;
        case SB_FORMAT_RGB8:
        case SB_FORMAT_BGR8: return 3;
        default: return 0;
    }
}

void sb_channel_config_default(sb_channel_config *config) {
    if (config == nullptr) return;
    std::memset(config, 0, sizeof(*config));
    config->heartbeat_ms = kDefaultHeartbeatMs;
}

sb_status sb_channel_open(const char *name, sb_role role, const sb_channel_config *config, sb_channel **out) {
    if (out == nullptr) return SB_ERR_INVALID_ARGUMENT;
    *out = nullptr;
    if (!valid_name(name) || (role != SB_ROLE_CLIENT && role != SB_ROLE_SERVER)) return SB_ERR_INVALID_ARGUMENT;
    sb_channel_config cfg;
    sb_channel_config_default(&cfg);
    if (config != nullptr) cfg = *config;
    auto *ch = new (std::nothrow) sb_channel();
    if (ch == nullptr) return SB_ERR_NO_MEMORY;
    ch->shm_name = shm_name_of(name);
    ch->role = role;
    ch->pid = static_cast<int32_t>(getpid());
    ch->pid_namespace = own_pid_namespace();
    ch->peer_timeout_ns = 1'000'000ull * (cfg.peer_timeout_ms ? cfg.peer_timeout_ms : kDefaultPeerTimeoutMs);
    sb_status st = map_channel(ch, cfg);
    if (st == SB_OK) st = attach_side(ch);
    if (st != SB_OK) {
        unmap(ch);
        delete ch;
        return st;
    }
    if (cfg.heartbeat_ms != 0) {
        try {
            ch->heartbeat_thread = std::thread(heartbeat_loop, ch, cfg.heartbeat_ms);
        } catch (const std::system_error &) {
            sb_channel_close(ch);
            return SB_ERR_SYSTEM;
        }
    }
    *out = ch;
    return SB_OK;
}

sb_status sb_channel_close(sb_channel *ch) {
    if (ch == nullptr) return SB_ERR_INVALID_ARGUMENT;
    if (ch->heartbeat_thread.joinable()) {
        {
            std::lock_guard<std::mutex> lock(ch->heartbeat_mutex);
            ch->heartbeat_stop = true;
        }
        ch->heartbeat_wake.notify_all();
        ch->heartbeat_thread.join();
    }
    bool peer_gone = false;
    if (sb::intact(ch)) {  // a shrunk object is left alone, and in place: nothing of it is ours to read
        int32_t mine = ch->pid;
        ch->header->side[ch->role].pid.compare_exchange_strong(mine, 0, std::memory_order_acq_rel);
        const sb::SideState &peer = ch->header->side[1 - ch->role];
        peer_gone = peer.pid.load(std::memory_order_acquire) == 0 || !side_alive(peer, ch->peer_timeout_ns, ch->pid_namespace);
    }
    unmap(ch);
    if (peer_gone) shm_unlink(ch->shm_name.c_str());  // ENOENT: the peer removed it first
    delete ch;
    return SB_OK;
}

sb_status sb_channel_unlink(const char *name) {
    if (!valid_name(name)) return SB_ERR_INVALID_ARGUMENT;
    if (shm_unlink(shm_name_of(name).c_str()) == 0) return SB_OK;
    return errno == ENOENT ? SB_ERR_NOT_FOUND : SB_ERR_SYSTEM;
}

sb_status sb_channel_heartbeat(sb_channel *ch) {
    if (ch == nullptr) return SB_ERR_INVALID_ARGUMENT;
    if (!sb::intact(ch)) return SB_ERR_PROTOCOL;
    sb::beat(ch);
    return SB_OK;
}

sb_peer_state sb_channel_peer(sb_channel *ch, uint32_t *generation) {
    if (ch == nullptr) return SB_PEER_ABSENT;
    if (generation != nullptr) *generation = 0;
    if (!sb::intact(ch)) return SB_PEER_DEAD;  // it broke the channel: as good as gone
    if (generation != nullptr)
        *generation = ch->header->side[1 - ch->role].generation.load(std::memory_order_acquire);
    return sb::peer_state(ch);
}

sb_status sb_channel_stats(sb_channel *ch, sb_stats *out) {
    if (ch == nullptr || out == nullptr) return SB_ERR_INVALID_ARGUMENT;
    if (!sb::intact(ch)) return SB_ERR_PROTOCOL;
    const sb::RingControl &w = ch->header->ring[sb::write_ring(ch->role)];
    const sb::RingControl &r = ch->header->ring[sb::read_ring(ch->role)];
    out->frames_written = ch->write_next.load(std::memory_order_relaxed);
    out->writes_refused = w.writes_refused.load(std::memory_order_relaxed);
    out->frames_read = r.frames_read.load(std::memory_order_relaxed);
    out->frames_dropped = r.frames_dropped.load(std::memory_order_relaxed);
    out->peer_generation = ch->header->side[1 - ch->role].generation.load(std::memory_order_acquire);
    out->slot_count = ch->geo.slot_count;
    out->slot_bytes = ch->geo.slot_bytes;
    return SB_OK;
}

void *sb_channel_debug_base(sb_channel *ch) { return ch == nullptr ? nullptr : ch->header; }

}  // extern "C"
