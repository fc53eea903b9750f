# cython: language_level=3
# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Test-only: the native-thread stress harness of the compiled core's slot ring.

Not part of fastpool: ``setup.py build_test_ext`` builds it (the
``stress_ext`` fixture, and tests/test_debug_build.py and
tests/test_sanitizers.py with their variant builds), never into a wheel. It
cimports the ring's declarations (src/fastpool/_fastpool.pxd), so its threads
run the shipped module's own ``fp_*`` functions on a ``fastpool._fastpool``
SlotRing, with the GIL released.
"""

from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc, free

from fastpool._fastpool cimport (
    FP_EMPTY,
    FP_OK,
    SlotRing,
    _ring_looks_full,
    _ring_really_full,
    fp_cas_acq_rel_i64,
    fp_cpu_relax,
    fp_release,
    fp_ring,
    fp_try_acquire,
    fp_try_acquire_oldest,
)

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_t:
        pass
    int pthread_create(pthread_t *thread, const void *attr,
                       void *(*start_routine)(void *) noexcept nogil, void *arg)
    int pthread_join(pthread_t thread, void **retval)


cdef struct stress_shared:
    fp_ring *ring
    int64_t *owner          # owner[slot] = id of the thread holding it, -1 if none
    int64_t iterations      # acquire/release cycles each thread must complete
    int64_t hold_spins      # busy-wait while holding, to widen race windows
    int64_t max_empty_polls # give up after this many consecutive empty polls (no hang)
    int64_t oldest_every    # > 0: every n-th acquire takes the oldest idle slot


cdef struct stress_worker:
    stress_shared *shared
    int64_t tid
    int64_t cycles          # completed acquire/release cycles
    int64_t empty_polls     # try_acquire found nothing idle
    int64_t duplicates      # slot was already owned by another thread: a double hand-out
    int64_t errors          # release failed or try_acquire reported a broken ring
    int64_t gave_up         # 1 if the thread stopped on max_empty_polls (a lost slot)


cdef void *_stress_run(void *arg) noexcept nogil:
    cdef stress_worker *me = <stress_worker *>arg
    cdef stress_shared *sh = me.shared
    cdef int64_t slot, expected, spin, streak = 0
    while me.cycles < sh.iterations:
        if sh.oldest_every > 0 and (me.cycles + me.tid) % sh.oldest_every == 0:
            slot = fp_try_acquire_oldest(sh.ring)
        else:
            slot = fp_try_acquire(sh.ring)
        if slot == FP_EMPTY:
            me.empty_polls += 1
            streak += 1
            if streak > sh.max_empty_polls:
                me.gave_up = 1
                return NULL
            fp_cpu_relax()
            continue
        if slot < 0:
            me.errors += 1
            return NULL
        streak = 0
        # Conservation check: claim the slot in an ownership table that is
        # independent of the ring. If the ring handed the slot to two threads, one
        # of these CASes finds another owner.
        expected = -1
        if not fp_cas_acq_rel_i64(&sh.owner[slot], &expected, me.tid):
            me.duplicates += 1
        spin = 0
        while spin < sh.hold_spins:
            fp_cpu_relax()
            spin += 1
        expected = me.tid
        if not fp_cas_acq_rel_i64(&sh.owner[slot], &expected, -1):
            me.duplicates += 1
        if fp_release(sh.ring, slot) != FP_OK:
            me.errors += 1
        me.cycles += 1
    return NULL


def ring_looks_full(uint64_t enq_seen, uint64_t deq_seen, uint64_t mask) -> bool:
    """The push path's "really full" check on given cursor readings."""
    return _ring_looks_full(enq_seen, deq_seen, mask)


cdef void _cycle_idle_slots(fp_ring *r, void *cycles) noexcept nogil:
    """Acquire and release an idle slot ``*cycles`` times: both cursors move on."""
    cdef int64_t n, slot
    for n in range((<int64_t *>cycles)[0]):
        slot = fp_try_acquire(r)
        if slot >= 0:
            fp_release(r, slot)


def ring_really_full(SlotRing ring not None, long long cycles) -> bool:
    """The push path's full check on ``ring``, with ``cycles`` acquire/release
    cycles run between its two cursor reads (what other threads do while the
    reader is preempted there)."""
    cdef int64_t n = cycles
    return _ring_really_full(&ring.r, _cycle_idle_slots, &n)


def stress_native(SlotRing ring not None, int threads, long long iterations,
                   long long hold_spins=0, long long max_empty_polls=200_000_000,
                   long long oldest_every=0):
    """Run ``threads`` OS threads doing ``iterations`` acquire/hold/release cycles
    each on ``ring`` with the GIL released (every ``oldest_every``-th acquire
    with try_acquire_oldest, if > 0). Returns totals; the caller checks
    conservation (no duplicates, no errors, every slot idle again)."""
    if threads < 1 or threads > 256:
        raise ValueError(f"threads must be between 1 and 256, got {threads}")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    if oldest_every < 0:
        raise ValueError(f"oldest_every must be >= 0, got {oldest_every}")
    cdef stress_shared sh
    cdef stress_worker *workers = <stress_worker *>calloc(threads, sizeof(stress_worker))
    cdef pthread_t *tids = <pthread_t *>calloc(threads, sizeof(pthread_t))
    cdef int64_t *owner = <int64_t *>calloc(ring.r.capacity, sizeof(int64_t))
    cdef int i, started = 0
    cdef int64_t s
    if workers == NULL or tids == NULL or owner == NULL:
        free(workers); free(tids); free(owner)
        raise MemoryError()
    for s in range(ring.r.capacity):
        owner[s] = -1
    sh.ring = &ring.r
    sh.owner = owner
    sh.iterations = iterations
    sh.hold_spins = hold_spins
    sh.max_empty_polls = max_empty_polls
    sh.oldest_every = oldest_every
    try:
        with nogil:
            for i in range(threads):
                workers[i].shared = &sh
                workers[i].tid = i
                if pthread_create(&tids[i], NULL, _stress_run, &workers[i]) != 0:
                    break
                started += 1
            for i in range(started):
                pthread_join(tids[i], NULL)
        if started != threads:
            raise OSError(f"could only start {started} of {threads} threads")
        totals = {"threads": threads, "cycles": 0, "empty_polls": 0, "duplicates": 0,
                  "errors": 0, "gave_up": 0}
        for i in range(threads):
            totals["cycles"] += workers[i].cycles
            totals["empty_polls"] += workers[i].empty_polls
            totals["duplicates"] += workers[i].duplicates
            totals["errors"] += workers[i].errors
            totals["gave_up"] += workers[i].gave_up
        totals["still_owned"] = sum(1 for s in range(ring.r.capacity) if owner[s] != -1)
        return totals
    finally:
        free(workers)
        free(tids)
        free(owner)
