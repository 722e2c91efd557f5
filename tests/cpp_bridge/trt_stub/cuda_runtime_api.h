/*
 * COMPILE-TIME STAND-IN for the CUDA runtime header, used by tests/cpp_bridge/test_trt_headers.py
 * only when no real cuda_runtime_api.h is found (CUDA_HOME, /usr/local/cuda*). It declares the
 * few types and calls that TensorRT's public headers and cpp_bridge/src/trt_enhancer.cpp use, with
 * the signatures of CUDA 11/12. Nothing here is ever linked into a real build.
 */
#ifndef SONOEDGE_CUDA_RUNTIME_API_STUB_H
#define SONOEDGE_CUDA_RUNTIME_API_STUB_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cudaError { cudaSuccess = 0 } cudaError_t;
typedef struct CUstream_st *cudaStream_t;
typedef struct CUevent_st *cudaEvent_t;
enum cudaMemcpyKind { cudaMemcpyHostToHost = 0, cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2 };

cudaError_t cudaMalloc(void **devPtr, size_t size);
cudaError_t cudaFree(void *devPtr);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t count, enum cudaMemcpyKind kind, cudaStream_t stream);
cudaError_t cudaStreamCreate(cudaStream_t *pStream);
cudaError_t cudaStreamDestroy(cudaStream_t stream);
cudaError_t cudaStreamSynchronize(cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* SONOEDGE_CUDA_RUNTIME_API_STUB_H */
