// The in-process TensorRT enhancer (name-based I/O: setInputShape, setTensorAddress, enqueueV3;
// TensorRT 8.5+, 10 and 11). Thin on purpose: the manifest reading and the pre/post-processing live
// in manifest.cpp and frame_math.cpp, which are built and tested everywhere; only the engine calls
// below need a GPU. Built only when CMake finds TensorRT; compiled with -Werror against the public
// headers of 8.6, 10.3 and 11.1 by tests/cpp_bridge/test_trt_headers.py (no GPU needed).
#include "sonoedge/trt_enhancer.h"

#include <NvInfer.h>
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "frame_math.hpp"
#include "manifest.hpp"

namespace {

class Logger : public nvinfer1::ILogger {
  public:
    void log(Severity severity, const char *msg) noexcept override {
        if (severity <= Severity::kWARNING) last = msg;  // kept for the error sentence; never printed
    }
    std::string last;
};

// One dimension of nvinfer1::Dims: int32_t up to TensorRT 8.6, int64_t from 10.0.
using DimT = std::remove_reference_t<decltype(std::declval<nvinfer1::Dims>().d[0])>;

void set_error(char *error, size_t bytes, const std::string &text) {
    if (error != nullptr && bytes > 0) std::snprintf(error, bytes, "%s", text.c_str());
}

size_t element_bytes(nvinfer1::DataType type) {
    return type == nvinfer1::DataType::kHALF ? 2 : type == nvinfer1::DataType::kFLOAT ? 4 : 0;
}

}  // namespace

struct sb_trt_enhancer {
    Logger logger;
    sb::BundleModel model;
    std::unique_ptr<nvinfer1::IRuntime> runtime;
    std::unique_ptr<nvinfer1::ICudaEngine> engine;
    std::unique_ptr<nvinfer1::IExecutionContext> context;
    nvinfer1::DataType in_type = nvinfer1::DataType::kFLOAT, out_type = nvinfer1::DataType::kFLOAT;
    cudaStream_t stream = nullptr;
    void *d_in = nullptr, *d_out = nullptr;
    size_t in_capacity = 0, out_capacity = 0;
    std::vector<float> x, y;       // (hp, wp) float32 host planes
    std::vector<uint16_t> x16, y16;  // the same as fp16, for engines with half I/O

    ~sb_trt_enhancer() {
        if (d_in) cudaFree(d_in);
        if (d_out) cudaFree(d_out);
        if (stream) cudaStreamDestroy(stream);
        context.reset();  // the context before its engine, the engine before its runtime
        engine.reset();
        runtime.reset();
    }

    bool reserve(void **buffer, size_t *capacity, size_t bytes) {
        if (bytes <= *capacity) return true;
        if (*buffer) cudaFree(*buffer);
        *buffer = nullptr;
        *capacity = 0;
        if (cudaMalloc(buffer, bytes) != cudaSuccess) return false;
        *capacity = bytes;
        return true;
    }
};

extern "C" {

sb_trt_status sb_trt_enhancer_create(const char *bundle_dir, const char *precision, const char *plan,
                                     const char *sidecar, sb_trt_enhancer **out, char *error, size_t error_bytes) {
    if (bundle_dir == nullptr || precision == nullptr || plan == nullptr || out == nullptr) {
        set_error(error, error_bytes, "bundle_dir, precision, plan and out must not be NULL");
        return SB_TRT_ERR_INVALID_ARGUMENT;
    }
    *out = nullptr;
    auto e = std::make_unique<sb_trt_enhancer>();
    std::string why, bytes;
    if (!sb::load_bundle_model(bundle_dir, precision, &e->model, &why)) {
        set_error(error, error_bytes, why);
        return SB_TRT_ERR_BUNDLE;
    }
    if (sidecar != nullptr && !sb::check_engine_sidecar(sidecar, e->model, &why)) {
        set_error(error, error_bytes, why);
        return SB_TRT_ERR_MISMATCH;
    }
    if (!sb::read_file(plan, &bytes) || bytes.empty()) {
        set_error(error, error_bytes, std::string("engine plan ") + plan + " cannot be read; build it with `sonoedge build-engine`");
        return SB_TRT_ERR_ENGINE;
    }
    e->runtime.reset(nvinfer1::createInferRuntime(e->logger));
    if (e->runtime) e->engine.reset(e->runtime->deserializeCudaEngine(bytes.data(), bytes.size()));
    if (!e->engine) {
        set_error(error, error_bytes, std::string("engine plan ") + plan + " does not load on this GPU/TensorRT (" +
                                          e->logger.last + "); rebuild it with `sonoedge build-engine`");
        return SB_TRT_ERR_ENGINE;
    }
    const char *in_name = e->model.input_name.c_str(), *out_name = e->model.output_name.c_str();
    if (e->engine->getTensorIOMode(in_name) != nvinfer1::TensorIOMode::kINPUT ||
        e->engine->getTensorIOMode(out_name) != nvinfer1::TensorIOMode::kOUTPUT) {
        set_error(error, error_bytes, "engine " + std::string(plan) + " has no input '" + e->model.input_name +
                                          "' and output '" + e->model.output_name + "' as the manifest says");
        return SB_TRT_ERR_ENGINE;
    }
    e->in_type = e->engine->getTensorDataType(in_name);
    e->out_type = e->engine->getTensorDataType(out_name);
    if (element_bytes(e->in_type) == 0 || element_bytes(e->out_type) == 0) {
        set_error(error, error_bytes, "engine " + std::string(plan) + " has input/output types other than float32/float16");
        return SB_TRT_ERR_ENGINE;
    }
    e->context.reset(e->engine->createExecutionContext());
    if (!e->context || cudaStreamCreate(&e->stream) != cudaSuccess) {
        set_error(error, error_bytes, "cannot create a TensorRT execution context or CUDA stream (" + e->logger.last + ")");
        return SB_TRT_ERR_CUDA;
    }
    *out = e.release();
    return SB_TRT_OK;
}

sb_trt_status sb_trt_enhancer_enhance(sb_trt_enhancer *e, const sb_frame_info *info, const uint8_t *in, uint8_t *out,
                                      uint32_t x, uint32_t y, uint32_t w, uint32_t h) {
    if (e == nullptr || info == nullptr || in == nullptr || out == nullptr || info->format != SB_FORMAT_GRAY8 ||
        info->stride < info->width)
        return SB_TRT_ERR_INVALID_ARGUMENT;
    if (w == 0 && h == 0) {
        x = y = 0;
        w = info->width;
        h = info->height;
    }
    if (w == 0 || h == 0 || x + w > info->width || y + h > info->height) return SB_TRT_ERR_INVALID_ARGUMENT;
    std::memcpy(out, in, static_cast<size_t>(info->stride) * info->height);  // outside the rectangle: unchanged

    uint32_t hp = 0, wp = 0;
    const uint8_t *roi = in + static_cast<size_t>(y) * info->stride + x;
    if (!sb::normalise_pad(roi, info->stride, h, w, static_cast<uint32_t>(e->model.stride), &e->x, &hp, &wp))
        return SB_TRT_ERR_INVALID_ARGUMENT;
    if (static_cast<int>(hp) < e->model.min_hw[0] || static_cast<int>(wp) < e->model.min_hw[1] ||
        static_cast<int>(hp) > e->model.max_hw[0] || static_cast<int>(wp) > e->model.max_hw[1])
        return SB_TRT_ERR_FRAME_SIZE;
    const char *in_name = e->model.input_name.c_str(), *out_name = e->model.output_name.c_str();
    if (!e->context->setInputShape(in_name, nvinfer1::Dims4{1, 1, static_cast<DimT>(hp), static_cast<DimT>(wp)}))
        return SB_TRT_ERR_FRAME_SIZE;
    const nvinfer1::Dims shape = e->context->getTensorShape(out_name);
    if (shape.nbDims != 4 || shape.d[0] != 1 || shape.d[1] != 1 || shape.d[2] != static_cast<DimT>(hp) ||
        shape.d[3] != static_cast<DimT>(wp))
        return SB_TRT_ERR_ENGINE;  // an enhancement model keeps the input's size

    const size_t n = static_cast<size_t>(hp) * wp;
    const void *host_in = e->x.data();
    if (e->in_type == nvinfer1::DataType::kHALF) {
        e->x16.resize(n);
        for (size_t i = 0; i < n; ++i) e->x16[i] = sb::float_to_half(e->x[i]);
        host_in = e->x16.data();
    }
    const size_t in_bytes = n * element_bytes(e->in_type), out_bytes = n * element_bytes(e->out_type);
    if (!e->reserve(&e->d_in, &e->in_capacity, in_bytes) || !e->reserve(&e->d_out, &e->out_capacity, out_bytes))
        return SB_TRT_ERR_CUDA;
    e->y.resize(n);
    e->y16.resize(e->out_type == nvinfer1::DataType::kHALF ? n : 0);
    void *host_out = e->out_type == nvinfer1::DataType::kHALF ? static_cast<void *>(e->y16.data()) : e->y.data();
    bool ok = cudaMemcpyAsync(e->d_in, host_in, in_bytes, cudaMemcpyHostToDevice, e->stream) == cudaSuccess &&
              e->context->setTensorAddress(in_name, e->d_in) && e->context->setTensorAddress(out_name, e->d_out) &&
              e->context->enqueueV3(e->stream) &&
              cudaMemcpyAsync(host_out, e->d_out, out_bytes, cudaMemcpyDeviceToHost, e->stream) == cudaSuccess &&
              cudaStreamSynchronize(e->stream) == cudaSuccess;
    if (!ok) return SB_TRT_ERR_CUDA;
    if (e->out_type == nvinfer1::DataType::kHALF)
        for (size_t i = 0; i < n; ++i) e->y[i] = sb::half_to_float(e->y16[i]);
    uint8_t *dst = out + static_cast<size_t>(y) * info->stride + x;
    return sb::denormalise_crop(e->y.data(), wp, h, w, dst, info->stride) ? SB_TRT_OK : SB_TRT_ERR_NONFINITE;
}

void sb_trt_enhancer_destroy(sb_trt_enhancer *e) { delete e; }

const char *sb_trt_status_string(sb_trt_status status) {
    switch (status) {
        case SB_TRT_OK: return "SB_TRT_OK: success";
        case SB_TRT_ERR_BUNDLE: return "SB_TRT_ERR_BUNDLE: the bundle manifest is missing, malformed or unsupported";
        case SB_TRT_ERR_ENGINE: return "SB_TRT_ERR_ENGINE: the engine plan cannot be loaded or does not match the manifest";
        case SB_TRT_ERR_MISMATCH: return "SB_TRT_ERR_MISMATCH: the engine was built from another model or precision";
        case SB_TRT_ERR_CUDA: return "SB_TRT_ERR_CUDA: a CUDA call or the inference failed";
        case SB_TRT_ERR_INVALID_ARGUMENT: return "SB_TRT_ERR_INVALID_ARGUMENT: NULL pointer, non-GRAY8 frame or bad rectangle";
        case SB_TRT_ERR_FRAME_SIZE: return "SB_TRT_ERR_FRAME_SIZE: the region is outside the engine's size range";
        case SB_TRT_ERR_NONFINITE: return "SB_TRT_ERR_NONFINITE: the model produced NaN or Inf; the frame passed through";
    }
    return "unknown sb_trt_status";
}

}  // extern "C"
