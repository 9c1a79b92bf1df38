// The CUDA backend's device probe: host code on the CUDA runtime API, no kernels. Built only with
// ROUTELAB_HAVE_CUDA (core/CMakeLists.txt), against the static runtime, which loads the driver
// (libcuda.so.1) when first called: on a machine without one every call fails and we say why.
#include <cuda_runtime_api.h>

#include "backend/device.h"

namespace rl {

CudaProbe cuda_probe_run() {
    CudaProbe p;
    p.built = true;
    cudaRuntimeGetVersion(&p.runtime_version);
    if (cudaDriverGetVersion(&p.driver_version) != cudaSuccess) p.driver_version = 0;
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e == cudaSuccess && n > 0) {
        cudaDeviceProp prop{};
        if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) {
            p.devices = n;
            p.name = prop.name;
            p.memory = prop.totalGlobalMem;
            return p;
        }
    }
    // cudaGetDeviceCount says "insufficient driver" when there is no driver at all: tell them apart.
    const auto ver = [](int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); };
    if (p.driver_version == 0)
        p.error = "no NVIDIA driver is installed (libcuda.so.1 cannot be loaded), so there is no CUDA device";
    else if (e == cudaErrorInsufficientDriver)
        p.error = "the NVIDIA driver supports CUDA " + ver(p.driver_version) + ", older than this build's runtime " +
                  ver(p.runtime_version) + "; update the driver";
    else if (e == cudaSuccess || e == cudaErrorNoDevice)
        p.error = "the NVIDIA driver (CUDA " + ver(p.driver_version) + ") sees no CUDA device";
    else p.error = std::string("the CUDA runtime cannot use a GPU: ") + cudaGetErrorString(e);
    cudaGetLastError();  // clear the sticky error of the failed call
    return p;
}

}  // namespace rl
