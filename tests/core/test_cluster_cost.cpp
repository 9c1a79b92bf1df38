// The cluster cost model (metrics/cluster_cost.h, issue 25): every formula on hand-computed cases, the
// capacity rule against a routing map dropped as Megatron-Core's apply_router_token_dropping does, and
// the noise split against simulated routing from a known popularity.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "metrics/cluster_cost.h"

using namespace rl;

namespace {

LayerLoads fixed(std::vector<double> share) {
    LayerLoads l;
    l.share = std::move(share);
    l.noise_var.assign(l.share.size(), 0.0);  // no sampling noise: the hand-computed figures are exact
    l.batch_assignments = 1;
    return l;
}

ClusterSetup setup(int ep, int gpn, int T, int K, int H) {
    ClusterSetup s;
    s.ep = ep, s.gpus_per_node = gpn, s.tokens_per_rank = T, s.top_k = K, s.hidden = H, s.expert_width = 16;
    return s;
}

// Shares of `pairs` (token, expert) pairs each drawn from popularity mu.
std::vector<double> draw_shares(const std::vector<double>& mu, int pairs, std::mt19937& rng) {
    std::discrete_distribution<int> pick(mu.begin(), mu.end());
    std::vector<double> share(mu.size(), 0.0);
    for (int i = 0; i < pairs; i++) share[pick(rng)] += 1.0 / pairs;
    return share;
}

}  // namespace

TEST(ClusterCost, ImbalanceIsOneWhenUniformAndEpWhenOneExpertTakesAll) {
    const ClusterSetup s = setup(8, 8, 1024, 2, 64);
    auto uniform = cluster_cost({fixed(std::vector<double>(16, 1.0 / 16))}, s);
    ASSERT_TRUE(uniform) << uniform.status.msg;
    EXPECT_DOUBLE_EQ(uniform->layers[0].imbalance, 1.0);
    EXPECT_DOUBLE_EQ(uniform->layers[0].expert_imbalance, 1.0);
    std::vector<double> one(16, 0.0);
    one[5] = 1;
    auto hot = cluster_cost({fixed(one)}, s);
    ASSERT_TRUE(hot);
    EXPECT_DOUBLE_EQ(hot->layers[0].imbalance, 8.0);          // EP: rank 2 (experts 4, 5) gets everything
    EXPECT_DOUBLE_EQ(hot->layers[0].expert_imbalance, 16.0);  // E
    EXPECT_DOUBLE_EQ(hot->layers[0].rank_share[2], 1.0);
    // A balancing placement spreads two hot experts over two ranks where contiguous blocks stack them.
    std::vector<double> two(16, 0.0);
    two[0] = two[1] = 0.5;
    ClusterSetup b = s;
    b.placement = ExpertPlacement::balanced;
    EXPECT_DOUBLE_EQ(cluster_cost({fixed(two)}, s)->layers[0].imbalance, 8.0);
    EXPECT_DOUBLE_EQ(cluster_cost({fixed(two)}, b)->layers[0].imbalance, 4.0);
}

// T = 1000 tokens per rank, K = 2, H = 100, bf16 dispatch (2 bytes) and fp8 combine (1): each rank's
// 2000 pairs, (EP - 1) / EP of them off-rank, each a row of H elements dispatched and combined, forward
// and backward: 2000 x 3/4 x 100 x (2 + 1) x 2 = 900,000 bytes. The hottest rank of a uniform load
// receives 2000 / 4 from each of the 3 others, 1 of them on its node (2 GPUs per node), 2 over RDMA.
TEST(ClusterCost, AllToAllBytesForAStatedShape) {
    ClusterSetup s = setup(4, 2, 1000, 2, 100);
    s.dispatch_bytes = 2, s.combine_bytes = 1;
    auto r = cluster_cost({fixed(std::vector<double>(8, 1.0 / 8))}, s);
    ASSERT_TRUE(r) << r.status.msg;
    const ClusterLayer& l = r->layers[0];
    EXPECT_DOUBLE_EQ(l.a2a_bytes_per_rank, 900000.0);
    EXPECT_DOUBLE_EQ(l.nvlink_bytes_hottest, 500.0 * 100 * 3 * 2);
    EXPECT_DOUBLE_EQ(l.rdma_bytes_hottest, 2 * 500.0 * 100 * 3 * 2);
    EXPECT_DOUBLE_EQ(l.comm_s, std::max(l.nvlink_bytes_hottest / 153e9, l.rdma_bytes_hottest / 43e9));
    EXPECT_DOUBLE_EQ(l.comm_s, l.comm_s_balanced);
    // Twice the load on rank 0: it receives twice the rows.
    auto skew = cluster_cost({fixed({0.25, 0.25, 0.125, 0.125, 0.0625, 0.0625, 0.0625, 0.0625})}, s);
    EXPECT_DOUBLE_EQ(skew->layers[0].hottest_rank_bytes, 2 * l.hottest_rank_bytes);
    // Memory: 2 experts of 3 H F parameters on each GPU, 6 + 12 / EDP bytes each.
    s.expert_dp = 4;
    EXPECT_DOUBLE_EQ(cluster_cost({fixed(std::vector<double>(8, 1.0 / 8))}, s)->expert_bytes_per_gpu, 2 * 3.0 * 100 * 16 * 9);
}

// At capacity factor 1 with exact loads, the dropped share is the overflow count over the pairs.
TEST(ClusterCost, DropsAtCapacityOneAreTheOverflow) {
    // 100 pairs over 4 experts: capacity ceil(100 / 4) = 25; 40 and 30 overflow by 15 and 5.
    EXPECT_DOUBLE_EQ(cluster_dropped_share({0.4, 0.3, 0.2, 0.1}, {}, 100, 25), 0.2);
    ClusterSetup s = setup(2, 2, 50, 2, 8);  // 50 tokens x top-2 = 100 pairs per rank
    s.capacity_factor = 1.0;
    auto r = cluster_cost({fixed({0.4, 0.3, 0.2, 0.1})}, s);
    ASSERT_TRUE(r);
    EXPECT_DOUBLE_EQ(r->layers[0].dropped_share, 0.2);
    // The hottest rank (experts 0 and 1) keeps 25 + 25 rows from the other rank, not its 70 uncapped:
    // 50 rows of C 8 x (2 + 2) bytes, forward and backward, over NVLink.
    EXPECT_DOUBLE_EQ(r->layers[0].hottest_rank_bytes, 50 * 8 * 4 * 2);
    s.capacity_factor = 0;
    EXPECT_DOUBLE_EQ(cluster_cost({fixed({0.4, 0.3, 0.2, 0.1})}, s)->layers[0].hottest_rank_bytes, 70 * 8 * 4 * 2);
    s.capacity_factor = 1.0;
    s.pad_to_capacity = true;  // 4 chunks of 25 rows, 80 of them real
    EXPECT_DOUBLE_EQ(cluster_cost({fixed({0.4, 0.3, 0.2, 0.1})}, s)->layers[0].padded_share, 0.2);
}

// Megatron-Core's rule on a routing map (moe_utils.py get_capacity and apply_router_token_dropping,
// docs/cluster-cost-sources.md §1): capacity = ceil(tokens x K x cf / E) per expert over one rank's
// tokens; each expert keeps its `capacity` highest-probability pairs; a dropped pair leaves the token
// its other experts. The dropped count equals the model's overflow on the same loads, at several cf.
TEST(ClusterCost, CapacityMatchesMegatronsDropRuleOnARoutingMap) {
    const int N = 300, E = 8, K = 2;
    std::mt19937 rng(7);
    std::vector<double> mu = {0.3, 0.2, 0.15, 0.1, 0.1, 0.07, 0.05, 0.03};
    std::vector<std::vector<float>> probs(N, std::vector<float>(E, 0.f));  // the routing map's probabilities
    std::vector<int> count(E, 0);
    std::uniform_real_distribution<float> u(0.05f, 1.f);
    for (int t = 0; t < N; t++) {
        std::vector<double> w = mu;
        for (int k = 0; k < K; k++) {  // K distinct experts per token, drawn by popularity
            std::discrete_distribution<int> pick(w.begin(), w.end());
            const int e = pick(rng);
            probs[t][e] = u(rng), w[e] = 0, count[e]++;
        }
    }
    std::vector<double> share(E);
    for (int e = 0; e < E; e++) share[e] = count[e] / (double)(N * K);
    for (double cf : {0.5, 1.0, 1.25, 2.0}) {
        const int cap = (int)std::ceil(N * K * cf / E);
        int dropped = 0;
        for (int e = 0; e < E; e++) {  // per expert: keep the top `cap` probabilities of its column
            std::vector<float> col;
            for (int t = 0; t < N; t++)
                if (probs[t][e] > 0) col.push_back(probs[t][e]);
            if ((int)col.size() > cap) dropped += (int)col.size() - cap;
        }
        ClusterSetup s = setup(2, 2, N, K, 8);
        s.capacity_factor = cf;
        auto r = cluster_cost({fixed(share)}, s);
        ASSERT_TRUE(r);
        EXPECT_NEAR(r->layers[0].dropped_share, dropped / (double)(N * K), 1e-12) << "cf " << cf;
    }
}

// Routing drawn from a known popularity at several batch sizes: the split recovers the popularity, and
// the imbalance rescaled to a larger batch matches a direct simulation at that batch within 5%; the
// small batch's own imbalance does not, nor does the popularity's alone.
TEST(ClusterCost, NoiseSplitRecoversThePopularityAndRescalesTheImbalance) {
    const int E = 64, EP = 8;
    std::vector<double> mu(E);
    for (int e = 0; e < E; e++) mu[e] = 1.0 + 0.5 * std::sin(e * 1.7);  // a persistent, moderate skew
    const double total = std::accumulate(mu.begin(), mu.end(), 0.0);
    for (double& v : mu) v /= total;
    std::vector<int> rank_of(E);
    for (int e = 0; e < E; e++) rank_of[e] = e / (E / EP);
    // The truth at the cluster's batch: 8 ranks x 128 tokens x top-2 pairs, drawn directly (a batch where
    // the noise still adds as much to the imbalance as the popularity does: leaving it out is caught).
    const int big = EP * 128 * 2;
    std::mt19937 rng(11);
    double direct = 0;
    const int draws = 200;
    for (int d = 0; d < draws; d++) {
        const std::vector<double> q = cluster_rank_loads(draw_shares(mu, big, rng), rank_of, EP);
        direct += EP * *std::max_element(q.begin(), q.end()) / draws;
    }
    const double popularity = cluster_expected_imbalance(mu, {}, rank_of, EP);
    EXPECT_GT(direct / popularity, 1.05) << "the noise must matter at this batch for the check to mean anything";
    for (int tokens : {64, 256, 1024}) {
        const int pairs = tokens * 2;
        std::vector<std::vector<double>> batches;
        for (int b = 0; b < 300; b++) batches.push_back(draw_shares(mu, pairs, rng));
        const LayerLoads l = cluster_loads_split(batches, pairs);
        double worst = 0;
        for (int e = 0; e < E; e++) worst = std::max(worst, std::fabs(l.share[e] - mu[e]) / mu[e]);
        EXPECT_LT(worst, 0.25) << tokens << " tokens: the mean over batches is the popularity";
        std::vector<double> var(E);
        for (int e = 0; e < E; e++) var[e] = l.noise_var[e] * pairs / big;
        const double rescaled = cluster_expected_imbalance(l.share, var, rank_of, EP, 400, 3);
        const double small = cluster_expected_imbalance(l.share, l.noise_var, rank_of, EP, 400, 3);
        EXPECT_NEAR(rescaled / direct, 1.0, 0.05) << tokens << " tokens: rescaled " << rescaled << ", direct " << direct;
        std::printf("batch %5d tokens: popularity recovered within %.1f%%; imbalance at the batch %.3f, rescaled to %d pairs "
                    "%.3f, direct simulation %.3f\n", tokens, 100 * worst, small, big, rescaled, direct);
        if (tokens == 64) EXPECT_GT(small, direct * 1.1) << "a small batch's own imbalance overstates the cluster's";
    }
}

// EP above E: each expert split into EP / E parts on adjacent ranks, every part visited by each of the
// expert's tokens. By hand: 4 experts at 0.4/0.3/0.2/0.1 on EP 8 are 8 parts of 0.2/0.2/0.15/0.15/...,
// so I = 8 * 0.2 = 1.6 = E max p; a token's K = 2 experts become 4 parts; one expert's parts fill one
// node of 2 GPUs. The report equals costing the hand-split loads directly. Nodes a token without
// token sets: K distinct experts drawn by share. A split's parts share their expert's noise: the
// imbalance under noise is E max of the measured experts', not a max over independent parts.
TEST(ClusterCost, EpAboveTheExpertsSplitsEachExpert) {
    LayerLoads l = fixed({0.4, 0.3, 0.2, 0.1});
    l.token_experts = {{0, 1}, {0, 2}, {0, 1}};
    ClusterSetup s = setup(8, 2, 100, 2, 8);
    s.expert_width = 16;
    auto r = cluster_cost({l}, s);
    ASSERT_TRUE(r) << r.status.msg;
    EXPECT_EQ(r->split, 2);
    EXPECT_EQ(r->n_experts, 8);
    EXPECT_EQ(r->setup.top_k, 4);
    EXPECT_EQ(r->setup.expert_width, 8);
    EXPECT_NEAR(r->layers[0].imbalance_popularity, 1.6, 1e-12);
    EXPECT_NEAR(r->layers[0].rank_share[0], 0.2, 1e-12);
    EXPECT_NEAR(r->layers[0].rank_share[7], 0.05, 1e-12);
    EXPECT_TRUE(r->layers[0].nodes_from_tokens);
    EXPECT_DOUBLE_EQ(r->layers[0].nodes_per_token, 2.0);  // expert e's two parts are node e
    EXPECT_NE(r->assumptions[0].find("split into 2 parts"), std::string::npos) << r->assumptions[0];
    // The same as the hand-split loads at top-4 and width F/2.
    LayerLoads hand = fixed({0.2, 0.2, 0.15, 0.15, 0.1, 0.1, 0.05, 0.05});
    hand.token_experts = {{0, 1, 2, 3}, {0, 1, 4, 5}, {0, 1, 2, 3}};
    ClusterSetup t = s;
    t.top_k = 4, t.expert_width = 8;
    auto d = cluster_cost({hand}, t);
    ASSERT_TRUE(d);
    EXPECT_DOUBLE_EQ(r->layers[0].a2a_bytes_per_rank, d->layers[0].a2a_bytes_per_rank);
    EXPECT_DOUBLE_EQ(r->layers[0].hottest_rank_bytes, d->layers[0].hottest_rank_bytes);
    EXPECT_DOUBLE_EQ(r->expert_bytes_per_gpu, d->expert_bytes_per_gpu);
    // Without token sets: a token's 2 distinct measured experts are 2 nodes (each expert one node).
    l.token_experts.clear();
    auto est = cluster_cost({l}, s);
    EXPECT_FALSE(est->layers[0].nodes_from_tokens);
    EXPECT_DOUBLE_EQ(est->layers[0].nodes_per_token, 2.0);
    // Unsplit on EP 4, 2 GPUs a node (experts 0, 1 on node 0; 2, 3 on node 1), top-2 drawn without
    // replacement by share: both on node 0 with 0.4 * 0.3/0.6 + 0.3 * 0.4/0.7, both on node 1 with
    // 0.2 * 0.1/0.8 + 0.1 * 0.2/0.9, so 2 - 0.41865 = 1.58135 nodes a token.
    s.ep = 4;
    est = cluster_cost({l}, s);
    EXPECT_NEAR(est->layers[0].nodes_per_token, 2 - (0.2 + 0.3 * 0.4 / 0.7 + 0.025 + 0.1 * 0.2 / 0.9), 0.02);
    s.ep = 8;
    // A split's share of parts: the expert's share over m each.
    l.token_experts = {{0, 1}, {0, 2}, {0, 1}};
    const LayerLoads sp = cluster_split_experts(l, 2);
    LayerLoads noisy = l;
    noisy.noise_var = {4e-3, 4e-3, 4e-3, 4e-3};
    noisy.batch_assignments = 200;
    ClusterSetup one = s;
    one.ep = 4;  // one measured expert a rank: the same maximum as 8 ranks of half-experts
    EXPECT_NEAR(cluster_cost({noisy}, s)->layers[0].imbalance_measured, cluster_cost({noisy}, one)->layers[0].imbalance_measured, 1e-9);
    EXPECT_EQ(sp.share, hand.share);
    EXPECT_EQ(sp.token_experts, l.token_experts);  // the measured experts' ids: expert e stands for its parts
    EXPECT_EQ(sp.split, 2);
}

TEST(ClusterCost, RefusesWhatItCannotCompute) {
    ClusterSetup s = setup(3, 8, 100, 2, 8);
    auto r = cluster_cost({fixed(std::vector<double>(8, 0.125))}, s);
    ASSERT_FALSE(r);
    EXPECT_NE(r.status.msg.find("EP 3 must divide the 8 experts"), std::string::npos) << r.status.msg;
    s.ep = 12;  // neither a divisor of 8 nor a multiple
    EXPECT_NE(cluster_cost({fixed(std::vector<double>(8, 0.125))}, s).status.msg.find("or be a multiple"), std::string::npos);
    s.ep = 2, s.hidden = 0;
    EXPECT_NE(cluster_cost({fixed(std::vector<double>(8, 0.125))}, s).status.msg.find("--hidden"), std::string::npos);
    s.hidden = 8, s.top_k = 9;
    EXPECT_NE(cluster_cost({fixed(std::vector<double>(8, 0.125))}, s).status.msg.find("top-k must be in 1..8"), std::string::npos);
}
