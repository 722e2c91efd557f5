// Ring behaviour: wrap-around, newest-frame semantics under a fast producer, end of stream, sizes.
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "check.hpp"
#include "sonoedge/bridge.hpp"

namespace {

// Pixel i of frame `id` is (id * 7 + i) & 0xff: a torn read (half of one frame, half of another)
// shows up as a mismatch.
void paint(std::vector<uint8_t> &pixels, uint64_t id) {
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>((id * 7 + i) & 0xff);
}

bool painted(const uint8_t *pixels, size_t n, uint64_t id) {
    for (size_t i = 0; i < n; ++i)
        if (pixels[i] != static_cast<uint8_t>((id * 7 + i) & 0xff)) return false;
    return true;
}

sb_frame_info grey(uint32_t w, uint32_t h, uint64_t id) {  // check::grey, stamped now
    sb_frame_info f = check::grey(w, h, id);
    f.timestamp_ns = sb_now_ns();
    return f;
}

struct Pair {  // both sides of one channel, in this process
    sb_channel *client = nullptr;
    sb_channel *server = nullptr;
    explicit Pair(const sb_channel_config &cfg, const char *tag) {
        std::string name = check::unique_name(tag);
        CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_CLIENT, &cfg, &client), SB_OK);
        CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_SERVER, &cfg, &server), SB_OK);
    }
    ~Pair() {
        if (client) sb_channel_close(client);
        if (server) sb_channel_close(server);
    }
};

void wrap_around_keeps_every_frame_when_read_in_step() {
    Pair p(check::fast_config(4, 64 * 48), "wrap");
    std::vector<uint8_t> in(64 * 48), out(64 * 48);
    for (uint64_t id = 100; id < 100 + 4 * 5 + 3; ++id) {  // five laps and a bit
        paint(in, id);
        sb_frame_info f = grey(64, 48, id);
        CHECK_STATUS(sb_channel_write(p.client, &f, in.data(), 0), SB_OK);
        sb_frame_info got{};
        CHECK_STATUS(sb_channel_read(p.server, &got, out.data(), out.size(), 0), SB_OK);
        CHECK(got.frame_id == id);
        CHECK(got.width == 64 && got.height == 48 && got.stride == 64 && got.payload_bytes == 64 * 48);
        CHECK(got.timestamp_ns == f.timestamp_ns);
        CHECK(painted(out.data(), out.size(), id));
    }
    sb_stats st{};
    CHECK_STATUS(sb_channel_stats(p.server, &st), SB_OK);
    CHECK(st.frames_read == 23 && st.frames_dropped == 0);
    sb_frame_info none{};
    CHECK_STATUS(sb_channel_read(p.server, &none, out.data(), out.size(), 0), SB_ERR_TIMEOUT);
}

void reader_gets_the_newest_frame_and_counts_the_rest_dropped() {
    Pair p(check::fast_config(4, 256), "newest");
    std::vector<uint8_t> in(256), out(256);
    for (uint64_t id = 0; id < 11; ++id) {  // wraps the 4 slots almost three times, unread
        paint(in, id);
        sb_frame_info f = grey(16, 16, id);
        CHECK_STATUS(sb_channel_write(p.client, &f, in.data(), 0), SB_OK);
    }
    sb_frame_info got{};
    CHECK_STATUS(sb_channel_read(p.server, &got, out.data(), out.size(), 0), SB_OK);
    CHECK(got.frame_id == 10);
    CHECK(painted(out.data(), out.size(), 10));
    sb_stats st{};
    sb_channel_stats(p.server, &st);
    CHECK(st.frames_read == 1 && st.frames_dropped == 10);
    CHECK_STATUS(sb_channel_read(p.server, &got, out.data(), out.size(), 0), SB_ERR_TIMEOUT);
}

void fast_producer_never_tears_a_frame() {
    Pair p(check::fast_config(3, 128 * 128), "fast");
    const uint64_t total = 5000;
    std::atomic<bool> done{false};
    std::thread producer([&] {
        std::vector<uint8_t> in(128 * 128);
        for (uint64_t id = 0; id < total; ++id) {
            paint(in, id);
            sb_frame_info f = grey(128, 128, id);
            while (sb_channel_write(p.client, &f, in.data(), 0) == SB_ERR_RING_FULL) std::this_thread::yield();
        }
        sb_frame_info eos{};
        eos.flags = SB_FLAG_END_OF_STREAM;
        eos.frame_id = total;
        while (sb_channel_write(p.client, &eos, nullptr, 0) == SB_ERR_RING_FULL) std::this_thread::yield();
        done = true;
    });
    std::vector<uint8_t> out(128 * 128);
    uint64_t reads = 0, last = 0, bad = 0;
    bool first = true;
    for (;;) {
        sb_frame_info got{};
        sb_status st = sb_channel_read(p.server, &got, out.data(), out.size(), 2000);
        if (st != SB_OK) {
            CHECK_STATUS(st, SB_OK);
            break;
        }
        if (!first && got.frame_id <= last) ++bad;  // newest-frame reads only move forward
        if (got.flags & SB_FLAG_END_OF_STREAM) break;
        if (!painted(out.data(), out.size(), got.frame_id)) ++bad;
        first = false;
        last = got.frame_id;
        ++reads;
    }
    producer.join();
    CHECK(done.load());
    CHECK(bad == 0);
    sb_stats st{};
    sb_channel_stats(p.server, &st);
    CHECK(st.frames_read == reads + 1);                    // + the end-of-stream marker
    CHECK(st.frames_read + st.frames_dropped == total + 1);  // every frame accounted for
    sb_stats wst{};
    sb_channel_stats(p.client, &wst);
    CHECK(wst.frames_written == total + 1);
    std::printf("  fast producer: %llu frames, %llu read, %llu dropped, %llu writes refused\n",
                static_cast<unsigned long long>(total), static_cast<unsigned long long>(reads),
                static_cast<unsigned long long>(st.frames_dropped),
                static_cast<unsigned long long>(wst.writes_refused));
}

void small_buffer_leaves_the_frame_unread() {
    Pair p(check::fast_config(2, 1000), "small");
    std::vector<uint8_t> in(30 * 10 * 3);
    paint(in, 5);
    sb_frame_info f = grey(30, 10, 5);
    f.format = SB_FORMAT_RGB8;
    f.stride = 90;
    CHECK_STATUS(sb_channel_write(p.client, &f, in.data(), 0), SB_OK);
    std::vector<uint8_t> tiny(100), out(900);
    sb_frame_info got{};
    CHECK_STATUS(sb_channel_read(p.server, &got, tiny.data(), tiny.size(), 0), SB_ERR_BUFFER_TOO_SMALL);
    CHECK(got.payload_bytes == 900 && got.frame_id == 5);
    CHECK_STATUS(sb_channel_read(p.server, &got, out.data(), out.size(), 0), SB_OK);
    CHECK(got.format == SB_FORMAT_RGB8 && painted(out.data(), out.size(), 5));
}

void both_directions_are_independent() {
    Pair p(check::fast_config(2, 64), "duplex");
    std::vector<uint8_t> a(64, 1), b(64, 2), out(64);
    sb_frame_info f = grey(8, 8, 1);
    CHECK_STATUS(sb_channel_write(p.client, &f, a.data(), 0), SB_OK);
    f.frame_id = 2;
    f.flags = SB_FLAG_ENHANCED;
    CHECK_STATUS(sb_channel_write(p.server, &f, b.data(), 0), SB_OK);
    sb_frame_info got{};
    CHECK_STATUS(sb_channel_read(p.client, &got, out.data(), out.size(), 0), SB_OK);
    CHECK(got.frame_id == 2 && got.flags == SB_FLAG_ENHANCED && out[0] == 2);
    CHECK_STATUS(sb_channel_read(p.server, &got, out.data(), out.size(), 0), SB_OK);
    CHECK(got.frame_id == 1 && got.flags == 0 && out[0] == 1);
}

void timed_read_waits_then_times_out() {
    Pair p(check::fast_config(2, 64), "timeout");
    std::vector<uint8_t> out(64);
    sb_frame_info got{};
    uint64_t t0 = sb_now_ns();
    CHECK_STATUS(sb_channel_read(p.server, &got, out.data(), out.size(), 120), SB_ERR_TIMEOUT);
    CHECK(sb_now_ns() - t0 >= 120'000'000ull);
    std::thread late([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        std::vector<uint8_t> in(64, 9);
        sb_frame_info f = grey(8, 8, 77);
        sb_channel_write(p.client, &f, in.data(), 0);
    });
    CHECK_STATUS(sb_channel_read(p.server, &got, out.data(), out.size(), 5000), SB_OK);  // woken by the write
    CHECK(got.frame_id == 77);
    late.join();
}

void frames_for_a_previous_reader_are_skipped() {
    auto cfg = check::fast_config(4, 64);
    std::string name = check::unique_name("stale");
    sb_channel *client = nullptr, *server = nullptr;
    std::vector<uint8_t> px(64, 1), out(64);
    sb_frame_info f = grey(8, 8, 1), got{};
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_CLIENT, &cfg, &client), SB_OK);
    CHECK_STATUS(sb_channel_write(client, &f, px.data(), 0), SB_OK);  // before any enhancer: kept for it
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_SERVER, &cfg, &server), SB_OK);
    CHECK_STATUS(sb_channel_read(server, &got, out.data(), out.size(), 0), SB_OK);
    CHECK(got.frame_id == 1);
    f.frame_id = 2;
    CHECK_STATUS(sb_channel_write(client, &f, px.data(), 0), SB_OK);  // for this enhancer, which leaves
    CHECK_STATUS(sb_channel_close(server), SB_OK);
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_SERVER, &cfg, &server), SB_OK);
    CHECK_STATUS(sb_channel_read(server, &got, out.data(), out.size(), 0), SB_ERR_TIMEOUT);  // 2 was stale
    f.frame_id = 3;
    CHECK_STATUS(sb_channel_write(client, &f, px.data(), 0), SB_OK);
    CHECK_STATUS(sb_channel_read(server, &got, out.data(), out.size(), 0), SB_OK);
    CHECK(got.frame_id == 3);
    sb_stats st{};
    sb_channel_stats(server, &st);
    CHECK(st.frames_read == 2 && st.frames_dropped == 1);
    sb_channel_close(server);
    sb_channel_close(client);
}

void cpp_wrapper_owns_and_moves_the_handle() {
    auto cfg = check::fast_config(2, 64);
    std::string name = check::unique_name("cpp");
    sonoedge::Channel client, server;
    CHECK_STATUS(client.open(name.c_str(), SB_ROLE_CLIENT, cfg), SB_OK);
    CHECK_STATUS(server.open(name.c_str(), SB_ROLE_SERVER, cfg), SB_OK);
    CHECK(client.peer() == SB_PEER_ALIVE);
    sonoedge::Channel moved = std::move(server);
    CHECK(!server.is_open() && moved.is_open());
    std::vector<uint8_t> px(64, 5), out(64);
    sb_frame_info f = grey(8, 8, 3), got{};
    CHECK_STATUS(client.write(f, px.data(), 0), SB_OK);
    CHECK_STATUS(moved.read(&got, out.data(), out.size(), 0), SB_OK);
    CHECK(got.frame_id == 3 && out[7] == 5 && moved.stats().frames_read == 1);
    moved.close();  // the destructor closes the client; both sides gone, the object is removed
}

}  // namespace

int main() {
    RUN(wrap_around_keeps_every_frame_when_read_in_step);
    RUN(reader_gets_the_newest_frame_and_counts_the_rest_dropped);
    RUN(fast_producer_never_tears_a_frame);
    RUN(small_buffer_leaves_the_frame_unread);
    RUN(both_directions_are_independent);
    RUN(timed_read_waits_then_times_out);
    RUN(frames_for_a_previous_reader_are_skipped);
    RUN(cpp_wrapper_owns_and_moves_the_handle);
    return check::failures() == 0 ? 0 : 1;
}
