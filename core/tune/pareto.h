// Pareto ranking under constraints for the tuner's several-objective studies: Deb's constrained
// domination as NSGA-II uses it (docs/tuning-sources.md §3; Deb et al. 2002, "A fast and elitist
// multiobjective genetic algorithm: NSGA-II"). The ranks also serve as TPE's loss for several
// objectives.
// Sizes: n points, M objectives.
#pragma once
#include <vector>

namespace rl {

// objectives are already in "minimise" form (caller negates maximised ones). violation 0 = feasible.
// Deb's constrained domination (docs/tuning-sources.md §3): feasible beats infeasible; two infeasible:
// smaller violation wins; two feasible: Pareto dominance.
bool pareto_dominates(const std::vector<double>& a, double va, const std::vector<double>& b, double vb);
// (n) non-domination rank of each point under constrained domination; 0 = non-dominated front.
std::vector<int> pareto_ranks(const std::vector<std::vector<double>>& objs, const std::vector<double>& violation);
// Indices of the feasible non-dominated points, sorted by the first objective (then the next ones,
// then index). Empty when no point is feasible.
std::vector<int> pareto_front(const std::vector<std::vector<double>>& objs, const std::vector<double>& violation);

// The naive twin of pareto_ranks: peel the non-dominated set off the rest, one front at a time.
std::vector<int> pareto_ranks_ref(const std::vector<std::vector<double>>& objs, const std::vector<double>& violation);

}  // namespace rl
