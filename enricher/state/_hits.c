/* The cache's hits (hits.py), in C: the per-key steps of a warm run's lookups.
 *
 * Optional: hits.py uses this module when it was built (hatch_build.py compiles it at install
 * when a compiler and Python's headers are there) and its own Python functions otherwise, or
 * with ENRICHER_NO_C=1; both give the same results and raise the same exception types.
 *
 * `found` makes a lookup's hits out of its decompressed records and the JSON arrays of their
 * fields: one dict of key -> (verdict, format, line), a row whose record is not of its key
 * left out, and, when each key asked was hit by a line served as it is, their lines and
 * verdicts in the keys' order (what a warm run writes, taken in one step). `split` serves a group of keys in one step when every hit is a line served as it
 * is (`hits.servable`): their lines, verdicts and keys, and the keys missed, in their order.
 *
 * Memory safety: every index is checked against the length of what it indexes, a record is
 * read only within the buffer it exposes, and every buffer is released on every path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* how a record line begins, before its key (hits.py's _HEAD, `answers._LINE_HEAD`) */
static const char HEAD[] = "{\"ioc\":\"";
#define HEAD_LEN ((Py_ssize_t)(sizeof(HEAD) - 1))

/* index `i` of a sequence made fast, as a Py_ssize_t in [0, n); -1 with an exception set */
static Py_ssize_t index_of(PyObject *fast, Py_ssize_t i, Py_ssize_t n)
{
    Py_ssize_t v = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(fast, i));
    if (v == -1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear(); /* an int past Py_ssize_t: out of range, as hits.py's _index says */
        v = -1;
    }
    if (v < 0 || v >= n) {
        PyErr_SetString(PyExc_IndexError, "index out of range");
        return -1;
    }
    return v;
}

/* whether `line` (of `len` bytes, in the format `fmt`) is served as it is (`hits.servable`):
 * 1, 0, or -1 with an exception set */
static int servable(PyObject *fmt, PyObject *want, const char *line, Py_ssize_t len,
                    PyObject *tail)
{
    int same = PyObject_RichCompareBool(fmt, want, Py_EQ);
    if (same <= 0)
        return same;
    Py_ssize_t tlen = PyBytes_GET_SIZE(tail);
    return len >= tlen && memcmp(line + len - tlen, PyBytes_AS_STRING(tail), (size_t)tlen) == 0;
}

/* found(lines, keys, at, verdict_ids, format_ids, verdicts, formats, fmt, tail) */
static PyObject *found(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "found() takes 9 arguments");
        return NULL;
    }
    PyObject *lines = args[0], *verdicts = args[5], *formats = args[6], *want = args[7];
    PyObject *tail = args[8];
    if (!PyTuple_Check(verdicts) || !PyDict_Check(formats) || !PyBytes_Check(tail)) {
        PyErr_SetString(PyExc_TypeError,
                        "found(): verdicts must be a tuple, formats a dict, tail bytes");
        return NULL;
    }
    PyObject *keys = NULL, *at = NULL, *vids = NULL, *fids = NULL, *out = NULL;
    PyObject *order = NULL, *order_verdicts = NULL, *result = NULL;
    int whole = 1; /* every row so far read, and served as it is */
    keys = PySequence_Fast(args[1], "found(): keys must be a sequence");
    at = keys ? PySequence_Fast(args[2], "found(): at must be a sequence") : NULL;
    vids = at ? PySequence_Fast(args[3], "found(): verdict ids must be a sequence") : NULL;
    fids = vids ? PySequence_Fast(args[4], "found(): format ids must be a sequence") : NULL;
    if (fids == NULL)
        goto done;
    Py_ssize_t n = PySequence_Size(lines);
    if (n < 0)
        goto done;
    if (PySequence_Fast_GET_SIZE(at) != n || PySequence_Fast_GET_SIZE(vids) != n
        || PySequence_Fast_GET_SIZE(fids) != n) {
        PyErr_SetString(PyExc_ValueError, "rows and their fields differ");
        goto done;
    }
    Py_ssize_t m = PySequence_Fast_GET_SIZE(keys);
    Py_ssize_t nv = PyTuple_GET_SIZE(verdicts);
    out = PyDict_New();
    order = PyList_New(m); /* NULL items until set */
    order_verdicts = PyList_New(m);
    if (out == NULL || order == NULL || order_verdicts == NULL)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t pos = index_of(at, i, m);
        if (pos < 0)
            goto fail;
        PyObject *key = PySequence_Fast_GET_ITEM(keys, pos);
        Py_ssize_t vid = index_of(vids, i, nv);
        if (vid < 0)
            goto fail;
        PyObject *fid = PySequence_Fast_GET_ITEM(fids, i);
        PyObject *fmt = PyDict_GetItemWithError(formats, fid); /* borrowed */
        if (fmt == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetObject(PyExc_KeyError, fid);
            goto fail;
        }
        if (!PyUnicode_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "found(): a key is not a str");
            goto fail;
        }
        Py_ssize_t klen;
        const char *k = PyUnicode_AsUTF8AndSize(key, &klen);
        if (k == NULL)
            goto fail;
        PyObject *segment = PySequence_GetItem(lines, i);
        if (segment == NULL)
            goto fail;
        Py_buffer view;
        if (PyObject_GetBuffer(segment, &view, PyBUF_SIMPLE) < 0) {
            Py_DECREF(segment);
            goto fail;
        }
        const char *b = (const char *)view.buf;
        PyObject *line = NULL;
        int ours = view.len >= HEAD_LEN + klen + 2 && memcmp(b, HEAD, HEAD_LEN) == 0
                   && memcmp(b + HEAD_LEN, k, (size_t)klen) == 0 && b[HEAD_LEN + klen] == '"'
                   && b[HEAD_LEN + klen + 1] == ',';
        int as_is = 0;
        if (ours) {
            line = PyBytes_FromStringAndSize(b, view.len);
            as_is = whole && line != NULL ? servable(fmt, want, b, view.len, tail) : 0;
        }
        PyBuffer_Release(&view);
        Py_DECREF(segment);
        if (!ours) {
            whole = 0;
            continue; /* not a record of its key: a miss */
        }
        if (line == NULL || as_is < 0) {
            Py_XDECREF(line);
            goto fail;
        }
        PyObject *verdict = PyTuple_GET_ITEM(verdicts, vid);
        if (as_is) {
            Py_INCREF(line);
            Py_XSETREF(((PyListObject *)order)->ob_item[pos], line);
            Py_INCREF(verdict);
            Py_XSETREF(((PyListObject *)order_verdicts)->ob_item[pos], verdict);
        } else {
            whole = 0;
        }
        PyObject *hit = PyTuple_Pack(3, verdict, fmt, line);
        Py_DECREF(line);
        if (hit == NULL)
            goto fail;
        int set = PyDict_SetItem(out, key, hit);
        Py_DECREF(hit);
        if (set < 0)
            goto fail;
    }
    for (Py_ssize_t j = 0; whole && j < m; j++)
        whole = PyList_GET_ITEM(order, j) != NULL;
    if (whole) {
        PyObject *served = PyTuple_Pack(2, order, order_verdicts);
        if (served == NULL)
            goto fail;
        result = PyTuple_Pack(2, out, served);
        Py_DECREF(served);
    } else {
        result = PyTuple_Pack(2, out, Py_None);
    }
    goto done;
fail:
    Py_CLEAR(result);
done:
    Py_XDECREF(out);
    Py_XDECREF(order);
    Py_XDECREF(order_verdicts);
    Py_XDECREF(keys);
    Py_XDECREF(at);
    Py_XDECREF(vids);
    Py_XDECREF(fids);
    return result;
}

/* split(hits, keys, fmt, tail): keys are (type, value) pairs */
static PyObject *split(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "split() takes 4 arguments");
        return NULL;
    }
    PyObject *hits = args[0], *fmt = args[2], *tail = args[3];
    if (!PyDict_Check(hits) || !PyBytes_Check(tail)) {
        PyErr_SetString(PyExc_TypeError, "split(): hits must be a dict, tail bytes");
        return NULL;
    }
    PyObject *keys = PySequence_Fast(args[1], "split(): keys must be a sequence");
    if (keys == NULL)
        return NULL;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(keys);
    const char *t = PyBytes_AS_STRING(tail);
    Py_ssize_t tlen = PyBytes_GET_SIZE(tail);
    PyObject *lines = PyList_New(0), *verdicts = PyList_New(0), *answered = PyList_New(0);
    PyObject *missed = PyList_New(0), *out = NULL;
    if (lines == NULL || verdicts == NULL || answered == NULL || missed == NULL)
        goto done;
    for (Py_ssize_t i = 0; i < m; i++) {
        PyObject *key = PySequence_Fast_GET_ITEM(keys, i);
        if (!PyTuple_Check(key) || PyTuple_GET_SIZE(key) != 2) {
            PyErr_SetString(PyExc_TypeError, "split(): a key is not a (type, value) pair");
            goto done;
        }
        PyObject *hit = PyDict_GetItemWithError(hits, PyTuple_GET_ITEM(key, 1)); /* borrowed */
        if (hit == NULL) {
            if (PyErr_Occurred() || PyList_Append(missed, key) < 0)
                goto done;
            continue;
        }
        if (!PyTuple_Check(hit) || PyTuple_GET_SIZE(hit) != 3) {
            PyErr_SetString(PyExc_TypeError, "split(): a hit is not (verdict, format, line)");
            goto done;
        }
        PyObject *line = PyTuple_GET_ITEM(hit, 2);
        if (!PyBytes_Check(line)) {
            PyErr_SetString(PyExc_TypeError, "split(): a hit's line is not bytes");
            goto done;
        }
        int same = PyObject_RichCompareBool(PyTuple_GET_ITEM(hit, 1), fmt, Py_EQ);
        if (same < 0)
            goto done;
        Py_ssize_t len = PyBytes_GET_SIZE(line);
        if (!same || len < tlen || memcmp(PyBytes_AS_STRING(line) + len - tlen, t, (size_t)tlen)) {
            out = Py_NewRef(Py_None); /* a line to be made anew: not `servable` */
            goto done;
        }
        if (PyList_Append(lines, line) < 0 || PyList_Append(verdicts, PyTuple_GET_ITEM(hit, 0)) < 0
            || PyList_Append(answered, key) < 0)
            goto done;
    }
    out = PyTuple_Pack(4, lines, verdicts, answered, missed);
done:
    Py_XDECREF(lines);
    Py_XDECREF(verdicts);
    Py_XDECREF(answered);
    Py_XDECREF(missed);
    Py_DECREF(keys);
    return out;
}

/* group(keys, endpoint_of): keys are (type, value) pairs */
static PyObject *group(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "group() takes 2 arguments");
        return NULL;
    }
    PyObject *endpoint_of = args[1];
    PyObject *keys = PySequence_Fast(args[0], "group(): keys must be a sequence");
    if (keys == NULL)
        return NULL;
    PyObject *groups = PyDict_New(), *values = PyDict_New(), *out = NULL;
    if (groups == NULL || values == NULL)
        goto done;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(keys);
    for (Py_ssize_t i = 0; i < m; i++) {
        PyObject *key = PySequence_Fast_GET_ITEM(keys, i);
        if (!PyTuple_Check(key) || PyTuple_GET_SIZE(key) != 2) {
            PyErr_SetString(PyExc_TypeError, "group(): a key is not a (type, value) pair");
            goto done;
        }
        PyObject *endpoint = PyObject_GetItem(endpoint_of, PyTuple_GET_ITEM(key, 0));
        if (endpoint == NULL)
            goto done;
        PyObject *keyed = PyDict_GetItemWithError(groups, endpoint); /* borrowed */
        PyObject *valued = keyed ? PyDict_GetItemWithError(values, endpoint) : NULL;
        if (keyed == NULL || valued == NULL) {
            if (PyErr_Occurred()) {
                Py_DECREF(endpoint);
                goto done;
            }
            keyed = PyList_New(0);
            valued = PyList_New(0);
            int set = keyed && valued ? PyDict_SetItem(groups, endpoint, keyed) : -1;
            set = set < 0 ? set : PyDict_SetItem(values, endpoint, valued);
            Py_XDECREF(keyed); /* the dicts hold them */
            Py_XDECREF(valued);
            if (set < 0) {
                Py_DECREF(endpoint);
                goto done;
            }
        }
        Py_DECREF(endpoint);
        if (PyList_Append(keyed, key) < 0 || PyList_Append(valued, PyTuple_GET_ITEM(key, 1)) < 0)
            goto done;
    }
    out = PyTuple_Pack(2, groups, values);
done:
    Py_XDECREF(groups);
    Py_XDECREF(values);
    Py_DECREF(keys);
    return out;
}

/* frames(records, sizes, line_max): zstd frames end to end in `records`, `sizes` bytes each */
static PyObject *frames(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "frames() takes 3 arguments");
        return NULL;
    }
    unsigned long long line_max = PyLong_AsUnsignedLongLong(args[2]);
    if (line_max == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    PyObject *sizes = PySequence_Fast(args[1], "frames(): sizes must be a sequence");
    if (sizes == NULL)
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        Py_DECREF(sizes);
        return NULL;
    }
    const unsigned char *b = (const unsigned char *)view.buf;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(sizes);
    PyObject *segments = NULL, *claimed = NULL, *out = NULL;
    if (n > PY_SSIZE_T_MAX / 16) {
        PyErr_NoMemory();
        goto done;
    }
    segments = PyBytes_FromStringAndSize(NULL, n * 16);
    claimed = PyBytes_FromStringAndSize(NULL, n * 8);
    if (segments == NULL || claimed == NULL)
        goto done;
    uint64_t *seg = (uint64_t *)PyBytes_AS_STRING(segments);
    uint64_t *fcs = (uint64_t *)PyBytes_AS_STRING(claimed);
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_ssize_t size = PyLong_AsSsize_t(PySequence_Fast_GET_ITEM(sizes, i));
        if (size == -1 && PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_OverflowError))
                goto done;
            PyErr_Clear(); /* an int past Py_ssize_t: the sizes do not add up, as in hits.py */
            size = -1;
        }
        if (size < 0 || size > view.len - at) {
            PyErr_SetString(PyExc_ValueError, "records and their sizes differ");
            goto done;
        }
        const unsigned char *f = b + at;
        /* the frame header: magic, descriptor, [window], [dictionary id], content size */
        if (size < 5 || f[0] != 0x28 || f[1] != 0xb5 || f[2] != 0x2f || f[3] != 0xfd) {
            PyErr_SetString(PyExc_ValueError, "a record is not a zstd frame");
            goto done;
        }
        unsigned d = f[4];
        unsigned single = (d >> 5) & 1, fcs_flag = d >> 6, did_flag = d & 3;
        Py_ssize_t did_len = did_flag == 3 ? 4 : (Py_ssize_t)did_flag;
        Py_ssize_t fcs_len = fcs_flag == 0 ? (Py_ssize_t)single : (Py_ssize_t)1 << fcs_flag;
        Py_ssize_t head = 5 + !single + did_len;
        /* as zstd refuses it: a reserved bit set, a window past 2**31 */
        int refused = (d & 0x08) || (!single && size > 5 && (f[5] >> 3) + 10 > 31);
        if (refused || fcs_len == 0 || size < head + fcs_len) {
            PyErr_SetString(PyExc_ValueError, "a frame claims no size");
            goto done;
        }
        uint64_t v = 0;
        for (Py_ssize_t k = fcs_len - 1; k >= 0; k--)
            v = (v << 8) | f[head + k];
        if (fcs_len == 2)
            v += 256;
        if (v == 0 || v > line_max) {
            PyErr_SetString(PyExc_ValueError, "a frame claims no size, or too large a one");
            goto done;
        }
        uint64_t pair[2] = {(uint64_t)at, (uint64_t)size};
        memcpy(seg + 2 * i, pair, sizeof pair);
        memcpy(fcs + i, &v, sizeof v);
        at += size;
    }
    if (at != view.len) {
        PyErr_SetString(PyExc_ValueError, "records and their sizes differ");
        goto done;
    }
    out = PyTuple_Pack(2, segments, claimed);
done:
    Py_XDECREF(segments);
    Py_XDECREF(claimed);
    PyBuffer_Release(&view);
    Py_DECREF(sizes);
    return out;
}

static PyMethodDef module_methods[] = {
    {"found", (PyCFunction)(void (*)(void))found, METH_FASTCALL,
     "found(lines, keys, at, verdict_ids, format_ids, verdicts, formats, fmt, tail): a lookup's"
     " hits, and their lines and verdicts in the keys' order when each key was hit by a line"
     " served as it is (else None)."},
    {"split", (PyCFunction)(void (*)(void))split, METH_FASTCALL,
     "split(hits, keys, fmt, tail): (lines, verdicts, keys hit, keys missed), or None if a hit"
     " is not served as it is."},
    {"group", (PyCFunction)(void (*)(void))group, METH_FASTCALL,
     "group(keys, endpoint_of): keys by endpoint, each group in their order, and their"
     " values."},
    {"frames", (PyCFunction)(void (*)(void))frames, METH_FASTCALL,
     "frames(records, sizes, line_max): the segments of zstd frames end to end and the"
     " sizes their headers claim, as packed 64-bit integers."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_hits", "The cache's hits, in C.", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

#ifndef HITS_SOURCE
#define HITS_SOURCE ""
#endif

PyMODINIT_FUNC PyInit__hits(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddStringConstant(m, "SOURCE", HITS_SOURCE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
