// The CUDA backend on a real GPU. Without one (no CUDA backend in this build, no driver, no device)
// every test here is skipped and says why; on a GPU they are what the backend must pass
// (docs/architecture.md §6).
#include <gtest/gtest.h>

#include <string>

#include "backend/device.h"
#include "backend/ops.h"

using namespace rl;

namespace {

// Skips the calling test, with the reason, unless a GPU answers.
#define REQUIRE_GPU()                                                               \
    do {                                                                            \
        const CudaProbe& p = cuda_probe();                                          \
        if (!p.built) GTEST_SKIP() << "no CUDA backend in this build: " << p.error; \
        if (p.devices == 0) GTEST_SKIP() << "no CUDA device: " << p.error;          \
    } while (0)

}  // namespace

TEST(Cuda, DeviceAnswers) {
    REQUIRE_GPU();
    const CudaProbe& p = cuda_probe();
    EXPECT_FALSE(p.name.empty());
    EXPECT_GT(p.memory, 1ull << 30) << "a GPU with under 1 GiB";
    EXPECT_GE(p.driver_version, p.runtime_version) << "the driver runs this build's runtime";
    EXPECT_TRUE(p.error.empty()) << p.error;
}

// Every op of the table has a CUDA kernel. Fails on a GPU until the kernels are written: it lists the
// ops that still have none.
TEST(Cuda, EveryOpHasAKernel) {
    REQUIRE_GPU();
    const Ops* cuda = ops_cuda();
    ASSERT_NE(cuda, nullptr) << "this build's CUDA backend has no kernels yet (backend/device.cpp, ops_cuda)";
    std::string missing;
    for (size_t i = 0; i < ops_names().size(); i++)
        if (!ops_entry(*cuda, i)) missing += std::string(" ") + ops_names()[i];
    EXPECT_EQ(missing, "") << "ops without a CUDA kernel:" << missing;
}

// With a GPU, auto trains there and says which GPU; cuda is taken as asked.
TEST(Cuda, AutoChoosesTheGpu) {
    REQUIRE_GPU();
    auto a = device_select(DeviceKind::automatic);
    ASSERT_TRUE(a.is_ok()) << a.status.msg;
    EXPECT_STRNE(a->ops->device, "cpu") << a->note;
    auto c = device_select(DeviceKind::cuda);
    ASSERT_TRUE(c.is_ok()) << c.status.msg;
}
