// Header validation: every malformed channel, slot or frame is refused with its own status code.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "../src/layout.hpp"
#include "check.hpp"

extern "C" void *sb_channel_debug_base(sb_channel *channel);

namespace {

sb::ChannelHeader *header_of(sb_channel *ch) { return static_cast<sb::ChannelHeader *>(sb_channel_debug_base(ch)); }

sb::SlotHeader *slot_of(sb_channel *ch, uint32_t ring, uint32_t index) {
    auto *h = header_of(ch);
    auto *base = reinterpret_cast<uint8_t *>(h);
    return reinterpret_cast<sb::SlotHeader *>(base + h->ring_offset[ring] + index * h->slot_stride);
}

void oversized_and_malformed_frames_are_refused_on_write() {
    auto cfg = check::fast_config(2, 32 * 32);
    std::string name = check::unique_name("oversize");
    sb_channel *c = nullptr;
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_CLIENT, &cfg, &c), SB_OK);
    std::vector<uint8_t> px(64 * 64 * 3);
    sb_frame_info f = check::grey(33, 32, 1);  // one column too many for a 32x32 slot
    CHECK_STATUS(sb_channel_write(c, &f, px.data(), 0), SB_ERR_FRAME_TOO_LARGE);
    f = check::grey(32, 32, 1);
    f.format = SB_FORMAT_RGB8;
    f.stride = 96;
    CHECK_STATUS(sb_channel_write(c, &f, px.data(), 0), SB_ERR_FRAME_TOO_LARGE);
    f = check::grey(16, 16, 1);
    f.stride = 15;  // shorter than a row
    CHECK_STATUS(sb_channel_write(c, &f, px.data(), 0), SB_ERR_INVALID_ARGUMENT);
    f = check::grey(16, 16, 1);
    f.format = 99;
    CHECK_STATUS(sb_channel_write(c, &f, px.data(), 0), SB_ERR_INVALID_ARGUMENT);
    f = check::grey(0, 16, 1);
    CHECK_STATUS(sb_channel_write(c, &f, px.data(), 0), SB_ERR_INVALID_ARGUMENT);
    f = check::grey(16, 16, 1);
    CHECK_STATUS(sb_channel_write(c, &f, nullptr, 0), SB_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(sb_channel_write(c, &f, px.data(), 0), SB_OK);
    sb_stats st{};
    sb_channel_stats(c, &st);
    CHECK(st.frames_written == 1);  // nothing refused reached the ring
    sb_channel_close(c);
}

void corrupt_channel_header_is_refused_on_open() {
    auto cfg = check::fast_config(2, 1024);
    std::string name = check::unique_name("magic");
    sb_channel *c = nullptr, *s = nullptr;
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_CLIENT, &cfg, &c), SB_OK);
    auto *h = header_of(c);
    h->magic = 0xdeadbeef;
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_SERVER, &cfg, &s), SB_ERR_BAD_MAGIC);
    CHECK(s == nullptr);
    h->magic = sb::kChannelMagic;
    h->version = SB_LAYOUT_VERSION + 1;
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_SERVER, &cfg, &s), SB_ERR_VERSION_MISMATCH);
    h->version = SB_LAYOUT_VERSION;
    auto other = check::fast_config(3, 1024);
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_SERVER, &other, &s), SB_ERR_GEOMETRY_MISMATCH);
    other = check::fast_config(2, 2048);
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_SERVER, &other, &s), SB_ERR_GEOMETRY_MISMATCH);
    h->total_bytes += 4096;  // claims more than the shared object holds
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_SERVER, &cfg, &s), SB_ERR_CORRUPT_HEADER);
    h->total_bytes -= 4096;
    auto any = check::fast_config(0, 0);  // 0: take the existing geometry
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_SERVER, &any, &s), SB_OK);
    sb_stats st{};
    sb_channel_stats(s, &st);
    CHECK(st.slot_count == 2 && st.slot_bytes == 1024);
    sb_channel_close(s);
    sb_channel_close(c);
}

void foreign_shared_object_is_not_a_ring() {
    std::string name = check::unique_name("foreign");
    std::string path = "/sonoedge-" + name;
    int fd = shm_open(path.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    std::vector<uint8_t> junk(64 * 1024, 0xA5);
    CHECK(write(fd, junk.data(), junk.size()) == static_cast<ssize_t>(junk.size()));
    close(fd);
    auto cfg = check::fast_config(0, 0);
    sb_channel *s = nullptr;
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_SERVER, &cfg, &s), SB_ERR_BAD_MAGIC);
    CHECK_STATUS(sb_channel_unlink(name.c_str()), SB_OK);
    CHECK_STATUS(sb_channel_unlink(name.c_str()), SB_ERR_NOT_FOUND);
}

void corrupt_slot_is_refused_on_read_and_counted_dropped() {
    auto cfg = check::fast_config(4, 256);
    std::string name = check::unique_name("slot");
    sb_channel *c = nullptr, *s = nullptr;
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_CLIENT, &cfg, &c), SB_OK);
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_SERVER, &cfg, &s), SB_OK);
    std::vector<uint8_t> px(256, 3), out(256);
    sb_frame_info f = check::grey(16, 16, 0), got{};

    CHECK_STATUS(sb_channel_write(c, &f, px.data(), 0), SB_OK);  // frame 0 -> slot 0
    slot_of(c, sb::kRingIn, 0)->magic = 0x12345678;
    CHECK_STATUS(sb_channel_read(s, &got, out.data(), out.size(), 0), SB_ERR_BAD_MAGIC);

    CHECK_STATUS(sb_channel_write(c, &f, px.data(), 0), SB_OK);  // frame 1 -> slot 1
    slot_of(c, sb::kRingIn, 1)->payload_bytes = 4096;            // more than the slot holds
    CHECK_STATUS(sb_channel_read(s, &got, out.data(), out.size(), 0), SB_ERR_FRAME_TOO_LARGE);

    CHECK_STATUS(sb_channel_write(c, &f, px.data(), 0), SB_OK);  // frame 2 -> slot 2
    slot_of(c, sb::kRingIn, 2)->stride = 8;                      // narrower than its width
    CHECK_STATUS(sb_channel_read(s, &got, out.data(), out.size(), 0), SB_ERR_CORRUPT_HEADER);

    CHECK_STATUS(sb_channel_write(c, &f, px.data(), 0), SB_OK);  // frame 3 -> slot 3
    slot_of(c, sb::kRingIn, 3)->version = 7;
    CHECK_STATUS(sb_channel_read(s, &got, out.data(), out.size(), 0), SB_ERR_VERSION_MISMATCH);

    f.frame_id = 4;  // the writer rewrites slot headers: the ring heals on the next lap
    CHECK_STATUS(sb_channel_write(c, &f, px.data(), 0), SB_OK);
    CHECK_STATUS(sb_channel_read(s, &got, out.data(), out.size(), 0), SB_OK);
    CHECK(got.frame_id == 4);
    sb_stats st{};
    sb_channel_stats(s, &st);
    CHECK(st.frames_read == 1 && st.frames_dropped == 4);
    sb_channel_close(s);
    sb_channel_close(c);
}

void bad_arguments_and_taken_roles() {
    sb_channel *ch = nullptr;
    auto cfg = check::fast_config(2, 64);
    CHECK_STATUS(sb_channel_open("", SB_ROLE_CLIENT, &cfg, &ch), SB_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(sb_channel_open("a/b", SB_ROLE_CLIENT, &cfg, &ch), SB_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(sb_channel_open(std::string(201, 'x').c_str(), SB_ROLE_CLIENT, &cfg, &ch), SB_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(sb_channel_open("ok", static_cast<sb_role>(5), &cfg, &ch), SB_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(sb_channel_open("ok", SB_ROLE_CLIENT, &cfg, nullptr), SB_ERR_INVALID_ARGUMENT);
    auto one = check::fast_config(1, 64);
    CHECK_STATUS(sb_channel_open("ok", SB_ROLE_CLIENT, &one, &ch), SB_ERR_INVALID_ARGUMENT);
    auto none = check::fast_config(2, 64);
    none.open_flags = SB_OPEN_NO_CREATE;
    CHECK_STATUS(sb_channel_open(check::unique_name("absent").c_str(), SB_ROLE_CLIENT, &none, &ch), SB_ERR_NOT_FOUND);
    CHECK(ch == nullptr);

    std::string name = check::unique_name("taken");
    sb_channel *a = nullptr, *b = nullptr;
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_CLIENT, &cfg, &a), SB_OK);
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_CLIENT, &cfg, &b), SB_ERR_ROLE_TAKEN);
    CHECK(sb_channel_peer(a, nullptr) == SB_PEER_ABSENT);
    CHECK_STATUS(sb_channel_write(nullptr, nullptr, nullptr, 0), SB_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(sb_channel_read(a, nullptr, nullptr, 0, 0), SB_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(sb_channel_close(a), SB_OK);  // the peer is absent: the object goes too
    CHECK_STATUS(sb_channel_unlink(name.c_str()), SB_ERR_NOT_FOUND);
    for (int s = 0; s <= SB_ERR_PERMISSION; ++s)
        CHECK(std::strncmp(sb_status_string(static_cast<sb_status>(s)), "SB_", 3) == 0);
}

void peer_in_another_pid_namespace_is_judged_by_heartbeat() {
    auto cfg = check::fast_config(2, 64);  // peer timeout 300 ms
    std::string name = check::unique_name("pidns");
    sb_channel *c = nullptr;
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_CLIENT, &cfg, &c), SB_OK);
    auto &server = header_of(c)->side[SB_ROLE_SERVER];
    const uint64_t ours = header_of(c)->side[SB_ROLE_CLIENT].pid_namespace.load();
    CHECK(ours != 0);  // Linux: /proc/self/ns/pid
    const int32_t no_such_pid = 0x3FFFFFF0;  // above pid_max: kill() says ESRCH here
    server.pid.store(no_such_pid);
    server.generation.store(1);
    server.heartbeat_ns.store(sb_now_ns());
    server.pid_namespace.store(ours + 1);  // a container's server: its pid means nothing to us
    CHECK(sb_channel_peer(c, nullptr) == SB_PEER_ALIVE);
    server.pid_namespace.store(ours);  // the same pid namespace: the process is plainly gone
    CHECK(sb_channel_peer(c, nullptr) == SB_PEER_DEAD);
    server.pid_namespace.store(ours + 1);
    usleep(400 * 1000);  // its heartbeat goes stale
    CHECK(sb_channel_peer(c, nullptr) == SB_PEER_DEAD);
    sb_channel *s = nullptr;  // and a new server may take its place
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_SERVER, &cfg, &s), SB_OK);
    CHECK(sb_channel_peer(c, nullptr) == SB_PEER_ALIVE);
    sb_channel_close(s);
    sb_channel_close(c);
}

}  // namespace

int main() {
    RUN(oversized_and_malformed_frames_are_refused_on_write);
    RUN(corrupt_channel_header_is_refused_on_open);
    RUN(foreign_shared_object_is_not_a_ring);
    RUN(corrupt_slot_is_refused_on_read_and_counted_dropped);
    RUN(bad_arguments_and_taken_roles);
    RUN(peer_in_another_pid_namespace_is_judged_by_heartbeat);
    return check::failures() == 0 ? 0 : 1;
}
