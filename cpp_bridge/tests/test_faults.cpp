// A malicious peer: it forges the channel header, the ring counters, the slot headers and the
// shared object itself, and every call of the victim must return a status within its timeout,
// never crash and never hang. Each case runs in a forked child, so a crash (SIGFPE, SIGSEGV,
// SIGBUS, a sanitizer report) or a hang fails that case and the suite goes on; the summary line
// counts cases, crashes and hangs. Build with -DSONOEDGE_SANITIZE=ON to run it under ASan + UBSan.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "../src/layout.hpp"
#include "check.hpp"

namespace {

constexpr int kCaseTimeoutS = 20;  // a child still running after this has hung
constexpr uint64_t kSlackNs = 750'000'000ull;  // a call may overrun its timeout by this (sanitizers, 2 shared cores)
constexpr uint32_t kSlots = 4;
constexpr uint64_t kSlotBytes = 1024;

// The forger's own mapping of the channel, as a hostile process would have it.
struct Forger {
    std::string path;
    int fd = -1;
    uint8_t *base = nullptr;
    size_t bytes = 0;

    explicit Forger(const std::string &name) : path("/sonoedge-" + name) {
        fd = shm_open(path.c_str(), O_RDWR, 0);
        struct stat st {};
        if (fd < 0 || fstat(fd, &st) != 0) return;
        bytes = static_cast<size_t>(st.st_size);
        void *p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        base = p == MAP_FAILED ? nullptr : static_cast<uint8_t *>(p);
    }
    ~Forger() {
        if (base != nullptr) munmap(base, bytes);
        if (fd >= 0) close(fd);
    }
    sb::ChannelHeader *h() { return reinterpret_cast<sb::ChannelHeader *>(base); }
    // Slot `index` of `ring` by the true geometry (the forger knows it, whatever it wrote).
    sb::SlotHeader *slot(uint32_t ring, uint32_t index) {
        uint64_t first = sb::round_up(sizeof(sb::ChannelHeader), sb::kAlign);
        uint64_t stride = sb::slot_stride(kSlotBytes);
        return reinterpret_cast<sb::SlotHeader *>(base + first + (ring * kSlots + index) * stride);
    }
};

// Run `call` and check that it took at most its timeout (plus slack); returns its status.
sb_status timed(int timeout_ms, const std::function<sb_status()> &call, const char *what) {
    uint64_t t0 = sb_now_ns();
    sb_status st = call();
    uint64_t took = sb_now_ns() - t0;
    if (took > static_cast<uint64_t>(timeout_ms) * 1'000'000ull + kSlackNs)
        check::fail(__FILE__, __LINE__, std::string(what) + " overran its timeout: " + std::to_string(took / 1'000'000) + " ms");
    return st;
}

// A client (the forger's legitimate half) and a server (the victim) on a fresh channel.
struct Pair {
    std::string name;
    sb_channel *client = nullptr, *server = nullptr;
    std::vector<uint8_t> px = std::vector<uint8_t>(kSlotBytes, 7), out = std::vector<uint8_t>(kSlotBytes);

    explicit Pair(const char *tag) : name(check::unique_name(tag)) {
        auto cfg = check::fast_config(kSlots, kSlotBytes);
        CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_CLIENT, &cfg, &client), SB_OK);
        CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_SERVER, &cfg, &server), SB_OK);
    }
    ~Pair() {
        if (server != nullptr) sb_channel_close(server);
        if (client != nullptr) sb_channel_close(client);
        sb_channel_unlink(name.c_str());
    }
    sb_status send(uint64_t id) {
        sb_frame_info f = check::grey(32, 32, id);
        return sb_channel_write(client, &f, px.data(), 100);
    }
    sb_status read(int timeout_ms, sb_frame_info *got = nullptr) {
        sb_frame_info local{};
        return timed(timeout_ms, [&] { return sb_channel_read(server, got ? got : &local, out.data(), out.size(), timeout_ms); },
                     "sb_channel_read");
    }
    sb_status write_back(int timeout_ms) {
        sb_frame_info f = check::grey(32, 32, 1);
        return timed(timeout_ms, [&] { return sb_channel_write(server, &f, px.data(), timeout_ms); }, "sb_channel_write");
    }
    // Everything else the victim may call; none may crash.
    void poke() {
        sb_stats st{};
        CHECK_STATUS(sb_channel_stats(server, &st), SB_OK);
        CHECK(st.slot_count == kSlots && st.slot_bytes == kSlotBytes);  // the geometry checked at attach
        (void)sb_channel_peer(server, nullptr);
        (void)sb_channel_heartbeat(server);
    }
};

// Open `name` as a server with the existing geometry.
sb_status attach(const std::string &name, sb_channel **out) {
    auto cfg = check::fast_config(0, 0);
    *out = nullptr;
    sb_status st = timed(3000, [&] { return sb_channel_open(name.c_str(), SB_ROLE_SERVER, &cfg, out); }, "sb_channel_open");
    if (st == SB_OK) {
        CHECK(*out != nullptr);
        sb_channel_close(*out);
        *out = nullptr;
    }
    return st;
}

// -- the channel header, forged before a second side attaches ------------------------------------

// A channel made by a client; the forger edits its header, then the victim tries to attach.
void refused_at_attach(const char *tag, const std::function<void(sb::ChannelHeader *)> &forge, sb_status expected) {
    std::string name = check::unique_name(tag);
    auto cfg = check::fast_config(kSlots, kSlotBytes);
    cfg.heartbeat_ms = 0;
    sb_channel *c = nullptr, *s = nullptr;
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_CLIENT, &cfg, &c), SB_OK);
    {
        Forger f(name);
        CHECK(f.base != nullptr);
        if (f.base != nullptr) forge(f.h());
        CHECK_STATUS(attach(name, &s), expected);
    }
    sb_channel_close(c);
    sb_channel_unlink(name.c_str());
}

void attach_slot_count_zero() {
    refused_at_attach("cnt0", [](sb::ChannelHeader *h) { h->slot_count = 0; }, SB_ERR_CORRUPT_HEADER);
}
void attach_slot_count_one() {
    refused_at_attach("cnt1", [](sb::ChannelHeader *h) { h->slot_count = 1; }, SB_ERR_CORRUPT_HEADER);
}
void attach_slot_count_huge() {
    refused_at_attach("cnthuge", [](sb::ChannelHeader *h) { h->slot_count = 0xFFFFFFFFu; }, SB_ERR_CORRUPT_HEADER);
}
void attach_slot_count_huge_consistent_sizes() {  // total_bytes and stride agree with the lie
    refused_at_attach("cntcons", [](sb::ChannelHeader *h) {
        h->slot_count = 4000;
        h->total_bytes = sb::total_bytes(4000, h->slot_bytes);
    }, SB_ERR_CORRUPT_HEADER);
}
void attach_ring_offset_past_end() {
    refused_at_attach("offend", [](sb::ChannelHeader *h) { h->ring_offset[sb::kRingOut] = 1ull << 40; }, SB_ERR_CORRUPT_HEADER);
}
void attach_ring_offset_misaligned() {
    refused_at_attach("offmis", [](sb::ChannelHeader *h) { h->ring_offset[sb::kRingIn] += 8; }, SB_ERR_CORRUPT_HEADER);
}
void attach_ring_offset_overlapping() {
    refused_at_attach("offlap", [](sb::ChannelHeader *h) { h->ring_offset[sb::kRingOut] = h->ring_offset[sb::kRingIn]; },
                      SB_ERR_CORRUPT_HEADER);
}
void attach_slot_stride_huge() {
    refused_at_attach("stride", [](sb::ChannelHeader *h) { h->slot_stride = UINT64_MAX - 63; }, SB_ERR_CORRUPT_HEADER);
}
void attach_slot_bytes_overflowing() {  // stride and total wrap around to the true sizes
    refused_at_attach("bytesovf", [](sb::ChannelHeader *h) {
        h->slot_bytes = UINT64_MAX - 32;
        h->slot_stride = sb::slot_stride(h->slot_bytes);
        h->total_bytes = sb::total_bytes(h->slot_count, h->slot_bytes);
    }, SB_ERR_CORRUPT_HEADER);
}
void attach_total_bytes_past_end() {
    refused_at_attach("total", [](sb::ChannelHeader *h) { h->total_bytes += 1ull << 30; }, SB_ERR_CORRUPT_HEADER);
}
void attach_wrong_magic() {
    refused_at_attach("magic", [](sb::ChannelHeader *h) { h->magic = 0x11223344u; }, SB_ERR_BAD_MAGIC);
}
void attach_wrong_version() {
    refused_at_attach("version", [](sb::ChannelHeader *h) { h->version = 0xFFFFFFFFu; }, SB_ERR_VERSION_MISMATCH);
}
void attach_wrong_header_bytes() {
    refused_at_attach("hdrbytes", [](sb::ChannelHeader *h) { h->header_bytes = 16; }, SB_ERR_VERSION_MISMATCH);
}
void attach_write_seq_huge() {
    refused_at_attach("seqhuge", [](sb::ChannelHeader *h) { h->ring[sb::kRingOut].write_seq.store(UINT64_MAX); },
                      SB_ERR_CORRUPT_HEADER);
}

void attach_truncated_segment() {
    std::string name = check::unique_name("trunc");
    auto cfg = check::fast_config(kSlots, kSlotBytes);
    cfg.heartbeat_ms = 0;
    sb_channel *c = nullptr, *s = nullptr;
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_CLIENT, &cfg, &c), SB_OK);
    int fd = shm_open(("/sonoedge-" + name).c_str(), O_RDWR, 0);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, static_cast<off_t>(sb::total_bytes(kSlots, kSlotBytes) - 4096)) == 0);  // the header claims more
    CHECK_STATUS(attach(name, &s), SB_ERR_CORRUPT_HEADER);
    CHECK(ftruncate(fd, 100) == 0);  // shorter than the header itself: waits for a creator, then refuses
    CHECK_STATUS(attach(name, &s), SB_ERR_BAD_MAGIC);
    close(fd);
    sb_channel_close(c);  // its own mapping is past the end now: must not touch it
    sb_channel_unlink(name.c_str());
}

// -- the same forgeries after both sides attached: the victim must ignore them -------------------

void geometry_forged_after_attach(const char *tag, const std::function<void(sb::ChannelHeader *)> &forge) {
    Pair p(tag);
    Forger f(p.name);
    CHECK(f.base != nullptr);
    if (f.base == nullptr) return;
    CHECK_STATUS(p.send(1), SB_OK);
    forge(f.h());
    sb_frame_info got{};
    CHECK_STATUS(p.read(200, &got), SB_OK);  // the geometry checked at attach, not the one in shared memory
    CHECK(got.frame_id == 1);
    CHECK_STATUS(p.read(50), SB_ERR_TIMEOUT);
    CHECK_STATUS(p.write_back(50), SB_OK);
    p.poke();
}

void after_attach_slot_count_zero() {
    geometry_forged_after_attach("acnt0", [](sb::ChannelHeader *h) { h->slot_count = 0; });
}
void after_attach_slot_count_huge() {
    geometry_forged_after_attach("acnth", [](sb::ChannelHeader *h) { h->slot_count = 0xFFFFFFFFu; });
}
void after_attach_ring_offset_past_end() {
    geometry_forged_after_attach("aoff", [](sb::ChannelHeader *h) {
        h->ring_offset[0] = UINT64_MAX / 2;
        h->ring_offset[1] = 1ull << 40;
    });
}
void after_attach_slot_stride_huge() {
    geometry_forged_after_attach("astride", [](sb::ChannelHeader *h) { h->slot_stride = 1ull << 50; });
}
void after_attach_slot_bytes_huge() {
    geometry_forged_after_attach("abytes", [](sb::ChannelHeader *h) { h->slot_bytes = UINT64_MAX; });
}

void truncated_after_attach() {
    Pair p("atrunc");
    CHECK_STATUS(p.send(1), SB_OK);
    int fd = shm_open(("/sonoedge-" + p.name).c_str(), O_RDWR, 0);
    CHECK(fd >= 0);
    CHECK(ftruncate(fd, 4096) == 0);  // header page kept, every slot gone
    CHECK_STATUS(p.read(100), SB_ERR_PROTOCOL);
    CHECK_STATUS(p.write_back(100), SB_ERR_PROTOCOL);
    CHECK_STATUS(sb_channel_heartbeat(p.server), SB_ERR_PROTOCOL);
    CHECK(ftruncate(fd, 0) == 0);  // and the header page too
    CHECK_STATUS(p.read(100), SB_ERR_PROTOCOL);
    CHECK_STATUS(p.write_back(100), SB_ERR_PROTOCOL);
    sb_stats st{};
    CHECK_STATUS(sb_channel_stats(p.server, &st), SB_ERR_PROTOCOL);
    (void)sb_channel_peer(p.server, nullptr);
    usleep(150 * 1000);  // the heartbeat threads run meanwhile, against a header that is gone
    close(fd);
}

// -- ring counters ---------------------------------------------------------------------------------

void write_counter_ahead_of_its_slots() {
    Pair p("seqahead");
    Forger f(p.name);
    CHECK_STATUS(p.send(0), SB_OK);
    f.h()->ring[sb::kRingIn].write_seq.store(1000);  // frame 999's slot holds frame 0
    CHECK_STATUS(p.read(300), SB_ERR_PROTOCOL);
    CHECK_STATUS(p.read(50), SB_ERR_TIMEOUT);  // resynchronised: no spinning on the same lie
    f.h()->ring[sb::kRingIn].write_seq.store(1);  // and a counter that goes backwards
    CHECK_STATUS(p.read(300), SB_ERR_PROTOCOL);
    CHECK_STATUS(p.send(1), SB_OK);  // the writer goes on: the ring heals
    sb_frame_info got{};
    CHECK_STATUS(p.read(300, &got), SB_OK);
    CHECK(got.frame_id == 1);
}

void write_counter_huge() {
    Pair p("seqmax");
    Forger f(p.name);
    for (uint64_t bogus : {uint64_t{UINT64_MAX}, uint64_t{UINT64_MAX / 2 + 1}, uint64_t{1} << 62}) {
        f.h()->ring[sb::kRingIn].write_seq.store(bogus);
        CHECK_STATUS(p.read(300), SB_ERR_PROTOCOL);
    }
    p.poke();
}

void write_counter_rewritten_continuously() {  // the lie comes back faster than the victim reads
    Pair p("seqloop");
    std::atomic<bool> stop{false};
    std::thread forger([&] {
        Forger f(p.name);
        for (uint64_t i = 0; !stop.load(); ++i) {
            f.h()->ring[sb::kRingIn].write_seq.store(5000 + (i % 7) * 3);
            f.slot(sb::kRingIn, static_cast<uint32_t>(i % kSlots))->seq.store(i * 2 + 2);
        }
    });
    for (int i = 0; i < 20; ++i) {
        sb_status st = p.read(100);
        CHECK(st == SB_ERR_PROTOCOL || st == SB_ERR_TIMEOUT);
    }
    stop.store(true);
    forger.join();
}

void slot_sequence_half_written() {  // the counter says published, the slot says "being written"
    Pair p("seqodd");
    Forger f(p.name);
    CHECK_STATUS(p.send(0), SB_OK);
    f.slot(sb::kRingIn, 0)->seq.store(1);
    CHECK_STATUS(p.read(300), SB_ERR_PROTOCOL);
}

void slot_sequence_from_a_later_lap_never_published() {  // the slot is ahead of the counter, for good
    Pair p("seqlap");
    Forger f(p.name);
    CHECK_STATUS(p.send(0), SB_OK);
    f.slot(sb::kRingIn, 0)->seq.store(2 * (0 + 4 * kSlots) + 2);
    sb_status st = p.read(300);
    CHECK(st == SB_ERR_PROTOCOL);
}

void slot_sequence_from_another_slot() {  // a sequence that does not belong in this slot at all
    Pair p("seqother");
    Forger f(p.name);
    CHECK_STATUS(p.send(0), SB_OK);
    f.slot(sb::kRingIn, 0)->seq.store(2 * 3 + 2);  // frame 3 lives in slot 3, not 0
    CHECK_STATUS(p.read(300), SB_ERR_PROTOCOL);
}

void slot_sequence_flipping() {  // a seqlock that never stays put: every copy is torn
    Pair p("seqflip");
    CHECK_STATUS(p.send(0), SB_OK);
    std::atomic<bool> stop{false};
    std::thread forger([&] {
        Forger f(p.name);
        for (uint64_t i = 0; !stop.load(); ++i) f.slot(sb::kRingIn, 0)->seq.store(i % 2 ? 2 : 2 + 2 * kSlots);
    });
    for (int i = 0; i < 5; ++i) (void)p.read(100);  // any status, within the timeout (timed() checks)
    stop.store(true);
    forger.join();
}

void consumed_and_reading_forged() {  // the consumer's own counters are private to it
    Pair p("cons");
    Forger f(p.name);
    CHECK_STATUS(p.send(0), SB_OK);
    f.h()->ring[sb::kRingIn].consumed.store(UINT64_MAX);
    f.h()->ring[sb::kRingIn].frames_dropped.store(UINT64_MAX);
    sb_frame_info got{};
    CHECK_STATUS(p.read(300, &got), SB_OK);
    CHECK(got.frame_id == 0);
    for (int i = 0; i < 4; ++i) CHECK_STATUS(p.write_back(50), SB_OK);  // frames 0-3: frame 4 goes to slot 0
    // The client (a live peer) claims to be copying frame 0, in the slot the server writes next, for good.
    f.h()->ring[sb::kRingOut].reading.store(1);
    CHECK_STATUS(p.write_back(100), SB_ERR_RING_FULL);
    f.h()->ring[sb::kRingOut].reading.store(UINT64_MAX - 3);  // a frame the server never wrote (slot 0 too)
    CHECK_STATUS(p.write_back(100), SB_OK);
}

void reader_claim_of_a_dead_peer_is_void() {
    Pair p("claim");
    Forger f(p.name);
    sb_channel_close(p.client);
    p.client = nullptr;
    for (int i = 0; i < 4; ++i) CHECK_STATUS(p.write_back(50), SB_OK);
    f.h()->ring[sb::kRingOut].reading.store(1);  // frame 0, in the slot of frame 4
    CHECK_STATUS(p.write_back(-1), SB_OK);  // "forever" would never end otherwise
}

// -- slot headers ----------------------------------------------------------------------------------

void forged_slot(const char *tag, const std::function<void(sb::SlotHeader *)> &forge, sb_status expected) {
    Pair p(tag);
    Forger f(p.name);
    CHECK_STATUS(p.send(0), SB_OK);
    forge(f.slot(sb::kRingIn, 0));
    CHECK_STATUS(p.read(200), expected);
    CHECK_STATUS(p.read(50), SB_ERR_TIMEOUT);  // skipped, not retried
}

void slot_payload_huge() {
    forged_slot("payhuge", [](sb::SlotHeader *s) { s->payload_bytes = 0xFFFFFFFFu; }, SB_ERR_FRAME_TOO_LARGE);
}
void slot_size_negative() {  // -1 as uint32 in every size field
    forged_slot("payneg", [](sb::SlotHeader *s) {
        s->width = s->height = s->stride = 0xFFFFFFFFu;
        s->payload_bytes = 0xFFFFFFFFu;
    }, SB_ERR_FRAME_TOO_LARGE);
}
void slot_size_overflowing() {  // stride * height wraps around in 32 bits to the claimed payload
    forged_slot("payovf", [](sb::SlotHeader *s) {
        s->width = 0x10000;
        s->stride = 0x10000;
        s->height = 0x10000;
        s->payload_bytes = 0;
    }, SB_ERR_CORRUPT_HEADER);
}
void slot_stride_below_width() {
    forged_slot("strw", [](sb::SlotHeader *s) { s->stride = 1; }, SB_ERR_CORRUPT_HEADER);
}
void slot_format_unknown() {
    forged_slot("fmt", [](sb::SlotHeader *s) { s->format = 0xFFFFFFFFu; }, SB_ERR_CORRUPT_HEADER);
}
void slot_flags_unknown() {
    forged_slot("flags", [](sb::SlotHeader *s) { s->flags = 0xFFFFFFF0u; }, SB_ERR_CORRUPT_HEADER);
}
void slot_end_of_stream_with_garbage_size() {
    forged_slot("eos", [](sb::SlotHeader *s) {
        s->flags = SB_FLAG_END_OF_STREAM;
        s->width = 0;
        s->height = 0;
        s->payload_bytes = 0xFFFFFF00u;
    }, SB_ERR_FRAME_TOO_LARGE);
}
void slot_magic_and_version() {
    forged_slot("smagic", [](sb::SlotHeader *s) { s->magic = 0; }, SB_ERR_BAD_MAGIC);
    forged_slot("sver", [](sb::SlotHeader *s) { s->version = 2; }, SB_ERR_VERSION_MISMATCH);
}

// -- liveness fields ---------------------------------------------------------------------------------

void heartbeat_and_pid_forged() {
    Pair p("beat");
    Forger f(p.name);
    sb_channel_close(p.client);  // the forger writes the client side itself from now on
    p.client = nullptr;
    sb::SideState &client = f.h()->side[SB_ROLE_CLIENT];
    const uint64_t ns = f.h()->side[SB_ROLE_SERVER].pid_namespace.load();
    client.generation.store(7);
    client.pid_namespace.store(ns);
    client.pid.store(-1);  // kill(-1, 0) would ask about every process we may signal
    client.heartbeat_ns.store(sb_now_ns());
    CHECK(sb_channel_peer(p.server, nullptr) == SB_PEER_DEAD);
    client.pid.store(INT32_MIN);
    CHECK(sb_channel_peer(p.server, nullptr) == SB_PEER_DEAD);
    client.pid.store(static_cast<int32_t>(getppid()));  // alive, with a heartbeat from the far future
    client.heartbeat_ns.store(UINT64_MAX);
    CHECK(sb_channel_peer(p.server, nullptr) == SB_PEER_DEAD);
    CHECK_STATUS(p.read(100), SB_ERR_PEER_GONE);
    sb_channel *again = nullptr;  // and a new client may take over the side the forger wedged
    auto cfg = check::fast_config(0, 0);
    CHECK_STATUS(sb_channel_open(p.name.c_str(), SB_ROLE_CLIENT, &cfg, &again), SB_OK);
    if (again != nullptr) p.client = again;
}

// -- the shared object's owner and mode ----------------------------------------------------------------

void precreated_segment(const char *tag, mode_t mode, bool foreign_owner) {
    std::string name = check::unique_name(tag);
    auto cfg = check::fast_config(kSlots, kSlotBytes);  // a well-formed channel, made by "someone else"
    sb_channel *c = nullptr, *s = nullptr;
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_CLIENT, &cfg, &c), SB_OK);
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_SERVER, &cfg, &s), SB_OK);
    sb_channel_close(c);  // its server holds it: the object stays, its client side is free
    int fd = shm_open(("/sonoedge-" + name).c_str(), O_RDWR, 0);
    CHECK(fd >= 0);
    CHECK(fchmod(fd, mode) == 0);
    if (foreign_owner) CHECK(fchown(fd, 4242, static_cast<gid_t>(-1)) == 0);
    close(fd);
    c = nullptr;
    auto any = check::fast_config(0, 0);
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_CLIENT, &any, &c), SB_ERR_PERMISSION);
    CHECK(c == nullptr);
    if (c != nullptr) sb_channel_close(c);
    sb_channel_close(s);
    sb_channel_unlink(name.c_str());
}

void precreated_world_writable_segment() { precreated_segment("mode666", 0666, false); }
void precreated_group_readable_segment() { precreated_segment("mode640", 0640, false); }
void precreated_foreign_owned_segment() {
    if (geteuid() != 0) {
        std::printf("     (skipped the foreign owner: only root can give an object away)\n");
        return;
    }
    precreated_segment("owner", 0600, true);
}

void created_segment_is_private() {
    std::string name = check::unique_name("mode");
    mode_t old = umask(0);  // whatever the umask, the object is 0600
    auto cfg = check::fast_config(kSlots, kSlotBytes);
    sb_channel *c = nullptr;
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_CLIENT, &cfg, &c), SB_OK);
    umask(old);
    struct stat st {};
    CHECK(stat(("/dev/shm/sonoedge-" + name).c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600 && st.st_uid == geteuid());
    sb_channel_close(c);
}

// -- configuration that would overflow the size computation --------------------------------------------

void config_sizes_overflowing() {
    auto cfg = check::fast_config(kSlots, UINT64_MAX - 32);
    sb_channel *c = nullptr;
    CHECK_STATUS(sb_channel_open(check::unique_name("cfgovf").c_str(), SB_ROLE_CLIENT, &cfg, &c), SB_ERR_INVALID_ARGUMENT);
    cfg = check::fast_config(kSlots, 1ull << 33);  // a frame larger than payload_bytes can say
    CHECK_STATUS(sb_channel_open(check::unique_name("cfgbig").c_str(), SB_ROLE_CLIENT, &cfg, &c), SB_ERR_INVALID_ARGUMENT);
    CHECK(c == nullptr);
}

// -- random forgeries of every header byte -----------------------------------------------------------

void random_header_bytes(unsigned seed, int rounds) {
    std::mt19937_64 rng(seed);
    Pair p("fuzz");
    Forger f(p.name);
    if (f.base == nullptr) return;
    const size_t header = sizeof(sb::ChannelHeader);
    for (int round = 0; round < rounds; ++round) {
        (void)p.send(static_cast<uint64_t>(round));
        for (int n = 0; n < 4; ++n) {  // a few random bytes of the channel header or a slot header
            size_t at = rng() % 2 == 0 ? rng() % header
                                       : reinterpret_cast<uint8_t *>(f.slot(rng() % 2, rng() % kSlots)) - f.base +
                                             rng() % sizeof(sb::SlotHeader);
            const size_t ready = reinterpret_cast<uint8_t *>(&f.h()->ready) - f.base;
            if (at >= ready && at < ready + sizeof(f.h()->ready))
                continue;  // a channel never marked ready makes every attach wait 2 s: covered above
            f.base[at] = static_cast<uint8_t>(rng());
        }
        (void)p.read(10);
        (void)p.write_back(10);
        sb_frame_info got{};
        (void)sb_channel_read(p.client, &got, p.out.data(), p.out.size(), 0);
        sb_stats st{};
        (void)sb_channel_stats(p.server, &st);
        (void)sb_channel_peer(p.server, nullptr);
        sb_channel *other = nullptr;  // and a third party attaching to what is left
        if (attach(p.name, &other) == SB_OK && other != nullptr) sb_channel_close(other);
    }
}

void random_header_bytes_0() { random_header_bytes(1, 100); }
void random_header_bytes_1() { random_header_bytes(2, 100); }
void random_header_bytes_2() { random_header_bytes(3, 100); }

// -- the harness: one child per case ---------------------------------------------------------------------

struct Case {
    const char *name;
    void (*fn)();
};

#define CASE(fn) Case{#fn, fn}
const Case kCases[] = {
    CASE(attach_slot_count_zero), CASE(attach_slot_count_one), CASE(attach_slot_count_huge),
    CASE(attach_slot_count_huge_consistent_sizes), CASE(attach_ring_offset_past_end), CASE(attach_ring_offset_misaligned),
    CASE(attach_ring_offset_overlapping), CASE(attach_slot_stride_huge), CASE(attach_slot_bytes_overflowing),
    CASE(attach_total_bytes_past_end), CASE(attach_wrong_magic), CASE(attach_wrong_version),
    CASE(attach_wrong_header_bytes), CASE(attach_write_seq_huge), CASE(attach_truncated_segment),
    CASE(after_attach_slot_count_zero), CASE(after_attach_slot_count_huge), CASE(after_attach_ring_offset_past_end),
    CASE(after_attach_slot_stride_huge), CASE(after_attach_slot_bytes_huge), CASE(truncated_after_attach),
    CASE(write_counter_ahead_of_its_slots), CASE(write_counter_huge), CASE(write_counter_rewritten_continuously),
    CASE(slot_sequence_half_written), CASE(slot_sequence_from_a_later_lap_never_published),
    CASE(slot_sequence_from_another_slot), CASE(slot_sequence_flipping), CASE(consumed_and_reading_forged),
    CASE(reader_claim_of_a_dead_peer_is_void), CASE(slot_payload_huge), CASE(slot_size_negative),
    CASE(slot_size_overflowing), CASE(slot_stride_below_width), CASE(slot_format_unknown), CASE(slot_flags_unknown),
    CASE(slot_end_of_stream_with_garbage_size), CASE(slot_magic_and_version), CASE(heartbeat_and_pid_forged),
    CASE(precreated_world_writable_segment), CASE(precreated_group_readable_segment),
    CASE(precreated_foreign_owned_segment), CASE(created_segment_is_private), CASE(config_sizes_overflowing),
    CASE(random_header_bytes_0), CASE(random_header_bytes_1), CASE(random_header_bytes_2),
};

enum class Outcome { kPassed, kFailed, kCrashed, kHung };
constexpr int kChecksFailed = 42;  // the child's exit status when a CHECK failed (not a crash)

Outcome run_case(const Case &c, int *signal_out) {
    std::fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        alarm(0);
        c.fn();
        std::fflush(stdout);
        _exit(check::failures() == 0 ? 0 : kChecksFailed);
    }
    uint64_t deadline = sb_now_ns() + kCaseTimeoutS * 1'000'000'000ull;
    int status = 0;
    for (;;) {
        pid_t done = waitpid(pid, &status, WNOHANG);
        if (done == pid) break;
        if (sb_now_ns() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return Outcome::kHung;
        }
        usleep(10 * 1000);
    }
    if (WIFSIGNALED(status)) {
        *signal_out = WTERMSIG(status);
        return Outcome::kCrashed;
    }
    if (WEXITSTATUS(status) == 0) return Outcome::kPassed;
    if (WEXITSTATUS(status) == kChecksFailed) return Outcome::kFailed;
    return Outcome::kCrashed;  // a sanitizer report (ASan and UBSan exit with 1) or an abort
}

}  // namespace

int main(int argc, char **argv) {
    int passed = 0, failed = 0, crashed = 0, hung = 0, cases = 0;
    for (const Case &c : kCases) {
        if (argc > 1 && std::strstr(c.name, argv[1]) == nullptr) continue;
        ++cases;
        int sig = 0;
        switch (run_case(c, &sig)) {
            case Outcome::kPassed: ++passed; std::printf("ok    %s\n", c.name); break;
            case Outcome::kFailed: ++failed; std::printf("FAIL  %s\n", c.name); break;
            case Outcome::kCrashed:
                ++crashed;
                std::printf("CRASH %s (%s)\n", c.name, sig ? strsignal(sig) : "sanitizer report or abort");
                break;
            case Outcome::kHung: ++hung; std::printf("HANG  %s (killed after %d s)\n", c.name, kCaseTimeoutS); break;
        }
        std::fflush(stdout);
    }
    std::printf("fault suite: %d cases, %d passed, %d failed, %d crashes, %d hangs\n", cases, passed, failed, crashed, hung);
    return failed + crashed + hung == 0 ? 0 : 1;
}
