// Which backend a run uses: train.device is cpu, cuda or auto (docs/architecture.md §6).
//
// This build has one backend with kernels, the CPU's. With ROUTELAB_CUDA on, the CUDA backend is a
// device probe so far (core/cuda/cuda_probe.cpp): it finds the GPU and its driver, or says why there
// is none, but it has no kernels yet, so `cuda` is refused with what to do, and `auto` runs on the
// CPU and says why, once.
#pragma once
#include <cstddef>
#include <string>

#include "backend/ops.h"
#include "config/config.h"
#include "util/status.h"

namespace rl {

// What the CUDA runtime says about this machine.
struct CudaProbe {
    bool built = false;       // this build has the CUDA backend (ROUTELAB_HAVE_CUDA)
    int runtime_version = 0;  // the CUDA runtime this build links, e.g. 13000 for 13.0
    int driver_version = 0;   // the installed driver's CUDA version; 0: no driver
    int devices = 0;          // GPUs the runtime can use
    std::string name;         // device 0's name
    size_t memory = 0;        // device 0's memory in bytes
    std::string error;        // why there is no device, in words ("" when devices > 0)
};
// Asks the CUDA runtime (once per process; later calls return the first answer). Without the CUDA
// backend: built = false, error says so.
const CudaProbe& cuda_probe();
// The probe itself, uncached (core/cuda/cuda_probe.cpp, or the stub without CUDA).
CudaProbe cuda_probe_run();

// The CUDA backend's op table: null while it has no kernels (every build so far).
const Ops* ops_cuda();

struct DeviceChoice {
    const Ops* ops = nullptr;  // the table the model is created on
    std::string note;          // what auto decided and why, for the user once ("" for an explicit cpu)
};
// The backend for train.device = want on a machine that probe describes, given the CUDA table (null:
// no kernels). cuda without a usable GPU or without kernels is an error naming the key and what to
// do; auto falls back to the CPU with a note saying why.
Result<DeviceChoice> device_select(DeviceKind want, const CudaProbe& probe, const Ops* cuda_ops);
// The same for this machine and build.
Result<DeviceChoice> device_select(DeviceKind want);

}  // namespace rl
