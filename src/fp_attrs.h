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

/* obj.name where the shortcut applies (a borrowed reference), else NULL: the
 * caller reads it the generic way (NULL is no error). */
static inline PyObject *fp_attr_peek(PyObject *obj, fp_attr *a, PyObject *name) {
#ifdef FP_ATTR_SHORTCUT
    PyObject **slot = fp_attr_slot(obj, a, name);
    return slot != NULL ? *slot : NULL;
#else
    (void)obj; (void)a; (void)name;
    return NULL;
#endif
}

/* obj.name = value where the shortcut applies and obj already has the
 * attribute (as STORE_ATTR_INSTANCE_VALUE: the new value in, then the old one
 * released): 1; else 0, nothing done: the caller sets it the generic way. */
static inline int fp_attr_poke(PyObject *obj, fp_attr *a, PyObject *name, PyObject *value) {
#ifdef FP_ATTR_SHORTCUT
    PyObject **slot = fp_attr_slot(obj, a, name);
    if (slot != NULL) {
        PyObject *old = *slot;
        Py_INCREF(value);
        *slot = value;
        Py_DECREF(old);
        return 1;
    }
#else
    (void)obj; (void)a; (void)name; (void)value;
#endif
    return 0;
}

#endif /* FASTPOOL_FP_ATTRS_H */
