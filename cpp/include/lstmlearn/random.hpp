// Seeded random numbers whose stream is the same on every platform (the
// std:: distributions are not), so seeded fits are reproducible.
#pragma once

#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "lstmlearn/isa.hpp"

namespace lstmlearn {
LSTMLEARN_BEGIN_ISA_NAMESPACE

// splitmix64: one 64-bit draw, advancing `state`.
inline std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform double in [0, 1) from the top 53 bits of one draw.
inline double random_uniform(std::uint64_t& state) {
  return static_cast<double>(splitmix64(state) >> 11) * 0x1.0p-53;
}

// Unbiased integer in [0, n) by rejection.
inline std::uint64_t random_below(std::uint64_t& state, std::uint64_t n) {
  const std::uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  std::uint64_t r;
  do {
    r = splitmix64(state);
  } while (r >= limit);
  return r % n;
}

// Fisher-Yates shuffle of items [n].
template <typename Item>
void shuffle_items(Item* items, int n, std::uint64_t& state) {
  for (int k = n - 1; k > 0; --k) std::swap(items[k], items[random_below(state, k + 1)]);
}

// The order of one epoch's items 0..n-1: shuffled with `state`, or as they are.
inline std::vector<std::uint32_t> epoch_order(int n, bool shuffle, std::uint64_t& state) {
  std::vector<std::uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  if (shuffle) shuffle_items(order.data(), n, state);
  return order;
}

LSTMLEARN_END_ISA_NAMESPACE
}  // namespace lstmlearn
