// pybind11 binding of the enhancer's pre- and post-processing (src/frame_math.cpp):
// `sonoedge.runtime._kernels`, used by runtime/stream/enhancer.py on the per-frame hot path.
//
// Each call is one pass over the pixels instead of the three numpy/OpenCV passes it replaces (pad,
// divide, subtract; add, threshold, convert), writes into the caller's buffers (no allocation) and
// releases the GIL while it runs, so the pipeline's other Python threads go on meanwhile. Results
// are bit-identical to runtime/frames.py's normalise and denormalise (tests/runtime/stream/
// test_kernels.py). Arguments are checked here, before any pointer is used: a wrong dtype, rank,
// layout or size is a ValueError naming it, never a read or write out of bounds.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

#include "../src/frame_math.hpp"

namespace py = pybind11;

namespace {

std::string shape_of(const py::array &a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

// A 2-D array of T whose rows are contiguous (element stride 1, row stride >= width, non-negative).
template <typename T>
void check_plane(const py::array &a, const char *name, bool writable) {
    if (!py::isinstance<py::array_t<T>>(a))  // an array whose dtype is equivalent to T's
        throw py::value_error(std::string(name) + ": expected dtype " + std::string(py::str(py::dtype::of<T>())) +
                              ", got " + std::string(py::str(a.dtype())));
    if (a.ndim() != 2) throw py::value_error(std::string(name) + ": expected a 2-D array, got shape " + shape_of(a));
    if (a.shape(0) < 1 || a.shape(1) < 1 || a.shape(0) >= (py::ssize_t{1} << 30) || a.shape(1) >= (py::ssize_t{1} << 30))
        throw py::value_error(std::string(name) + ": size " + shape_of(a) + " out of range");
    // a single row's stride is never used (numpy may give a size-1 axis any stride)
    const bool rows_apart = a.shape(0) == 1 || (a.strides(0) >= a.shape(1) * a.strides(1) &&
                                                a.strides(0) % static_cast<py::ssize_t>(sizeof(T)) == 0);
    if (a.strides(1) != static_cast<py::ssize_t>(sizeof(T)) || !rows_apart)
        throw py::value_error(std::string(name) + ": rows must be contiguous with a positive row stride");
    if (writable && !a.writeable()) throw py::value_error(std::string(name) + ": read-only array");
}

void normalise_pad(const py::array &src, py::array &dst) {
    check_plane<uint8_t>(src, "src", false);
    check_plane<float>(dst, "dst", true);
    const auto h = static_cast<uint32_t>(src.shape(0)), w = static_cast<uint32_t>(src.shape(1));
    const auto hp = static_cast<uint32_t>(dst.shape(0)), wp = static_cast<uint32_t>(dst.shape(1));
    if (hp < h || wp < w) throw py::value_error("dst " + shape_of(dst) + " is smaller than src " + shape_of(src));
    const auto *in = static_cast<const uint8_t *>(src.data());
    auto *out = static_cast<float *>(dst.mutable_data());
    const auto in_stride = src.shape(0) == 1 ? 0 : static_cast<size_t>(src.strides(0));
    const auto out_stride = dst.shape(0) == 1 ? 0 : static_cast<size_t>(dst.strides(0)) / sizeof(float);
    py::gil_scoped_release release;
    sb::normalise_pad_into(in, in_stride, h, w, out, out_stride, hp, wp);
}

void denormalise(const py::array &src, py::array &dst) {
    check_plane<float>(src, "src", false);
    check_plane<uint8_t>(dst, "dst", true);
    if (src.shape(0) != dst.shape(0) || src.shape(1) != dst.shape(1))
        throw py::value_error("dst " + shape_of(dst) + " is not the shape of src " + shape_of(src));
    const auto h = static_cast<uint32_t>(src.shape(0)), w = static_cast<uint32_t>(src.shape(1));
    const auto *in = static_cast<const float *>(src.data());
    auto *out = static_cast<uint8_t *>(dst.mutable_data());
    const auto in_stride = src.shape(0) == 1 ? 0 : static_cast<size_t>(src.strides(0)) / sizeof(float);
    const auto out_stride = dst.shape(0) == 1 ? 0 : static_cast<size_t>(dst.strides(0));
    py::gil_scoped_release release;
    sb::denormalise_finite_into(in, in_stride, h, w, out, out_stride);
}

}  // namespace

PYBIND11_MODULE(_kernels, m) {
    m.doc() = "sonoedge's per-frame pre/post-processing kernels (cpp_bridge/src/frame_math.cpp)";
    m.def("normalise_pad", &normalise_pad, py::arg("src"), py::arg("dst"),
          "uint8 (h, w) -> float32 dst (hp >= h, wp >= w): x / 127.5 - 1, rows and columns past the image "
          "reflected (numpy 'reflect'); bit-identical to frames.normalise of frames.pad_to_stride.");
    m.def("denormalise", &denormalise, py::arg("src"), py::arg("dst"),
          "FINITE float32 (h, w) -> uint8 dst (h, w): rint((y + 1) * 127.5) clipped to [0, 255]; bit-identical "
          "to frames.denormalise. The caller checks finiteness (a NaN becomes 0).");
}
