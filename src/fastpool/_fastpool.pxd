# cython: language_level=3
"""C declarations of the compiled core's slot ring (src/_fastpool.pyx), shared
with the test-only native-thread stress extension
(tests/support/_fastpool_stress.pyx), which cimports them to drive the shipped
module's ring from pthreads.

It lives in src/fastpool/ because Cython looks a module's .pxd up by the
module's full name (fastpool._fastpool) on the include path (setup.py passes
src); outside the package, so wheels ship no .pxd.
"""

from libc.stdint cimport int64_t, uint64_t

cdef extern from "fp_atomic.h" nogil:
    int FASTPOOL_DEBUG
    int FP_CACHE_LINE
    uint64_t fp_load_relaxed_u64(const uint64_t *p)
    uint64_t fp_load_acquire_u64(const uint64_t *p)
    void fp_store_relaxed_u64(uint64_t *p, uint64_t v)
    void fp_store_release_u64(uint64_t *p, uint64_t v)
    int64_t fp_load_relaxed_i64(const int64_t *p)
    void fp_store_relaxed_i64(int64_t *p, int64_t v)
    bint fp_cas_weak_relaxed_u64(uint64_t *p, uint64_t *expected, uint64_t desired)
    bint fp_cas_acq_rel_u64(uint64_t *p, uint64_t *expected, uint64_t desired)
    bint fp_cas_acq_rel_i64(int64_t *p, int64_t *expected, int64_t desired)
    uint64_t fp_fetch_or_acq_rel_u64(uint64_t *p, uint64_t v)
    uint64_t fp_fetch_and_acq_rel_u64(uint64_t *p, uint64_t v)
    int64_t fp_fetch_add_relaxed_i64(int64_t *p, int64_t v)
    int fp_popcount_u64(uint64_t v)
    int fp_ctz_u64(uint64_t v)
    void fp_cpu_relax()

# Result codes of the fp_* functions. A slot index is >= 0, so negative numbers
# can share the return value.
cdef enum:
    FP_OK = 0
    FP_EMPTY = -1           # try_acquire: no idle slot right now
    FP_OUT_OF_RANGE = -2    # slot index outside [0, capacity)
    FP_NOT_IN_POOL = -3     # slot is absent (never added, or retired)
    FP_NOT_IN_USE = -4      # release/retire of a slot nobody holds
    FP_FULL = -5            # add: every slot is already in the pool
    FP_BROKEN = -6          # an invariant failed: a bug in this module, never the caller's


cdef struct fp_cell:
    uint64_t seq      # Vyukov sequence: == pos -> free for the producer at pos;
                      # == pos + 1 -> holds a value for the consumer at pos
    uint64_t value    # the slot index stored in this cell


cdef struct fp_ring:
    fp_cell *cells
    uint64_t mask           # ring size - 1 (ring size is a power of two >= capacity)
    uint64_t *cursors       # cursors[0] = enqueue position, cursors[CURSOR_GAP] = dequeue
                            # position: separate cache lines so producers and consumers
                            # don't false-share
    uint64_t *present       # bit i set: slot i is in the pool
    uint64_t *in_use        # bit i set: slot i is held by a caller
    int64_t nwords          # words in each bitmap
    int64_t capacity
    int64_t *debug_counts   # [acquires, releases, adds, retires] (only counted in debug builds)
    bint lifo               # idle slots in the stack below, not in the ring above
    uint64_t *top           # lifo: (version << LINK_BITS) | (top slot + 1, 0 when empty),
                            # alone on its cache line
    uint64_t *links         # lifo: links[slot] = slot below it + 1 (0: the bottom)


# The nogil entry points (defined and documented in src/_fastpool.pyx).
cdef int64_t fp_try_acquire(fp_ring *r) noexcept nogil
cdef int64_t fp_try_acquire_oldest(fp_ring *r) noexcept nogil
cdef int fp_release(fp_ring *r, int64_t slot) noexcept nogil
cdef bint _ring_looks_full(uint64_t enq_seen, uint64_t deq_seen, uint64_t mask) noexcept nogil
# Runs between the two cursor reads of _ring_really_full (NULL but in a test).
ctypedef void (*fp_ring_hook)(fp_ring *r, void *arg) noexcept nogil
cdef bint _ring_really_full(fp_ring *r, fp_ring_hook between_reads, void *arg) noexcept nogil


cdef class SlotRing:
    cdef fp_ring r
