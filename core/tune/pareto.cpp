// Constrained Pareto ranking (pareto.h; docs/tuning-sources.md §3).
// Sizes: n points, M objectives.
#include "tune/pareto.h"

#include <algorithm>
#include <cassert>
#include <numeric>

namespace rl {

bool pareto_dominates(const std::vector<double>& a, double va, const std::vector<double>& b, double vb) {
    const bool fa = va <= 0, fb = vb <= 0;
    if (fa != fb) return fa;        // feasible beats infeasible
    if (!fa) return va < vb;        // two infeasible: the smaller total violation wins
    assert(a.size() == b.size());
    bool better = false;            // two feasible: no worse anywhere, better somewhere
    for (size_t m = 0; m < a.size(); ++m) {
        if (a[m] > b[m]) return false;
        better |= a[m] < b[m];
    }
    return better;
}

std::vector<int> pareto_ranks(const std::vector<std::vector<double>>& objs, const std::vector<double>& violation) {
    assert(objs.size() == violation.size());
    const int n = static_cast<int>(objs.size());
    // Deb's fast non-dominated sort without the dominated lists: count each point's dominators, then
    // peel front after front, each removed point lowering the counts of those it dominates. Every
    // ordered pair is compared twice in all, so O(n^2 M) whatever the number of fronts.
    std::vector<int> count(n, 0), rank(n, -1), front;
    for (int i = 0; i < n; ++i)
        for (int j = 0; j < n; ++j)
            if (i != j && pareto_dominates(objs[j], violation[j], objs[i], violation[i])) ++count[i];
    for (int i = 0; i < n; ++i)
        if (count[i] == 0) front.push_back(i);
    for (int r = 0; !front.empty(); ++r) {
        std::vector<int> next;
        for (int j : front) rank[j] = r;
        for (int j : front)
            for (int i = 0; i < n; ++i)
                if (rank[i] < 0 && pareto_dominates(objs[j], violation[j], objs[i], violation[i]) && --count[i] == 0)
                    next.push_back(i);
        front = std::move(next);
    }
    return rank;
}

std::vector<int> pareto_front(const std::vector<std::vector<double>>& objs, const std::vector<double>& violation) {
    const std::vector<int> rank = pareto_ranks(objs, violation);
    std::vector<int> front;
    // Rank 0 holds feasible points only, unless nothing is feasible (then the least violating, which
    // are no front: the front is empty).
    for (int i = 0; i < static_cast<int>(rank.size()); ++i)
        if (rank[i] == 0 && violation[i] <= 0) front.push_back(i);
    std::sort(front.begin(), front.end(), [&](int a, int b) {
        return objs[a] != objs[b] ? objs[a] < objs[b] : a < b;  // lexicographic: first objective first
    });
    return front;
}

std::vector<int> pareto_ranks_ref(const std::vector<std::vector<double>>& objs, const std::vector<double>& violation) {
    const int n = static_cast<int>(objs.size());
    std::vector<int> rank(n, -1);
    for (int r = 0, left = n; left > 0; ++r) {
        std::vector<int> front;
        for (int i = 0; i < n; ++i) {
            if (rank[i] >= 0) continue;
            bool dominated = false;
            for (int j = 0; j < n && !dominated; ++j)
                dominated = rank[j] < 0 && j != i && pareto_dominates(objs[j], violation[j], objs[i], violation[i]);
            if (!dominated) front.push_back(i);
        }
        for (int i : front) rank[i] = r;
        left -= static_cast<int>(front.size());
    }
    return rank;
}

}  // namespace rl
