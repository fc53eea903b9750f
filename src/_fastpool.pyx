# cython: language_level=3
# cython: freethreading_compatible=True
# cython: boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""fastpool's compiled core: a slot allocator, not a pool.

``SlotRing`` hands out small integers ("slots"). The pool keeps a table from
slot to connection; this module never sees a connection, a clock or a waiter.

State of one slot:

    absent --add()--> idle (index in the ring) --try_acquire()--> in use (bit set)
      ^                 ^                                            |
      |                 +------------------release()-----------------+
      +----------------------------retire()--------------------------+

* The idle slots sit in a fixed-size lock-free MPMC ring (Dmitry Vyukov's bounded
  queue: every cell carries a sequence number that tells producers and consumers
  whose turn it is, so one CAS on a cursor claims a cell).
* Or, for a ring made with ``lifo=True``, a lock-free LIFO stack of them (a
  Treiber stack: a linked list through a per-slot ``links`` array, its head a
  single word whose counter bits change on every update, so a CAS never
  mistakes a head that was popped and pushed back for one that never moved):
  the slot released last is handed out first.
* Two atomic bitmaps, one bit per slot: ``present`` (the slot is in the pool) and
  ``in_use`` (somebody holds it). ``fetch_and``/``fetch_or`` on them are where a
  double release or a retire race is decided: exactly one caller sees the bit
  flip, the other gets an error and nothing changes.

Every operation is a handful of atomic instructions on C memory. The ``fp_*``
functions run without the GIL (the native-thread stress test calls them from
pthreads, through src/fastpool/_fastpool.pxd); the ``SlotRing`` methods are thin wrappers that turn result codes into
exceptions.

Capacity is fixed when the ring is made (the pool sizes it once, generously:
slots are 16 bytes of ring + 2 bits). Growing and shrinking the pool means
adding and retiring slots inside that capacity, which never stops the world.
"""

# The ring's C declarations (fp_ring, result codes, the nogil entry points,
# SlotRing's field, the atomics) are in src/fastpool/_fastpool.pxd, which the
# test-only native-thread stress extension (tests/support/_fastpool_stress.pyx)
# cimports to drive this module's ring from pthreads.
from libc.stdint cimport int64_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memset

cdef extern from "<sched.h>" nogil:
    int sched_yield()

cdef extern from "<stdlib.h>" nogil:
    int posix_memalign(void **memptr, size_t alignment, size_t size)

#: True when built with FASTPOOL_DEBUG=1 (extra invariant checks on every
#: operation): how this extension was compiled, so not shared with the twin.
DEBUG = bool(FASTPOOL_DEBUG)

# The limits and names this core shares with its pure-Python twin, written once
# in fastpool._constants (which imports nothing from fastpool, so no cycle).
#: Largest capacity a ring accepts.
from fastpool._constants import MAX_CAPACITY
cdef Py_ssize_t _MAX_COUNTERS = 0     # most counters in one Counters
cdef tuple _DEBUG_COUNTER_KEYS = ()   # SlotRing.debug_counters() keys, in debug_counts order


cdef int _load_core_constants() except -1:
    global _MAX_COUNTERS, _DEBUG_COUNTER_KEYS
    from fastpool import _constants as shared
    _MAX_COUNTERS = shared.MAX_COUNTERS
    _DEBUG_COUNTER_KEYS = shared.DEBUG_COUNTER_KEYS
    return 0


_load_core_constants()


cdef enum:
    CURSOR_GAP = 8          # 8 * 8 bytes = one 64-byte cache line between the cursors
    LINK_BITS = 21          # bits of a stack link: a slot index + 1 <= MAX_CAPACITY (1 << 20)


cdef uint64_t LINK_MASK = ((<uint64_t>1) << LINK_BITS) - 1
if MAX_CAPACITY >= LINK_MASK:
    raise ImportError(f"fastpool._constants.MAX_CAPACITY {MAX_CAPACITY} does not fit"
                      f" a {LINK_BITS}-bit stack link: raise LINK_BITS")


cdef inline uint64_t _bit(int64_t slot) noexcept nogil:
    return (<uint64_t>1) << (slot & 63)


# ---------------------------------------------------------------------------
# The ring of idle slot indexes (Vyukov bounded MPMC queue)
# ---------------------------------------------------------------------------

cdef bint _ring_looks_full(uint64_t enq_seen, uint64_t deq_seen, uint64_t mask) noexcept nogil:
    """Whether the ring holds more than ``mask`` entries, from the enqueue cursor
    read first and the dequeue cursor read after it (``_ring_really_full``).

    The two reads are not one snapshot: the reader can be preempted between them
    while other threads push and pop, so the dequeue cursor may have moved past
    the enqueue value seen. Subtracting unsigned would then wrap to a huge number
    and report a full ring that is not (CI once saw exactly that: a release
    failed and its slot was lost). Signed, a stale pair can only understate the
    occupancy (enq_seen is older, deq_seen newer), so this never says "full"
    wrongly; a ring that really is full stops moving and is seen as full on a
    later spin."""
    return <int64_t>(enq_seen - deq_seen) > <int64_t>mask


cdef bint _ring_really_full(fp_ring *r, fp_ring_hook between_reads, void *arg) noexcept nogil:
    """``_ring_looks_full`` on the ring's cursors, read in the order it needs.

    Each read is its own statement, not an argument of one call: C leaves the
    order of a call's arguments unspecified, and GCC read the dequeue cursor
    first. A reader preempted between an old dequeue cursor and the enqueue
    cursor after other threads' pushes saw more entries than the ring can
    hold: a release failed and lost its slot. The acquire on the first load
    keeps the second after it. ``between_reads`` is NULL except in a test,
    where it plays the threads that run while the reader is preempted there."""
    cdef uint64_t enq_seen, deq_seen
    enq_seen = fp_load_acquire_u64(&r.cursors[0])
    if between_reads != NULL:
        between_reads(r, arg)
    deq_seen = fp_load_acquire_u64(&r.cursors[CURSOR_GAP])
    return _ring_looks_full(enq_seen, deq_seen, r.mask)


cdef bint _ring_push(fp_ring *r, uint64_t value) noexcept nogil:
    """Enqueue ``value``. Returns False if the ring is full (which the pool's
    bookkeeping makes impossible: the ring holds at least ``capacity`` cells)."""
    cdef uint64_t pos = fp_load_relaxed_u64(&r.cursors[0])
    cdef fp_cell *cell
    cdef uint64_t seq
    cdef int64_t dif
    cdef int spins = 0
    while True:
        cell = &r.cells[pos & r.mask]
        # acquire: pairs with the consumer's release store of seq, so the cell's
        # previous value has been read before we overwrite it.
        seq = fp_load_acquire_u64(&cell.seq)
        dif = <int64_t>seq - <int64_t>pos
        if dif == 0:
            # The cell is free for position ``pos``: claim the position. Relaxed
            # is enough, the cell's seq (acquire above, release below) carries
            # the ordering; a failed CAS reloads ``pos``.
            if fp_cas_weak_relaxed_u64(&r.cursors[0], &pos, pos + 1):
                break
        elif dif < 0:
            # The cell still belongs to a consumer one lap behind that has claimed
            # it but not yet released it (Vyukov's queue reports "full" here). The
            # pool never holds more slots than the ring has cells, so the ring is
            # not really full: wait for that consumer, a few instructions away
            # unless its thread was preempted. Giving up would lose a slot.
            if _ring_really_full(r, NULL, NULL):
                return False    # really full: a bookkeeping bug, reported by the caller
            spins += 1
            if spins < 64:
                fp_cpu_relax()
            else:
                sched_yield()
            pos = fp_load_relaxed_u64(&r.cursors[0])
        else:
            pos = fp_load_relaxed_u64(&r.cursors[0])
    cell.value = value
    # release: publishes ``value`` (and everything the releasing thread did with
    # the slot before returning it) to the consumer that acquires this seq.
    fp_store_release_u64(&cell.seq, pos + 1)
    return True


cdef inline int64_t _ring_pop(fp_ring *r) noexcept nogil:
    """Dequeue the oldest idle index, or FP_EMPTY.

    Like every bounded Vyukov queue this may report empty while a concurrent push
    has claimed its cell but not yet published it; callers treat FP_EMPTY as
    "nothing idle right now", never as proof. It never returns an index twice."""
    cdef uint64_t pos = fp_load_relaxed_u64(&r.cursors[CURSOR_GAP])
    cdef fp_cell *cell
    cdef uint64_t seq
    cdef int64_t dif
    cdef uint64_t value
    while True:
        cell = &r.cells[pos & r.mask]
        # acquire: pairs with the producer's release store, so ``cell.value`` is
        # the value it wrote.
        seq = fp_load_acquire_u64(&cell.seq)
        dif = <int64_t>seq - <int64_t>(pos + 1)
        if dif == 0:
            if fp_cas_weak_relaxed_u64(&r.cursors[CURSOR_GAP], &pos, pos + 1):
                break
        elif dif < 0:
            return FP_EMPTY
        else:
            pos = fp_load_relaxed_u64(&r.cursors[CURSOR_GAP])
    value = cell.value
    # release: our read of ``value`` happens before a producer reuses the cell
    # one lap later (it waits for seq == pos + ring size).
    fp_store_release_u64(&cell.seq, pos + r.mask + 1)
    return <int64_t>value


# ---------------------------------------------------------------------------
# The stack of idle slot indexes (lifo=True): a Treiber stack
# ---------------------------------------------------------------------------
#
# The top word packs the top slot (+ 1, so 0 means empty) with a version that
# every successful CAS increments (43 bits: it would take 2**43 updates while
# one thread sits between its read and its CAS to fool it). Without the
# version, a pop that read top = A, next = B could succeed after others popped
# A and B and pushed A back, installing B, which is no longer idle (ABA).

cdef inline uint64_t _next_top(uint64_t top, uint64_t link) noexcept nogil:
    """The top word after ``top`` with ``link`` (slot + 1, or 0) on top."""
    return (((top >> LINK_BITS) + 1) << LINK_BITS) | link


cdef void _stack_push_chain(fp_ring *r, uint64_t first, uint64_t last) noexcept nogil:
    """Push the chain ``first`` .. ``last`` (links, ``first`` on top, already
    linked to each other) onto the stack; one slot is first == last."""
    cdef uint64_t top = fp_load_relaxed_u64(r.top)
    while True:
        # Relaxed: the CAS below (release) publishes it with the slot's state.
        fp_store_relaxed_u64(&r.links[last - 1], top & LINK_MASK)
        if fp_cas_acq_rel_u64(r.top, &top, _next_top(top, first)):
            return


cdef inline void _stack_push(fp_ring *r, uint64_t slot) noexcept nogil:
    _stack_push_chain(r, slot + 1, slot + 1)


cdef int64_t _stack_pop(fp_ring *r) noexcept nogil:
    """Pop the idle index released last, or FP_EMPTY."""
    cdef uint64_t top = fp_load_acquire_u64(r.top)
    cdef uint64_t first
    while True:
        first = top & LINK_MASK
        if first == 0:
            return FP_EMPTY
        # The link may be stale (``first`` popped and pushed again meanwhile):
        # then the top word's version has moved and the CAS fails. The array
        # is never freed while the ring lives, so the read itself is safe.
        if fp_cas_acq_rel_u64(r.top, &top,
                              _next_top(top, fp_load_relaxed_u64(&r.links[first - 1]))):
            return <int64_t>first - 1


cdef int64_t _stack_pop_bottom(fp_ring *r) noexcept nogil:
    """Take the idle index released longest ago (the bottom), or FP_EMPTY.

    A stack can't unlink its bottom in place: this detaches the whole chain
    (one CAS; from then on nobody else can reach those slots, and they are in
    nobody's hands, so their links can't change), walks it privately, and puts
    all but the bottom back in the same order. A checkout in between finds the
    stack empty, or holding only slots returned meanwhile; those stay on top
    of the older ones put back, so the order by last use holds. Maintenance
    only (max_idle shrinking, the expiry sweep, check, drain), never the hot
    path: O(idle slots)."""
    cdef uint64_t top = fp_load_acquire_u64(r.top)
    cdef uint64_t first, last, cur, nxt, above, newer
    while True:
        if top & LINK_MASK == 0:
            return FP_EMPTY
        if fp_cas_acq_rel_u64(r.top, &top, _next_top(top, 0)):
            break
    first = top & LINK_MASK
    above = 0
    cur = first
    while True:
        nxt = fp_load_relaxed_u64(&r.links[cur - 1])
        if nxt == 0:
            break
        above = cur
        cur = nxt
    if above == 0:
        return <int64_t>cur - 1           # it was alone
    last = above                          # the chain first .. last goes back
    top = fp_load_acquire_u64(r.top)
    while True:
        if top & LINK_MASK == 0:
            fp_store_relaxed_u64(&r.links[last - 1], 0)
            if fp_cas_acq_rel_u64(r.top, &top, _next_top(top, first)):
                return <int64_t>cur - 1
        elif fp_cas_acq_rel_u64(r.top, &top, _next_top(top, 0)):
            # Slots were returned meanwhile: detach them too and put them on
            # top of the chain (they were used last). Each round takes slots
            # that were in use when this began, so the rounds are few.
            newer = top & LINK_MASK
            nxt = newer
            while fp_load_relaxed_u64(&r.links[nxt - 1]) != 0:
                nxt = fp_load_relaxed_u64(&r.links[nxt - 1])
            fp_store_relaxed_u64(&r.links[nxt - 1], first)
            first = newer
            top = fp_load_acquire_u64(r.top)


# ---------------------------------------------------------------------------
# Slot operations: the nogil entry points
# ---------------------------------------------------------------------------

cdef int64_t fp_try_acquire(fp_ring *r) noexcept nogil:
    """Take an idle slot: its index (>= 0), FP_EMPTY, or FP_BROKEN."""
    return _mark_acquired(r, _stack_pop(r) if r.lifo else _ring_pop(r))


cdef int64_t fp_try_acquire_oldest(fp_ring *r) noexcept nogil:
    """Take the idle slot released longest ago: the same as fp_try_acquire
    for a FIFO ring; the bottom of a LIFO stack."""
    return _mark_acquired(r, _stack_pop_bottom(r) if r.lifo else _ring_pop(r))


cdef inline int64_t _mark_acquired(fp_ring *r, int64_t slot) noexcept nogil:
    """Mark a slot just taken from the idle slots as in use."""
    cdef uint64_t prev
    if slot < 0:
        return slot
    if FASTPOOL_DEBUG:
        if not (fp_load_acquire_u64(&r.present[slot >> 6]) & _bit(slot)):
            return FP_BROKEN
        fp_fetch_add_relaxed_i64(&r.debug_counts[0], 1)
    # acq_rel: the bit is set after the dequeue made the index ours, and it is
    # what a later release() (possibly on another thread) clears.
    prev = fp_fetch_or_acq_rel_u64(&r.in_use[slot >> 6], _bit(slot))
    if prev & _bit(slot):
        # An index in the ring must be idle: the ring handed out a held slot.
        return FP_BROKEN
    return slot


cdef int fp_release(fp_ring *r, int64_t slot) noexcept nogil:
    """Return a held slot to the idle ring."""
    cdef uint64_t prev
    if slot < 0 or slot >= r.capacity:
        return FP_OUT_OF_RANGE
    if not (fp_load_acquire_u64(&r.present[slot >> 6]) & _bit(slot)):
        return FP_NOT_IN_POOL
    # The CAS-like decision point: of two threads releasing the same slot, only
    # one sees the bit set. acq_rel: the holder's use of the slot happens-before
    # the clear, and the clear happens-before the push below publishes the index.
    prev = fp_fetch_and_acq_rel_u64(&r.in_use[slot >> 6], ~_bit(slot))
    if not (prev & _bit(slot)):
        return FP_NOT_IN_USE
    if FASTPOOL_DEBUG:
        fp_fetch_add_relaxed_i64(&r.debug_counts[1], 1)
    return _push_idle(r, <uint64_t>slot)


cdef inline int _push_idle(fp_ring *r, uint64_t slot) noexcept nogil:
    """Make a slot idle: on top of the stack, or at the end of the ring."""
    if r.lifo:
        _stack_push(r, slot)
        return FP_OK
    if not _ring_push(r, slot):
        return FP_BROKEN
    return FP_OK


cdef int64_t fp_add(fp_ring *r, bint acquired) noexcept nogil:
    """Bring the lowest absent slot into the pool. Returns its index or FP_FULL.

    With ``acquired`` the new slot comes back already held (a freshly made
    connection handed straight to a waiter skips the ring); otherwise it is idle.
    """
    cdef int64_t w
    cdef uint64_t word, free_bits, bit
    cdef int64_t slot
    cdef int64_t last_bits = r.capacity - (r.nwords - 1) * 64
    for w in range(r.nwords):
        word = fp_load_acquire_u64(&r.present[w])
        while True:
            free_bits = ~word
            if w == r.nwords - 1 and last_bits < 64:
                free_bits &= ((<uint64_t>1) << last_bits) - 1
            if free_bits == 0:
                break
            bit = free_bits & (~free_bits + 1)          # lowest absent slot in this word
            # Claim it: a CAS, not fetch_or, so two adders never claim the same slot.
            if fp_cas_acq_rel_u64(&r.present[w], &word, word | bit):
                slot = w * 64 + fp_ctz_u64(bit)
                if FASTPOOL_DEBUG:
                    fp_fetch_add_relaxed_i64(&r.debug_counts[2], 1)
                if acquired:
                    if fp_fetch_or_acq_rel_u64(&r.in_use[w], bit) & bit:
                        return FP_BROKEN    # an absent slot was marked in use
                    return slot
                if FASTPOOL_DEBUG:
                    if fp_load_acquire_u64(&r.in_use[w]) & bit:
                        return FP_BROKEN
                if _push_idle(r, <uint64_t>slot) != FP_OK:
                    return FP_BROKEN
                return slot
            # CAS failed: ``word`` now holds the current value, look again.
    return FP_FULL


cdef int fp_retire(fp_ring *r, int64_t slot) noexcept nogil:
    """Take a held slot out of the pool (its connection is being closed)."""
    if slot < 0 or slot >= r.capacity:
        return FP_OUT_OF_RANGE
    if not (fp_load_acquire_u64(&r.present[slot >> 6]) & _bit(slot)):
        return FP_NOT_IN_POOL
    # Same decision point as release: only the holder's call sees the bit set.
    if not (fp_fetch_and_acq_rel_u64(&r.in_use[slot >> 6], ~_bit(slot)) & _bit(slot)):
        return FP_NOT_IN_USE
    if FASTPOOL_DEBUG:
        fp_fetch_add_relaxed_i64(&r.debug_counts[3], 1)
    # release (in acq_rel): the slot is absent only after it stopped being in use;
    # an add() that reclaims it sees both bits clear.
    fp_fetch_and_acq_rel_u64(&r.present[slot >> 6], ~_bit(slot))
    return FP_OK


cdef int64_t _popcount_words(const uint64_t *words, int64_t nwords) noexcept nogil:
    cdef int64_t n = 0, w
    for w in range(nwords):
        n += fp_popcount_u64(fp_load_relaxed_u64(&words[w]))
    return n


# ---------------------------------------------------------------------------
# Python wrapper
# ---------------------------------------------------------------------------

cdef object _internal_error_class():
    from fastpool.errors import PoolInternalError
    return PoolInternalError


cdef inline int64_t _as_slot(str op, object slot) except? -1:
    # Same check and message as the pure-Python twin.
    if type(slot) is not int and not isinstance(slot, int):
        raise TypeError(f"{op}: slot must be an int, got {type(slot).__name__}")
    if slot < 0 or slot >= MAX_CAPACITY:
        return -1 if slot < 0 else MAX_CAPACITY
    return slot


cdef int _raise_for(int code, str op, object slot, int64_t capacity) except -1:
    if code == FP_OUT_OF_RANGE:
        raise IndexError(f"{op}: slot {slot} is out of range for capacity {capacity}")
    if code == FP_NOT_IN_POOL:
        raise ValueError(f"{op}: slot {slot} is not in the pool")
    if code == FP_NOT_IN_USE:
        raise ValueError(f"{op}: slot {slot} is not in use")
    if code == FP_FULL:
        raise ValueError(f"{op}: all {capacity} slots are already in the pool")
    raise _internal_error_class()(f"{op}: ring invariant broken (code {code})")


cdef class SlotRing:
    """A fixed-capacity set of slots: lock-free ring of idle indexes plus atomic
    in-use bitmap. See the module docstring for the state diagram. (Its C
    field is declared in src/fastpool/_fastpool.pxd.)"""

    def __cinit__(self, capacity, *, lifo=False):
        if type(capacity) is not int and not isinstance(capacity, int) or isinstance(capacity, bool):
            raise TypeError(f"capacity must be an int, got {type(capacity).__name__}")
        if not 1 <= capacity <= MAX_CAPACITY:
            raise ValueError(f"capacity must be between 1 and {MAX_CAPACITY}, got {capacity}")
        if type(lifo) is not bool:
            raise TypeError(f"lifo must be True or False, got {type(lifo).__name__}")
        cdef int64_t cap = capacity
        # Ring size: a power of two (index by mask) of at least twice the capacity,
        # so a producer rarely meets a cell a slow consumer has not yet freed.
        cdef uint64_t size = 2
        while <int64_t>size < 2 * cap:
            size <<= 1
        memset(&self.r, 0, sizeof(fp_ring))
        self.r.capacity = cap
        self.r.mask = size - 1
        self.r.nwords = (cap + 63) // 64
        self.r.cells = <fp_cell *>calloc(size, sizeof(fp_cell))
        self.r.present = <uint64_t *>calloc(self.r.nwords, sizeof(uint64_t))
        self.r.in_use = <uint64_t *>calloc(self.r.nwords, sizeof(uint64_t))
        self.r.debug_counts = <int64_t *>calloc(4, sizeof(int64_t))
        cdef void *cursors = NULL
        if posix_memalign(&cursors, FP_CACHE_LINE, 2 * CURSOR_GAP * sizeof(uint64_t)) != 0:
            cursors = NULL
        self.r.cursors = <uint64_t *>cursors
        # The stack's top word gets a cache line of its own, as the cursors do.
        cdef void *top = NULL
        if posix_memalign(&top, FP_CACHE_LINE, FP_CACHE_LINE) != 0:
            top = NULL
        self.r.top = <uint64_t *>top
        self.r.links = <uint64_t *>calloc(cap, sizeof(uint64_t))
        self.r.lifo = lifo
        if (self.r.cells == NULL or self.r.present == NULL or self.r.in_use == NULL
                or self.r.debug_counts == NULL or self.r.cursors == NULL
                or self.r.top == NULL or self.r.links == NULL):
            raise MemoryError()
        memset(self.r.cursors, 0, 2 * CURSOR_GAP * sizeof(uint64_t))
        memset(self.r.top, 0, FP_CACHE_LINE)
        cdef uint64_t i
        for i in range(size):
            self.r.cells[i].seq = i

    def __dealloc__(self):
        free(self.r.cells)
        free(self.r.present)
        free(self.r.in_use)
        free(self.r.debug_counts)
        free(self.r.cursors)
        free(self.r.top)
        free(self.r.links)

    @property
    def capacity(self) -> int:
        """Number of slot indexes, 0 .. capacity-1."""
        return self.r.capacity

    @property
    def lifo(self) -> bool:
        """True: try_acquire() takes the slot released last; False: the one
        released longest ago (FIFO)."""
        return self.r.lifo

    def try_acquire(self) -> int:
        """Take an idle slot and mark it in use. Returns its index, or -1 if none is
        idle right now (never blocks, never hands one slot to two callers)."""
        cdef int64_t slot = fp_try_acquire(&self.r)
        if slot >= 0 or slot == FP_EMPTY:
            return slot
        _raise_for(<int>slot, "try_acquire", None, self.r.capacity)

    def try_acquire_oldest(self) -> int:
        """Take the idle slot released longest ago, as try_acquire() does in a
        FIFO ring; in a LIFO one, the bottom of the stack (for maintenance
        that must visit idle slots oldest first: it costs O(idle slots))."""
        cdef int64_t slot = fp_try_acquire_oldest(&self.r)
        if slot >= 0 or slot == FP_EMPTY:
            return slot
        _raise_for(<int>slot, "try_acquire_oldest", None, self.r.capacity)

    def release(self, slot) -> None:
        """Give a held slot back. Releasing a slot that is not held raises
        ValueError (IndexError outside the capacity) and changes nothing."""
        cdef int64_t s = _as_slot("release", slot)
        cdef int code = fp_release(&self.r, s)
        if code != FP_OK:
            _raise_for(code, "release", slot, self.r.capacity)

    def add(self, *, bint acquired=False) -> int:
        """Bring the lowest absent slot into the pool and return its index: idle,
        or already held by the caller with ``acquired=True``. ValueError if all
        ``capacity`` slots are in the pool."""
        cdef int64_t slot = fp_add(&self.r, acquired)
        if slot < 0:
            _raise_for(<int>slot, "add", None, self.r.capacity)
        return slot

    def retire(self, slot) -> None:
        """Take a slot the caller holds out of the pool (its index becomes free
        for add()). To retire an idle slot, try_acquire() it first: that is how
        maintenance claims a slot without racing a checkout."""
        cdef int64_t s = _as_slot("retire", slot)
        cdef int code = fp_retire(&self.r, s)
        if code != FP_OK:
            _raise_for(code, "retire", slot, self.r.capacity)

    def idle_count(self) -> int:
        """Slots waiting in the ring (a snapshot; exact when no call is in flight)."""
        cdef int64_t n
        if self.r.lifo:
            # A stack keeps no count (it would cost the hot path an atomic):
            # the slots in the pool that nobody holds.
            n = (_popcount_words(self.r.present, self.r.nwords)
                 - _popcount_words(self.r.in_use, self.r.nwords))
        else:
            n = <int64_t>(fp_load_relaxed_u64(&self.r.cursors[0])
                          - fp_load_relaxed_u64(&self.r.cursors[CURSOR_GAP]))
        return n if n > 0 else 0

    def in_use_count(self) -> int:
        """Slots currently held (a snapshot)."""
        return _popcount_words(self.r.in_use, self.r.nwords)

    def size(self) -> int:
        """Slots in the pool, idle or held (a snapshot)."""
        return _popcount_words(self.r.present, self.r.nwords)

    def is_in_use(self, slot) -> bool:
        cdef int64_t s = _as_slot("is_in_use", slot)
        if s < 0 or s >= self.r.capacity:
            _raise_for(FP_OUT_OF_RANGE, "is_in_use", slot, self.r.capacity)
        return bool(fp_load_acquire_u64(&self.r.in_use[s >> 6]) & _bit(s))

    def in_use(self) -> list:
        """Indexes of the held slots, ascending (a snapshot: for leak scans)."""
        cdef list out = []
        cdef int64_t w
        cdef uint64_t word
        for w in range(self.r.nwords):
            word = fp_load_acquire_u64(&self.r.in_use[w])
            while word:
                out.append(w * 64 + fp_ctz_u64(word))
                word &= word - 1
        return out

    def idle(self) -> list:
        """Indexes in the ring, oldest first (released longest ago; the next
        try_acquire() takes the first of a FIFO ring, the last of a LIFO one).
        Only meaningful when no other thread is using the ring (tests and
        debugging)."""
        cdef list out = []
        cdef uint64_t pos, end, link
        if self.r.lifo:
            link = fp_load_acquire_u64(self.r.top) & LINK_MASK
            # Bounded, so a corrupt link shows as a duplicate in
            # check_invariants() instead of looping for ever.
            while link != 0 and len(out) <= self.r.capacity:
                out.append(<int64_t>link - 1)
                link = fp_load_relaxed_u64(&self.r.links[link - 1])
            out.reverse()
            return out
        pos = fp_load_acquire_u64(&self.r.cursors[CURSOR_GAP])
        end = fp_load_acquire_u64(&self.r.cursors[0])
        while pos < end:
            out.append(<int64_t>self.r.cells[pos & self.r.mask].value)
            pos += 1
        return out

    def check_invariants(self) -> None:
        """Verify the books while the ring is quiescent; raise PoolInternalError
        naming what is wrong. Cheap enough for test teardown."""
        idle = self.idle()
        held = self.in_use()
        n_present = self.size()
        problems = []
        if len(set(idle)) != len(idle):
            problems.append(f"an index is in the ring twice: {sorted(idle)}")
        both = set(idle) & set(held)
        if both:
            problems.append(f"slots both idle and in use: {sorted(both)}")
        for s in idle:
            if not fp_load_acquire_u64(&self.r.present[s >> 6]) & _bit(s):
                problems.append(f"slot {s} is in the ring but not in the pool")
        for s in held:
            if not fp_load_acquire_u64(&self.r.present[s >> 6]) & _bit(s):
                problems.append(f"slot {s} is in use but not in the pool")
        if len(idle) + len(held) != n_present:
            problems.append(
                f"idle {len(idle)} + in use {len(held)} != slots in the pool {n_present}")
        if problems:
            raise _internal_error_class()("check_invariants: " + "; ".join(problems))

    def debug_counters(self) -> dict:
        """Operation counts (acquires, releases, adds, retires); zeros unless the
        core was built with FASTPOOL_DEBUG=1."""
        return dict(zip(_DEBUG_COUNTER_KEYS,
                        [fp_load_relaxed_i64(&self.r.debug_counts[i]) for i in range(4)]))

    def __repr__(self):
        return (f"<SlotRing capacity={self.r.capacity} size={self.size()} "
                f"idle={self.idle_count()} in_use={self.in_use_count()}>")


# ---------------------------------------------------------------------------
# Statistics counters
# ---------------------------------------------------------------------------

cdef extern from *:
    """
    static inline int64_t fp_exchange_relaxed_i64(int64_t *p, int64_t v) {
        return __atomic_exchange_n(p, v, __ATOMIC_RELAXED);
    }
    """
    int64_t fp_exchange_relaxed_i64(int64_t *p, int64_t v) nogil


cdef class Counters:
    """A fixed number of int64 counters updated with relaxed atomic adds.

    Pool statistics are bumped from every thread on the hot path; a Python
    ``+=`` there loses increments under free-threading (and allocates). Relaxed
    is enough: each counter is independent and only needs to be exact, not
    ordered against anything else."""

    cdef int64_t *values
    cdef readonly Py_ssize_t n

    def __cinit__(self, n):
        if type(n) is not int or n < 1 or n > _MAX_COUNTERS:
            raise ValueError(f"n must be an int between 1 and {_MAX_COUNTERS}, got {n!r}")
        self.n = n
        self.values = <int64_t *>calloc(n, sizeof(int64_t))
        if self.values == NULL:
            raise MemoryError()

    def __dealloc__(self):
        free(self.values)

    def add(self, Py_ssize_t i, int64_t delta=1) -> None:
        if i < 0 or i >= self.n:
            raise IndexError(f"counter {i} out of range for {self.n} counters")
        fp_fetch_add_relaxed_i64(&self.values[i], delta)

    def add2(self, Py_ssize_t i, int64_t delta_i, Py_ssize_t j, int64_t delta_j) -> None:
        """Two adds for the price of one call (a histogram bucket and its sum)."""
        if i < 0 or i >= self.n or j < 0 or j >= self.n:
            raise IndexError(f"counter {i} or {j} out of range for {self.n} counters")
        fp_fetch_add_relaxed_i64(&self.values[i], delta_i)
        fp_fetch_add_relaxed_i64(&self.values[j], delta_j)

    def get(self, Py_ssize_t i) -> int:
        if i < 0 or i >= self.n:
            raise IndexError(f"counter {i} out of range for {self.n} counters")
        return fp_load_relaxed_i64(&self.values[i])

    def snapshot(self) -> list:
        return [fp_load_relaxed_i64(&self.values[i]) for i in range(self.n)]

    def pop(self) -> list:
        """Read and zero every counter; an increment lands either in the value
        returned or in the next one, never in neither."""
        return [fp_exchange_relaxed_i64(&self.values[i], 0) for i in range(self.n)]


# ---------------------------------------------------------------------------
# ConnectionPool's checkout/return fast path
# ---------------------------------------------------------------------------

include "_pool_hotpath.pxi"
