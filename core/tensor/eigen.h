// Eigen maps over arena memory. Row-major float32, like the arenas; `.noalias()` on products.
#pragma once
#include <Eigen/Dense>

namespace rl {
using MatR = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MapR = Eigen::Map<MatR>;
using CMapR = Eigen::Map<const MatR>;
using Strided = Eigen::OuterStride<>;
using MapRS = Eigen::Map<MatR, 0, Strided>;          // a column block of a wider row-major buffer
using CMapRS = Eigen::Map<const MatR, 0, Strided>;
using VecMap = Eigen::Map<Eigen::VectorXf>;
using CVecMap = Eigen::Map<const Eigen::VectorXf>;
}  // namespace rl
