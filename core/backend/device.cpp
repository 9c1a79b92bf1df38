#include "backend/device.h"

#include "util/strfmt.h"

namespace rl {

namespace {

// "GPU NVIDIA H200 (139.8 GiB)" for the probe's device 0.
std::string gpu_text(const CudaProbe& p) {
    return "GPU " + p.name + (p.memory ? str_printf(" (%.1f GiB)", p.memory / (1024.0 * 1024 * 1024)) : "");
}

}  // namespace

#ifndef ROUTELAB_HAVE_CUDA
CudaProbe cuda_probe_run() {
    CudaProbe p;
    p.error = "this build has no CUDA backend (it was configured with ROUTELAB_CUDA=OFF, or CMake found no nvcc)";
    return p;
}
#endif

const CudaProbe& cuda_probe() {
    static const CudaProbe probe = cuda_probe_run();
    return probe;
}

// No CUDA kernels are written yet: they come with a machine to run them on (docs/architecture.md §6).
const Ops* ops_cuda() { return nullptr; }

Result<DeviceChoice> device_select(DeviceKind want, const CudaProbe& probe, const Ops* cuda_ops) {
    if (want == DeviceKind::cpu) return DeviceChoice{&ops_cpu(), ""};
    std::string why;  // why CUDA cannot be used ("" when it can)
    if (!probe.built || probe.devices == 0) why = probe.error.empty() ? "no CUDA device was found" : probe.error;
    else if (!cuda_ops) why = "found " + gpu_text(probe) + ", but this build's CUDA backend has no kernels yet";
    if (why.empty()) return DeviceChoice{cuda_ops, "device: " + gpu_text(probe)};
    if (want == DeviceKind::cuda) {
        std::string fix = "set train.device to cpu or auto";
        if (!probe.built) fix += ", or build with -DROUTELAB_CUDA=ON on a machine with the CUDA toolkit";
        return Status::error("config: 'train.device' is \"cuda\", but " + why + "; " + fix);
    }
    return DeviceChoice{&ops_cpu(), "device auto: " + why + "; training on the CPU"};
}

Result<DeviceChoice> device_select(DeviceKind want) { return device_select(want, cuda_probe(), ops_cuda()); }

}  // namespace rl
