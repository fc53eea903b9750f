/* Atomic helpers for the slot ring, in the style of CPython's pyatomic.h:
 * every helper names its memory order, read-modify-write helpers return the
 * PREVIOUS value, and anything without a suffix is sequentially consistent.
 *
 * Built on the GCC/Clang __atomic builtins, which operate on plain integers.
 * That lets the ring keep its cells and bitmap words in ordinary calloc'ed
 * arrays (an array of C11 _Atomic or std::atomic objects is awkward to declare
 * from Cython).
 */
#ifndef FASTPOOL_FP_ATOMIC_H
#define FASTPOOL_FP_ATOMIC_H

#include <stdint.h>

#ifndef FASTPOOL_DEBUG
#define FASTPOOL_DEBUG 0
#endif

#if !defined(__GNUC__) && !defined(__clang__)
#error "fastpool's core needs GCC or Clang __atomic builtins"
#endif

/* Cache line size used to keep the producer and consumer cursors apart, so a
 * thread returning a slot does not invalidate the line of a thread taking one. */
#define FP_CACHE_LINE 64

static inline uint64_t fp_load_relaxed_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline uint64_t fp_load_acquire_u64(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static inline void fp_store_relaxed_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }
static inline void fp_store_release_u64(uint64_t *p, uint64_t v) { __atomic_store_n(p, v, __ATOMIC_RELEASE); }

static inline int64_t fp_load_relaxed_i64(const int64_t *p) { return __atomic_load_n(p, __ATOMIC_RELAXED); }
static inline void fp_store_relaxed_i64(int64_t *p, int64_t v) { __atomic_store_n(p, v, __ATOMIC_RELAXED); }

/* Weak CAS: may fail spuriously, so only used inside retry loops. On failure
 * *expected is refreshed with the current value (relaxed: the caller re-reads
 * the cell sequence with acquire before trusting anything). */
static inline int fp_cas_weak_relaxed_u64(uint64_t *p, uint64_t *expected, uint64_t desired) {
    return __atomic_compare_exchange_n(p, expected, desired, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
}

/* Strong CAS, acq_rel on success / acquire on failure. Used on bitmap words. */
static inline int fp_cas_acq_rel_u64(uint64_t *p, uint64_t *expected, uint64_t desired) {
    return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

static inline int fp_cas_acq_rel_i64(int64_t *p, int64_t *expected, int64_t desired) {
    return __atomic_compare_exchange_n(p, expected, desired, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* fetch_or / fetch_and with acq_rel: a bit flip both publishes what the
 * flipping thread did before it (release) and sees what the previous flipper
 * did (acquire). Return the previous word. */
static inline uint64_t fp_fetch_or_acq_rel_u64(uint64_t *p, uint64_t v) { return __atomic_fetch_or(p, v, __ATOMIC_ACQ_REL); }
static inline uint64_t fp_fetch_and_acq_rel_u64(uint64_t *p, uint64_t v) { return __atomic_fetch_and(p, v, __ATOMIC_ACQ_REL); }

static inline int64_t fp_fetch_add_relaxed_i64(int64_t *p, int64_t v) { return __atomic_fetch_add(p, v, __ATOMIC_RELAXED); }

static inline int fp_popcount_u64(uint64_t v) { return __builtin_popcountll(v); }
static inline int fp_ctz_u64(uint64_t v) { return __builtin_ctzll(v); }

/* Spin-wait hint for the stress test's hold loop. */
static inline void fp_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

#endif
