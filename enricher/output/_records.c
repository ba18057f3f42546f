/* The record line of an answered IOC, in C: records.record_line's common path.

   line(type_json, ioc, entry, raw, verdicts, ttl_factor, tail) puts a record line's pieces
   in place as record_line's formats do, and gives (line, verdict, ttl in ms), or None for
   anything it does not take as it is: then record_line makes the line in Python, which is
   the reference. Taken: an entry with an aggregatedResult and a maliciousClassification,
   scores that are integers within 64 bits or none, a ttl in ms within 64 bits, a first-seen
   time in years 1 to 9999 or none, and a verdict, classification, source, ioc, cpType and
   link that JSON writes as they are (printable ASCII without a quote or a backslash). */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static PyObject *S_AGG, *S_MAL, *S_TYPE, *S_SCORE, *S_TYPE_SCORE, *S_SOURCE, *S_TTL, *S_CP_TYPE,
    *S_LINK, *S_PRODUCT, *S_FIRST, *S_GET, *UNKNOWN;

static const char NULL_JSON[] = "null";

/* 1 for the characters JSON escapes in a string (orjson's: control characters, the quote
   and the backslash) and for those not ASCII, set at import */
static unsigned char ESCAPED[256];

/* A str JSON writes as it is between quotes (its bytes, and their count), or NULL. */
static const char *plain(PyObject *o, Py_ssize_t *n)
{
    if (!PyUnicode_CheckExact(o) || !PyUnicode_IS_ASCII(o))
        return NULL;
    const unsigned char *s = (const unsigned char *)PyUnicode_DATA(o);
    Py_ssize_t len = PyUnicode_GET_LENGTH(o);
    unsigned char escaped = 0;
    for (Py_ssize_t i = 0; i < len; i++) /* no branch a character: texts are mostly plain */
        escaped |= ESCAPED[s[i]];
    if (escaped)
        return NULL;
    *n = len;
    return (const char *)s;
}

/* The decimal digits of `v` at `out` (at least 20 bytes); how many. */
static Py_ssize_t digits(char *out, long long v)
{
    char tmp[20];
    int n = 0;
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    Py_ssize_t k = 0;
    if (v < 0)
        out[k++] = '-';
    while (n)
        out[k++] = tmp[--n];
    return k;
}

/* `v` (0 to 10 ** width - 1) in `width` digits at `out`. */
static void padded(char *out, int v, int width)
{
    for (int i = width - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

/* A piece of the line: bytes to copy, and whether they go between quotes. */
typedef struct {
    const char *s;
    Py_ssize_t n;
    int quoted;
} Piece;

/* The piece for an optional text (None: null); 0 if JSON would not write it as it is. */
static int text_piece(PyObject *o, Piece *p)
{
    if (o == Py_None) {
        p->s = NULL_JSON;
        p->n = 4;
        p->quoted = 0;
        return 1;
    }
    p->quoted = 1;
    return (p->s = plain(o, &p->n)) != NULL;
}

/* The piece for an optional integer score (None: null) in `buf`; 0 if past 64 bits or not an
   int (a float: orjson's digits are its own). */
static int int_piece(PyObject *o, Piece *p, char *buf)
{
    p->quoted = 0;
    if (o == Py_None) {
        p->s = NULL_JSON;
        p->n = 4;
        return 1;
    }
    if (!PyLong_CheckExact(o))
        return 0;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    p->s = buf;
    p->n = digits(buf, v);
    return 1;
}

static PyObject *line(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "line() takes 7 arguments");
        return NULL;
    }
    PyObject *type_json = args[0], *ioc = args[1], *entry = args[2], *raw = args[3];
    PyObject *verdicts = args[4], *factor_obj = args[5], *tail = args[6];
    PyObject *agg = NULL, *mal = NULL, *ctype = NULL, *score = NULL, *type_score = NULL;
    PyObject *source = NULL, *ttl = NULL, *cp_type = NULL, *link = NULL, *product = NULL;
    PyObject *first = NULL, *got = NULL, *ttl_out = NULL, *result = NULL;
    Py_buffer product_view = {0};
    int viewing = 0;
    if (!PyBytes_CheckExact(type_json) || !PyBytes_CheckExact(raw) || !PyBytes_CheckExact(tail)
        || !PyLong_CheckExact(factor_obj))
        goto fallback;
    if ((agg = PyObject_GetAttr(entry, S_AGG)) == NULL)
        goto error;
    if (agg == Py_None)
        goto fallback;
    if ((mal = PyObject_GetAttr(agg, S_MAL)) == NULL)
        goto error;
    if (mal == Py_None)
        goto fallback;
    if ((ctype = PyObject_GetAttr(mal, S_TYPE)) == NULL
        || (score = PyObject_GetAttr(mal, S_SCORE)) == NULL
        || (type_score = PyObject_GetAttr(mal, S_TYPE_SCORE)) == NULL
        || (source = PyObject_GetAttr(mal, S_SOURCE)) == NULL)
        goto error;
    /* floats are never looked up (1.0 == 1 would find another's bytes) */
    if (PyFloat_Check(score) || PyFloat_Check(type_score))
        goto fallback;
    PyObject *verdict = UNKNOWN; /* borrowed (held by `got` when asked with `get`) */
    if (ctype != Py_None && PyDict_CheckExact(verdicts)) {
        verdict = PyDict_GetItemWithError(verdicts, ctype);
        if (verdict == NULL) {
            if (PyErr_Occurred())
                goto error;
            verdict = UNKNOWN;
        }
    } else if (ctype != Py_None) { /* a mapping (the settings' proxy): as record_line asks */
        if ((got = PyObject_CallMethodObjArgs(verdicts, S_GET, ctype, UNKNOWN, NULL)) == NULL)
            goto error;
        verdict = got;
    }
    /* the fields from `verdict` to `source`, as orjson writes them (record_line's
       _verdict_fields) */
    Piece verdict_piece, ctype_piece, source_piece, score_piece, type_score_piece;
    char score_digits[24], type_score_digits[24];
    verdict_piece.quoted = 1;
    if ((verdict_piece.s = plain(verdict, &verdict_piece.n)) == NULL
        || !text_piece(ctype, &ctype_piece) || !text_piece(source, &source_piece)
        || !int_piece(score, &score_piece, score_digits)
        || !int_piece(type_score, &type_score_piece, type_score_digits))
        goto fallback;

    /* the ttl in ms */
    char ttl_digits[24];
    Piece ttl_piece = {NULL_JSON, 4, 0};
    if ((ttl = PyObject_GetAttr(entry, S_TTL)) == NULL)
        goto error;
    if (ttl != Py_None) {
        if (!PyLong_CheckExact(ttl))
            goto fallback;
        int overflow = 0, factor_overflow = 0;
        long long value = PyLong_AsLongLongAndOverflow(ttl, &overflow);
        if (value == -1 && PyErr_Occurred())
            goto error;
        long long factor = PyLong_AsLongLongAndOverflow(factor_obj, &factor_overflow);
        if (factor == -1 && PyErr_Occurred())
            goto error;
        long long ms;
        if (overflow || factor_overflow || __builtin_mul_overflow(value, factor, &ms))
            goto fallback;
        if (factor == 1) {
            Py_INCREF(ttl);
            ttl_out = ttl;
        } else if ((ttl_out = PyLong_FromLongLong(ms)) == NULL) {
            goto error;
        }
        ttl_piece.n = digits(ttl_digits, ms);
        ttl_piece.s = ttl_digits;
    }

    Piece ioc_piece, cp_piece, link_piece;
    ioc_piece.quoted = 1;
    if ((ioc_piece.s = plain(ioc, &ioc_piece.n)) == NULL)
        goto fallback;
    if ((cp_type = PyObject_GetAttr(entry, S_CP_TYPE)) == NULL)
        goto error;
    if (!text_piece(cp_type, &cp_piece))
        goto fallback;
    if ((link = PyObject_GetAttr(agg, S_LINK)) == NULL)
        goto error;
    if (!text_piece(link, &link_piece))
        goto fallback;

    /* the product: its bytes when they are an object, else null */
    Piece product_piece = {NULL_JSON, 4, 0};
    if ((product = PyObject_GetAttr(agg, S_PRODUCT)) == NULL)
        goto error;
    if (PyObject_GetBuffer(product, &product_view, PyBUF_SIMPLE) < 0)
        goto error;
    viewing = 1;
    if (product_view.len > 0 && ((const char *)product_view.buf)[0] == '{') {
        product_piece.s = (const char *)product_view.buf;
        product_piece.n = product_view.len;
    }

    /* the first-seen time, ISO-8601 in UTC to the millisecond */
    Piece prefix = {NULL_JSON, 4, 0};
    char stamp[40];
    if ((first = PyObject_GetAttr(agg, S_FIRST)) == NULL)
        goto error;
    if (first != Py_None) {
        if (!PyLong_CheckExact(first))
            goto fallback;
        int overflow = 0;
        long long at = PyLong_AsLongLongAndOverflow(first, &overflow);
        if (at == -1 && PyErr_Occurred())
            goto error;
        if (overflow)
            goto fallback;
        long long day = at / 86400000LL, ms = at % 86400000LL;
        if (ms < 0) { /* as Python's divmod: the day before, and ms from its start */
            ms += 86400000LL;
            day -= 1;
        }
        /* the civil date of a day since 1970-01-01 (H. Hinnant's days_from_civil, reversed) */
        long long z = day + 719468, era = (z >= 0 ? z : z - 146096) / 146097;
        long long doe = z - era * 146097;
        long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
        long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100), mp = (5 * doy + 2) / 153;
        long long d = doy - (153 * mp + 2) / 5 + 1, m = mp < 10 ? mp + 3 : mp - 9;
        long long y = yoe + era * 400 + (m <= 2);
        if (y < 1 || y > 9999) /* beyond a date: no first-seen time (record_line's) */
            goto fallback;
        int minute = (int)(ms / 60000), second = (int)(ms / 1000 % 60), milli = (int)(ms % 1000);
        /* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
        memcpy(stamp, "\"0000-00-00T00:00:00.000Z\"", 26);
        padded(stamp + 1, (int)y, 4);
        padded(stamp + 6, (int)m, 2);
        padded(stamp + 9, (int)d, 2);
        padded(stamp + 12, minute / 60, 2);
        padded(stamp + 15, minute % 60, 2);
        padded(stamp + 18, second, 2);
        padded(stamp + 21, milli, 3);
        prefix.s = stamp;
        prefix.n = 26;
    }

    static const char OPEN[] = "{\"ioc\":", TTL[] = ",\"ttl_ms\":", FIRST[] = ",\"first_seen\":",
                      LINK[] = ",\"link\":", PRODUCT[] = ",\"product\":",
                      CP[] = ",\"cp_type\":", RESPONSE[] = ",\"response\":",
                      VERDICT[] = ",\"verdict\":", CLASSIFICATION[] = ",\"classification\":",
                      SCORE[] = ",\"score\":", TYPE_SCORE[] = ",\"type_score\":",
                      SOURCE[] = ",\"source\":";
    Piece pieces[] = {
        {OPEN, sizeof OPEN - 1, 0},
        ioc_piece,
        {PyBytes_AS_STRING(type_json), PyBytes_GET_SIZE(type_json), 0},
        {VERDICT, sizeof VERDICT - 1, 0},
        verdict_piece,
        {CLASSIFICATION, sizeof CLASSIFICATION - 1, 0},
        ctype_piece,
        {SCORE, sizeof SCORE - 1, 0},
        score_piece,
        {TYPE_SCORE, sizeof TYPE_SCORE - 1, 0},
        type_score_piece,
        {SOURCE, sizeof SOURCE - 1, 0},
        source_piece,
        {TTL, sizeof TTL - 1, 0},
        ttl_piece,
        {FIRST, sizeof FIRST - 1, 0},
        prefix,
        {LINK, sizeof LINK - 1, 0},
        link_piece,
        {PRODUCT, sizeof PRODUCT - 1, 0},
        product_piece,
        {CP, sizeof CP - 1, 0},
        cp_piece,
        {RESPONSE, sizeof RESPONSE - 1, 0},
        {PyBytes_AS_STRING(raw), PyBytes_GET_SIZE(raw), 0},
        {PyBytes_AS_STRING(tail), PyBytes_GET_SIZE(tail), 0},
    };
    size_t count = sizeof pieces / sizeof pieces[0];
    Py_ssize_t size = 0;
    for (size_t i = 0; i < count; i++)
        size += pieces[i].n + 2 * pieces[i].quoted;
    PyObject *made = PyBytes_FromStringAndSize(NULL, size);
    if (made == NULL)
        goto error;
    char *out = PyBytes_AS_STRING(made);
    for (size_t i = 0; i < count; i++) {
        if (pieces[i].quoted)
            *out++ = '"';
        memcpy(out, pieces[i].s, (size_t)pieces[i].n);
        out += pieces[i].n;
        if (pieces[i].quoted)
            *out++ = '"';
    }
    result = PyTuple_New(3);
    if (result == NULL) {
        Py_DECREF(made);
        goto error;
    }
    PyTuple_SET_ITEM(result, 0, made);
    Py_INCREF(verdict);
    PyTuple_SET_ITEM(result, 1, verdict);
    if (ttl_out == NULL) {
        Py_INCREF(Py_None);
        ttl_out = Py_None;
    }
    PyTuple_SET_ITEM(result, 2, ttl_out);
    ttl_out = NULL;
    goto done;
fallback:
    result = Py_None;
    Py_INCREF(result);
    goto done;
error:
    result = NULL;
done:
    if (viewing)
        PyBuffer_Release(&product_view);
    Py_XDECREF(agg);
    Py_XDECREF(mal);
    Py_XDECREF(ctype);
    Py_XDECREF(score);
    Py_XDECREF(type_score);
    Py_XDECREF(source);
    Py_XDECREF(ttl);
    Py_XDECREF(cp_type);
    Py_XDECREF(link);
    Py_XDECREF(product);
    Py_XDECREF(first);
    Py_XDECREF(got);
    Py_XDECREF(ttl_out);
    return result;
}

/* what `setup` gives: record_line's table of types (`_TYPE`), its two tails and its Python,
   which makes what `line` leaves */
static PyObject *TYPES, *FRESH, *CACHED, *PYTHON;

static PyObject *setup(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *types, *fresh, *cached, *python;
    if (!PyArg_ParseTuple(args, "O!O!O!O:setup", &PyDict_Type, &types, &PyBytes_Type, &fresh,
                          &PyBytes_Type, &cached, &python))
        return NULL;
    Py_INCREF(types);
    Py_XSETREF(TYPES, types);
    Py_INCREF(fresh);
    Py_XSETREF(FRESH, fresh);
    Py_INCREF(cached);
    Py_XSETREF(CACHED, cached);
    Py_INCREF(python);
    Py_XSETREF(PYTHON, python);
    Py_RETURN_NONE;
}

/* record_line(ioc_type, ioc, entry, raw, verdicts, ttl_factor=1, cached=False, origin=None),
   as records.record_line's Python, called without a Python frame: `line` where it takes the
   answer, else the Python with the same arguments. */
static PyObject *record_line(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames)
{
    if (PYTHON == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_records.setup was not called");
        return NULL;
    }
    if (kwnames == NULL && nargs >= 5 && nargs <= 8 && (nargs < 8 || args[7] == Py_None)) {
        PyObject *cached = nargs > 6 ? args[6] : Py_False;
        PyObject *type_json = PyDict_GetItemWithError(TYPES, args[0]); /* borrowed */
        if (type_json == NULL && PyErr_Occurred())
            return NULL;
        if (type_json != NULL && (cached == Py_False || cached == Py_True)) {
            PyObject *one = NULL;
            PyObject *factor = nargs > 5 ? args[5] : (one = PyLong_FromLong(1));
            if (factor == NULL)
                return NULL;
            PyObject *argv[7] = {type_json, args[1], args[2], args[3], args[4], factor,
                                 cached == Py_True ? CACHED : FRESH};
            PyObject *made = line(self, argv, 7);
            Py_XDECREF(one);
            if (made != Py_None)
                return made; /* a line, or NULL for an error */
            Py_DECREF(made);
        }
    }
    return PyObject_Vectorcall(PYTHON, args, (size_t)nargs, kwnames);
}

static PyMethodDef methods[] = {
    {"line", (PyCFunction)(void (*)(void))line, METH_FASTCALL,
     "line(type_json, ioc, entry, raw, verdicts, ttl_factor, tail): (line, "
     "verdict, ttl in ms) of an answered IOC, or None to make it in Python."},
    {"setup", setup, METH_VARARGS,
     "setup(types, fresh_tail, cached_tail, python): what record_line reads."},
    {"record_line", (PyCFunction)(void (*)(void))record_line, METH_FASTCALL | METH_KEYWORDS,
     "record_line(ioc_type, ioc, entry, raw, verdicts, ttl_factor=1, cached=False, "
     "origin=None): records.record_line, in C where `line` takes the answer."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_records", "Record lines, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

/* The digest of the _records.c this module was built from (hatch_build.py passes it):
   records.py uses the module only when it matches the _records.c beside it. */
#ifndef RECORDS_SOURCE
#define RECORDS_SOURCE ""
#endif

PyMODINIT_FUNC PyInit__records(void)
{
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {
        {&S_AGG, "aggregatedResult"}, {&S_MAL, "maliciousClassification"}, {&S_TYPE, "type"},
        {&S_SCORE, "classificationScore"}, {&S_TYPE_SCORE, "typeScore"}, {&S_SOURCE, "source"},
        {&S_TTL, "ttl"}, {&S_CP_TYPE, "cpType"}, {&S_LINK, "link"},
        {&S_PRODUCT, "productClassification"}, {&S_FIRST, "firstSeen"}, {&S_GET, "get"},
        {&UNKNOWN, "unknown"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (*names[i].slot == NULL && (*names[i].slot = PyUnicode_InternFromString(names[i].text)) == NULL)
            return NULL;
    for (int c = 0; c < 256; c++)
        ESCAPED[c] = c < 0x20 || c > 0x7e || c == '"' || c == '\\';
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddStringConstant(m, "SOURCE", RECORDS_SOURCE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
