// Liveness across processes: a killed peer is detected (fork + SIGKILL), a frozen one too (stale
// heartbeat), and a new process re-attaches in its place while this side keeps its handle.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "check.hpp"

namespace {

// Child process: attach as `role`; as server echo every frame back flagged enhanced, as client
// write frames `first`, `first + 1`, ... every 2 ms. Runs until killed.
[[noreturn]] void peer_main(const std::string &name, sb_role role, uint64_t first) {
    auto cfg = check::fast_config(4, 4096);
    sb_channel *ch = nullptr;
    if (sb_channel_open(name.c_str(), role, &cfg, &ch) != SB_OK) _exit(3);
    std::vector<uint8_t> px(4096);
    for (uint64_t id = first;; ++id) {
        sb_frame_info f{};
        if (role == SB_ROLE_SERVER) {
            if (sb_channel_read(ch, &f, px.data(), px.size(), 100) != SB_OK) continue;
            f.flags |= SB_FLAG_ENHANCED;
        } else {
            f = sb_frame_info{32, 32, 32, SB_FORMAT_GRAY8, id, sb_now_ns(), 0, 0};
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
        sb_channel_write(ch, &f, px.data(), 100);
    }
}

pid_t spawn(const std::string &name, sb_role role, uint64_t first) {
    pid_t pid = fork();
    if (pid == 0) peer_main(name, role, first);
    return pid;
}

bool wait_for_peer(sb_channel *ch, sb_peer_state want, int timeout_ms) {
    auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < end) {
        if (sb_channel_peer(ch, nullptr) == want) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
}

void kill_and_reap(pid_t pid) {
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
}

sb_status round_trip(sb_channel *client, uint64_t id, sb_frame_info *got) {
    std::vector<uint8_t> px(32 * 32, static_cast<uint8_t>(id)), out(4096);
    sb_frame_info f{32, 32, 32, SB_FORMAT_GRAY8, id, sb_now_ns(), 0, 0};
    sb_status st = sb_channel_write(client, &f, px.data(), 1000);
    if (st != SB_OK) return st;
    for (;;) {  // the echo may still be returning an older frame
        st = sb_channel_read(client, got, out.data(), out.size(), 2000);
        if (st != SB_OK || got->frame_id >= id) return st;
    }
}

void killed_server_is_detected_and_replaced() {
    std::string name = check::unique_name("srvkill");
    auto cfg = check::fast_config(4, 4096);
    sb_channel *client = nullptr;
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_CLIENT, &cfg, &client), SB_OK);
    pid_t server = spawn(name, SB_ROLE_SERVER, 0);
    CHECK(wait_for_peer(client, SB_PEER_ALIVE, 3000));
    sb_frame_info got{};
    CHECK_STATUS(round_trip(client, 1, &got), SB_OK);
    CHECK(got.frame_id == 1 && (got.flags & SB_FLAG_ENHANCED));

    kill_and_reap(server);
    CHECK(wait_for_peer(client, SB_PEER_DEAD, 1000));
    std::vector<uint8_t> out(4096);
    auto t0 = std::chrono::steady_clock::now();
    CHECK_STATUS(sb_channel_read(client, &got, out.data(), out.size(), 5000), SB_ERR_PEER_GONE);
    CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(1000));  // not the full timeout

    uint32_t gen_before = 0, gen_after = 0;
    sb_channel_peer(client, &gen_before);
    server = spawn(name, SB_ROLE_SERVER, 0);  // a new enhancer process re-attaches
    CHECK(wait_for_peer(client, SB_PEER_ALIVE, 3000));
    sb_channel_peer(client, &gen_after);
    CHECK(gen_after == gen_before + 1);
    CHECK_STATUS(round_trip(client, 2, &got), SB_OK);  // same client handle, no restart
    CHECK(got.frame_id == 2 && (got.flags & SB_FLAG_ENHANCED));
    kill_and_reap(server);
    sb_channel_close(client);  // peer dead: the shared object is removed
    CHECK_STATUS(sb_channel_unlink(name.c_str()), SB_ERR_NOT_FOUND);
}

void frozen_peer_is_dead_by_heartbeat_and_revives() {
    std::string name = check::unique_name("frozen");
    auto cfg = check::fast_config(4, 4096);
    sb_channel *client = nullptr;
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_CLIENT, &cfg, &client), SB_OK);
    pid_t server = spawn(name, SB_ROLE_SERVER, 0);
    CHECK(wait_for_peer(client, SB_PEER_ALIVE, 3000));
    kill(server, SIGSTOP);  // the process exists but its heartbeat stops
    CHECK(wait_for_peer(client, SB_PEER_DEAD, 2000));
    kill(server, SIGCONT);
    CHECK(wait_for_peer(client, SB_PEER_ALIVE, 2000));
    sb_frame_info got{};
    CHECK_STATUS(round_trip(client, 9, &got), SB_OK);
    kill_and_reap(server);
    sb_channel_close(client);
}

void killed_client_is_detected_and_replaced() {
    std::string name = check::unique_name("clikill");
    auto cfg = check::fast_config(4, 4096);
    sb_channel *server = nullptr;
    CHECK_STATUS(sb_channel_open(name.c_str(), SB_ROLE_SERVER, &cfg, &server), SB_OK);
    std::vector<uint8_t> out(4096);
    sb_frame_info got{};
    CHECK_STATUS(sb_channel_read(server, &got, out.data(), out.size(), 100), SB_ERR_TIMEOUT);  // absent: wait
    pid_t client = spawn(name, SB_ROLE_CLIENT, 1000);
    CHECK_STATUS(sb_channel_read(server, &got, out.data(), out.size(), 3000), SB_OK);
    CHECK(got.frame_id >= 1000 && got.frame_id < 2000);
    uint64_t last = got.frame_id;
    kill_and_reap(client);
    for (int i = 0; i < 2; ++i) {  // at most one frame published after our last read, then the verdict
        sb_status st = sb_channel_read(server, &got, out.data(), out.size(), 3000);
        if (st == SB_ERR_PEER_GONE) break;
        CHECK_STATUS(st, SB_OK);
    }
    CHECK(sb_channel_peer(server, nullptr) == SB_PEER_DEAD);
    client = spawn(name, SB_ROLE_CLIENT, 2000);  // the device app restarts
    CHECK_STATUS(sb_channel_read(server, &got, out.data(), out.size(), 3000), SB_OK);
    CHECK(got.frame_id >= 2000);
    CHECK(last >= 1000);
    sb_stats st{};
    sb_channel_stats(server, &st);
    CHECK(st.peer_generation == 2);
    kill_and_reap(client);
    sb_channel_close(server);
}

}  // namespace

int main() {
    RUN(killed_server_is_detected_and_replaced);
    RUN(frozen_peer_is_dead_by_heartbeat_and_revives);
    RUN(killed_client_is_detected_and_replaced);
    return check::failures() == 0 ? 0 : 1;
}
