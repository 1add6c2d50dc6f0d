/* Per-fingerprint statement accounting, in C: the one piece of monitoring that runs for every
 * statement. engine/stats.py holds the same in Python (used when this module is not built) and
 * the reference for what each figure means; tests/engine/test_accounting.py holds both to the
 * same answers.
 *
 * An Accumulator belongs to one session's thread, which alone adds to it; readers add
 * accumulators up. Everything here runs holding the GIL, so a reader never sees half a call.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <math.h>
#include <stdint.h>

/* Log-spaced latency buckets, as engine/stats.py defines them: 16 per doubling from 1 us. */
#define PER_DOUBLING 16
#define MIN_MS 0.001
#define BUCKETS (40 * PER_DOUBLING)
#define SLACK 4 /* buckets added on each side when the window grows */

typedef struct {
    PyObject_HEAD
    PyObject *sql;
    long long calls, rows, written, errors;
    double total_ms, min_ms, max_ms, cpu_ms, first_seen, last_end;
    /* a window [lo, lo + n) of the histogram: one fingerprint's latencies span few buckets */
    uint64_t *counts;
    int lo, n;
} Accumulator;

static PyTypeObject AccumulatorType;

static int
bucket_of(double ms)
{
    if (!(ms > MIN_MS)) /* also NaN, which Python's figures never are */
        return 0;
    int b = (int)(log2(ms * (1.0 / MIN_MS)) * PER_DOUBLING);
    return b < BUCKETS ? b : BUCKETS - 1;
}

/* Make room for bucket b in the window; -1 with MemoryError set when it cannot. */
static int
reach(Accumulator *a, int b)
{
    if (a->n && b >= a->lo && b < a->lo + a->n)
        return 0;
    int lo = a->n ? (b < a->lo ? b : a->lo) : b;
    int hi = a->n ? (b >= a->lo + a->n ? b + 1 : a->lo + a->n) : b + 1;
    lo = lo - SLACK < 0 ? 0 : lo - SLACK;
    hi = hi + SLACK > BUCKETS ? BUCKETS : hi + SLACK;
    uint64_t *counts = PyMem_Calloc((size_t)(hi - lo), sizeof(uint64_t));
    if (counts == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (a->n)
        memcpy(counts + (a->lo - lo), a->counts, (size_t)a->n * sizeof(uint64_t));
    PyMem_Free(a->counts);
    a->counts = counts;
    a->lo = lo;
    a->n = hi - lo;
    return 0;
}

static int
Accumulator_init(Accumulator *self, PyObject *args, PyObject *kwds)
{
    static char *names[] = {"sql", "first_seen", NULL};
    PyObject *sql;
    double first_seen;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "Ud", names, &sql, &first_seen))
        return -1;
    Py_INCREF(sql);
    Py_XSETREF(self->sql, sql);
    self->calls = self->rows = self->written = self->errors = 0;
    self->total_ms = self->max_ms = self->cpu_ms = 0.0;
    self->min_ms = INFINITY;
    self->first_seen = self->last_end = first_seen;
    PyMem_Free(self->counts);
    self->counts = NULL;
    self->lo = self->n = 0;
    return 0;
}

static void
Accumulator_dealloc(Accumulator *self)
{
    Py_XDECREF(self->sql);
    PyMem_Free(self->counts);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
Accumulator_hist(Accumulator *self, void *closure)
{
    PyObject *out = PyDict_New();
    if (out == NULL)
        return NULL;
    for (int i = 0; i < self->n; i++) {
        if (!self->counts[i])
            continue;
        PyObject *k = PyLong_FromLong(self->lo + i);
        PyObject *v = PyLong_FromUnsignedLongLong(self->counts[i]);
        if (k == NULL || v == NULL || PyDict_SetItem(out, k, v) < 0) {
            Py_XDECREF(k);
            Py_XDECREF(v);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(k);
        Py_DECREF(v);
    }
    return out;
}

static PyObject *
Accumulator_merge(Accumulator *self, PyObject *arg)
{
    if (!PyObject_TypeCheck(arg, &AccumulatorType)) {
        PyErr_Format(PyExc_TypeError, "merge() takes an Accumulator, not %.100s", Py_TYPE(arg)->tp_name);
        return NULL;
    }
    Accumulator *o = (Accumulator *)arg;
    if (o->n) { /* first: a failed allocation must leave self as it was */
        if (reach(self, o->lo) < 0 || reach(self, o->lo + o->n - 1) < 0)
            return NULL;
        for (int i = 0; i < o->n; i++)
            self->counts[o->lo + i - self->lo] += o->counts[i];
    }
    self->calls += o->calls;
    self->rows += o->rows;
    self->written += o->written;
    self->errors += o->errors;
    self->total_ms += o->total_ms;
    self->cpu_ms += o->cpu_ms;
    if (o->min_ms < self->min_ms)
        self->min_ms = o->min_ms;
    if (o->max_ms > self->max_ms)
        self->max_ms = o->max_ms;
    if (o->first_seen < self->first_seen)
        self->first_seen = o->first_seen;
    if (o->last_end > self->last_end)
        self->last_end = o->last_end;
    Py_RETURN_NONE;
}

/* record_call(accs, key, ms, cpu_ms, rows, written, failed, started_at) -> bool */
static PyObject *
record_call(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8) {
        PyErr_Format(PyExc_TypeError, "record_call() takes 8 arguments (%zd given)", nargs);
        return NULL;
    }
    if (!PyDict_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "record_call(): accs must be a dict");
        return NULL;
    }
    PyObject *found = PyDict_GetItemWithError(args[0], args[1]); /* borrowed */
    if (found == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_FALSE;
    }
    if (!PyObject_TypeCheck(found, &AccumulatorType)) {
        PyErr_SetString(PyExc_TypeError, "record_call(): accs holds something other than an Accumulator");
        return NULL;
    }
    Accumulator *a = (Accumulator *)found;
    double ms = PyFloat_AsDouble(args[2]);
    double cpu_ms = PyFloat_AsDouble(args[3]);
    long long rows = PyLong_AsLongLong(args[4]);
    long long written = PyLong_AsLongLong(args[5]);
    int failed = PyObject_IsTrue(args[6]);
    double started_at = PyFloat_AsDouble(args[7]);
    if (PyErr_Occurred() || failed < 0)
        return NULL;
    int b = bucket_of(ms);
    if (reach(a, b) < 0)
        return NULL;
    a->counts[b - a->lo] += 1;
    a->calls += 1;
    a->total_ms += ms;
    a->cpu_ms += cpu_ms;
    if (ms < a->min_ms)
        a->min_ms = ms;
    if (ms > a->max_ms)
        a->max_ms = ms;
    a->rows += rows;
    a->written += written;
    a->errors += failed;
    a->last_end = started_at;
    Py_RETURN_TRUE;
}

static PyMemberDef Accumulator_members[] = {
    {"sql", T_OBJECT_EX, offsetof(Accumulator, sql), READONLY, NULL},
    {"calls", T_LONGLONG, offsetof(Accumulator, calls), 0, NULL},
    {"rows", T_LONGLONG, offsetof(Accumulator, rows), 0, NULL},
    {"written", T_LONGLONG, offsetof(Accumulator, written), 0, NULL},
    {"errors", T_LONGLONG, offsetof(Accumulator, errors), 0, NULL},
    {"total_ms", T_DOUBLE, offsetof(Accumulator, total_ms), 0, NULL},
    {"min_ms", T_DOUBLE, offsetof(Accumulator, min_ms), 0, NULL},
    {"max_ms", T_DOUBLE, offsetof(Accumulator, max_ms), 0, NULL},
    {"cpu_ms", T_DOUBLE, offsetof(Accumulator, cpu_ms), 0, NULL},
    {"first_seen", T_DOUBLE, offsetof(Accumulator, first_seen), 0, NULL},
    {"last_end", T_DOUBLE, offsetof(Accumulator, last_end), 0, NULL},
    {NULL},
};

static PyGetSetDef Accumulator_getset[] = {
    {"hist", (getter)Accumulator_hist, NULL, "{bucket: count}, a copy", NULL},
    {NULL},
};

static PyMethodDef Accumulator_methods[] = {
    {"merge", (PyCFunction)Accumulator_merge, METH_O, "Add another accumulator's figures to this one."},
    {NULL},
};

static PyTypeObject AccumulatorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "engine._accounting.Accumulator",
    .tp_doc = "One fingerprint's running figures in one session.",
    .tp_basicsize = sizeof(Accumulator),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Accumulator_init,
    .tp_dealloc = (destructor)Accumulator_dealloc,
    .tp_members = Accumulator_members,
    .tp_getset = Accumulator_getset,
    .tp_methods = Accumulator_methods,
};

static PyMethodDef module_methods[] = {
    {"record_call", (PyCFunction)(void (*)(void))record_call, METH_FASTCALL,
     "record_call(accs, key, ms, cpu_ms, rows, written, failed, started_at) -> bool: count one call into "
     "accs[key]; False (and nothing counted) when accs has no such key."},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "engine._accounting", "Per-fingerprint statement accounting (see engine/stats.py).",
    -1, module_methods,
};

PyMODINIT_FUNC
PyInit__accounting(void)
{
    if (PyType_Ready(&AccumulatorType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&AccumulatorType);
    if (PyModule_AddObject(m, "Accumulator", (PyObject *)&AccumulatorType) < 0
        || PyModule_AddIntConstant(m, "BUCKETS", BUCKETS) < 0
        || PyModule_AddIntConstant(m, "PER_DOUBLING", PER_DOUBLING) < 0) {
        Py_DECREF(&AccumulatorType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
