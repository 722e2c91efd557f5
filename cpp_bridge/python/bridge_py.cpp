// pybind11 binding of the C ABI: `sonoedge.runtime._bridge`, used by runtime/stream/shm.py.
//
// Status codes become `BridgeError(status, message)` (STYLE.md rule 9), except a read timeout,
// which returns None because it is the normal idle case of a live stream. The GIL is released
// around every call that can block or copy a frame. One thread may read while another writes
// (the rings are independent); close() waits for both to leave the native code.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <new>
#include <shared_mutex>
#include <string>
#include <vector>

#include "sonoedge/bridge.h"

namespace py = pybind11;

namespace {

PyObject *bridge_error = nullptr;  // the module's BridgeError class (owned by the module)

[[noreturn]] void raise_status(sb_status status, const std::string &context) {
    std::string message = context + ": " + sb_status_string(status);
    py::tuple args = py::make_tuple(static_cast<int>(status), message);
    PyErr_SetObject(bridge_error, args.ptr());
    throw py::error_already_set();
}

sb_role role_of(const std::string &role) {
    if (role == "client") return SB_ROLE_CLIENT;
    if (role == "server") return SB_ROLE_SERVER;
    throw py::value_error("role must be 'client' or 'server', got '" + role + "'");
}

const char *format_name(uint32_t format) {
    switch (format) {
        case SB_FORMAT_RGB8: return "rgb";
        case SB_FORMAT_BGR8: return "bgr";
        default: return "grey";
    }
}

const char *peer_name(sb_peer_state state) {
    switch (state) {
        case SB_PEER_ALIVE: return "alive";
        case SB_PEER_DEAD: return "dead";
        default: return "absent";
    }
}

class Channel {
  public:
    Channel(const std::string &name, const std::string &role, uint32_t slots, uint64_t max_bytes,
            uint32_t peer_timeout_ms, uint32_t heartbeat_ms, bool create)
        : name_(name) {
        sb_channel_config cfg;
        sb_channel_config_default(&cfg);
        cfg.slot_count = slots;
        cfg.slot_bytes = max_bytes;
        cfg.peer_timeout_ms = peer_timeout_ms;
        cfg.heartbeat_ms = heartbeat_ms;
        cfg.open_flags = create ? 0u : SB_OPEN_NO_CREATE;
        const sb_role r = role_of(role);
        sb_status st;
        {
            py::gil_scoped_release nogil;  // may wait up to 2 s for a creator to finish
            st = sb_channel_open(name.c_str(), r, &cfg, &ch_);
        }
        if (st != SB_OK) raise_status(st, "opening channel '" + name + "' as " + role);
        sb_stats stats{};
        st = sb_channel_stats(ch_, &stats);  // slot_bytes: checked at attach, at most 4 GiB
        if (st == SB_OK) {
            try {
                scratch_.resize(stats.slot_bytes);
            } catch (const std::bad_alloc &) {
                st = SB_ERR_NO_MEMORY;
            }
        }
        if (st != SB_OK) {
            sb_channel_close(ch_);
            ch_ = nullptr;
            raise_status(st, "opening channel '" + name + "' as " + role);
        }
    }

    ~Channel() { close(); }

    // Called with the GIL held; ch_ changes only here, under the GIL and the unique lock. A closed
    // channel returns at once without releasing the GIL, so a thread that closes (or uses) it late
    // in interpreter shutdown never has to take the GIL back from inside native code.
    void close() {
        if (ch_ == nullptr) return;
        py::gil_scoped_release nogil;
        std::unique_lock<std::shared_mutex> lock(mutex_);
        if (ch_ != nullptr) sb_channel_close(ch_);
        ch_ = nullptr;
    }

    void require_open(const char *what) const {
        if (ch_ == nullptr) raise_status(SB_ERR_INVALID_ARGUMENT, context(what) + " (closed)");
    }

    // image: uint8 (H, W) grey or (H, W, 3); rows may be padded but pixels within a row contiguous.
    void write(const py::array &image, uint64_t frame_id, uint64_t timestamp_ns, uint32_t flags, int timeout_ms,
               const std::string &colour) {
        if (!image.dtype().is(py::dtype::of<uint8_t>()))
            throw py::type_error("frames must be uint8, got " + std::string(py::str(image.dtype())));
        auto pixels = py::array_t<uint8_t, py::array::c_style>::ensure(image);  // copies only if strided
        if (!pixels) throw py::type_error("frame is not an array");
        sb_frame_info info{};
        if (pixels.ndim() == 2) {
            info.format = SB_FORMAT_GRAY8;
        } else if (pixels.ndim() == 3 && pixels.shape(2) == 3) {
            if (colour != "rgb" && colour != "bgr") throw py::value_error("colour must be 'rgb' or 'bgr'");
            info.format = colour == "rgb" ? SB_FORMAT_RGB8 : SB_FORMAT_BGR8;
        } else {
            throw py::value_error("frames must be (H, W) or (H, W, 3), got " + std::to_string(pixels.ndim()) + " dims");
        }
        info.height = static_cast<uint32_t>(pixels.shape(0));
        info.width = static_cast<uint32_t>(pixels.shape(1));
        info.stride = static_cast<uint32_t>(pixels.strides(0));
        info.frame_id = frame_id;
        info.timestamp_ns = timestamp_ns;
        info.flags = flags;
        const void *data = pixels.data();
        require_open("writing to");
        sb_status st;
        {
            py::gil_scoped_release nogil;
            std::shared_lock<std::shared_mutex> lock(mutex_);
            std::lock_guard<std::mutex> one_writer(write_mutex_);  // the ring has a single producer
            st = ch_ ? sb_channel_write(ch_, &info, data, timeout_ms) : SB_ERR_INVALID_ARGUMENT;
        }
        if (st != SB_OK) raise_status(st, context("writing frame " + std::to_string(frame_id) + " to"));
    }

    void write_end(uint64_t frame_id, int timeout_ms) {
        sb_frame_info info{};
        info.format = SB_FORMAT_GRAY8;
        info.flags = SB_FLAG_END_OF_STREAM;
        info.frame_id = frame_id;
        info.timestamp_ns = sb_now_ns();
        require_open("writing end of stream to");
        sb_status st;
        {
            py::gil_scoped_release nogil;
            std::shared_lock<std::shared_mutex> lock(mutex_);
            std::lock_guard<std::mutex> one_writer(write_mutex_);
            st = ch_ ? sb_channel_write(ch_, &info, nullptr, timeout_ms) : SB_ERR_INVALID_ARGUMENT;
        }
        if (st != SB_OK) raise_status(st, context("writing end of stream to"));
    }

    // (image, frame_id, timestamp_ns, flags, "grey" | "rgb" | "bgr") for the newest frame, or None
    // after timeout_ms. image is None for an end-of-stream frame.
    py::object read(int timeout_ms) {
        sb_frame_info info{};
        require_open("reading from");
        sb_status st;
        py::gil_scoped_release nogil;
        std::shared_lock<std::shared_mutex> lock(mutex_);
        std::unique_lock<std::mutex> one_reader(read_mutex_);  // single consumer; scratch_ is ours until copied
        {
            st = ch_ ? sb_channel_read(ch_, &info, scratch_.data(), scratch_.size(), timeout_ms) : SB_ERR_INVALID_ARGUMENT;
        }
        py::gil_scoped_acquire gil;  // still holding the read lock: scratch_ stays ours while copied
        if (st == SB_ERR_TIMEOUT) return py::none();
        if (st != SB_OK) raise_status(st, context("reading from"));
        py::object image = py::none();
        if (!(info.flags & SB_FLAG_END_OF_STREAM) || info.payload_bytes != 0) image = to_array(info);
        return py::make_tuple(image, info.frame_id, info.timestamp_ns, info.flags, format_name(info.format));
    }

    // Quick calls, but they take the handle lock like the others (close() may be freeing it on
    // another thread), and a lock is never waited for with the GIL held.
    py::tuple peer() {
        uint32_t generation = 0;
        sb_peer_state state = SB_PEER_ABSENT;
        {
            py::gil_scoped_release nogil;
            std::shared_lock<std::shared_mutex> lock(mutex_);
            if (ch_ != nullptr) state = sb_channel_peer(ch_, &generation);
        }
        return py::make_tuple(peer_name(state), generation);
    }

    py::dict stats() {
        sb_stats s{};
        sb_status st = SB_ERR_INVALID_ARGUMENT;
        {
            py::gil_scoped_release nogil;
            std::shared_lock<std::shared_mutex> lock(mutex_);
            if (ch_ != nullptr) st = sb_channel_stats(ch_, &s);
        }
        if (st != SB_OK) raise_status(st, context("stats of"));
        py::dict d;
        d["frames_written"] = s.frames_written;
        d["writes_refused"] = s.writes_refused;
        d["frames_read"] = s.frames_read;
        d["frames_dropped"] = s.frames_dropped;
        d["peer_generation"] = s.peer_generation;
        d["slot_count"] = s.slot_count;
        d["slot_bytes"] = s.slot_bytes;
        return d;
    }

    bool closed() const { return ch_ == nullptr; }

  private:
    std::string context(const std::string &what) const { return what + " channel '" + name_ + "'"; }

    py::array to_array(const sb_frame_info &info) {
        const uint32_t channels = sb_format_bytes_per_pixel(info.format);
        std::vector<py::ssize_t> shape{info.height, info.width};
        if (channels == 3) shape.push_back(3);
        py::array_t<uint8_t> out(shape);
        const size_t row = static_cast<size_t>(info.width) * channels;
        auto *dst = static_cast<uint8_t *>(out.mutable_data());
        for (uint32_t y = 0; y < info.height; ++y)
            std::memcpy(dst + y * row, scratch_.data() + static_cast<size_t>(y) * info.stride, row);
        return out;
    }

    std::string name_;
    sb_channel *ch_ = nullptr;
    std::vector<uint8_t> scratch_;  // one slot; used only by the reading thread
    std::shared_mutex mutex_;       // shared: read / write in flight; unique: close
    std::mutex read_mutex_, write_mutex_;  // one reader and one writer at a time (SPSC rings)
};

}  // namespace

PYBIND11_MODULE(_bridge, m) {
    m.doc() = "Native shared-memory frame channel of cpp_bridge (see cpp_bridge/include/sonoedge/bridge.h).";
    bridge_error = PyErr_NewException("sonoedge.runtime._bridge.BridgeError", PyExc_RuntimeError, nullptr);
    m.attr("BridgeError") = py::handle(bridge_error);
    m.attr("LAYOUT_VERSION") = SB_LAYOUT_VERSION;
    m.attr("FLAG_ENHANCED") = SB_FLAG_ENHANCED;
    m.attr("FLAG_PASSTHROUGH") = SB_FLAG_PASSTHROUGH;
    m.attr("FLAG_END_OF_STREAM") = SB_FLAG_END_OF_STREAM;
    py::dict status;
    for (int s = SB_OK; s <= SB_ERR_PERMISSION; ++s) {
        std::string text = sb_status_string(static_cast<sb_status>(s));
        status[py::str(text.substr(0, text.find(':')))] = s;
    }
    m.attr("STATUS") = status;
    m.def("status_string", [](int s) { return std::string(sb_status_string(static_cast<sb_status>(s))); });
    m.def("now_ns", &sb_now_ns, "CLOCK_MONOTONIC in ns, the clock of timestamps and heartbeats");
    m.def("unlink", [](const std::string &name) {
        sb_status st = sb_channel_unlink(name.c_str());
        return st == SB_OK;
    }, py::arg("name"), "Remove a channel's shared object; False when there was none.");

    py::class_<Channel>(m, "Channel")
        .def(py::init<const std::string &, const std::string &, uint32_t, uint64_t, uint32_t, uint32_t, bool>(),
             py::arg("name"), py::arg("role"), py::arg("slots") = 0, py::arg("max_bytes") = 0,
             py::arg("peer_timeout_ms") = 0, py::arg("heartbeat_ms") = 100, py::arg("create") = true)
        .def("write", &Channel::write, py::arg("image"), py::arg("frame_id"), py::arg("timestamp_ns"),
             py::arg("flags") = 0, py::arg("timeout_ms") = 100, py::arg("colour") = "rgb")
        .def("write_end", &Channel::write_end, py::arg("frame_id") = 0, py::arg("timeout_ms") = 100)
        .def("read", &Channel::read, py::arg("timeout_ms") = 100)
        .def("peer", &Channel::peer, "('absent' | 'alive' | 'dead', attaches of the other side so far)")
        .def("stats", &Channel::stats)
        .def("close", &Channel::close)
        .def_property_readonly("closed", &Channel::closed)
        .def("__enter__", [](Channel &self) -> Channel & { return self; }, py::return_value_policy::reference)
        .def("__exit__", [](Channel &self, py::args) { self.close(); });
}
