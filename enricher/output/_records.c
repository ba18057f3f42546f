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
#include <structmember.h>
#include <stdint.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <string.h>

static PyObject *S_AGG, *S_MAL, *S_TYPE, *S_SCORE, *S_TYPE_SCORE, *S_SOURCE, *S_TTL, *S_CP_TYPE,
    *S_LINK, *S_PRODUCT, *S_FIRST, *S_GET, *UNKNOWN;

static const char NULL_JSON[] = "null";

/* 1 for the characters JSON escapes in a string (orjson's: control characters, the quote
   and the backslash) and for those not ASCII, set at import */
static unsigned char ESCAPED[256];

/* Whether JSON writes the `len` bytes at `s` as they are between quotes. */
static int plain_run(const unsigned char *s, Py_ssize_t len)
{
    Py_ssize_t i = 0;
    unsigned char escaped = 0;
#if defined(__SSE2__)
    /* 16 characters at a time (a byte past ASCII is below the space, signed) */
    const __m128i space = _mm_set1_epi8(' '), del = _mm_set1_epi8(0x7f),
                  quote = _mm_set1_epi8('"'), slash = _mm_set1_epi8('\\');
    while (len - i >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        __m128i hits = _mm_or_si128(_mm_or_si128(_mm_cmplt_epi8(v, space), _mm_cmpeq_epi8(v, del)),
                                    _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, slash)));
        if (_mm_movemask_epi8(hits))
            return 0;
        i += 16;
        if (i < len && len - i < 16)
            i = len - 16; /* the last block: its 16 last characters, some seen already */
    }
#endif
    for (; i < len; i++) /* no branch a character: texts are mostly plain */
        escaped |= ESCAPED[s[i]];
    return !escaped;
}

/* A str JSON writes as it is between quotes (its bytes, and their count), or NULL. */
static const char *plain(PyObject *o, Py_ssize_t *n)
{
    if (!PyUnicode_CheckExact(o) || !PyUnicode_IS_ASCII(o))
        return NULL;
    const unsigned char *s = (const unsigned char *)PyUnicode_DATA(o);
    Py_ssize_t len = PyUnicode_GET_LENGTH(o);
    if (!plain_run(s, len))
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

/* `at` (ms since 1970) as "YYYY-MM-DDTHH:MM:SS.mmmZ", quotes included (26 bytes), at `stamp`:
   ISO-8601 in UTC to the millisecond; 0 for a time beyond years 1 to 9999. */
static int stamp_of(long long at, char *stamp)
{
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
    if (y < 1 || y > 9999)
        return 0;
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
    return 1;
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

/* A field of an answer's struct, as PyObject_GetAttr reads it (a new reference), without
   its lookup each time: a msgspec Struct keeps each field in a slot (a member descriptor)
   at an offset of its type. Each place that reads a field remembers, in a Slot of its own,
   the type it last met there, that type's version tag (which changes whenever the type
   does) and the offset. A type changed since, one whose attribute is not such a slot, one
   that reads attributes its own way, or a slot not set, is read by PyObject_GetAttr. */
typedef struct {
    PyTypeObject *type; /* compared only, never followed: the version tag says it is the one */
    unsigned int version;
    PyObject *name;
    Py_ssize_t offset;
} Slot;

static PyObject *field(PyObject *o, PyObject *name, Slot *s)
{
    PyTypeObject *t = Py_TYPE(o);
    if (t->tp_getattro != PyObject_GenericGetAttr)
        return PyObject_GetAttr(o, name);
    if (s->type == t && s->name == name && s->version == t->tp_version_tag
        && (t->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)) {
        PyObject *v = *(PyObject **)((char *)o + s->offset);
        if (v != NULL) {
            Py_INCREF(v);
            return v;
        }
        return PyObject_GetAttr(o, name);
    }
    s->type = NULL;
    PyObject *d = _PyType_Lookup(t, name); /* borrowed; gives the type a version tag */
    /* (a member descriptor of another type, set on this one, refuses its objects in
       getattr: its offset is not one of theirs) */
    if (d != NULL && Py_IS_TYPE(d, &PyMemberDescr_Type)
        && (t->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)
        && PyType_IsSubtype(t, ((PyDescrObject *)d)->d_type)) {
        PyMemberDef *m = ((PyMemberDescrObject *)d)->d_member;
        if (m->type == T_OBJECT_EX)
            *s = (Slot){t, t->tp_version_tag, name, m->offset};
    }
    return PyObject_GetAttr(o, name);
}

/* A types.MappingProxyType (the settings' verdicts): what it shows. CPython's own layout
   (`mappingproxyobject`, Objects/descrobject.c, the same since Python 3.3), which its C API
   does not give: the verdict of each answer is then looked up in the dict itself, without a
   call of the proxy's `get` (800 instructions an answer). */
typedef struct {
    PyObject_HEAD
    PyObject *mapping;
} Proxy;

/* The bytes of `count` pieces one after the other, each quoted one between quotes. */
static PyObject *joined(const Piece *pieces, size_t count)
{
    Py_ssize_t size = 0;
    for (size_t i = 0; i < count; i++)
        size += pieces[i].n + 2 * pieces[i].quoted;
    PyObject *made = PyBytes_FromStringAndSize(NULL, size);
    if (made == NULL)
        return NULL;
    char *out = PyBytes_AS_STRING(made);
    for (size_t i = 0; i < count; i++) {
        if (pieces[i].quoted)
            *out++ = '"';
        memcpy(out, pieces[i].s, (size_t)pieces[i].n);
        out += pieces[i].n;
        if (pieces[i].quoted)
            *out++ = '"';
    }
    return made;
}

/* the Slots of `line`'s reads, and of `match`'s (requestKey, then each echo field) */
static Slot AT_AGG, AT_MAL, AT_TYPE, AT_SCORE, AT_TYPE_SCORE, AT_SOURCE, AT_TTL, AT_CP_TYPE,
    AT_LINK, AT_PRODUCT, AT_FIRST, AT_REQUEST_KEY, AT_ECHO[3];

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
    if ((agg = field(entry, S_AGG, &AT_AGG)) == NULL)
        goto error;
    if (agg == Py_None)
        goto fallback;
    if ((mal = field(agg, S_MAL, &AT_MAL)) == NULL)
        goto error;
    if (mal == Py_None)
        goto fallback;
    if ((ctype = field(mal, S_TYPE, &AT_TYPE)) == NULL
        || (score = field(mal, S_SCORE, &AT_SCORE)) == NULL
        || (type_score = field(mal, S_TYPE_SCORE, &AT_TYPE_SCORE)) == NULL
        || (source = field(mal, S_SOURCE, &AT_SOURCE)) == NULL)
        goto error;
    /* floats are never looked up (1.0 == 1 would find another's bytes) */
    if (PyFloat_Check(score) || PyFloat_Check(type_score))
        goto fallback;
    PyObject *verdict = UNKNOWN; /* borrowed (held by `got` when asked with `get`) */
    if (Py_IS_TYPE(verdicts, &PyDictProxy_Type)
        && PyDict_CheckExact(((Proxy *)verdicts)->mapping))
        verdicts = ((Proxy *)verdicts)->mapping; /* (its `get` is the dict's) */
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
    if ((ttl = field(entry, S_TTL, &AT_TTL)) == NULL)
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
    if ((cp_type = field(entry, S_CP_TYPE, &AT_CP_TYPE)) == NULL)
        goto error;
    if (!text_piece(cp_type, &cp_piece))
        goto fallback;
    if ((link = field(agg, S_LINK, &AT_LINK)) == NULL)
        goto error;
    if (!text_piece(link, &link_piece))
        goto fallback;

    /* the product: its bytes when they are an object, else null */
    Piece product_piece = {NULL_JSON, 4, 0};
    if ((product = field(agg, S_PRODUCT, &AT_PRODUCT)) == NULL)
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
    if ((first = field(agg, S_FIRST, &AT_FIRST)) == NULL)
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
        if (!stamp_of(at, stamp)) /* beyond a date: no first-seen time (record_line's) */
            goto fallback;
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
    PyObject *made = joined(pieces, sizeof pieces / sizeof pieces[0]);
    if (made == NULL)
        goto error;
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


/* -- an answer body's entries ------------------------------------------------------------

   entries(body): the bytes of each element of the top-level "classificationResponses" list
   of a JSON answer body, each from its first byte to its last (no whitespace around it),
   as msgspec's `Raw` gives them (protocol._split, the reference); None for a body it does
   not take: a top-level key written with an escape or given twice, a value not where JSON
   puts it, or anything it cannot follow to the end. It follows strings, brackets and
   separators only and checks no number, literal or UTF-8: protocol.parse_response calls it
   on a body msgspec has read whole first (valid JSON of the answer's shape). On any input
   it reads nothing past the end, nests nothing (a depth is a count), and fails with None. */


static const char RESPONSES[] = "classificationResponses";

static const char *ws(const char *p, const char *end)
{
    /* (one compare for the byte that is not whitespace, most of them) */
    while (p < end && (unsigned char)*p <= ' '
           && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* after a value of an object or list that `close` ends: 1, `*pp` past the ',' and the spaces
   after it (another member or item follows); 0, `*pp` past `close` (the end); -1, neither */
static inline int next_item(const char **pp, const char *end, char close)
{
    const char *p = ws(*pp, end);
    if (p < end && *p == ',') {
        *pp = ws(p + 1, end);
        return 1;
    }
    if (p < end && *p == close) {
        *pp = p + 1;
        return 0;
    }
    return -1;
}

/* past the string whose opening quote `p` is after, or NULL */
static const char *past_string(const char *p, const char *end)
{
    const char *from = p;
    while (p < end) {
        const char *q = memchr(p, '"', (size_t)(end - p));
        if (q == NULL)
            return NULL;
        const char *b = q;
        while (b > from && b[-1] == '\\')
            b--;
        if (((q - b) & 1) == 0)
            return q + 1;
        p = q + 1;
    }
    return NULL;
}

/* past the object or array that starts at `p`, or NULL: its brackets counted outside its
   strings, a string's escaped character skipped. Where SSE2 is there (every x86-64), 16
   bytes at a time: the quotes, backslashes and brackets of a block found at once, the
   bytes between them never looked at one by one; the rest byte by byte. */
static const char *past_container(const char *p, const char *end)
{
    Py_ssize_t depth = 0;
    int in_string = 0;
#if defined(__SSE2__)
    unsigned int carry = 0; /* the first byte of the next block is an escaped one */
    const __m128i quote = _mm_set1_epi8('"'), slash = _mm_set1_epi8('\\'),
                  brace = _mm_set1_epi8('{'), unbrace = _mm_set1_epi8('}'),
                  bracket = _mm_set1_epi8('['), unbracket = _mm_set1_epi8(']');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i hits = _mm_or_si128(
            _mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, slash)),
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, brace), _mm_cmpeq_epi8(v, unbrace)),
                         _mm_or_si128(_mm_cmpeq_epi8(v, bracket),
                                      _mm_cmpeq_epi8(v, unbracket))));
        unsigned int m = (unsigned int)_mm_movemask_epi8(hits) & ~carry;
        carry = 0;
        while (m) {
            unsigned int i = (unsigned int)__builtin_ctz(m);
            m &= m - 1;
            unsigned char c = (unsigned char)p[i];
            if (in_string) {
                if (c == '\\') {
                    if (i == 15)
                        carry = 1;
                    else
                        m &= ~(1u << (i + 1));
                } else if (c == '"') {
                    in_string = 0;
                }
            } else if (c == '"') {
                in_string = 1;
            } else if (c == '{' || c == '[') {
                depth++;
            } else if (c == '}' || c == ']') {
                if (--depth == 0)
                    return p + i + 1;
                if (depth < 0)
                    return NULL;
            }
        }
        p += 16;
    }
    if (carry) {
        if (p >= end)
            return NULL;
        p++;
    }
#endif
    while (p < end) {
        unsigned char c = (unsigned char)*p++;
        if (in_string) {
            if (c == '\\') {
                if (p >= end)
                    return NULL;
                p++;
            } else if (c == '"') {
                in_string = 0;
            }
        } else if (c == '"') {
            in_string = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (--depth == 0)
                return p;
            if (depth < 0)
                return NULL;
        }
    }
    return NULL;
}

/* past the value that starts at `p` (no whitespace before it), or NULL */
static const char *past_value(const char *p, const char *end)
{
    if (p >= end)
        return NULL;
    if (*p == '"')
        return past_string(p + 1, end);
    if (*p != '{' && *p != '[') { /* a number or a literal: to the next separator */
        const char *start = p;
        while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t'
               && *p != '\n' && *p != '\r')
            p++;
        return p > start ? p : NULL;
    }
    return past_container(p, end);
}

static PyObject *entries(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyBytes_CheckExact(arg)) {
        PyErr_SetString(PyExc_TypeError, "entries() takes bytes");
        return NULL;
    }
    const char *p = PyBytes_AS_STRING(arg), *end = p + PyBytes_GET_SIZE(arg);
    PyObject *found = NULL;
    p = ws(p, end);
    if (p >= end || *p != '{')
        Py_RETURN_NONE;
    p = ws(p + 1, end);
    if (p < end && *p == '}')
        Py_RETURN_NONE;
    for (;;) {
        if (p >= end || *p != '"')
            goto none;
        const char *key = p + 1, *after = past_string(key, end);
        if (after == NULL || memchr(key, '\\', (size_t)(after - 1 - key)) != NULL)
            goto none; /* an escape in a key: msgspec reads what it stands for */
        int ours = (size_t)(after - 1 - key) == sizeof RESPONSES - 1
                   && memcmp(key, RESPONSES, sizeof RESPONSES - 1) == 0;
        p = ws(after, end);
        if (p >= end || *p != ':')
            goto none;
        p = ws(p + 1, end);
        if (ours) {
            if (found != NULL || p >= end || *p != '[')
                goto none; /* given twice, or not a list */
            if ((found = PyList_New(0)) == NULL)
                return NULL;
            p = ws(p + 1, end);
            if (p < end && *p == ']') {
                p++;
            } else {
                for (;;) {
                    const char *start = p, *stop = past_value(p, end);
                    if (stop == NULL)
                        goto none;
                    PyObject *item = PyBytes_FromStringAndSize(start, stop - start);
                    if (item == NULL || PyList_Append(found, item) < 0) {
                        Py_XDECREF(item);
                        Py_DECREF(found);
                        return NULL;
                    }
                    Py_DECREF(item);
                    p = stop;
                    int more = next_item(&p, end, ']');
                    if (more < 0)
                        goto none;
                    if (!more)
                        break;
                }
            }
        } else if ((p = past_value(p, end)) == NULL) {
            goto none;
        }
        int more = next_item(&p, end, '}');
        if (more < 0 || (!more && ws(p, end) != end))
            goto none;
        if (!more)
            break;
    }
    if (found == NULL)
        Py_RETURN_NONE;
    return found;
none:
    Py_XDECREF(found);
    Py_RETURN_NONE;
}


/* -- an answer body read whole: its entries' fields and bytes --------------------------------

   read_body(body): what protocol.parse_response's fast way makes of a plain answer body, in
   one walk: (entries, raws), each entry the `Entry` msgspec reads (`_read_entries`, the
   reference) and its bytes as `entries` splits them; None (the reference reads the body)
   for anything it does not take as it is. Taken: JSON (RFC 8259) whose strings are ASCII
   from the space up without a backslash (no escape, no control character, no byte past
   ASCII), nesting at most READ_DEPTH levels, with a top-level "classificationResponses"
   list of objects given once; in each entry, each field a record reads given at most once, its text a string or
   null, its integer one of at most 18 digits or null (a score too: no float), its objects
   objects or null (the requestKey's fields strings or null). Everything else in the body is
   skipped, its grammar checked. `entry_types` gives the struct types first. On any input it
   reads nothing past the end and nests at most READ_DEPTH calls. */

#define READ_DEPTH 64

static PyObject *T_ENTRY, *T_ECHO, *T_AGG, *T_MAL, *T_RAW, *NO_RAW;

static PyObject *entry_types(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *t[5];
    if (!PyArg_ParseTuple(args, "OOOOO:entry_types", &t[0], &t[1], &t[2], &t[3], &t[4]))
        return NULL;
    PyObject *empty = PyObject_CallNoArgs(t[4]); /* the product's default, msgspec.Raw() */
    if (empty == NULL)
        return NULL;
    PyObject **slots[5] = {&T_ENTRY, &T_ECHO, &T_AGG, &T_MAL, &T_RAW};
    for (int i = 0; i < 5; i++) {
        Py_INCREF(t[i]);
        Py_XSETREF(*slots[i], t[i]);
    }
    Py_XSETREF(NO_RAW, empty);
    Py_RETURN_NONE;
}

/* the closing quote of the string whose opening quote `p` is after, or NULL for the end or a
   byte a plain string does not hold (a backslash, a control character, one past ASCII) */
static const char *string_end(const char *p, const char *end)
{
#if defined(__SSE2__)
    const __m128i quote = _mm_set1_epi8('"'), slash = _mm_set1_epi8('\\'),
                  space = _mm_set1_epi8(' ');
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* (signed: a byte past ASCII is below the space too) */
        __m128i hits = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote),
                                                 _mm_cmpeq_epi8(v, slash)),
                                    _mm_cmplt_epi8(v, space));
        unsigned int m = (unsigned int)_mm_movemask_epi8(hits);
        if (m) {
            const char *q = p + __builtin_ctz(m);
            return *q == '"' ? q : NULL;
        }
        p += 16;
    }
#endif
    for (; p < end; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"')
            return p;
        if (c == '\\' || c < 0x20 || c > 0x7f)
            return NULL;
    }
    return NULL;
}

/* a member's plain name `"name":` at `p`: the name in `*name` and `*n`, the value's start
   (spaces skipped); NULL if it is none */
static inline const char *member(const char *p, const char *end, const char **name,
                                 Py_ssize_t *n)
{
    const char *q;
    if (p >= end || *p != '"' || (q = string_end(p + 1, end)) == NULL)
        return NULL;
    *name = p + 1, *n = q - (p + 1);
    p = ws(q + 1, end);
    if (p >= end || *p != ':')
        return NULL;
    return ws(p + 1, end);
}

/* past the number at `p` (JSON's grammar), or NULL; `*whole`: the value when it is an integer
   of at most 18 digits (no fraction, no exponent), with `*is_whole` set */
static const char *number_end(const char *p, const char *end, long long *whole, int *is_whole)
{
    int negative = 0, count = 0;
    unsigned long long v = 0;
    *is_whole = 0;
    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    if (p >= end)
        return NULL;
    if (*p == '0') {
        p++;
        count = 1;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && *p >= '0' && *p <= '9') {
            if (count < 19)
                v = v * 10 + (unsigned long long)(*p - '0');
            count++;
            p++;
        }
    } else {
        return NULL;
    }
    int fraction = 0;
    if (p < end && *p == '.') {
        fraction = 1;
        if (++p >= end || *p < '0' || *p > '9')
            return NULL;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        fraction = 1;
        if (++p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || *p < '0' || *p > '9')
            return NULL;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
    }
    if (!fraction && count <= 18) {
        *is_whole = 1;
        *whole = negative ? -(long long)v : (long long)v;
    }
    return p;
}

/* past the literal `word` (of `n` letters) at `p`, or NULL */
static const char *literal_end(const char *p, const char *end, const char *word, size_t n)
{
    return (size_t)(end - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

/* past the JSON value at `p` (no whitespace before it), its grammar checked, or NULL */
static const char *skip_value(const char *p, const char *end, int depth)
{
    if (p >= end)
        return NULL;
    switch (*p) {
    case '"': {
        const char *q = string_end(p + 1, end);
        return q == NULL ? NULL : q + 1;
    }
    case 't':
        return literal_end(p, end, "true", 4);
    case 'f':
        return literal_end(p, end, "false", 5);
    case 'n':
        return literal_end(p, end, "null", 4);
    case '{':
    case '[': {
        char close = *p == '{' ? '}' : ']';
        if (depth >= READ_DEPTH)
            return NULL;
        p = ws(p + 1, end);
        if (p < end && *p == close)
            return p + 1;
        for (;;) {
            if (close == '}') {
                if (p >= end || *p != '"' || (p = string_end(p + 1, end)) == NULL)
                    return NULL;
                p = ws(p + 1, end);
                if (p >= end || *p != ':')
                    return NULL;
                p = ws(p + 1, end);
            }
            if ((p = skip_value(p, end, depth + 1)) == NULL)
                return NULL;
            p = ws(p, end);
            if (p >= end)
                return NULL;
            if (*p == close)
                return p + 1;
            if (*p != ',')
                return NULL;
            p = ws(p + 1, end);
        }
    }
    default: {
        long long whole;
        int is_whole;
        return number_end(p, end, &whole, &is_whole);
    }
    }
}

/* The fields of an object read by `read_object`: their names, and what each one's value must
   be. */
enum { F_TEXT, F_WORD, F_WHOLE, F_RAW, F_ECHO, F_AGG, F_MAL };

/* The texts of F_WORD fields (a classification, a source, a cpType: few distinct ones across
   answers) as met, by a hash of their bytes, each slot the last one met there: a text met
   again is the same str, its hash already computed (the verdicts' lookup) and nothing made
   or freed. Texts up to WORD_LONGEST bytes. */
#define WORDS 64
#define WORD_LONGEST 32
static PyObject *WORD_CACHE[WORDS];

/* a str of the `n` ASCII bytes at `s` (a new reference), or NULL for an error */
static PyObject *ascii_text(const char *s, Py_ssize_t n, int word)
{
    unsigned int h = 0;
    if (word && n <= WORD_LONGEST) {
        h = 2166136261u;
        for (Py_ssize_t i = 0; i < n; i++)
            h = (h ^ (unsigned char)s[i]) * 16777619u;
        h %= WORDS;
        PyObject *known = WORD_CACHE[h];
        if (known != NULL && PyUnicode_GET_LENGTH(known) == n
            && memcmp(PyUnicode_DATA(known), s, (size_t)n) == 0) {
            Py_INCREF(known);
            return known;
        }
    }
    PyObject *text = PyUnicode_New(n, 127);
    if (text == NULL)
        return NULL;
    memcpy(PyUnicode_DATA(text), s, (size_t)n);
    if (word && n <= WORD_LONGEST) {
        Py_INCREF(text);
        Py_XSETREF(WORD_CACHE[h], text);
    }
    return text;
}

/* where `scan_object` keeps a field's value in a Rec: a span's index, or a number's */
enum { R_MD5, R_SHA1, R_SHA256, R_DOMAIN, R_IP, R_CTYPE, R_SOURCE, R_LINK, R_CP_TYPE, R_PRODUCT,
       R_SPANS };
enum { W_TTL, W_CP_ID, W_FIRST, W_SCORE, W_TYPE_SCORE, W_WHOLES };

typedef struct {
    const char *name;
    Py_ssize_t n;
    int kind;
    int at; /* the R_ or W_ of its value in a Rec (an object's: none, -1) */
} Field;

#define FIELD(name, kind, at) {name, sizeof name - 1, kind, at}
static const Field ENTRY_FIELDS[] = {FIELD("requestKey", F_ECHO, -1), FIELD("ttl", F_WHOLE, W_TTL),
                                     FIELD("aggregatedResult", F_AGG, -1),
                                     FIELD("cpType", F_WORD, R_CP_TYPE),
                                     FIELD("cpId", F_WHOLE, W_CP_ID)};
static const Field ECHO_FIELDS[] = {FIELD("md5", F_TEXT, R_MD5), FIELD("sha1", F_TEXT, R_SHA1),
                                    FIELD("sha256", F_TEXT, R_SHA256),
                                    FIELD("domain", F_TEXT, R_DOMAIN),
                                    FIELD("ipAddress", F_TEXT, R_IP)};
static const Field AGG_FIELDS[] = {FIELD("maliciousClassification", F_MAL, -1),
                                   FIELD("firstSeen", F_WHOLE, W_FIRST),
                                   FIELD("link", F_TEXT, R_LINK),
                                   FIELD("productClassification", F_RAW, R_PRODUCT)};
static const Field MAL_FIELDS[] = {FIELD("type", F_WORD, R_CTYPE),
                                   FIELD("classificationScore", F_WHOLE, W_SCORE),
                                   FIELD("typeScore", F_WHOLE, W_TYPE_SCORE),
                                   FIELD("source", F_WORD, R_SOURCE)};
#undef FIELD

static const char *read_object(const char *p, const char *end, int kind, int depth,
                               PyObject **out);

/* past the value at `p` for a field of `kind`, or NULL (an error set, or none: not taken);
   `*out` its object (a new reference) */
static const char *read_field(const char *p, const char *end, int kind, int depth,
                              PyObject **out)
{
    if (p >= end)
        return NULL;
    if (kind == F_RAW) {
        const char *stop = skip_value(p, end, depth);
        if (stop == NULL)
            return NULL;
        PyObject *bytes = PyBytes_FromStringAndSize(p, stop - p);
        if (bytes == NULL)
            return NULL;
        *out = PyObject_CallOneArg(T_RAW, bytes);
        Py_DECREF(bytes);
        return *out == NULL ? NULL : stop;
    }
    if (*p == 'n') {
        if ((p = literal_end(p, end, "null", 4)) != NULL) {
            Py_INCREF(Py_None);
            *out = Py_None;
        }
        return p;
    }
    if (kind == F_TEXT || kind == F_WORD) {
        const char *q;
        if (*p != '"' || (q = string_end(p + 1, end)) == NULL)
            return NULL;
        *out = ascii_text(p + 1, q - p - 1, kind == F_WORD);
        return *out == NULL ? NULL : q + 1;
    }
    if (kind == F_WHOLE) {
        long long whole;
        int is_whole;
        const char *stop = number_end(p, end, &whole, &is_whole);
        if (stop == NULL || !is_whole)
            return NULL;
        *out = PyLong_FromLongLong(whole);
        return *out == NULL ? NULL : stop;
    }
    return read_object(p, end, kind, depth, out);
}

/* past the object at `p` read as a struct of `kind` (F_ECHO, F_AGG, F_MAL, or -1 for an
   entry), or NULL (an error set, or none: not taken); `*out` the struct */
static const char *read_object(const char *p, const char *end, int kind, int depth,
                               PyObject **out)
{
    const Field *fields;
    PyObject *type;
    Py_ssize_t count;
    switch (kind) {
    case F_ECHO:
        fields = ECHO_FIELDS, count = 5, type = T_ECHO;
        break;
    case F_AGG:
        fields = AGG_FIELDS, count = 4, type = T_AGG;
        break;
    case F_MAL:
        fields = MAL_FIELDS, count = 4, type = T_MAL;
        break;
    default:
        fields = ENTRY_FIELDS, count = 5, type = T_ENTRY;
    }
    PyObject *values[5] = {NULL, NULL, NULL, NULL, NULL};
    if (depth >= READ_DEPTH || p >= end || *p != '{')
        return NULL;
    p = ws(p + 1, end);
    if (p < end && *p == '}') {
        p++;
    } else {
        for (;;) {
            const char *name;
            Py_ssize_t n, i = 0;
            if ((p = member(p, end, &name, &n)) == NULL)
                goto none;
            while (i < count && (fields[i].n != n || memcmp(fields[i].name, name, (size_t)n)))
                i++;
            if (i == count) {
                p = skip_value(p, end, depth + 1);
            } else {
                if (values[i] != NULL) /* given twice */
                    goto none;
                p = read_field(p, end, fields[i].kind, depth + 1, &values[i]);
            }
            if (p == NULL)
                goto none;
            int more = next_item(&p, end, '}');
            if (more < 0)
                goto none;
            if (!more)
                break;
        }
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        if (values[i] == NULL) {
            values[i] = kind == F_AGG && i == 3 ? NO_RAW : Py_None;
            Py_INCREF(values[i]);
        }
    }
    *out = PyObject_Vectorcall(type, values, (size_t)count, NULL);
    for (Py_ssize_t i = 0; i < count; i++)
        Py_DECREF(values[i]);
    return *out == NULL ? NULL : p;
none:
    for (Py_ssize_t i = 0; i < count; i++)
        Py_XDECREF(values[i]);
    return NULL;
}

static PyObject *read_body(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyBytes_CheckExact(arg)) {
        PyErr_SetString(PyExc_TypeError, "read_body() takes bytes");
        return NULL;
    }
    if (T_ENTRY == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_records.entry_types was not called");
        return NULL;
    }
    const char *p = PyBytes_AS_STRING(arg), *end = p + PyBytes_GET_SIZE(arg);
    PyObject *entries = NULL, *raws = NULL;
    p = ws(p, end);
    if (p >= end || *p != '{')
        Py_RETURN_NONE;
    p = ws(p + 1, end);
    if (p < end && *p == '}')
        Py_RETURN_NONE; /* no classificationResponses */
    for (;;) {
        const char *key;
        Py_ssize_t n;
        if ((p = member(p, end, &key, &n)) == NULL)
            goto none;
        int ours = (size_t)n == sizeof RESPONSES - 1
                   && memcmp(key, RESPONSES, sizeof RESPONSES - 1) == 0;
        if (!ours) {
            if ((p = skip_value(p, end, 1)) == NULL)
                goto none;
        } else {
            if (entries != NULL || p >= end || *p != '[')
                goto none; /* given twice, or not a list */
            if ((entries = PyList_New(0)) == NULL || (raws = PyList_New(0)) == NULL)
                goto none;
            p = ws(p + 1, end);
            if (p < end && *p == ']') {
                p++;
            } else {
                for (;;) {
                    PyObject *entry = NULL;
                    const char *start = p;
                    if ((p = read_object(p, end, -1, 2, &entry)) == NULL)
                        goto none;
                    PyObject *raw = PyBytes_FromStringAndSize(start, p - start);
                    int failed = raw == NULL || PyList_Append(entries, entry) < 0
                                 || PyList_Append(raws, raw) < 0;
                    Py_DECREF(entry);
                    Py_XDECREF(raw);
                    if (failed)
                        goto none;
                    int more = next_item(&p, end, ']');
                    if (more < 0)
                        goto none;
                    if (!more)
                        break;
                }
            }
        }
        int more = next_item(&p, end, '}');
        if (more < 0 || (!more && ws(p, end) != end))
            goto none;
        if (!more)
            break;
    }
    if (entries == NULL)
        Py_RETURN_NONE;
    PyObject *result = PyTuple_Pack(2, entries, raws);
    Py_DECREF(entries);
    Py_DECREF(raws);
    return result;
none:
    Py_XDECREF(entries);
    Py_XDECREF(raws);
    if (PyErr_Occurred())
        return NULL; /* (a MemoryError) */
    Py_RETURN_NONE;
}


/* -- a plain answer body straight to its record lines ---------------------------------------

   plain_table(body, asked, names, longest): read_body's walk and match's loop in one, making
   no object an entry: for a body both take as it is (read_body reads it, and match finds
   every entry's echo a key asked, once), where each entry's fields are in the body and an
   index of the entries by the key they echo, as one bytes object (a table); None for any
   other body (then read_body and match decide), or False for one holding a backslash or a
   byte past ASCII, which read_body does not take either (it walks no such body again, up to
   the byte): (table, how many entries). The answers
   match would give are made of the body only when asked for (ParsedResponse.answers).

   table_lines(body, table, keys, verdicts, ttl_factor, done, lines, answered): answer_lines
   over those answers, without them: for each key the table answers, in order, the key onto
   `done`, its line onto `lines` and (ioc, verdict, ttl in ms) onto `answered`, the same as
   answer_lines puts there; the keys it does not answer, in order. None, with nothing done,
   where answer_lines would make a line in Python (record_line's reference: `line` leaves it),
   or a key is not an (IocType, str) pair. */

typedef struct {
    Py_ssize_t at, n; /* n < 0: null, or not given */
} Span;

enum { HAS_ECHO = 1, HAS_AGG = 2, HAS_MAL = 4, HAS_WHOLE = 8 /* << a W_ */ };

typedef struct {
    Py_ssize_t start, stop; /* the entry's bytes */
    Span key;               /* the key it echoes */
    Span spans[R_SPANS];
    long long wholes[W_WHOLES];
    unsigned int has; /* HAS_ bits: objects given (not null), and wholes */
} Rec;

/* a table's head: how many entries (Recs) follow, then an index of `slots` places (a power
   of 2), each an entry's number or -1 */
typedef struct {
    Py_ssize_t count, slots;
} Head;

static uint64_t key_hash(const char *s, Py_ssize_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t)n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, (size_t)n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 29);
}

static const char *scan_object(const char *base, const char *p, const char *end, int kind,
                               int depth, Rec *r);

/* read_field's walk for the field `f`, its value kept in `r` */
static const char *scan_field(const char *base, const char *p, const char *end, const Field *f,
                              int depth, Rec *r)
{
    if (p >= end)
        return NULL;
    if (f->kind == F_RAW) {
        const char *stop = skip_value(p, end, depth);
        if (stop != NULL)
            r->spans[f->at] = (Span){p - base, stop - p};
        return stop;
    }
    if (*p == 'n')
        return literal_end(p, end, "null", 4); /* (left null) */
    if (f->kind == F_TEXT || f->kind == F_WORD) {
        const char *q;
        if (*p != '"' || (q = string_end(p + 1, end)) == NULL)
            return NULL;
        r->spans[f->at] = (Span){p + 1 - base, q - p - 1};
        return q + 1;
    }
    if (f->kind == F_WHOLE) {
        long long whole;
        int is_whole;
        const char *stop = number_end(p, end, &whole, &is_whole);
        if (stop == NULL || !is_whole)
            return NULL;
        r->wholes[f->at] = whole;
        r->has |= (unsigned int)HAS_WHOLE << f->at;
        return stop;
    }
    r->has |= f->kind == F_ECHO ? HAS_ECHO : f->kind == F_AGG ? HAS_AGG : HAS_MAL;
    return scan_object(base, p, end, f->kind, depth, r);
}

/* read_object's walk, the fields kept in `r` */
static const char *scan_object(const char *base, const char *p, const char *end, int kind,
                               int depth, Rec *r)
{
    const Field *fields;
    Py_ssize_t count;
    switch (kind) {
    case F_ECHO:
        fields = ECHO_FIELDS, count = 5;
        break;
    case F_AGG:
        fields = AGG_FIELDS, count = 4;
        break;
    case F_MAL:
        fields = MAL_FIELDS, count = 4;
        break;
    default:
        fields = ENTRY_FIELDS, count = 5;
    }
    unsigned int seen = 0;
    if (depth >= READ_DEPTH || p >= end || *p != '{')
        return NULL;
    p = ws(p + 1, end);
    if (p < end && *p == '}')
        return p + 1;
    for (;;) {
        const char *name;
        Py_ssize_t n, i = 0;
        if ((p = member(p, end, &name, &n)) == NULL)
            return NULL;
        while (i < count && (fields[i].n != n || memcmp(fields[i].name, name, (size_t)n)))
            i++;
        if (i == count) {
            p = skip_value(p, end, depth + 1);
        } else {
            if (seen & (1u << i)) /* given twice */
                return NULL;
            seen |= 1u << i;
            p = scan_field(base, p, end, &fields[i], depth + 1, r);
        }
        if (p == NULL)
            return NULL;
        int more = next_item(&p, end, '}');
        if (more < 0)
            return NULL;
        if (!more)
            return p;
    }
}

/* whether the bytes from `p` to `end` are all ASCII */
static int all_ascii(const char *p, const char *end)
{
#if defined(__SSE2__)
    for (; end - p >= 16; p += 16)
        if (_mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(const void *)p)))
            return 0;
#endif
    for (; p < end; p++)
        if ((unsigned char)*p > 0x7f)
            return 0;
    return 1;
}

static PyObject *plain_table(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 4 || !PyBytes_CheckExact(args[0]) || !PyAnySet_CheckExact(args[1])
        || !PyTuple_CheckExact(args[2]) || PyTuple_GET_SIZE(args[2]) < 1
        || !PyLong_CheckExact(args[3])) {
        PyErr_SetString(PyExc_TypeError, "plain_table(body, asked, names, longest)");
        return NULL;
    }
    PyObject *asked = args[1], *names = args[2];
    Py_ssize_t longest = PyLong_AsSsize_t(args[3]);
    if (longest == -1 && PyErr_Occurred())
        return NULL;
    /* the echo fields match reads, as places in a Rec */
    int picks[5];
    Py_ssize_t npicks = PyTuple_GET_SIZE(names);
    if (npicks > 5)
        Py_RETURN_NONE;
    for (Py_ssize_t k = 0; k < npicks; k++) {
        PyObject *name = PyTuple_GET_ITEM(names, k);
        if (!PyUnicode_CheckExact(name) || !PyUnicode_IS_ASCII(name))
            Py_RETURN_NONE;
        Py_ssize_t n = PyUnicode_GET_LENGTH(name);
        int i = 0;
        while (i < 5 && (ECHO_FIELDS[i].n != n
                         || memcmp(ECHO_FIELDS[i].name, PyUnicode_DATA(name), (size_t)n)))
            i++;
        if (i == 5)
            Py_RETURN_NONE;
        picks[k] = ECHO_FIELDS[i].at;
    }
    const char *base = PyBytes_AS_STRING(args[0]), *p = base;
    const char *end = p + PyBytes_GET_SIZE(args[0]);
    Rec *recs = NULL;
    Py_ssize_t *index = NULL, count = 0, room = 0, slots = 8;
    int listed = 0;
    PyObject *table = NULL;
    p = ws(p, end);
    if (p >= end || *p != '{')
        goto none;
    p = ws(p + 1, end);
    for (;;) { /* (an empty object: no classificationResponses) */
        const char *key;
        Py_ssize_t n;
        if ((p = member(p, end, &key, &n)) == NULL)
            goto none;
        int ours = (size_t)n == sizeof RESPONSES - 1
                   && memcmp(key, RESPONSES, sizeof RESPONSES - 1) == 0;
        if (!ours) {
            if ((p = skip_value(p, end, 1)) == NULL)
                goto none;
        } else {
            if (listed || p >= end || *p != '[')
                goto none; /* given twice, or not a list */
            listed = 1;
            p = ws(p + 1, end);
            if (p < end && *p == ']') {
                p++;
            } else {
                for (;;) {
                    if (count == PySet_GET_SIZE(asked))
                        goto none; /* more entries than keys asked: match's loop would
                                      refuse it (below); not read further */
                    if (count == room) {
                        room = room ? 2 * room : 64;
                        Rec *more = PyMem_Realloc(recs, (size_t)room * sizeof(Rec));
                        if (more == NULL) {
                            PyErr_NoMemory();
                            goto none;
                        }
                        recs = more;
                    }
                    Rec *r = &recs[count];
                    memset(r, 0, sizeof *r);
                    for (int i = 0; i < R_SPANS; i++)
                        r->spans[i].n = -1;
                    r->start = p - base;
                    if ((p = scan_object(base, p, end, -1, 2, r)) == NULL)
                        goto none;
                    r->stop = p - base;
                    count++;
                    int more = next_item(&p, end, ']');
                    if (more < 0)
                        goto none;
                    if (!more)
                        break;
                }
            }
        }
        int more = next_item(&p, end, '}');
        if (more < 0 || (!more && ws(p, end) != end))
            goto none;
        if (!more)
            break;
    }
    /* match's loop: each entry echoes a key asked (the first of `names` set, or the last),
       once, and is no longer than `longest` */
    if (!listed || count > PySet_GET_SIZE(asked))
        goto none;
    while (slots < 2 * count)
        slots *= 2;
    if ((index = PyMem_Malloc((size_t)slots * sizeof *index)) == NULL) {
        PyErr_NoMemory();
        goto none;
    }
    for (Py_ssize_t s = 0; s < slots; s++)
        index[s] = -1;
    for (Py_ssize_t i = 0; i < count; i++) {
        Rec *r = &recs[i];
        if (!(r->has & HAS_ECHO) || r->stop - r->start > longest)
            goto none;
        for (Py_ssize_t k = 0; k < npicks; k++) {
            r->key = r->spans[picks[k]];
            if (r->key.n > 0)
                break;
        }
        if (r->key.n <= 0) /* null, or "": no key asked */
            goto none;
        const char *s = base + r->key.at;
        size_t h = (size_t)key_hash(s, r->key.n) & (size_t)(slots - 1);
        for (; index[h] >= 0; h = (h + 1) & (size_t)(slots - 1)) {
            Rec *o = &recs[index[h]];
            if (o->key.n == r->key.n && memcmp(base + o->key.at, s, (size_t)r->key.n) == 0)
                goto none; /* echoed twice */
        }
        index[h] = i;
    }
    Py_ssize_t found = 0, pos = 0;
    PyObject *item;
    Py_hash_t item_hash;
    while (_PySet_NextEntry(asked, &pos, &item, &item_hash)) { /* (borrowed; no Python runs) */
        if (!PyUnicode_CheckExact(item) || !PyUnicode_IS_ASCII(item))
            continue;
        const char *s = (const char *)PyUnicode_DATA(item);
        Py_ssize_t n = PyUnicode_GET_LENGTH(item);
        size_t h = (size_t)key_hash(s, n) & (size_t)(slots - 1);
        for (; index[h] >= 0; h = (h + 1) & (size_t)(slots - 1)) {
            Rec *o = &recs[index[h]];
            if (o->key.n == n && memcmp(base + o->key.at, s, (size_t)n) == 0) {
                found++;
                break;
            }
        }
    }
    if (found != count)
        goto none; /* an entry echoes a key not asked */
    Head head = {count, slots};
    size_t size = sizeof head + (size_t)count * sizeof(Rec) + (size_t)slots * sizeof *index;
    if ((table = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size)) == NULL)
        goto none;
    char *out = PyBytes_AS_STRING(table);
    memcpy(out, &head, sizeof head);
    if (count)
        memcpy(out + sizeof head, recs, (size_t)count * sizeof(Rec));
    memcpy(out + sizeof head + (size_t)count * sizeof(Rec), index, (size_t)slots * sizeof *index);
    PyMem_Free(recs);
    PyMem_Free(index);
    PyObject *pair = Py_BuildValue("(Nn)", table, count);
    return pair;
none:
    PyMem_Free(recs);
    PyMem_Free(index);
    if (PyErr_Occurred())
        return NULL; /* (a MemoryError) */
    if (memchr(base, '\\', (size_t)(end - base)) != NULL || !all_ascii(base, end))
        Py_RETURN_FALSE; /* read_body does not take it either */
    Py_RETURN_NONE;
}

/* whether a span is null or within a body of `size` bytes */
static int span_in(Span s, Py_ssize_t size)
{
    return s.n < 0 || (s.at >= 0 && s.at <= size && s.n <= size - s.at);
}

/* the piece of an optional text at a span of `base` (null: null); 0 if JSON would not write
   it as it is */
static int span_piece(const char *base, Span s, Piece *p)
{
    if (s.n < 0) {
        *p = (Piece){NULL_JSON, 4, 0};
        return 1;
    }
    *p = (Piece){base + s.at, s.n, 1};
    return plain_run((const unsigned char *)base + s.at, s.n);
}

/* the piece of an optional whole (not given: null), its digits in `buf` */
static Piece whole_piece(const Rec *r, int w, char *buf)
{
    if (!(r->has & ((unsigned int)HAS_WHOLE << w)))
        return (Piece){NULL_JSON, 4, 0};
    return (Piece){buf, digits(buf, r->wholes[w]), 0};
}

/* `line` for the entry `r` of `base` answering `key` (an (IocType, str) pair): the line, and
   its verdict and ttl in ms in `*verdict_out` (borrowed from `verdicts`) and `*ttl_out` (a
   new reference); Py_None (a new reference) where `line` would leave it, or NULL for an
   error */
static PyObject *rec_line(const char *base, const Rec *r, PyObject *key, PyObject *verdicts,
                          long long factor, PyObject **verdict_out, PyObject **ttl_out)
{
    if (!(r->has & HAS_AGG) || !(r->has & HAS_MAL))
        Py_RETURN_NONE;
    PyObject *type_json = PyDict_GetItemWithError(TYPES, PyTuple_GET_ITEM(key, 0));
    if (type_json == NULL) {
        if (PyErr_Occurred())
            return NULL;
        Py_RETURN_NONE;
    }
    if (!PyBytes_CheckExact(type_json))
        Py_RETURN_NONE;
    Py_INCREF(type_json); /* (a mapping's `get` below may run Python) */
    PyObject *verdict = UNKNOWN, *got = NULL, *result = NULL;
    Span ctype = r->spans[R_CTYPE];
    if (ctype.n >= 0) {
        PyObject *text = ascii_text(base + ctype.at, ctype.n, 1);
        if (text == NULL)
            goto done;
        if (PyDict_CheckExact(verdicts)) {
            verdict = PyDict_GetItemWithError(verdicts, text);
            if (verdict == NULL) {
                if (PyErr_Occurred()) {
                    Py_DECREF(text);
                    goto done;
                }
                verdict = UNKNOWN;
            }
        } else {
            got = PyObject_CallMethodObjArgs(verdicts, S_GET, text, UNKNOWN, NULL);
            if (got == NULL) {
                Py_DECREF(text);
                goto done;
            }
            verdict = got;
        }
        Py_DECREF(text);
    }
    Piece verdict_piece, ctype_piece, source_piece, ioc_piece, cp_piece, link_piece;
    char ttl_digits[24], stamp[40];
    verdict_piece.quoted = ioc_piece.quoted = 1;
    if ((verdict_piece.s = plain(verdict, &verdict_piece.n)) == NULL
        || (ioc_piece.s = plain(PyTuple_GET_ITEM(key, 1), &ioc_piece.n)) == NULL
        || !span_piece(base, ctype, &ctype_piece)
        || !span_piece(base, r->spans[R_SOURCE], &source_piece)
        || !span_piece(base, r->spans[R_CP_TYPE], &cp_piece)
        || !span_piece(base, r->spans[R_LINK], &link_piece))
        goto fallback;
    Piece ttl_piece = {NULL_JSON, 4, 0};
    if (r->has & ((unsigned int)HAS_WHOLE << W_TTL)) {
        long long ms;
        if (__builtin_mul_overflow(r->wholes[W_TTL], factor, &ms))
            goto fallback;
        if ((*ttl_out = PyLong_FromLongLong(ms)) == NULL)
            goto done;
        ttl_piece = (Piece){ttl_digits, digits(ttl_digits, ms), 0};
    } else {
        Py_INCREF(Py_None);
        *ttl_out = Py_None;
    }
    Piece first_piece = {NULL_JSON, 4, 0};
    if (r->has & ((unsigned int)HAS_WHOLE << W_FIRST)) {
        if (!stamp_of(r->wholes[W_FIRST], stamp))
            goto fallback;
        first_piece = (Piece){stamp, 26, 0};
    }
    Piece product_piece = {NULL_JSON, 4, 0};
    Span product = r->spans[R_PRODUCT];
    if (product.n > 0 && base[product.at] == '{')
        product_piece = (Piece){base + product.at, product.n, 0};
    /* the pieces between the fixed texts, in order: `line`'s, written straight (the fixed
       texts' copies of a size known here, a few moves each) */
    char score_digits[24], type_score_digits[24];
    Piece parts[] = {
        ioc_piece,
        {PyBytes_AS_STRING(type_json), PyBytes_GET_SIZE(type_json), 0},
        verdict_piece,
        ctype_piece,
        whole_piece(r, W_SCORE, score_digits),
        whole_piece(r, W_TYPE_SCORE, type_score_digits),
        source_piece,
        ttl_piece,
        first_piece,
        link_piece,
        product_piece,
        cp_piece,
        {base + r->start, r->stop - r->start, 0},
        {PyBytes_AS_STRING(FRESH), PyBytes_GET_SIZE(FRESH), 0},
    };
    /* the fixed texts, all of them (each written below) */
    static const char FIXED[] = "{\"ioc\":" ",\"verdict\":" ",\"classification\":" ",\"score\":"
                                ",\"type_score\":" ",\"source\":" ",\"ttl_ms\":" ",\"first_seen\":"
                                ",\"link\":" ",\"product\":" ",\"cp_type\":" ",\"response\":";
    Py_ssize_t size = sizeof FIXED - 1;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        size += parts[i].n + 2 * parts[i].quoted;
    if ((result = PyBytes_FromStringAndSize(NULL, size)) == NULL)
        goto done;
    char *out = PyBytes_AS_STRING(result);
#define PART(i)                                                                                 \
    do {                                                                                        \
        if (parts[i].quoted)                                                                    \
            *out++ = '"';                                                                       \
        memcpy(out, parts[i].s, (size_t)parts[i].n);                                            \
        out += parts[i].n;                                                                      \
        if (parts[i].quoted)                                                                    \
            *out++ = '"';                                                                       \
    } while (0)
#define TEXT(text) (memcpy(out, text, sizeof text - 1), out += sizeof text - 1)
    TEXT("{\"ioc\":");
    PART(0);
    PART(1);
    TEXT(",\"verdict\":");
    PART(2);
    TEXT(",\"classification\":");
    PART(3);
    TEXT(",\"score\":");
    PART(4);
    TEXT(",\"type_score\":");
    PART(5);
    TEXT(",\"source\":");
    PART(6);
    TEXT(",\"ttl_ms\":");
    PART(7);
    TEXT(",\"first_seen\":");
    PART(8);
    TEXT(",\"link\":");
    PART(9);
    TEXT(",\"product\":");
    PART(10);
    TEXT(",\"cp_type\":");
    PART(11);
    TEXT(",\"response\":");
    PART(12);
    PART(13);
#undef TEXT
#undef PART
    assert(out == PyBytes_AS_STRING(result) + size);
    Py_INCREF(verdict);
    *verdict_out = verdict;
    goto done;
fallback:
    Py_INCREF(Py_None);
    result = Py_None;
done:
    if (result == NULL || result == Py_None)
        Py_CLEAR(*ttl_out);
    Py_XDECREF(got);
    Py_DECREF(type_json);
    return result;
}

static PyObject *table_lines(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 8 || !PyBytes_CheckExact(args[0]) || !PyBytes_CheckExact(args[1])
        || !PyList_CheckExact(args[2]) || !PyLong_CheckExact(args[4])
        || !PyList_CheckExact(args[5]) || !PyList_CheckExact(args[6])
        || !PyList_CheckExact(args[7])) {
        PyErr_SetString(PyExc_TypeError, "table_lines(body, table, keys, verdicts, ttl_factor, "
                                          "done, lines, answered)");
        return NULL;
    }
    if (TYPES == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "_records.setup was not called");
        return NULL;
    }
    PyObject *body = args[0], *table = args[1], *keys = args[2], *verdicts = args[3];
    Py_ssize_t size = PyBytes_GET_SIZE(body);
    const char *base = PyBytes_AS_STRING(body), *t = PyBytes_AS_STRING(table);
    Head head;
    if ((size_t)PyBytes_GET_SIZE(table) < sizeof head)
        goto not_table;
    memcpy(&head, t, sizeof head);
    if (head.count < 0 || head.slots < 1 || (head.slots & (head.slots - 1))
        || head.count > PY_SSIZE_T_MAX / 2 / (Py_ssize_t)sizeof(Rec)
        || head.slots > PY_SSIZE_T_MAX / 2 / (Py_ssize_t)sizeof(Py_ssize_t)
        || (size_t)PyBytes_GET_SIZE(table) != sizeof head + (size_t)head.count * sizeof(Rec)
                                                   + (size_t)head.slots * sizeof(Py_ssize_t))
        goto not_table;
    const char *recs = t + sizeof head, *index = recs + (size_t)head.count * sizeof(Rec);
    int overflow = 0;
    long long factor = PyLong_AsLongLongAndOverflow(args[4], &overflow);
    if (factor == -1 && PyErr_Occurred())
        return NULL;
    if (overflow)
        Py_RETURN_NONE;
    if (Py_IS_TYPE(verdicts, &PyDictProxy_Type) && PyDict_CheckExact(((Proxy *)verdicts)->mapping))
        verdicts = ((Proxy *)verdicts)->mapping;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        if (!PyTuple_CheckExact(key) || PyTuple_GET_SIZE(key) != 2
            || !PyUnicode_CheckExact(PyTuple_GET_ITEM(key, 1)))
            Py_RETURN_NONE;
    }
    Py_INCREF(body); /* (a mapping's `get` may run Python: what is read stays) */
    Py_INCREF(table);
    Py_INCREF(verdicts);
    PyObject *rest = PyList_New(0), *done = PyList_New(0), *lines = PyList_New(0);
    PyObject *answered = PyList_New(0), *result = NULL;
    if (rest == NULL || done == NULL || lines == NULL || answered == NULL)
        goto finish;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        if (!PyTuple_CheckExact(key) || PyTuple_GET_SIZE(key) != 2
            || !PyUnicode_CheckExact(PyTuple_GET_ITEM(key, 1))) {
            PyErr_SetString(PyExc_TypeError, "a key is not an (IocType, str) pair");
            goto finish;
        }
        Py_INCREF(key);
        PyObject *value = PyTuple_GET_ITEM(key, 1);
        Rec r;
        int hit = 0;
        if (PyUnicode_IS_ASCII(value)) { /* (an echo is ASCII) */
            const char *s = (const char *)PyUnicode_DATA(value);
            Py_ssize_t n = PyUnicode_GET_LENGTH(value);
            size_t mask = (size_t)head.slots - 1, h = (size_t)key_hash(s, n) & mask;
            for (size_t probes = 0; probes < (size_t)head.slots; probes++, h = (h + 1) & mask) {
                Py_ssize_t at;
                memcpy(&at, index + h * sizeof at, sizeof at);
                if (at < 0)
                    break;
                if (at >= head.count)
                    goto bad_table;
                memcpy(&r, recs + (size_t)at * sizeof r, sizeof r);
                int inside = r.start >= 0 && r.start <= r.stop && r.stop <= size
                             && span_in(r.key, size);
                for (int k = 0; k < R_SPANS; k++)
                    inside &= span_in(r.spans[k], size);
                if (!inside)
                    goto bad_table;
                if (r.key.n == n && memcmp(base + r.key.at, s, (size_t)n) == 0) {
                    hit = 1;
                    break;
                }
            }
        }
        if (!hit) {
            int failed = PyList_Append(rest, key) < 0;
            Py_DECREF(key);
            if (failed)
                goto finish;
            continue;
        }
        PyObject *verdict = NULL, *ttl = NULL;
        PyObject *line = rec_line(base, &r, key, verdicts, factor, &verdict, &ttl);
        if (line == Py_None) { /* the Python's: all of it, the reference way */
            Py_DECREF(line);
            Py_DECREF(key);
            Py_INCREF(Py_None);
            result = Py_None;
            goto finish;
        }
        PyObject *item = line == NULL ? NULL : PyTuple_Pack(3, value, verdict, ttl);
        int failed = item == NULL || PyList_Append(done, key) < 0
                     || PyList_Append(lines, line) < 0 || PyList_Append(answered, item) < 0;
        Py_XDECREF(item);
        Py_XDECREF(line);
        Py_XDECREF(verdict);
        Py_XDECREF(ttl);
        Py_DECREF(key);
        if (failed)
            goto finish;
    }
    {
        PyObject *outs[3] = {args[5], args[6], args[7]}, *made[3] = {done, lines, answered};
        for (int k = 0; k < 3; k++) {
            Py_ssize_t at = PyList_GET_SIZE(outs[k]);
            if (PyList_SetSlice(outs[k], at, at, made[k]) < 0)
                goto finish; /* (a MemoryError: lists before it extended) */
        }
    }
    result = rest;
    rest = NULL;
    goto finish;
bad_table:
    PyErr_SetString(PyExc_ValueError, "not a table of plain_table's for this body");
finish:
    Py_XDECREF(rest);
    Py_XDECREF(done);
    Py_XDECREF(lines);
    Py_XDECREF(answered);
    Py_DECREF(body);
    Py_DECREF(table);
    Py_DECREF(verdicts);
    return result;
not_table:
    PyErr_SetString(PyExc_ValueError, "not a table of plain_table's");
    return NULL;
}


/* -- an answer's entries to their keys, and the keys' lines ----------------------------- */

static PyObject *S_REQUEST_KEY;

/* match(entries, raws, asked, names, longest): protocol.parse_response's loop over a body
   read the fast way, where it is plain: each entry's echo (the first of `names` of its
   requestKey that is set, or the last) is a key asked, once, and its bytes no longer than
   `longest` (they cannot nest too deep). The answers dict {key: (entry, raw)} in the
   entries' order, as that loop makes it; None (the loop decides) for anything else. */
static PyObject *match(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 5 || !PyList_CheckExact(args[0]) || !PyList_CheckExact(args[1])
        || !PyAnySet_CheckExact(args[2]) || !PyTuple_CheckExact(args[3])
        || PyTuple_GET_SIZE(args[3]) < 1 || !PyLong_CheckExact(args[4])) {
        PyErr_SetString(PyExc_TypeError, "match(entries, raws, asked, names, longest)");
        return NULL;
    }
    PyObject *entries = args[0], *raws = args[1], *asked = args[2], *names = args[3];
    Py_ssize_t longest = PyLong_AsSsize_t(args[4]);
    if (longest == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(entries), last = PyTuple_GET_SIZE(names) - 1;
    if (PyList_GET_SIZE(raws) != count)
        Py_RETURN_NONE;
    PyObject *answers = PyDict_New();
    if (answers == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *entry = PyList_GET_ITEM(entries, i), *raw = PyList_GET_ITEM(raws, i);
        if (!PyBytes_CheckExact(raw) || PyBytes_GET_SIZE(raw) > longest)
            goto none;
        PyObject *echo = field(entry, S_REQUEST_KEY, &AT_REQUEST_KEY);
        if (echo == NULL)
            goto error;
        if (echo == Py_None) {
            Py_DECREF(echo);
            goto none;
        }
        PyObject *v = NULL;
        for (Py_ssize_t k = 0; k <= last; k++) {
            Py_XDECREF(v);
            PyObject *name = PyTuple_GET_ITEM(names, k);
            if ((v = k < 3 ? field(echo, name, &AT_ECHO[k]) : PyObject_GetAttr(echo, name))
                == NULL)
                break;
            if (k == last)
                break;
            int set = PyObject_IsTrue(v);
            if (set < 0) {
                Py_CLEAR(v);
                break;
            }
            if (set)
                break;
        }
        Py_DECREF(echo);
        if (v == NULL)
            goto error;
        int known = PyUnicode_CheckExact(v) ? PySet_Contains(asked, v) : 0;
        if (known > 0)
            known = PyDict_Contains(answers, v) == 0 ? 1 : (PyErr_Occurred() ? -1 : 0);
        if (known <= 0) {
            Py_DECREF(v);
            if (known < 0)
                goto error;
            goto none;
        }
        PyObject *pair = PyTuple_Pack(2, entry, raw);
        if (pair == NULL || PyDict_SetItem(answers, v, pair) < 0) {
            Py_XDECREF(pair);
            Py_DECREF(v);
            goto error;
        }
        Py_DECREF(pair);
        Py_DECREF(v);
    }
    return answers;
none:
    Py_DECREF(answers);
    Py_RETURN_NONE;
error:
    Py_DECREF(answers);
    return NULL;
}

static PyObject *record_line(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                             PyObject *kwnames);

/* answer_lines(keys, answers, verdicts, ttl_factor, done, lines, answered): resolve.settle's
   loop for the keys `answers` answers, with record_line (no origin): for each such key, in
   order, the key onto `done`, its line onto `lines` and (ioc, verdict, ttl in ms) onto
   `answered`. The keys it does not answer, in order (settle sorts them); None, with nothing
   done, when a key is not an (IocType, str) pair. */
static PyObject *answer_lines(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7 || !PyList_CheckExact(args[0]) || !PyDict_CheckExact(args[1])
        || !PyList_CheckExact(args[4]) || !PyList_CheckExact(args[5])
        || !PyList_CheckExact(args[6])) {
        PyErr_SetString(PyExc_TypeError,
                        "answer_lines(keys, answers, verdicts, ttl_factor, done, lines, answered)");
        return NULL;
    }
    PyObject *keys = args[0], *answers = args[1], *done = args[4], *lines = args[5];
    PyObject *answered = args[6];
    Py_ssize_t count = PyList_GET_SIZE(keys);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        if (!PyTuple_CheckExact(key) || PyTuple_GET_SIZE(key) != 2
            || !PyUnicode_CheckExact(PyTuple_GET_ITEM(key, 1)))
            Py_RETURN_NONE;
    }
    PyObject *rest = PyList_New(0);
    if (rest == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(keys); i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        if (!PyTuple_CheckExact(key) || PyTuple_GET_SIZE(key) != 2
            || !PyUnicode_CheckExact(PyTuple_GET_ITEM(key, 1))) {
            /* (the list changed under a Python record_line) */
            PyErr_SetString(PyExc_TypeError, "a key is not an (IocType, str) pair");
            goto error;
        }
        Py_INCREF(key); /* the list may change under a Python record_line */
        PyObject *value = PyTuple_GET_ITEM(key, 1);
        PyObject *hit = PyDict_GetItemWithError(answers, value); /* borrowed */
        if (hit == NULL) {
            int failed = PyErr_Occurred() != NULL || PyList_Append(rest, key) < 0;
            Py_DECREF(key);
            if (failed)
                goto error;
            continue;
        }
        Py_INCREF(hit);
        if (!PyTuple_CheckExact(hit) || PyTuple_GET_SIZE(hit) != 2) {
            PyErr_SetString(PyExc_TypeError, "an answer is not (entry, raw)");
            Py_DECREF(hit);
            Py_DECREF(key);
            goto error;
        }
        PyObject *argv[7] = {PyTuple_GET_ITEM(key, 0), value, PyTuple_GET_ITEM(hit, 0),
                             PyTuple_GET_ITEM(hit, 1), args[2], args[3], Py_False};
        PyObject *made = record_line(self, argv, 7, NULL);
        Py_DECREF(hit);
        if (made == NULL) {
            Py_DECREF(key);
            goto error;
        }
        if (!PyTuple_CheckExact(made) || PyTuple_GET_SIZE(made) != 3) {
            PyErr_SetString(PyExc_TypeError, "record_line did not give (line, verdict, ttl)");
            Py_DECREF(made);
            Py_DECREF(key);
            goto error;
        }
        PyObject *item = PyTuple_Pack(3, value, PyTuple_GET_ITEM(made, 1),
                                      PyTuple_GET_ITEM(made, 2));
        int failed = item == NULL || PyList_Append(done, key) < 0
                     || PyList_Append(lines, PyTuple_GET_ITEM(made, 0)) < 0
                     || PyList_Append(answered, item) < 0;
        Py_XDECREF(item);
        Py_DECREF(made);
        Py_DECREF(key);
        if (failed)
            goto error;
    }
    return rest;
error:
    Py_DECREF(rest);
    return NULL;
}


/* -- a request's body ----------------------------------------------------------------------

   request_body(keys, pieces): protocol.build_request's body for a list of (IocType, str)
   keys whose values JSON writes as they are, made of each type's two pieces (`pieces`:
   {IocType: (bytes before the value, bytes after it)}), and the types met, in the order
   first met: (body, types); None for anything else (the Python makes it, or says why not). */

/* 1 for the characters of normalized hashes, domains and IPs (protocol._PLAIN's) */
static unsigned char KEYCHAR[256];

static PyObject *request_body(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs != 2 || !PyList_CheckExact(args[0]) || !PyDict_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "request_body(keys, pieces)");
        return NULL;
    }
    static const char HEAD[] = "{\"requestData\":[", TAIL[] = "]}";
    PyObject *keys = args[0], *pieces = args[1];
    Py_ssize_t count = PyList_GET_SIZE(keys), size = sizeof HEAD - 1 + sizeof TAIL - 1;
    PyObject *types[8];
    int ntypes = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        if (!PyTuple_CheckExact(key) || PyTuple_GET_SIZE(key) != 2)
            Py_RETURN_NONE;
        PyObject *t = PyTuple_GET_ITEM(key, 0), *v = PyTuple_GET_ITEM(key, 1);
        if (!PyUnicode_CheckExact(v) || !PyUnicode_IS_ASCII(v))
            Py_RETURN_NONE;
        const unsigned char *c = (const unsigned char *)PyUnicode_DATA(v);
        Py_ssize_t n = PyUnicode_GET_LENGTH(v);
        unsigned char plain = 1;
        for (Py_ssize_t j = 0; j < n; j++)
            plain &= KEYCHAR[c[j]];
        if (!plain)
            Py_RETURN_NONE;
        int seen = 0;
        for (int k = 0; k < ntypes && !seen; k++)
            seen = types[k] == t;
        PyObject *pair = PyDict_GetItemWithError(pieces, t); /* borrowed */
        if (pair == NULL) {
            if (PyErr_Occurred())
                return NULL;
            Py_RETURN_NONE;
        }
        if (!PyTuple_CheckExact(pair) || PyTuple_GET_SIZE(pair) != 2
            || !PyBytes_CheckExact(PyTuple_GET_ITEM(pair, 0))
            || !PyBytes_CheckExact(PyTuple_GET_ITEM(pair, 1)))
            Py_RETURN_NONE;
        if (!seen) {
            if (ntypes == (int)(sizeof types / sizeof types[0]))
                Py_RETURN_NONE;
            types[ntypes++] = t;
        }
        size += PyBytes_GET_SIZE(PyTuple_GET_ITEM(pair, 0)) + n
                + PyBytes_GET_SIZE(PyTuple_GET_ITEM(pair, 1)) + (i > 0);
    }
    PyObject *body = PyBytes_FromStringAndSize(NULL, size);
    if (body == NULL)
        return NULL;
    char *out = PyBytes_AS_STRING(body);
    memcpy(out, HEAD, sizeof HEAD - 1);
    out += sizeof HEAD - 1;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *key = PyList_GET_ITEM(keys, i), *v = PyTuple_GET_ITEM(key, 1);
        /* (nothing above ran Python: the keys and pieces are as they were checked) */
        PyObject *pair = PyDict_GetItem(pieces, PyTuple_GET_ITEM(key, 0));
        PyObject *before = PyTuple_GET_ITEM(pair, 0), *after = PyTuple_GET_ITEM(pair, 1);
        if (i > 0)
            *out++ = ',';
        memcpy(out, PyBytes_AS_STRING(before), (size_t)PyBytes_GET_SIZE(before));
        out += PyBytes_GET_SIZE(before);
        memcpy(out, PyUnicode_DATA(v), (size_t)PyUnicode_GET_LENGTH(v));
        out += PyUnicode_GET_LENGTH(v);
        memcpy(out, PyBytes_AS_STRING(after), (size_t)PyBytes_GET_SIZE(after));
        out += PyBytes_GET_SIZE(after);
    }
    memcpy(out, TAIL, sizeof TAIL - 1);
    PyObject *met = PyTuple_New(ntypes);
    if (met == NULL) {
        Py_DECREF(body);
        return NULL;
    }
    for (int k = 0; k < ntypes; k++) {
        Py_INCREF(types[k]);
        PyTuple_SET_ITEM(met, k, types[k]);
    }
    PyObject *result = PyTuple_Pack(2, body, met);
    Py_DECREF(body);
    Py_DECREF(met);
    return result;
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
    {"match", (PyCFunction)(void (*)(void))match, METH_FASTCALL,
     "match(entries, raws, asked, names, longest): the answers {key: (entry, raw)} of a "
     "plain body, or None."},
    {"answer_lines", (PyCFunction)(void (*)(void))answer_lines, METH_FASTCALL,
     "answer_lines(keys, answers, verdicts, ttl_factor, done, lines, answered): the lines of "
     "the keys answered, onto the lists; the keys not answered (or None)."},
    {"request_body", (PyCFunction)(void (*)(void))request_body, METH_FASTCALL,
     "request_body(keys, pieces): (a request's body, the types met) for plain keys, or None."},
    {"entry_types", entry_types, METH_VARARGS,
     "entry_types(entry, echo, aggregate, classification, raw): the structs read_body makes."},
    {"plain_table", (PyCFunction)(void (*)(void))plain_table, METH_FASTCALL,
     "plain_table(body, asked, names, longest): where the fields of a plain body's entries "
     "are, indexed by the keys they echo, and how many entries: (table, count), or None."},
    {"table_lines", (PyCFunction)(void (*)(void))table_lines, METH_FASTCALL,
     "table_lines(body, table, keys, verdicts, ttl_factor, done, lines, answered): "
     "answer_lines over plain_table's answers; the keys not answered (or None)."},
    {"read_body", read_body, METH_O,
     "read_body(body): (entries, raws) of a plain answer body, or None."},
    {"entries", entries, METH_O,
     "entries(body): the bytes of each classificationResponses entry of a JSON answer body "
     "msgspec has read, or None."},
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
        {&UNKNOWN, "unknown"}, {&S_REQUEST_KEY, "requestKey"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (*names[i].slot == NULL && (*names[i].slot = PyUnicode_InternFromString(names[i].text)) == NULL)
            return NULL;
    for (int c = 0; c < 256; c++) {
        ESCAPED[c] = c < 0x20 || c > 0x7e || c == '"' || c == '\\';
        KEYCHAR[c] = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                     || c == '.' || c == ':' || c == '_' || c == '-';
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddStringConstant(m, "SOURCE", RECORDS_SOURCE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
