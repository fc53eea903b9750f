/* Exact shortcuts for the few attributes the hot path reads and writes on a
 * connection, a plain Python object (psycopg's Connection: conn._pool at
 * checkout and return, _tpc and _num_transactions before a return).
 *
 * A generic attribute access looks the name up in the class's MRO (for a
 * descriptor), then in the instance's attribute values: about 180
 * instructions each. CPython's own specialising interpreter does these
 * accesses in a handful of instructions (LOAD_ATTR_INSTANCE_VALUE,
 * STORE_ATTR_INSTANCE_VALUE in CPython 3.11's ceval.c) with two guards: the
 * class's version tag, which any change to the class or a base bumps (so "no
 * descriptor of that name, generic getattr/setattr" stays true while it
 * matches), and the instance still keeping its attributes as an array of
 * values indexed like the class's shared keys (not a materialised __dict__).
 * These helpers take the same decisions with the same guards, once per
 * access; where a guard fails they say so and the caller takes the generic
 * path (PyObject_GetAttr/SetAttr), which is always right.
 *
 * The layout of an instance's values is private to CPython and changes from
 * one minor version to the next, so the shortcut exists only for the
 * versions written here (3.11, with the GIL); elsewhere every access is
 * generic. A cache (fp_attr) is one name on one class: its version tag when
 * filled and the name's index in the class's shared keys (-1: the shortcut
 * doesn't apply to this class).
 */
#ifndef FASTPOOL_FP_ATTRS_H
#define FASTPOOL_FP_ATTRS_H

#include <Python.h>

typedef struct {
    PyTypeObject *type;     /* not a reference: compared, never dereferenced */
    unsigned int version;   /* type's tp_version_tag when filled; 0: empty */
    Py_ssize_t index;       /* the name's index in the values; -1: generic */
} fp_attr;

#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000 \
    && !defined(Py_GIL_DISABLED) && !defined(PYPY_VERSION) && !defined(Py_LIMITED_API)
#define FP_ATTR_SHORTCUT 1

/* CPython 3.11's Include/internal/pycore_dict.h: the shared keys of a class
 * with Py_TPFLAGS_MANAGED_DICT (ht_cached_keys). Keys are only ever appended
 * to them and they live as long as the class, so an index found once stays
 * the name's index. */
typedef struct {
    Py_ssize_t dk_refcnt;
    uint8_t dk_log2_size;
    uint8_t dk_log2_index_bytes;
    uint8_t dk_kind;
    uint32_t dk_version;
    Py_ssize_t dk_usable;
    Py_ssize_t dk_nentries;
    char dk_indices[];
} fp_keys311;

#define FP_DICT_KEYS_SPLIT 2

/* pycore_object.h's _PyObject_ValuesPointer: the instance's values array
 * (NULL once its __dict__ has been materialised), a PyObject *[] indexed like
 * the shared keys, NULL where the instance has no such attribute. */
static inline PyObject **fp_instance_values(PyObject *obj) {
    return ((PyObject ***)obj)[-4];
}

/* Fill `a` for `tp` and `name` (a str): the name's index where the shortcut
 * applies, else -1. Writes `a` only at the end (no Python code runs in
 * between, so under the GIL no other thread sees a half-written cache). */
static void fp_attr_fill(fp_attr *a, PyTypeObject *tp, PyObject *name) {
    Py_ssize_t index = -1;
    if ((tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) && (tp->tp_flags & Py_TPFLAGS_HEAPTYPE)
            && tp->tp_getattro == PyObject_GenericGetAttr
            && tp->tp_setattro == PyObject_GenericSetAttr
            && PyUnicode_CheckExact(name)
            && _PyType_Lookup(tp, name) == NULL  /* (also gives tp a version tag) */
            && !PyErr_Occurred()
            && (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) && tp->tp_version_tag != 0) {
        fp_keys311 *keys = (fp_keys311 *)((PyHeapTypeObject *)tp)->ht_cached_keys;
        if (keys != NULL && keys->dk_kind == FP_DICT_KEYS_SPLIT) {
            /* DK_UNICODE_ENTRIES: {key, value} pairs after the hash table */
            PyObject **entries = (PyObject **)(keys->dk_indices
                                               + ((size_t)1 << keys->dk_log2_index_bytes));
            for (Py_ssize_t i = 0; i < keys->dk_nentries; i++) {
                PyObject *key = entries[2 * i];
                if (key == name || (key != NULL && PyUnicode_CheckExact(key)
                                    && PyUnicode_Compare(key, name) == 0)) {
                    index = i;
                    break;
                }
            }
        }
    }
    a->type = tp;
    a->version = (tp->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG) ? tp->tp_version_tag : 0;
    a->index = a->version != 0 ? index : -1;
}

/* The slot of `name` in obj's values (address of the value pointer, which is
 * not NULL), or NULL: take the generic path. */
static inline PyObject **fp_attr_slot(PyObject *obj, fp_attr *a, PyObject *name) {
    PyTypeObject *tp = Py_TYPE(obj);
    if (tp != a->type || tp->tp_version_tag != a->version || a->version == 0) {
        fp_attr_fill(a, tp, name);
    }
    if (a->index >= 0 && tp->tp_version_tag == a->version) {
        PyObject **values = fp_instance_values(obj);
        if (values != NULL && values[a->index] != NULL) {
            return &values[a->index];
        }
    }
    return NULL;
}

#endif

/* The generic ways: out of line where the shortcut exists (the hot path
 * keeps only the shortcut inline), inline where it doesn't (as a plain
 * getattr/setattr in the caller would be). */
#if defined(_MSC_VER)
#define FP_NOINLINE __declspec(noinline)
#define FP_ALWAYS_INLINE __forceinline
#elif defined(__GNUC__) || defined(__clang__)
#define FP_NOINLINE __attribute__((noinline))
#define FP_ALWAYS_INLINE inline __attribute__((always_inline))
#else  /* (any other C99 compiler: only hints are lost) */
#define FP_NOINLINE
#define FP_ALWAYS_INLINE inline
#endif
#ifdef FP_ATTR_SHORTCUT
#define FP_GENERIC static FP_NOINLINE
#else
#define FP_GENERIC static FP_ALWAYS_INLINE
#endif
#define FP_SHORTCUT static FP_ALWAYS_INLINE

/* getattr(obj, name, dflt): a new reference, NULL with an exception set */
FP_GENERIC PyObject *fp_getattr_generic(PyObject *obj, PyObject *name, PyObject *dflt) {
    PyObject *value;
#if PY_VERSION_HEX >= 0x030D0000
    if (PyObject_GetOptionalAttr(obj, name, &value) < 0) return NULL;
#else
    if (_PyObject_LookupAttr(obj, name, &value) < 0) return NULL;
#endif
    if (value == NULL) {
        Py_INCREF(dflt);
        value = dflt;
    }
    return value;
}

FP_GENERIC int fp_attr_is_generic(PyObject *obj, PyObject *name, PyObject *dflt,
                                  PyObject *expected) {
    PyObject *value = fp_getattr_generic(obj, name, dflt);
    if (value == NULL) return -1;
    int is = value == expected;
    Py_DECREF(value);
    return is;
}

FP_GENERIC int fp_attr_true_generic(PyObject *obj, PyObject *name, PyObject *dflt) {
    PyObject *value = fp_getattr_generic(obj, name, dflt);
    if (value == NULL) return -1;
    int true_ = PyObject_IsTrue(value);
    Py_DECREF(value);
    return true_;
}

/* getattr(obj, name, dflt) is expected: 1 or 0; -1 with an exception set */
FP_SHORTCUT int fp_attr_is(PyObject *obj, fp_attr *a, PyObject *name, PyObject *dflt,
                           PyObject *expected) {
#ifdef FP_ATTR_SHORTCUT
    PyObject **slot = fp_attr_slot(obj, a, name);
    if (slot != NULL) return *slot == expected;
#else
    (void)a;
#endif
    return fp_attr_is_generic(obj, name, dflt, expected);
}

/* bool(getattr(obj, name, dflt)): 1 or 0; -1 with an exception set */
FP_SHORTCUT int fp_attr_true(PyObject *obj, fp_attr *a, PyObject *name, PyObject *dflt) {
#ifdef FP_ATTR_SHORTCUT
    PyObject **slot = fp_attr_slot(obj, a, name);
    if (slot != NULL) {
        PyObject *value = *slot;
        /* (an int is true where it has digits: its ob_size, on 3.11) */
        if (PyLong_CheckExact(value)) return Py_SIZE(value) != 0;
        return PyObject_IsTrue(value);
    }
#else
    (void)a;
#endif
    return fp_attr_true_generic(obj, name, dflt);
}

/* setattr(obj, name, value), name an interned str: 0; -1 with an exception
 * set. The shortcut only
 * replaces a value the instance already has (as STORE_ATTR_INSTANCE_VALUE:
 * the new value in, then the old one released). */
FP_SHORTCUT int fp_attr_set(PyObject *obj, fp_attr *a, PyObject *name, PyObject *value) {
#ifdef FP_ATTR_SHORTCUT
    PyObject **slot = fp_attr_slot(obj, a, name);
    if (slot != NULL) {
        PyObject *old = *slot;
        Py_INCREF(value);
        *slot = value;
        Py_DECREF(old);
        return 0;
    }
#else
    (void)a;
#endif
    /* (name is an interned str, so its type's slot directly, as Cython does:
     * PyObject_SetAttr would intern it again on every call) */
    setattrofunc setattro = Py_TYPE(obj)->tp_setattro;
    if (setattro != NULL) return setattro(obj, name, value);
    return PyObject_SetAttr(obj, name, value);
}

#endif /* FASTPOOL_FP_ATTRS_H */
