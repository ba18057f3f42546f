/* The deduper's tables (dedupe.py), in C: one `Table` per IOC type.
 *
 * Optional: dedupe.py uses this module when it was built (hatch_build.py compiles it at
 * install when a compiler and Python's headers are there) and its own Python tables otherwise,
 * or with ENRICHER_NO_C=1. A table stores what `dedupe.pack` gives of each value, in the same
 * blob the Python table pickles: fixed-width records end to end (md5 16, sha1 20, sha256 32,
 * IPv4 4, IPv6 16 bytes), or names each followed by END (a byte UTF-8 never holds). That
 * blob is the table's arena itself, appended to; an open-addressing index over it (linear
 * probing, at most 3/4 full, doubled when it would be more) holds for each record a slot of
 * its place in the arena and 24 bits of its hash, so that a probe reads the arena only when
 * those bits match. About 8/0.375..8/0.75 bytes of index and 1..1.5 times the record in the
 * arena per value: 30-70 bytes for the widest (sha256), whatever the fill.
 *
 * Packing: what is plainly of its form (2w hex digits, a dotted quad without leading zeros,
 * an IPv6 address inet_pton reads (hex groups alone parsed here), any str for a name) is packed here, as the Python packer
 * would; anything else is given to that packer (`bytes.fromhex`, `socket.inet_aton`, ...),
 * which packs it or raises its own exception, so both paths give one answer on any input.
 *
 * Memory safety: every arena read is checked against the arena's used length, every slot
 * index is masked by the index's size, and sizes are checked before they could overflow.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#ifndef _WIN32
#include <arpa/inet.h>
#include <sys/socket.h>
#endif

enum { NAME = 0, HEX = 1, IPV4 = 2, IPV6 = 3 };
#define END 0xfe
#define TAG_BITS 24
#define TAG_MASK ((UINT64_C(1) << TAG_BITS) - 1)
/* a slot is (ref + 1) << TAG_BITS | tag: a ref (record number, or a name's offset) below this */
#define MAX_REF ((UINT64_C(1) << (64 - TAG_BITS)) - 2)
#define MAX_WIDTH 64

static uint64_t SEED;

typedef struct {
    PyObject_HEAD
    int kind;
    Py_ssize_t width; /* a record's bytes; 0 for a name (any length, then END) */
    PyObject *packer; /* dedupe.pack's function for the type */
    uint64_t *slots;  /* 0: empty */
    size_t mask;      /* slots - 1 (a power of two) */
    size_t count;
    unsigned char *arena;
    size_t used, cap;
} Table;

static inline uint64_t read64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* A keyed (per process: SEED comes from str's randomized hash) 64-bit hash of `n` bytes. */
static uint64_t hash_bytes(const unsigned char *p, size_t n)
{
    uint64_t h = SEED ^ ((uint64_t)n * UINT64_C(0x9E3779B97F4A7C15));
    while (n >= 8) {
        h = (h ^ read64(p)) * UINT64_C(0xbf58476d1ce4e5b9);
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    uint64_t tail = 0;
    memcpy(&tail, p, n);
    h = (h ^ tail) * UINT64_C(0x94d049bb133111eb);
    h ^= h >> 29;
    h *= UINT64_C(0xbf58476d1ce4e5b9);
    h ^= h >> 32;
    return h;
}

/* each byte's value as a hex digit, or -1: made at import (make_classes) */
static signed char HEX_OF[256];

static inline int hex_value(unsigned char c)
{
    return HEX_OF[c];
}

/* 2*width hex digits into `out`; 0 when `s` is not that. *upper (where not NULL): whether
 * a digit is a capital letter (A-F have the bit 0x20 clear, 0-9 and a-f have it set). */
static int pack_hex(const unsigned char *s, Py_ssize_t n, Py_ssize_t width, unsigned char *out,
                    int *upper)
{
    if (n != 2 * width)
        return 0;
    unsigned all = 0xff;
    for (Py_ssize_t i = 0; i < width; i++) {
        int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return 0;
        all &= (unsigned)s[2 * i] & s[2 * i + 1];
        out[i] = (unsigned char)(hi << 4 | lo);
    }
    if (upper != NULL)
        *upper = !(all & 0x20);
    return 1;
}

/* A dotted quad of decimal parts 0-255 without leading zeros (which inet_aton reads as
 * octal) into `out`; 0 when `s` is not that. */
static int pack_quad(const unsigned char *s, Py_ssize_t n, unsigned char *out)
{
    Py_ssize_t i = 0;
    for (int part = 0; part < 4; part++) {
        if (part) {
            if (i >= n || s[i] != '.')
                return 0;
            i++;
        }
        Py_ssize_t start = i;
        unsigned v = 0;
        while (i < n && i - start < 3 && s[i] >= '0' && s[i] <= '9')
            v = v * 10 + (unsigned)(s[i++] - '0');
        if (i == start || v > 255 || (s[start] == '0' && i - start > 1))
            return 0;
        out[part] = (unsigned char)v;
    }
    return i == n;
}

/* An IPv6 address of hex groups alone (no dotted quad) into `out`, as inet_pton reads it:
 * eight groups of 1-4 hex digits between colons, or fewer with one `::` for the zero groups
 * left out; 0 when `s` is not that (inet_pton may still read it: a dotted quad at the end). */
static int parse_six(const unsigned char *s, Py_ssize_t n, unsigned char *out)
{
    unsigned w[8];
    int count = 0, gap = -1;
    Py_ssize_t i = 0;
    if (n < 2 || n > 39)
        return 0;
    if (s[0] == ':') {
        if (s[1] != ':')
            return 0;
        gap = 0;
        i = 2;
    }
    while (i < n) {
        int digits = 0;
        unsigned v = 0;
        while (i < n && digits < 5 && HEX_OF[s[i]] >= 0) {
            v = v << 4 | (unsigned)HEX_OF[s[i++]];
            digits++;
        }
        if (digits == 0 || digits > 4 || count == 8)
            return 0;
        w[count++] = v;
        if (i == n)
            break;
        if (s[i++] != ':' || i == n)
            return 0; /* not a colon, or one colon at the end */
        if (s[i] == ':') {
            if (gap >= 0)
                return 0;
            gap = count;
            i++;
        }
    }
    if (gap < 0 ? count != 8 : count > 7)
        return 0;
    int zeros = 8 - count;
    memset(out, 0, 16);
    for (int j = 0; j < count; j++) {
        int k = gap >= 0 && j >= gap ? j + zeros : j;
        out[2 * k] = (unsigned char)(w[j] >> 8);
        out[2 * k + 1] = (unsigned char)w[j];
    }
    return 1;
}

static int pack_six(const unsigned char *s, Py_ssize_t n, unsigned char *out)
{
    if (parse_six(s, n, out))
        return 1;
#ifdef _WIN32
    return 0;
#else
    char text[64];
    if (n <= 0 || n >= (Py_ssize_t)sizeof(text) || memchr(s, 0, (size_t)n) != NULL)
        return 0;
    memcpy(text, s, (size_t)n);
    text[n] = 0;
    return inet_pton(AF_INET6, text, out) == 1;
#endif
}

/* The longest run of zero groups of the address `b` (the first of the longest, at least 2
 * long; *len 0 where there is none), as inet_ntop and ipaddress compress it (RFC 5952). */
static int zero_run(const unsigned char *b, int *len)
{
    int best = -1, best_len = 0, cur = -1;
    for (int i = 0; i <= 8; i++) {
        if (i < 8 && b[2 * i] == 0 && b[2 * i + 1] == 0) {
            if (cur < 0)
                cur = i;
            continue;
        }
        if (cur >= 0 && i - cur > best_len) {
            best = cur;
            best_len = i - cur;
        }
        cur = -1;
    }
    if (best_len < 2)
        best = -1, best_len = 0;
    *len = best_len;
    return best;
}

/* Whether inet_ntop writes the address `b` with a dotted quad at its end (`::1.2.3.4`,
 * `::ffff:1.2.3.4`): `_ipv6` gives those to ipaddress. */
static int six_dotted(const unsigned char *b)
{
    int len, at = zero_run(b, &len);
    return at == 0 && (len == 6 || (len == 5 && b[10] == 0xff && b[11] == 0xff));
}

/* The address `b` as inet_ntop writes it when it writes no dotted quad (`six_dotted` 0):
 * lower-case hex groups without leading zeros, the longest run of zero groups as `::`.
 * Returns its length (at most 39). */
static Py_ssize_t write_six(const unsigned char *b, char *out)
{
    static const char digits[] = "0123456789abcdef";
    int len, at = zero_run(b, &len);
    Py_ssize_t m = 0;
    for (int i = 0; i < 8; i++) {
        if (at >= 0 && i >= at && i < at + len) {
            if (i == at)
                out[m++] = ':';
            continue;
        }
        if (i)
            out[m++] = ':';
        unsigned v = (unsigned)b[2 * i] << 8 | b[2 * i + 1];
        int shift = v >= 0x1000 ? 12 : v >= 0x100 ? 8 : v >= 0x10 ? 4 : 0;
        for (; shift >= 0; shift -= 4)
            out[m++] = digits[v >> shift & 15];
    }
    if (at >= 0 && at + len == 8)
        out[m++] = ':';
    return m;
}

/* The record of `value`: its bytes at *key, *n of them (a name's without END). A fixed
 * record is written into `buf`; a name's bytes are the str's own UTF-8, or those of *held
 * (a new reference the caller releases). -1 with an exception where the packer raises. */
static int pack(Table *t, PyObject *value, unsigned char *buf, const unsigned char **key,
                Py_ssize_t *n, PyObject **held)
{
    *held = NULL;
    if (PyUnicode_Check(value)) {
        if (t->kind == NAME) {
            const char *utf8 = PyUnicode_AsUTF8AndSize(value, n);
            if (utf8 == NULL)
                return -1;
            *key = (const unsigned char *)utf8;
            return 0;
        }
        if (PyUnicode_IS_ASCII(value)) {
            const unsigned char *s = PyUnicode_1BYTE_DATA(value);
            Py_ssize_t len = PyUnicode_GET_LENGTH(value);
            int done = t->kind == HEX    ? pack_hex(s, len, t->width, buf, NULL)
                       : t->kind == IPV4 ? pack_quad(s, len, buf)
                                         : pack_six(s, len, buf);
            if (done) {
                *key = buf;
                *n = t->width;
                return 0;
            }
        }
    }
    /* not plainly of its form: the Python packer's answer, whatever it is */
    PyObject *packed = PyObject_CallOneArg(t->packer, value);
    if (packed == NULL)
        return -1;
    if (!PyBytes_Check(packed)) {
        Py_DECREF(packed);
        PyErr_SetString(PyExc_TypeError, "a packer gave no bytes");
        return -1;
    }
    Py_ssize_t len = PyBytes_GET_SIZE(packed);
    if (t->width) {
        /* a record across two others' boundary would match: as dedupe.py raises */
        if (len != t->width) {
            Py_DECREF(packed);
            PyErr_Format(PyExc_ValueError, "not a normalized value of its type: %R", value);
            return -1;
        }
        memcpy(buf, PyBytes_AS_STRING(packed), (size_t)len);
        Py_DECREF(packed);
        *key = buf;
        *n = len;
        return 0;
    }
    *held = packed;
    *key = (const unsigned char *)PyBytes_AS_STRING(packed);
    *n = len;
    return 0;
}

/* Where the record of slot `s` starts in the arena and, for a name, how long it is (END not
 * counted); 0 when it is not wholly inside the arena (never, for a table this file wrote). */
static int record_at(const Table *t, uint64_t s, size_t *offset, size_t *len)
{
    uint64_t ref = (s >> TAG_BITS) - 1;
    if (t->width) {
        size_t w = (size_t)t->width;
        if (ref >= t->used / w)
            return 0;
        *offset = (size_t)ref * w;
        *len = w;
        return 1;
    }
    if (ref >= t->used)
        return 0;
    const unsigned char *end = memchr(t->arena + ref, END, t->used - (size_t)ref);
    if (end == NULL)
        return 0;
    *offset = (size_t)ref;
    *len = (size_t)(end - (t->arena + ref));
    return 1;
}

/* The slot holding `key`, or the empty slot where it would go (*found 0). */
static size_t find(const Table *t, const unsigned char *key, size_t n, uint64_t h, int *found)
{
    uint64_t tag = h >> (64 - TAG_BITS);
    size_t i = (size_t)h & t->mask;
    for (;;) {
        uint64_t s = t->slots[i];
        if (s == 0) {
            *found = 0;
            return i;
        }
        size_t offset, len;
        if ((s & TAG_MASK) == tag && record_at(t, s, &offset, &len) && len == n
            && memcmp(t->arena + offset, key, n) == 0) {
            *found = 1;
            return i;
        }
        i = (i + 1) & t->mask;
    }
}

/* The index at twice its size (or `size`), every slot placed again from its record. */
static int resize(Table *t, size_t size)
{
    if (size > SIZE_MAX / sizeof(uint64_t)) {
        PyErr_NoMemory();
        return -1;
    }
    uint64_t *slots = PyMem_RawCalloc(size, sizeof(uint64_t));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    size_t mask = size - 1;
    if (t->slots != NULL) {
        for (size_t j = 0; j <= t->mask; j++) {
            uint64_t s = t->slots[j];
            size_t offset, len;
            if (s == 0 || !record_at(t, s, &offset, &len))
                continue;
            size_t i = (size_t)hash_bytes(t->arena + offset, len) & mask;
            while (slots[i] != 0)
                i = (i + 1) & mask;
            slots[i] = s;
        }
        PyMem_RawFree(t->slots);
    }
    t->slots = slots;
    t->mask = mask;
    return 0;
}

/* Append `n` bytes of `key` (and END for a name) as a new record, its slot at `i`. */
static int put(Table *t, size_t i, const unsigned char *key, size_t n, uint64_t h)
{
    size_t need = n + (t->width ? 0 : 1);
    uint64_t ref = t->width ? t->used / (size_t)t->width : t->used;
    if (ref > MAX_REF || need > SIZE_MAX - t->used) {
        PyErr_NoMemory();
        return -1;
    }
    if (t->used + need > t->cap) {
        /* 1.5 times: amortised appends, at most half again the arena unused */
        size_t cap = t->cap < SIZE_MAX / 3 ? t->cap + t->cap / 2 : SIZE_MAX;
        if (cap < t->used + need)
            cap = t->used + need;
        if (cap < 256)
            cap = 256;
        unsigned char *arena = PyMem_RawRealloc(t->arena, cap);
        if (arena == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        t->arena = arena;
        t->cap = cap;
    }
    memcpy(t->arena + t->used, key, n);
    if (!t->width)
        t->arena[t->used + n] = END;
    t->used += need;
    t->slots[i] = (ref + 1) << TAG_BITS | h >> (64 - TAG_BITS);
    t->count++;
    return 0;
}

/* 1 when `key` was new (and is now held), 0 when it was held, -1 on an error. */
static int add_key(Table *t, const unsigned char *key, size_t n)
{
    /* at most 3/4 of the slots full after this one */
    if ((t->count + 1) * 4 > (t->mask + 1) * 3 && resize(t, (t->mask + 1) * 2) < 0)
        return -1;
    uint64_t h = hash_bytes(key, n);
    int found;
    size_t i = find(t, key, n, h, &found);
    if (found)
        return 0;
    return put(t, i, key, n, h) < 0 ? -1 : 1;
}

static PyObject *table_add(PyObject *self, PyObject *value)
{
    Table *t = (Table *)self;
    unsigned char buf[MAX_WIDTH];
    const unsigned char *key;
    Py_ssize_t n;
    PyObject *held;
    if (pack(t, value, buf, &key, &n, &held) < 0)
        return NULL;
    int added = add_key(t, key, (size_t)n);
    Py_XDECREF(held);
    if (added < 0)
        return NULL;
    return PyBool_FromLong(added);
}

static PyObject *table_has(PyObject *self, PyObject *value)
{
    Table *t = (Table *)self;
    unsigned char buf[MAX_WIDTH];
    const unsigned char *key;
    Py_ssize_t n;
    PyObject *held;
    if (pack(t, value, buf, &key, &n, &held) < 0)
        return NULL;
    int found;
    find(t, key, (size_t)n, hash_bytes(key, (size_t)n), &found);
    Py_XDECREF(held);
    return PyBool_FromLong(found);
}

static PyObject *table_blob(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    Table *t = (Table *)self;
    return PyBytes_FromStringAndSize((const char *)t->arena, (Py_ssize_t)t->used);
}

/* Hold every record of a blob (one table's, as `blob` gives or dedupe.py pickles). */
static PyObject *table_load(PyObject *self, PyObject *arg)
{
    Table *t = (Table *)self;
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const unsigned char *p = view.buf;
    size_t size = (size_t)view.len, at = 0;
    int failed = 0;
    if (t->width) {
        size_t w = (size_t)t->width;
        if (size % w) {
            PyErr_Format(PyExc_ValueError, "a blob of %zu bytes holds no whole %zu-byte records",
                         size, w);
            failed = 1;
        }
        for (; !failed && at + w <= size; at += w)
            failed = add_key(t, p + at, w) < 0;
    }
    else {
        /* a name ends at END; bytes after the last END are no record (as in dedupe.py) */
        const unsigned char *end;
        while (!failed && at < size && (end = memchr(p + at, END, size - at)) != NULL) {
            size_t n = (size_t)(end - (p + at));
            failed = add_key(t, p + at, n) < 0;
            at += n + 1;
        }
    }
    PyBuffer_Release(&view);
    if (failed)
        return NULL;
    Py_RETURN_NONE;
}

static PyTypeObject TableType;

/* Python's str.strip() of ASCII text: these and nothing else are whitespace there. */
static inline int is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static inline int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* What `normalize`'s fast path and the ingest take of a plain line give, decided here. */
enum { P_STOP = -1 };
#define P_MD5 0
#define P_SHA1 1
#define P_SHA256 2
#define P_NAME 3
#define P_QUAD 4
#define P_SIX 5
#define P_TYPES 6
#define MAX_PLAIN 253

/* Whether s[0:n] (lower case ASCII) is a name `normalize`'s fast path takes (its regex
 * `(?:LABEL\.)+TLD`, the trailing dot already gone, at most 253 characters) and holds no
 * `xn--` (the fast path leaves such names to the slow one): two labels or more of
 * [a-z0-9_-], each 1-63 long, neither starting nor ending with `-`, the last without `_` and
 * not digits alone. *top is where the last label starts. */
static int plain_name(const unsigned char *s, Py_ssize_t n, Py_ssize_t *top)
{
    if (n > MAX_PLAIN)
        return 0;
    Py_ssize_t start = 0, labels = 0;
    for (;;) {
        Py_ssize_t i = start;
        int digits = 1, underscore = 0;
        while (i < n && s[i] != '.') {
            unsigned char c = s[i];
            if (c == '_')
                underscore = 1;
            else if (c == '-') {
                /* `xn--` lies inside a label: its `n` and first `-` are this label's */
                if (i >= start + 2 && i + 1 < n && s[i + 1] == '-' && s[i - 1] == 'n'
                    && s[i - 2] == 'x')
                    return 0;
            }
            else if (!is_digit(c) && !(c >= 'a' && c <= 'z'))
                return 0;
            if (!is_digit(c))
                digits = 0;
            i++;
        }
        Py_ssize_t len = i - start;
        if (len < 1 || len > 63 || s[start] == '-' || s[i - 1] == '-')
            return 0;
        labels++;
        if (i == n) {
            if (labels < 2 || underscore || digits)
                return 0;
            *top = start;
            return 1;
        }
        start = i + 1;
    }
}

/* The top labels a name may have (a set of str), and the last one found in it: the names of
 * an input are mostly under a few, each asked of the set once a run of lines, not once a
 * line (a str made and hashed). */
typedef struct {
    PyObject *set;
    Py_ssize_t last_len; /* -1: none yet */
    unsigned char last[64];
} Tops;

/* 1 when low[0:m] (lower case, a trailing dot dropped) is a name `normalize` takes as it
 * is and `name_problem` never refuses (its top label in `tops`), 0 when not, -1 on an error. */
static int public_name(const unsigned char *low, Py_ssize_t m, Tops *tops)
{
    Py_ssize_t top;
    if (m <= 0 || !plain_name(low, m, &top))
        return 0;
    Py_ssize_t len = m - top; /* 1-63: plain_name's labels */
    if (len == tops->last_len && memcmp(low + top, tops->last, (size_t)len) == 0)
        return 1;
    PyObject *label = PyUnicode_FromStringAndSize((const char *)low + top, len);
    if (label == NULL)
        return -1;
    int ok = PySet_Contains(tops->set, label);
    Py_DECREF(label);
    if (ok == 1 && len <= (Py_ssize_t)sizeof(tops->last)) {
        memcpy(tops->last, low + top, (size_t)len);
        tops->last_len = len;
    }
    return ok;
}

/* What a byte is to `messy_host`: one `refang` (or the Python step) must see (a bracket, a
 * brace, an angle bracket, a backslash, a space or control character, non-ASCII), or one
 * that ends a URL's authority; made at import. */
#define C_STIRS 1
#define C_ENDS 2
static unsigned char CLASS[256];
/* each byte of a name in lower case (a letter, a digit, `-`, `_`, `.`), or 0 */
static unsigned char NAME_OF[256];
/* What a byte is to `messy_host`'s pass over a line: one it looks at (M_LOOK: C_STIRS, `x`
 * and `X`, `@`, `:` and the C_ENDS bytes), and whether it is neither a hex digit nor a colon
 * (M_NONHEX); the rest are copied as they are. */
#define M_LOOK 1
#define M_NONHEX 2
static unsigned char MESSY[256];

static void make_classes(void)
{
    for (int c = 0; c < 256; c++)
        CLASS[c] = (unsigned char)((c <= ' ' || c >= 0x7f || strchr("[](){}<>\\", c) != NULL)
                                       ? C_STIRS
                                       : 0);
    CLASS['/'] = CLASS['?'] = CLASS['#'] = C_ENDS;
    for (int c = 0; c < 256; c++)
        NAME_OF[c] = (unsigned char)((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'
                                             || c == '_' || c == '.'
                                         ? c
                                     : c >= 'A' && c <= 'Z' ? c + 32
                                                            : 0);
    for (int c = 0; c < 256; c++)
        HEX_OF[c] = (signed char)(c >= '0' && c <= '9'   ? c - '0'
                                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                         : -1);
    for (int c = 0; c < 256; c++)
        MESSY[c] = (unsigned char)((CLASS[c] || c == 'x' || c == 'X' || c == '@' || c == ':'
                                        ? M_LOOK
                                        : 0)
                                   | (HEX_OF[c] < 0 && c != ':' ? M_NONHEX : 0));
}

/* s[0:n] in lower case into low, and without a trailing dot (*m long; *lowered: whether a
 * letter changed); then `public_name` of it. 0 as soon as a byte is none a name holds. */
static int lower_name(const unsigned char *s, Py_ssize_t n, unsigned char *low, Tops *tops,
                      Py_ssize_t *m, int *lowered)
{
    *lowered = 0;
    for (Py_ssize_t j = 0; j < n; j++) {
        unsigned char c = NAME_OF[s[j]];
        if (c == 0)
            return 0; /* no name's character: `plain_name` would refuse it */
        *lowered |= c != s[j];
        low[j] = c;
    }
    *m = low[n - 1] == '.' ? n - 1 : n;
    return public_name(low, *m, tops);
}

static inline int is_hex(unsigned char c)
{
    return hex_value(c) >= 0;
}

static inline int is_lower(unsigned char c, char want)
{
    return c == want || c == want - 32;
}

/* Whether p[i:n] holds nothing `refang` changes nor anything else the Python step must
 * judge: no bracket, brace, angle bracket or backslash, no space or control character,
 * no `xp` (in any case: `hxxp`, `fxp`). */
static int inert(const unsigned char *p, Py_ssize_t i, Py_ssize_t n)
{
    for (; i < n; i++) {
        unsigned char c = p[i];
        if (CLASS[c] & C_STIRS)
            return 0;
        if (is_lower(c, 'x') && i + 1 < n && is_lower(p[i + 1], 'p'))
            return 0;
    }
    return 1;
}

/* Whether port[0:n] is one `_port_ok` takes (empty only in a URL). */
static int port_ok(const unsigned char *port, Py_ssize_t n, int url)
{
    if (n == 0)
        return url;
    if (n > 5)
        return 0;
    long v = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!is_digit(port[i]))
            return 0;
        v = v * 10 + (port[i] - '0');
    }
    return v <= 65535;
}

#define MAX_LINE 2048 /* normalize.MAX_LENGTH */

/* The host `_normalize_slow` reads in p[0:n], for the common forms a messy export holds:
 * a name or dotted quad defanged with `[.]` (each one alone), `host:port`, `user@host`,
 * `*.name`, an http, https, hxxp or hxxps URL, an IPv6 address alone, in brackets with a
 * port or in a URL; the rest of the line holding nothing `refang` would change. The host is
 * put in text[0:*hn], refanged; *six says whether `_normalize_slow` reads it as an IPv6
 * address. 0 when the line is none of these (a plain one included): the Python step's. */
static int messy_host(const unsigned char *p, Py_ssize_t n, unsigned char *text,
                      Py_ssize_t *hn, int *six)
{
    /* `http://`, `https://`, `hxxp://` or `hxxps://` (letters in any case), with something
     * after it */
    Py_ssize_t start = 0;
    int url = 0;
    if (n > 7 && is_lower(p[0], 'h') && is_lower(p[3], 'p')
        && ((is_lower(p[1], 't') && is_lower(p[2], 't'))
            || (is_lower(p[1], 'x') && is_lower(p[2], 'x')))) {
        Py_ssize_t s = is_lower(p[4], 's') ? 5 : 4;
        if (n > s + 3 && p[s] == ':' && p[s + 1] == '/' && p[s + 2] == '/') {
            url = 1;
            start = s + 3;
        }
    }
    *six = 0;
    if (p[start] == '[' && !(start + 2 < n && p[start + 1] == '.' && p[start + 2] == ']')) {
        /* `[addr]`, then a port or (in a URL) the path */
        Py_ssize_t j = start + 1;
        while (j < n && (is_hex(p[j]) || p[j] == ':'))
            j++;
        /* `[]` holds no address: none to read (the caller looks at the host's last byte) */
        if (j >= n || p[j] != ']' || j == start + 1 || p[start + 1] == ':'
            || j - start - 1 >= 64 || !inert(p, j + 1, n))
            return 0;
        Py_ssize_t rest = j + 1, e = rest;
        while (e < n && !(url && (CLASS[p[e]] & C_ENDS)))
            e++;
        if (rest < e && (p[rest] != ':' || !port_ok(p + rest + 1, e - rest - 1, url)))
            return 0;
        if (!url && e < n)
            return 0;
        *hn = j - start - 1;
        memcpy(text, p + start + 1, (size_t)*hn);
        *six = 1;
        return 1;
    }
    /* One pass: the line copied into text, `[.]` refanged, and what the host is read from
     * found on the way, before the first byte that ends a URL's authority (e, in text): the
     * last `@` (the host starts after it, at a), and after it the colons (the last at colon)
     * and whether a byte is neither a hex digit nor a colon (an IPv6 address has none). */
    int defanged = 0, at = 0, nonhex = 0;
    Py_ssize_t m = 0, a = 0, e = -1, colons = 0, colon = 0;
    for (Py_ssize_t i = start; i < n; i++) {
        unsigned char c = p[i];
        unsigned char f = MESSY[c];
        if (!(f & M_LOOK)) {
            /* a byte of a name or address: only whether it is a hex digit counts (past the
             * authority's end, in a URL, nonhex is never read: colons > 1 there is no host) */
            nonhex |= f;
            text[m++] = c;
            continue;
        }
        if (c == '[' && i + 2 < n && p[i + 1] == '.' && p[i + 2] == ']') {
            text[m++] = '.';
            i += 2;
            defanged = 1;
            nonhex = 1;
            continue;
        }
        unsigned char cls = CLASS[c];
        if (cls & C_STIRS)
            return 0;
        if (is_lower(c, 'x') && i + 1 < n && is_lower(p[i + 1], 'p'))
            return 0;
        if (e < 0) {
            if (cls & C_ENDS) {
                if (!url)
                    return 0; /* a path, or CIDR: the Python step's */
                e = m;
            }
            else if (c == '@') {
                a = m + 1;
                at = 1;
                colons = nonhex = 0;
            }
            else if (c == ':') {
                colons++;
                colon = m;
            }
            else if (HEX_OF[c] < 0)
                nonhex = 1;
        }
        text[m++] = c;
    }
    if (e < 0)
        e = m;
    if (colons > 1) {
        if (url || nonhex)
            return 0; /* in a URL, or a zone index, an IPv4 address inside: the Python step's */
        *six = 1;
    }
    else if (colons == 1) {
        if (!port_ok(text + colon + 1, e - colon - 1, url))
            return 0;
        e = colon;
    }
    int star = 0;
    while (!*six && e - a >= 2 && text[a] == '*' && text[a + 1] == '.') {
        a += 2;
        star = 1;
    }
    if (!(url || defanged || at || colons || star) || a == e || e - a >= MAX_LINE)
        return 0;
    *hn = e - a;
    memmove(text, text + a, (size_t)*hn);
    return 1;
}

/* take_plain(tables, types, tops, screen, lines, start, fresh, flagged)
 *     -> (stop, skipped, duplicates)
 *
 * Ingest's per-line step, in C, for the lines that are plainly one IOC in the form
 * `normalize`'s fast path takes (hashes of hex digits in any case, a dotted quad, a name of
 * ASCII letters, digits, `_` and `-` in any case, with a trailing dot or not, whose top label
 * is in `tops`) or in one of the common messy forms (`messy_host`, and `::ffff:1.2.3.4`,
 * the IPv4 address), or blank or a `#` comment; whitespace around them as str.strip() drops
 * it. From lines[start] on, up to the first line that is none of these (or None): a blank or
 * comment line is counted as skipped, a duplicate as such, and a new key is added to its
 * table and appended to `fresh` as (type, value), its value what `normalize` gives (made
 * only for a new key). Returns where it stopped (len(lines)
 * at the end), for the caller's own per-line step to take that line. `tables` and `types`
 * are the md5, sha1, sha256, name, IPv4 and IPv6 tables and types, in that order.
 *
 * `screen` says, by type in the same order, which new keys the caller must look at again
 * (the privacy rule, sha256 unsupported): None, none of them; True, all; for IPv4 and IPv6,
 * a mask of 256 bytes, those whose address's first byte has a byte other than 0 there. The
 * index in `fresh` of each one is appended to `flagged`. */
static PyObject *take_plain(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8) {
        PyErr_SetString(PyExc_TypeError, "take_plain takes 8 arguments");
        return NULL;
    }
    PyObject *tables = args[0], *types = args[1], *tops = args[2], *screen = args[3],
             *lines = args[4], *fresh = args[6], *flagged = args[7];
    if (!PyTuple_Check(tables) || PyTuple_GET_SIZE(tables) != P_TYPES || !PyTuple_Check(types)
        || PyTuple_GET_SIZE(types) != P_TYPES || !PyAnySet_Check(tops) || !PyTuple_Check(screen)
        || PyTuple_GET_SIZE(screen) != P_TYPES || !PyList_Check(lines) || !PyList_Check(fresh)
        || !PyList_Check(flagged)) {
        PyErr_SetString(PyExc_TypeError,
                        "take_plain: tables, types, tops, screen, lines, start, fresh, flagged");
        return NULL;
    }
    /* each type's screen: every key (all), none, or by its first byte (mask) */
    int all[P_TYPES];
    const char *mask[P_TYPES];
    for (int k = 0; k < P_TYPES; k++) {
        PyObject *sc = PyTuple_GET_ITEM(screen, k);
        all[k] = sc == Py_True;
        mask[k] = NULL;
        if ((k == P_QUAD || k == P_SIX) && PyBytes_Check(sc) && PyBytes_GET_SIZE(sc) == 256)
            mask[k] = PyBytes_AS_STRING(sc);
        else if (sc != Py_None && sc != Py_True) {
            PyErr_SetString(PyExc_TypeError, "take_plain: a screen is None, True or a mask");
            return NULL;
        }
    }
    static const Py_ssize_t widths[P_TYPES] = {16, 20, 32, 0, 4, 16};
    static const int kinds[P_TYPES] = {HEX, HEX, HEX, NAME, IPV4, IPV6};
    for (int k = 0; k < P_TYPES; k++) {
        PyObject *t = PyTuple_GET_ITEM(tables, k);
        if (!PyObject_TypeCheck(t, &TableType) || ((Table *)t)->width != widths[k]
            || ((Table *)t)->kind != kinds[k]) {
            PyErr_SetString(PyExc_TypeError, "take_plain: not the six tables it takes");
            return NULL;
        }
    }
    Py_ssize_t i = PyLong_AsSsize_t(args[5]);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (i < 0)
        i = 0;
    Py_ssize_t skipped = 0, dups = 0;
    Tops top_set = {.set = tops, .last_len = -1};
    unsigned char low[MAX_PLAIN + 2];
    unsigned char buf[MAX_WIDTH];
    unsigned char text[MAX_LINE];
    for (; i < PyList_GET_SIZE(lines); i++) {
        PyObject *line = PyList_GET_ITEM(lines, i);
        if (!PyUnicode_CheckExact(line) || !PyUnicode_IS_ASCII(line))
            break;
        const unsigned char *s = PyUnicode_1BYTE_DATA(line);
        Py_ssize_t a = 0, b = PyUnicode_GET_LENGTH(line);
        while (a < b && is_space(s[a]))
            a++;
        while (b > a && is_space(s[b - 1]))
            b--;
        if (a == b || s[a] == '#') {
            skipped++;
            continue;
        }
        Py_ssize_t n = b - a, length = PyUnicode_GET_LENGTH(line);
        if (n > MAX_LINE)
            break;
        const unsigned char *p = s + a;
        int k = P_STOP, ok;
        const unsigned char *key = buf;
        Py_ssize_t keylen = 0, hn;
        int six;
        PyObject *value = NULL;
        /* the value's text when it is not the line's (made only for a new key) */
        const unsigned char *vtext = NULL;
        Py_ssize_t vlen = 0;
        int upper = 0; /* a hash: whether it has a capital letter */
        if ((n == 32 || n == 40 || n == 64) && pack_hex(p, n, n / 2, buf, &upper)) {
            k = n == 32 ? P_MD5 : n == 40 ? P_SHA1 : P_SHA256;
            keylen = n / 2;
        }
        else if (is_digit(p[n - 1]) && pack_quad(p, n, buf)) {
            k = P_QUAD;
            keylen = 4;
        }
        else if (n <= MAX_PLAIN + 1) {
            int lowered;
            if ((ok = lower_name(p, n, low, &top_set, &keylen, &lowered)) < 0)
                return NULL;
            if (ok) {
                k = P_NAME;
                key = low;
                if (!lowered && keylen == length)
                    value = Py_NewRef(line);
            }
        }
        if (k == P_STOP && n > 7 && p[0] == ':' && p[1] == ':' && is_lower(p[2], 'f')
            && is_lower(p[3], 'f') && is_lower(p[4], 'f') && is_lower(p[5], 'f') && p[6] == ':'
            && pack_quad(p + 7, n - 7, buf)) {
            /* `::ffff:1.2.3.4`, IPv4-mapped: the IPv4 address, as `_ipv6` gives it */
            k = P_QUAD;
            keylen = 4;
            vtext = p + 7;
            vlen = n - 7;
        }
        if (k == P_STOP && messy_host(p, n, text, &hn, &six)) {
            /* digits and dots alone, at least one digit: a dotted quad or none (a name
             * seldom ends in either, and is not looked through) */
            int digits = 0, dotted = is_digit(text[hn - 1]) || text[hn - 1] == '.';
            for (Py_ssize_t j = 0; j < hn && dotted; j++) {
                digits |= is_digit(text[j]);
                dotted &= is_digit(text[j]) || text[j] == '.';
            }
            if (six) {
                /* what inet_ntop writes with a dotted quad, `_ipv6` gives to ipaddress */
                if (pack_six(text, hn, buf) && !six_dotted(buf)) {
                    k = P_SIX;
                    keylen = 16;
                }
            }
            else if (digits && dotted) {
                if (pack_quad(text, hn, buf)) {
                    k = P_QUAD;
                    keylen = 4;
                    vtext = text;
                    vlen = hn;
                }
            }
            else if (hn <= MAX_PLAIN + 1) {
                int lowered;
                if ((ok = lower_name(text, hn, low, &top_set, &keylen, &lowered)) < 0)
                    return NULL;
                if (ok) {
                    k = P_NAME;
                    key = low;
                }
            }
        }
        if (k == P_STOP)
            break;
        int added = add_key((Table *)PyTuple_GET_ITEM(tables, k), key, (size_t)keylen);
        if (added <= 0) {
            Py_XDECREF(value);
            if (added < 0)
                return NULL;
            dups++;
            continue;
        }
        /* the value as `normalize` gives it: lower case, without what strip() drops (nor, for
         * a name, the trailing dot); the line itself when it is that already */
        if (value != NULL)
            ; /* the line itself */
        else if (vtext != NULL) {
            value = PyUnicode_FromStringAndSize((const char *)vtext, vlen);
        }
        else if (k == P_SIX) {
            char compressed[40];
            value = PyUnicode_FromStringAndSize(compressed, write_six(buf, compressed));
        }
        else if (k == P_QUAD) {
            value = n == length ? Py_NewRef(line) : PyUnicode_FromStringAndSize((const char *)p, n);
        }
        else if (k == P_NAME) {
            value = PyUnicode_FromStringAndSize((const char *)low, keylen);
        }
        else if (!upper && n == length) {
            value = Py_NewRef(line);
        }
        else {
            value = PyUnicode_New(n, 127);
            if (value != NULL) {
                /* hex digits: a capital letter's bit 0x20 set makes it small, a digit has it */
                unsigned char *out = PyUnicode_1BYTE_DATA(value);
                for (Py_ssize_t j = 0; j < n; j++)
                    out[j] = p[j] | 0x20;
            }
        }
        if (value == NULL)
            return NULL;
        PyObject *pair = PyTuple_Pack(2, PyTuple_GET_ITEM(types, k), value);
        Py_DECREF(value);
        if (pair == NULL)
            return NULL;
        /* a type (an enum member, which the collector tracks) and a str: no cycle can pass
         * through the pair, so the collector need not look at it (a run holds one a key) */
        PyObject_GC_UnTrack(pair);
        if (all[k] || (mask[k] != NULL && mask[k][buf[0]])) {
            PyObject *at = PyLong_FromSsize_t(PyList_GET_SIZE(fresh));
            int failed = at == NULL || PyList_Append(flagged, at) < 0;
            Py_XDECREF(at);
            if (failed) {
                Py_DECREF(pair);
                return NULL;
            }
        }
        int failed = PyList_Append(fresh, pair);
        Py_DECREF(pair);
        if (failed < 0)
            return NULL;
    }
    return Py_BuildValue("nnn", i, skipped, dups);
}

/* fill(keys, start, endpoint_of, pending, sizes) -> stop
 *
 * The batcher's per-key step (batcher.py's `Batcher.add_all`), in C: from keys[start] on,
 * each key (a tuple, its type first) is appended to the pending list of its type's endpoint
 * (`pending[endpoint_of[type]]`), until one makes that list `sizes[endpoint]` long or longer:
 * returns that key's index (it was appended: the caller takes the batch), or len(keys). */
#define FILL_CACHE 8
static PyObject *fill(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "fill takes 5 arguments");
        return NULL;
    }
    PyObject *keys = args[0], *endpoint_of = args[2], *pending = args[3], *sizes = args[4];
    if (!PyList_Check(keys) || !PyDict_Check(endpoint_of) || !PyDict_Check(pending)
        || !PyDict_Check(sizes)) {
        PyErr_SetString(PyExc_TypeError, "fill: keys, start, endpoint_of, pending, sizes");
        return NULL;
    }
    Py_ssize_t i = PyLong_AsSsize_t(args[1]);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (i < 0)
        i = 0;
    /* the types seen, each with its endpoint's list and size (borrowed: the dicts hold them,
     * and nothing here runs Python code that could change them) */
    PyObject *types[FILL_CACHE], *lists[FILL_CACHE];
    Py_ssize_t limits[FILL_CACHE];
    int cached = 0;
    for (; i < PyList_GET_SIZE(keys); i++) {
        PyObject *key = PyList_GET_ITEM(keys, i);
        if (!PyTuple_Check(key) || PyTuple_GET_SIZE(key) < 1) {
            PyErr_SetString(PyExc_TypeError, "fill: a key is a (type, value) tuple");
            return NULL;
        }
        PyObject *type = PyTuple_GET_ITEM(key, 0);
        int c = 0;
        while (c < cached && types[c] != type)
            c++;
        if (c == cached) {
            PyObject *endpoint = PyDict_GetItemWithError(endpoint_of, type);
            PyObject *list = endpoint ? PyDict_GetItemWithError(pending, endpoint) : NULL;
            PyObject *size = list ? PyDict_GetItemWithError(sizes, endpoint) : NULL;
            if (size == NULL) {
                if (!PyErr_Occurred())
                    PyErr_SetObject(PyExc_KeyError, endpoint ? endpoint : type);
                return NULL;
            }
            if (!PyList_Check(list)) {
                PyErr_SetString(PyExc_TypeError, "fill: a pending list is no list");
                return NULL;
            }
            Py_ssize_t limit = PyLong_AsSsize_t(size);
            if (limit == -1 && PyErr_Occurred())
                return NULL;
            if (cached == FILL_CACHE)
                c = cached - 1; /* more types than that: the last one's place is reused */
            else
                cached++;
            types[c] = type;
            lists[c] = list;
            limits[c] = limit;
        }
        if (PyList_Append(lists[c], key) < 0)
            return NULL;
        if (PyList_GET_SIZE(lists[c]) >= limits[c])
            break;
    }
    return PyLong_FromSsize_t(i);
}

static PyMethodDef module_methods[] = {
    {"fill", (PyCFunction)(void (*)(void))fill, METH_FASTCALL,
     "Append keys to their endpoints' pending lists until one is full: where it stopped."},
    {"take_plain", (PyCFunction)(void (*)(void))take_plain, METH_FASTCALL,
     "Take the plain lines from `start` on: (where it stopped, skipped, duplicates)."},
    {NULL, NULL, 0, NULL},
};

static Py_ssize_t table_len(PyObject *self)
{
    return (Py_ssize_t)((Table *)self)->count;
}

static PyObject *table_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"kind", "width", "packer", NULL};
    int kind;
    Py_ssize_t width;
    PyObject *packer;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "inO:Table", keywords, &kind, &width, &packer))
        return NULL;
    int fits = (kind == NAME && width == 0) || (kind == HEX && width > 0 && width <= MAX_WIDTH)
               || (kind == IPV4 && width == 4) || (kind == IPV6 && width == 16);
    if (!fits) {
        PyErr_SetString(PyExc_ValueError, "no such kind of table and width");
        return NULL;
    }
    if (!PyCallable_Check(packer)) {
        PyErr_SetString(PyExc_TypeError, "packer must be callable");
        return NULL;
    }
    Table *t = (Table *)type->tp_alloc(type, 0);
    if (t == NULL)
        return NULL;
    t->kind = kind;
    t->width = width;
    Py_INCREF(packer);
    t->packer = packer;
    if (resize(t, 16) < 0) {
        Py_DECREF(t);
        return NULL;
    }
    return (PyObject *)t;
}

static void table_dealloc(PyObject *self)
{
    Table *t = (Table *)self;
    PyMem_RawFree(t->slots);
    PyMem_RawFree(t->arena);
    Py_XDECREF(t->packer);
    Py_TYPE(self)->tp_free(self);
}

static PyObject *table_sizeof(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    Table *t = (Table *)self;
    return PyLong_FromSize_t(sizeof(Table) + (t->mask + 1) * sizeof(uint64_t) + t->cap);
}

static PyMethodDef table_methods[] = {
    {"add", table_add, METH_O, "Hold the value's record: True when it was not held."},
    {"has", table_has, METH_O, "Whether the value's record is held."},
    {"blob", table_blob, METH_NOARGS, "Every record end to end (a name's with its END)."},
    {"load", table_load, METH_O, "Hold every record of a blob."},
    {"__sizeof__", table_sizeof, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PySequenceMethods table_sequence = {.sq_length = table_len};

static PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "enricher.pipeline._dedupe.Table",
    .tp_basicsize = sizeof(Table),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "One IOC type's records: Table(kind, width, packer).",
    .tp_new = table_new,
    .tp_dealloc = table_dealloc,
    .tp_methods = table_methods,
    .tp_as_sequence = &table_sequence,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_dedupe", "The deduper's tables, in C.", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

/* The digest of the _dedupe.c this module was built from (hatch_build.py passes it): dedupe.py
   uses the module only when it matches the _dedupe.c beside it. */
#ifndef DEDUPE_SOURCE
#define DEDUPE_SOURCE ""
#endif

PyMODINIT_FUNC PyInit__dedupe(void)
{
    PyObject *salt = PyUnicode_FromString("enricher.pipeline._dedupe");
    if (salt == NULL)
        return NULL;
    Py_hash_t seed = PyObject_Hash(salt);
    Py_DECREF(salt);
    if (seed == -1 && PyErr_Occurred())
        return NULL;
    SEED = (uint64_t)seed * UINT64_C(0x9E3779B97F4A7C15);
    make_classes();
    if (PyType_Ready(&TableType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddStringConstant(m, "SOURCE", DEDUPE_SOURCE) < 0
        || PyModule_AddIntConstant(m, "NAME", NAME) < 0 || PyModule_AddIntConstant(m, "HEX", HEX) < 0
        || PyModule_AddIntConstant(m, "IPV4", IPV4) < 0
        || PyModule_AddIntConstant(m, "IPV6", IPV6) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&TableType);
    if (PyModule_AddObject(m, "Table", (PyObject *)&TableType) < 0) {
        Py_DECREF(&TableType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
