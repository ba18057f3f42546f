/* The text extractor's candidate finders (extract.py), refang's trigger finder
 * (pipeline/normalize.py), a new name's domain-rule string tests, and the names and hash
 * passes' loops over what needs no judgment (`names_walk`, `hashes_walk`), in C.
 *
 * Optional: enricher/inputs/native.py loads this module when it was built (hatch_build.py
 * compiles it at install when a compiler and Python's headers are there); the callers use
 * their own Python otherwise, or with ENRICHER_NO_C=1. Each function gives exactly what the
 * Python it stands for gives; tests/inputs/test_extract_c.py compares them on the corpora,
 * the golden files and generated text. Why C: on a dense report these passes, in Python,
 * visit every dot, hex digit and bracket through a bytes mask or a regex, and a regex call
 * per candidate; one pass over the characters does the same with no object made for what is
 * not a candidate. The loops answer what the memo tables (Python dicts, which they read and
 * fill) or string tests settle: a new ASCII name is judged here too (`judge`, with the
 * public suffix rules and suffixes.py's sets handed over once), and so is a dotted quad next
 * to a `/`, `=` or `version`; every other token or run goes back to the Python path, one at a
 * time.
 *
 * Every index is checked against the text's length before it is read (`bits_at`, `CH`), and
 * every loop moves forward (a lead whose match failed is not tried again), so any input, of
 * any length or content, is read in bounds and in linear time.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* What a code point is, as bits, for both finders: a letter or one of `_%+-` (W_LETTER), a
 * digit, `.`, `@` (for the names pattern, `_NAMES_ASCII` in extract.py, where anything else,
 * non-ASCII included, may come before a name), a hex digit, an ASCII letter or digit. Each
 * finder first writes these bits for the whole text into a byte array (as extract.py's Python
 * writes its masks): the loops after it then read one byte a character, whatever the width
 * of the text's characters. */
enum { OTHER = 0, W_LETTER = 1, W_DIGIT = 2, DOT = 4, AT = 8, HEX = 16, ALNUM = 32 };

static unsigned char BITS[128];
static unsigned char BYTE[256]; /* BITS of each byte, 0 past ASCII */
static unsigned char TRIGGER_FIRST[256]; /* what a refang trigger starts with: `[({<\\xX]` */

static void init_bits(void)
{
    for (int c = 0; c < 128; c++) {
        unsigned char b = 0;
        int letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        int digit = c >= '0' && c <= '9';
        if (letter || c == '_' || c == '%' || c == '+' || c == '-')
            b |= W_LETTER;
        if (digit)
            b = W_DIGIT;
        if (c == '.')
            b = DOT;
        if (c == '@')
            b = AT;
        if (digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
            b |= HEX;
        if (letter || digit)
            b |= ALNUM;
        BITS[c] = b;
    }
    for (int c = 0; c < 128; c++)
        BYTE[c] = BITS[c];
    for (const char *c = "[({<\\xX]"; *c; c++)
        TRIGGER_FIRST[(unsigned char)*c] = 1;
}

typedef struct {
    unsigned char *bits;   /* one byte per character of the text; NULL when `latin1` is read */
    const Py_UCS1 *latin1; /* the text's characters, when each is a byte (read through BYTE) */
    Py_ssize_t size;
} Text;

/* Whether `arg` is a str; a TypeError for `function` if not. */
static int is_str(PyObject *arg, const char *function)
{
    if (PyUnicode_Check(arg))
        return 1;
    PyErr_Format(PyExc_TypeError, "%s() takes a str", function);
    return 0;
}

/* Append the index `i` to `list`: 0, or -1 with an exception set. */
static int append_index(PyObject *list, Py_ssize_t i)
{
    PyObject *index = PyLong_FromSsize_t(i);
    int done = index == NULL ? -1 : PyList_Append(list, index);
    Py_XDECREF(index);
    return done;
}

/* The bits of every character of `text` into `t`: 0, or -1 with an exception set (`text`
 * is no str, or no memory). */
static int text_bits(PyObject *text, Text *t, const char *function)
{
    if (!is_str(text, function))
        return -1;
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    t->size = n;
    t->bits = NULL;
    t->latin1 = NULL;
    if (kind == PyUnicode_1BYTE_KIND) { /* the common case: the bytes are read as they are */
        t->latin1 = data;
        return 0;
    }
    t->bits = PyMem_Malloc(n > 0 ? (size_t)n : 1);
    if (t->bits == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        t->bits[i] = c < 128 ? BITS[c] : 0;
    }
    return 0;
}

static inline int bits_at(const Text *t, Py_ssize_t i)
{
    /* past either end: nothing, which neither a hint nor a word continues through */
    if (i < 0 || i >= t->size)
        return 0;
    return t->latin1 != NULL ? BYTE[t->latin1[i]] : t->bits[i];
}

static inline int cls(const Text *t, Py_ssize_t i)
{
    return bits_at(t, i) & (W_LETTER | W_DIGIT | DOT | AT);
}

static inline int is_word(const Text *t, Py_ssize_t i)
{
    return (bits_at(t, i) & (W_LETTER | W_DIGIT)) != 0;
}

/* `_NAME_HINT` at `i`: a dot before a letter (or `_%+-`), or before `d+.d+.d` */
static int hint_at(const Text *t, Py_ssize_t i)
{
    if (cls(t, i) != DOT)
        return 0;
    Py_ssize_t k = i + 1;
    int c = cls(t, k);
    if (c == W_LETTER)
        return 1;
    for (int part = 0; part < 2; part++) {
        if (cls(t, k) != W_DIGIT)
            return 0;
        while (cls(t, k) == W_DIGIT)
            k++;
        if (cls(t, k) != DOT)
            return 0;
        k++;
    }
    return cls(t, k) == W_DIGIT;
}

/* The end of the run of word characters from `i` (`i` itself when there is none). */
static Py_ssize_t word_end(const Text *t, Py_ssize_t i)
{
    while (is_word(t, i))
        i++;
    return i;
}

/* A separator and a word from `i` (`(?:\.|@++)W++`): where they end, or -1. */
static Py_ssize_t separated_word(const Text *t, Py_ssize_t i)
{
    int c = cls(t, i);
    Py_ssize_t r;
    if (c == DOT)
        r = i + 1;
    else if (c == AT) {
        r = i;
        while (cls(t, r) == AT)
            r++;
    } else
        return -1;
    Py_ssize_t e = word_end(t, r);
    return e > r ? e : -1;
}

/* `_NAMES_ASCII.match(text, lead)` for a `lead` of class OTHER: 1 and group 1's span in
 * `*group`-`*end`, or 0. Every quantifier there is possessive or cannot backtrack into a
 * different match, so one forward pass decides it. */
static int names_match(const Text *t, Py_ssize_t lead, Py_ssize_t *group, Py_ssize_t *end)
{
    Py_ssize_t p = lead + 1;
    if (cls(t, p) == DOT)
        p++;
    Py_ssize_t g = p;
    if (cls(t, p) == AT)
        p++;
    Py_ssize_t q = word_end(t, p);
    if (q == p)
        return 0;
    q = separated_word(t, q);
    if (q < 0)
        return 0;
    for (Py_ssize_t next; (next = separated_word(t, q)) >= 0;)
        q = next;
    *group = g;
    *end = q;
    return 1;
}

/* dotted_names(text) -> (tokens, starts): what `_dotted_names(text)` in extract.py finds,
 * group 1 of each match and where it starts. */
static PyObject *dotted_names(PyObject *Py_UNUSED(self), PyObject *arg)
{
    Text t;
    if (text_bits(arg, &t, "dotted_names") < 0)
        return NULL;
    PyObject *tokens = PyList_New(0), *starts = PyList_New(0);
    if (tokens == NULL || starts == NULL)
        goto fail;
    Py_ssize_t past = 0;         /* the end of the last match */
    Py_ssize_t space = -1;       /* the last OTHER before `scanned`: `mask.rfind(b" ", 0, at)` */
    Py_ssize_t scanned = 0;      /* where the look for `space` goes on from (`dot` only grows) */
    Py_ssize_t failed_lead = -1; /* a lead whose match failed: it fails again, not retried */
    for (Py_ssize_t from = 0; from < t.size;) {
        Py_ssize_t dot = from;
        for (; dot < t.size; dot++) {
            if (t.latin1 != NULL) { /* to the next dot at once */
                const Py_UCS1 *p = memchr(t.latin1 + dot, '.', (size_t)(t.size - dot));
                if (p == NULL) {
                    dot = t.size;
                    break;
                }
                dot = p - t.latin1;
            }
            if (hint_at(&t, dot))
                break;
        }
        if (dot >= t.size)
            break;
        /* the last OTHER in `scanned`-`dot`, read back from `dot` (each character once) */
        for (Py_ssize_t k = dot - 1; k >= scanned; k--) {
            if (cls(&t, k) == OTHER) {
                space = k;
                break;
            }
        }
        if (scanned < dot)
            scanned = dot;
        Py_ssize_t lead = space, group = 0, end = 0;
        if (lead < 0 || lead < past || lead == failed_lead
            || !names_match(&t, lead, &group, &end)) {
            if (lead >= past && lead >= 0)
                failed_lead = lead;
            from = dot + 1;
            continue;
        }
        past = end;
        int keep = end > dot;
        if (keep && dot == lead + 1) { /* the dot is the lead's own (` .a@b`): one must be inside */
            keep = 0;
            for (Py_ssize_t k = group; k < end && !keep; k++)
                keep = cls(&t, k) == DOT;
        }
        if (!keep) {
            from = dot + 1;
            continue;
        }
        PyObject *token = PyUnicode_Substring(arg, group, end);
        int bad = token == NULL || PyList_Append(tokens, token) < 0;
        Py_XDECREF(token);
        if (bad || append_index(starts, group) < 0)
            goto fail;
        from = past;
    }
    PyMem_Free(t.bits);
    return Py_BuildValue("(NN)", tokens, starts);
fail:
    PyMem_Free(t.bits);
    Py_XDECREF(tokens);
    Py_XDECREF(starts);
    return NULL;
}

static inline int is_hex(const Text *t, Py_ssize_t i)
{
    return (bits_at(t, i) & HEX) != 0;
}

/* hex_runs(text) -> [start, end, start, end, ...]: the spans `_hex_runs(text)` gives, runs of
 * 32 or more hex digits with no ASCII letter or digit right before or after. */
static PyObject *hex_runs(PyObject *Py_UNUSED(self), PyObject *arg)
{
    Text t;
    if (text_bits(arg, &t, "hex_runs") < 0)
        return NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        goto fail;
    Py_ssize_t i = 0; /* every run before `i` was looked at, and `i - 1` is no hex digit */
    while (i + 32 <= t.size) {
        /* a run of 32 from `i` or after, up to `i + 31`, holds the character at `i + 31`:
         * where that is no hex digit, the next 32 positions are skipped at once */
        if (!is_hex(&t, i + 31)) {
            i += 32;
            continue;
        }
        /* the run holding it starts at `i` or after: what is before `i` is no hex digit */
        Py_ssize_t start = i + 31, end = i + 32;
        while (start > i && is_hex(&t, start - 1))
            start--;
        while (is_hex(&t, end))
            end++;
        if (end - start >= 32 && !(bits_at(&t, start - 1) & ALNUM) && !(bits_at(&t, end) & ALNUM)) {
            if (append_index(out, start) < 0 || append_index(out, end) < 0)
                goto fail;
        }
        i = end;
    }
    PyMem_Free(t.bits);
    return out;
fail:
    PyMem_Free(t.bits);
    Py_XDECREF(out);
    return NULL;
}

/* The refang triggers (`_TRIGGER` in pipeline/normalize.py): an opening bracket then an
 * optional space and `.@:/`, `dot` or `at` in any case; `\.`; the first `x` of `hxxp`; the `x`
 * of `fxp`; the `]` of `.]`; `<.>`. Where the match at `i` ends, or -1 for none. */
static Py_ssize_t trigger_end(int kind, const void *data, Py_ssize_t n, Py_ssize_t i)
{
#define CH(k) ((k) >= 0 && (k) < n ? PyUnicode_READ(kind, data, (k)) : 0)
#define LOW(k) (CH(k) | 0x20) /* an ASCII letter in lower case (other characters do not match) */
    Py_UCS4 c = CH(i);
    if (c == '[' || c == '(' || c == '{') {
        /* `\ ?` then what follows: after a space, only one of them can (none is a space) */
        Py_ssize_t k = CH(i + 1) == ' ' ? i + 2 : i + 1;
        Py_UCS4 d = CH(k);
        if (d == '.' || d == '@' || d == ':' || d == '/')
            return k + 1;
        if (LOW(k) == 'd' && LOW(k + 1) == 'o' && LOW(k + 2) == 't')
            return k + 3;
        if (LOW(k) == 'a' && LOW(k + 1) == 't')
            return k + 2;
        return -1;
    }
    if (c == '\\')
        return CH(i + 1) == '.' ? i + 2 : -1;
    if (c == 'x' || c == 'X') {
        if (LOW(i - 1) == 'h' && LOW(i + 1) == 'x' && LOW(i + 2) == 'p')
            return i + 3;
        if (LOW(i - 1) == 'f' && LOW(i + 1) == 'p')
            return i + 2;
        return -1;
    }
    if (c == ']')
        return CH(i - 1) == '.' ? i + 1 : -1;
    if (c == '<')
        return CH(i + 1) == '.' && CH(i + 2) == '>' ? i + 3 : -1;
    return -1;
#undef LOW
#undef CH
}

/* triggers(text) -> [start, ...]: the starts of `_TRIGGER.finditer(text)`'s matches. */
static PyObject *triggers(PyObject *Py_UNUSED(self), PyObject *arg)
{
    if (!is_str(arg, "triggers"))
        return NULL;
    int kind = PyUnicode_KIND(arg);
    const void *data = PyUnicode_DATA(arg);
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    /* the characters a trigger starts with; in text of one byte a character, the others are
     * skipped in a loop of their own (most of the text) */
    const Py_UCS1 *bytes = kind == PyUnicode_1BYTE_KIND ? data : NULL;
    for (Py_ssize_t i = 0; i < n;) {
        if (bytes != NULL) {
            while (i < n && !TRIGGER_FIRST[bytes[i]])
                i++;
            if (i >= n)
                break;
        }
        Py_ssize_t end = trigger_end(kind, data, n, i);
        if (end < 0) {
            i++;
            continue;
        }
        if (append_index(out, i) < 0) {
            Py_DECREF(out);
            return NULL;
        }
        i = end; /* matches do not overlap: the next is looked for after this one */
    }
    return out;
}

/* A match of `_DEFANG` (pipeline/normalize.py) and what it stands for (`.`, `@`, `://`, `:/`,
 * `:`, `/`, or a scheme: `http`, `https`, `ftp`, `ftps`) */
typedef struct {
    Py_ssize_t start, end;
    char rep[6];
    int rep_n;
} Refanged;

/* The parts of `_DEFANG` below read no character at or past `stop` (the end of the region
 * `finditer` was given, which its lookaheads do not see either), and only the hxxp
 * alternative's lookbehind reads one before the match (it sees the whole text). Each returns
 * where its part, from `k`, ends, or -1 for no match. */
static Py_ssize_t defang_dot(int kind, const void *data, Py_ssize_t stop, Py_ssize_t k,
                             int lead_bracket)
{
#define CH(j) ((j) >= 0 && (j) < stop ? PyUnicode_READ(kind, data, (j)) : 0)
#define LOW(j) (CH(j) | 0x20)
    /* `\[?+ \ ? (?:\.|[dD][oO][tT]) \ ? [\])}] \]?+ \ ?` from `k` (without `\[?+` when
     * `lead_bracket` is 0); each `\ ?` comes before what is no space, so taking it when it
     * is there is the only way through */
    if (lead_bracket && CH(k) == '[')
        k++;
    if (CH(k) == ' ')
        k++;
    if (CH(k) == '.')
        k++;
    else if (LOW(k) == 'd' && LOW(k + 1) == 'o' && LOW(k + 2) == 't')
        k += 3;
    else
        return -1;
    if (CH(k) == ' ')
        k++;
    Py_UCS4 c = CH(k);
    if (c != ']' && c != ')' && c != '}')
        return -1;
    k++;
    if (lead_bracket && CH(k) == ']')
        k++;
    if (CH(k) == ' ')
        k++;
    return k;
}

static Py_ssize_t defang_at(int kind, const void *data, Py_ssize_t stop, Py_ssize_t k)
{
    /* `\ ? (?:@|[aA][tT]) \ ? [\])}] \ ?` from `k` */
    if (CH(k) == ' ')
        k++;
    if (CH(k) == '@')
        k++;
    else if (LOW(k) == 'a' && LOW(k + 1) == 't')
        k += 2;
    else
        return -1;
    if (CH(k) == ' ')
        k++;
    Py_UCS4 c = CH(k);
    if (c != ']' && c != ')' && c != '}')
        return -1;
    k++;
    if (CH(k) == ' ')
        k++;
    return k;
}

/* `[\])}]` */
static int is_close(Py_UCS4 c) { return c == ']' || c == ')' || c == '}'; }

/* `_DEFANG.match(text, p, stop)`: where it ends, or -1; `m` gets what it stands for. */
static Py_ssize_t defang_match(int kind, const void *data, Py_ssize_t stop, Py_ssize_t p,
                               Refanged *m)
{
    Py_UCS4 c0 = CH(p);
    Py_ssize_t end;
    m->rep_n = 1;
    m->rep[0] = '.';
    if (p >= stop)
        return -1;
    if (c0 == ' ') {
        Py_UCS4 c1 = CH(p + 1);
        if (c1 != '[' && c1 != '(' && c1 != '{')
            return -1;
        if ((end = defang_dot(kind, data, stop, p + 2, 1)) >= 0)
            return end;
        m->rep[0] = '@';
        return defang_at(kind, data, stop, p + 2);
    }
    if (c0 == '[' || c0 == '(' || c0 == '{') {
        if ((end = defang_dot(kind, data, stop, p + 1, 1)) >= 0)
            return end;
        if ((end = defang_at(kind, data, stop, p + 1)) >= 0) {
            m->rep[0] = '@';
            return end;
        }
        /* `(?P<punct> :// | :/ | : | / ) [\])}]`, each tried in turn */
        if (CH(p + 1) == ':') {
            if (CH(p + 2) == '/' && CH(p + 3) == '/' && is_close(CH(p + 4))) {
                memcpy(m->rep, "://", 3);
                m->rep_n = 3;
                return p + 5;
            }
            if (CH(p + 2) == '/' && is_close(CH(p + 3))) {
                memcpy(m->rep, ":/", 2);
                m->rep_n = 2;
                return p + 4;
            }
            if (is_close(CH(p + 2))) {
                m->rep[0] = ':';
                return p + 3;
            }
        }
        if (CH(p + 1) == '/' && is_close(CH(p + 2))) {
            m->rep[0] = '/';
            return p + 3;
        }
        if (c0 == '[' && CH(p + 1) == '.')
            return p + 2; /* the half bracket of `example[.com` */
        return -1;
    }
    if (c0 == '.')
        return CH(p + 1) == ']' ? p + 2 : -1;
    if (c0 == '<')
        return CH(p + 1) == '.' && CH(p + 2) == '>' ? p + 3 : -1;
    if (c0 == '\\')
        return CH(p + 1) == '.' ? p + 2 : -1;
    if (c0 == 'h' || c0 == 'H' || c0 == 'f' || c0 == 'F') {
        /* `(?<![a-zA-Z0-9_][hHfF])`: the lookbehind sees before the region's start */
        Py_UCS4 b = p > 0 ? PyUnicode_READ(kind, data, p - 1) : 0;
        if (b < 128 && ((BITS[b] & ALNUM) || b == '_'))
            return -1;
        Py_ssize_t k = p + 1;
        int http = c0 == 'h' || c0 == 'H';
        if (LOW(k) != 'x')
            return -1;
        k++;
        if (http) {
            if (LOW(k) != 'x')
                return -1;
            k++;
        }
        if (LOW(k) != 'p')
            return -1;
        k++;
        int s = LOW(k) == 's';
        Py_ssize_t after = k + s;
        Py_UCS4 d = CH(after);
        if (d == '[' || d == '(' || d == '{')
            d = CH(after + 1);
        if (d != ':')
            return -1;
        const char *scheme = http ? (s ? "https" : "http") : (s ? "ftps" : "ftp");
        m->rep_n = (int)strlen(scheme);
        memcpy(m->rep, scheme, (size_t)m->rep_n);
        return after;
    }
    return -1;
#undef LOW
#undef CH
}

/* How far a refang trigger may be from either end of its defanging (`_REACH` of normalize.py) */
#define REACH 12

/* The refanged text as it is written: `out` holds `size` characters of the text's width
 * (`kind` bytes each), allocated at the first match for all of the text (every match is
 * replaced by no more characters than it holds, so the result is never longer); the text
 * before `done` is in it. */
typedef struct {
    char *out;
    Py_ssize_t size, done;
} Refanging;

/* Copy the text from `r->done` to `to` into `r->out`, then `m`'s replacement: 0, or -1 with
 * an exception set. */
static int refang_put(int kind, const void *data, Py_ssize_t n, Refanging *r, Py_ssize_t to,
                      const Refanged *m)
{
    if (r->out == NULL) {
        r->out = PyMem_Malloc(n > 0 ? (size_t)n * (size_t)kind : 1);
        if (r->out == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    size_t kept = (size_t)(to - r->done) * (size_t)kind;
    memcpy(r->out + r->size * kind, (const char *)data + r->done * kind, kept);
    r->size += to - r->done;
    for (int k = 0; k < m->rep_n; k++, r->size++)
        PyUnicode_WRITE(kind, r->out, r->size, (Py_UCS4)(unsigned char)m->rep[k]);
    r->done = m->end;
    return 0;
}

/* `_refang_window` of normalize.py: each match of `_DEFANG` that starts in `from`-`to`,
 * searched in `from`-`to + 4` of the text's `n` characters, written out with the text before
 * it: 0, or -1 with an exception set. */
static int refang_window(int kind, const void *data, Py_ssize_t n, Py_ssize_t from,
                         Py_ssize_t to, Refanging *r)
{
    Py_ssize_t stop = to + 4 < n ? to + 4 : n;
    for (Py_ssize_t p = from > 0 ? from : 0; p < to && p < stop;) {
        Refanged m;
        m.end = defang_match(kind, data, stop, p, &m);
        if (m.end < 0) {
            p++;
            continue;
        }
        m.start = p;
        if (refang_put(kind, data, n, r, p, &m) < 0)
            return -1;
        p = m.end; /* every match holds a character: the next is looked for after it */
    }
    return 0;
}

/* refang_windows(text) -> str: what `_py_refang_windows(text)` of normalize.py gives, `text`
 * itself when nothing in it was refanged. */
static PyObject *refang_windows(PyObject *Py_UNUSED(self), PyObject *arg)
{
    if (!is_str(arg, "refang_windows"))
        return NULL;
    int kind = PyUnicode_KIND(arg);
    const void *data = PyUnicode_DATA(arg);
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    const Py_UCS1 *bytes = kind == PyUnicode_1BYTE_KIND ? data : NULL;
    Refanging r = {NULL, 0, 0};
    Py_ssize_t start = -1, end = -1; /* the window being gathered, as in Python */
    for (Py_ssize_t i = 0; i < n;) {
        if (bytes != NULL) {
            while (i < n && !TRIGGER_FIRST[bytes[i]])
                i++;
            if (i >= n)
                break;
        }
        Py_ssize_t past = trigger_end(kind, data, n, i);
        if (past < 0) {
            i++;
            continue;
        }
        if (i < end)
            end = i + REACH;
        else {
            if (end >= 0
                && refang_window(kind, data, n, r.done > start ? r.done : start, end, &r) < 0)
                goto fail;
            start = i - REACH;
            end = i + REACH;
        }
        i = past;
    }
    if (end >= 0 && refang_window(kind, data, n, r.done > start ? r.done : start, end, &r) < 0)
        goto fail;
    if (r.out == NULL) {
        Py_INCREF(arg);
        return arg;
    }
    Py_ssize_t size = r.size + (n - r.done);
    /* a match is ASCII only: every other character stays, so the widest is the same */
    PyObject *out = PyUnicode_New(size, PyUnicode_MAX_CHAR_VALUE(arg));
    if (out == NULL)
        goto fail;
    char *to = PyUnicode_DATA(out);
    memcpy(to, r.out, (size_t)r.size * (size_t)kind);
    memcpy(to + r.size * kind, (const char *)data + r.done * kind,
           (size_t)(n - r.done) * (size_t)kind);
    PyMem_Free(r.out);
    return out;
fail:
    PyMem_Free(r.out);
    return NULL;
}

/* The IPv6 candidates (`_ipv6_candidates` in extract.py). A run is of hex digits, `:` and
 * `.` (`_V6_RUN_CHARS`); `CHR` reads past the text's end as 0, which is in no class. */
#define CHR(k) ((k) >= 0 && (k) < n ? PyUnicode_READ(kind, data, (k)) : 0)

static inline int v6_hex(Py_UCS4 c)
{
    return c < 128 && (BITS[c] & HEX);
}

static inline int v6_run(Py_UCS4 c)
{
    return v6_hex(c) || c == ':' || c == '.';
}

static inline int v6_alnum(Py_UCS4 c)
{
    return c < 128 && (BITS[c] & ALNUM);
}

/* The hex digits from `k`, counted up to 5 (`[0-9A-Fa-f]{1,4}` takes 4 at most) */
static Py_ssize_t v6_hex_count(int kind, const void *data, Py_ssize_t n, Py_ssize_t k)
{
    Py_ssize_t h = 0;
    while (h < 5 && v6_hex(CHR(k + h)))
        h++;
    return h;
}

/* `_IPV6_HINT.match(text, i)`: where it ends, or -1 (`::`, or `:` and four groups of one to
 * four hex digits, each followed by `:`) */
static Py_ssize_t v6_hint(int kind, const void *data, Py_ssize_t n, Py_ssize_t i)
{
    if (CHR(i) != ':')
        return -1;
    if (CHR(i + 1) == ':')
        return i + 2;
    Py_ssize_t k = i + 1;
    for (int g = 0; g < 4; g++) {
        Py_ssize_t h = v6_hex_count(kind, data, n, k);
        if (h < 1 || h > 4 || CHR(k + h) != ':')
            return -1;
        k += h + 1;
    }
    return k;
}

/* `_IPV6_BODY` matched at `at`: where group 1 (the address) ends, or -1 */
static Py_ssize_t v6_body(int kind, const void *data, Py_ssize_t n, Py_ssize_t at)
{
    /* (?=[0-9A-Fa-f]{0,4}:) */
    Py_ssize_t h = v6_hex_count(kind, data, n, at);
    if (h > 4 || CHR(at + h) != ':')
        return -1;
    /* the run from `at`, as far as it goes */
    Py_ssize_t run = at;
    while (run < n && v6_run(PyUnicode_READ(kind, data, run)))
        run++;
    /* (?=[0-9A-Fa-f:.]*::|:?(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]) */
    int ahead = 0;
    for (Py_ssize_t k = at; k + 1 < run; k++)
        if (PyUnicode_READ(kind, data, k) == ':' && PyUnicode_READ(kind, data, k + 1) == ':') {
            ahead = 1;
            break;
        }
    if (!ahead) {
        Py_ssize_t k = CHR(at) == ':' ? at + 1 : at;
        int g = 0;
        for (; g < 7; g++) {
            Py_ssize_t c = v6_hex_count(kind, data, n, k);
            if (c < 1 || c > 4 || CHR(k + c) != ':')
                break;
            k += c + 1;
        }
        if (g < 7 || !v6_hex(CHR(k)))
            return -1;
    }
    /* [0-9A-Fa-f:.]{2,45}+(?![0-9A-Za-z]) */
    Py_ssize_t end = run - at > 45 ? at + 45 : run;
    if (end - at < 2 || v6_alnum(CHR(end)))
        return -1;
    return end;
}

/* `_after_key(text, at, past)`: the start of the address after a key glued to the run
 * `at`-`past` by its first colon, or -1; `*end` gets its end */
static Py_ssize_t v6_after_key(int kind, const void *data, Py_ssize_t n, Py_ssize_t at,
                               Py_ssize_t past, Py_ssize_t *end)
{
    Py_ssize_t colon = at;
    while (colon < past && PyUnicode_READ(kind, data, colon) != ':')
        colon++;
    if (colon >= past || CHR(colon + 1) == ':')
        return -1;
    /* the key: the characters of `_KEY_CHARS` right before the colon, in a window of 17 */
    Py_ssize_t low = colon - 17 > 0 ? colon - 17 : 0, k = colon;
    while (k > low) {
        Py_UCS4 c = PyUnicode_READ(kind, data, k - 1);
        if (!(v6_alnum(c) || c == '_' || c == '-'))
            break;
        k--;
    }
    Py_ssize_t key = colon - k, window = colon - low;
    if (key < 2 || (key == window && window == 17))
        return -1;
    /* _V6_KEY: `[A-Za-z][A-Za-z_-]*[0-9]?` */
    Py_UCS4 c = PyUnicode_READ(kind, data, k);
    if (!(v6_alnum(c) && !(BITS[c] & W_DIGIT)))
        return -1;
    for (Py_ssize_t j = k + 1; j < colon; j++) {
        c = PyUnicode_READ(kind, data, j);
        if (BITS[c] & W_DIGIT) { /* a digit: the last character only */
            if (j != colon - 1)
                return -1;
        }
    }
    if (key < window) {
        Py_UCS4 before = PyUnicode_READ(kind, data, k - 1);
        if (before == ':' || before == '.')
            return -1; /* a word inside a run of groups (`::src:0::`) is no key */
    }
    Py_ssize_t found = v6_body(kind, data, n, colon + 1);
    if (found < 0)
        return -1;
    *end = found;
    return colon + 1;
}

/* ipv6_runs(text) -> [start, end, ...]: the spans of group 1 of the matches
 * `_ipv6_candidates(text)` gives, flat. */
static PyObject *ipv6_runs(PyObject *Py_UNUSED(self), PyObject *arg)
{
    if (!is_str(arg, "ipv6_runs"))
        return NULL;
    int kind = PyUnicode_KIND(arg);
    const void *data = PyUnicode_DATA(arg);
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    const Py_UCS1 *bytes = kind == PyUnicode_1BYTE_KIND ? data : NULL;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    Py_ssize_t past = 0; /* the end of the last run looked at */
    /* a hint found after `past` is the next that `_IPV6_HINT.finditer` gives at or after it:
     * one that began before `past` is of hint characters, all in the run, so it ends there */
    for (Py_ssize_t i = past; i < n;) {
        if (bytes != NULL) {
            const Py_UCS1 *colon = memchr(bytes + i, ':', (size_t)(n - i));
            if (colon == NULL)
                break;
            i = colon - bytes;
        }
        Py_ssize_t hint_end = v6_hint(kind, data, n, i);
        if (hint_end < 0) {
            i++;
            continue;
        }
        Py_ssize_t at = i;
        while (at > past && v6_run(PyUnicode_READ(kind, data, at - 1)))
            at--; /* back to the run's start */
        past = hint_end;
        while (past < n && v6_run(PyUnicode_READ(kind, data, past)))
            past++;
        if (at > 0) {
            Py_UCS4 before = PyUnicode_READ(kind, data, at - 1);
            Py_ssize_t start = -1, end = -1;
            if (!v6_alnum(before) && before != ':' && before != '.') {
                end = v6_body(kind, data, n, at);
                start = end < 0 ? -1 : at;
            }
            if (start < 0 && (v6_alnum(before) || before == '_' || before == '-'))
                start = v6_after_key(kind, data, n, at, past, &end);
            if (start >= 0 && (append_index(out, start) < 0 || append_index(out, end) < 0)) {
                Py_DECREF(out);
                return NULL;
            }
        }
        i = past;
    }
    return out;
}
#undef CHR

/* skip_lines(text, at, count) -> int: where the line `count` lines after the one starting at
 * `at` starts (`_py_skip_lines` in extract.py); ValueError when `text` has fewer. */
static PyObject *skip_lines(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "skip_lines() takes 3 arguments");
        return NULL;
    }
    if (!is_str(args[0], "skip_lines"))
        return NULL;
    Py_ssize_t at = PyLong_AsSsize_t(args[1]);
    if (at == -1 && PyErr_Occurred())
        return NULL;
    Py_ssize_t count = PyLong_AsSsize_t(args[2]);
    if (count == -1 && PyErr_Occurred())
        return NULL;
    PyObject *text = args[0];
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    if (count > 0 && at < 0) /* as str.index reads a negative start: from the end */
        at = at + n < 0 ? 0 : at + n;
    for (; count > 0; count--) {
        if (kind == PyUnicode_1BYTE_KIND) {
            const Py_UCS1 *bytes = data;
            const Py_UCS1 *found = at < n ? memchr(bytes + at, '\n', (size_t)(n - at)) : NULL;
            at = found == NULL ? -1 : found - bytes;
        }
        else {
            while (at < n && PyUnicode_READ(kind, data, at) != '\n')
                at++;
            if (at >= n)
                at = -1;
        }
        if (at < 0) {
            PyErr_SetString(PyExc_ValueError, "substring not found");
            return NULL;
        }
        at++;
    }
    return PyLong_FromSsize_t(at);
}

/* plain_name(low, top) -> bool: `_is_plain_name(low, top)` in extract.py, string tests that
 * say whether a name the names pattern found follows every rule of a domain but the public
 * suffix: at most 253 characters, labels of 1 to 63 that neither start nor end with `-`, no
 * `%` or `+`; its last label `top` holds no `_` and is not all digits. One pass over `low`. */
static PyObject *plain_name(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "plain_name() takes two arguments");
        return NULL;
    }
    if (!is_str(args[0], "plain_name") || !is_str(args[1], "plain_name"))
        return NULL;
    PyObject *low = args[0], *top = args[1];
    int kind = PyUnicode_KIND(low), top_kind = PyUnicode_KIND(top);
    const void *data = PyUnicode_DATA(low), *top_data = PyUnicode_DATA(top);
    Py_ssize_t n = PyUnicode_GET_LENGTH(low), top_n = PyUnicode_GET_LENGTH(top);
    if (n == 0 || n > 253 || top_n == 0)
        Py_RETURN_FALSE;
    Py_UCS4 previous = '.'; /* so that a first `.` or `-` fails as `..` or `.-` would */
    Py_ssize_t label = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c == '%' || c == '+' || (c == '.' && (previous == '.' || previous == '-'))
            || (c == '-' && previous == '.'))
            Py_RETURN_FALSE;
        label = c == '.' ? 0 : label + 1;
        if (label > 63)
            Py_RETURN_FALSE;
        previous = c;
    }
    if (PyUnicode_READ(top_kind, top_data, top_n - 1) == '-')
        Py_RETURN_FALSE;
    int digits = 1;
    for (Py_ssize_t i = 0; i < top_n; i++) {
        Py_UCS4 c = PyUnicode_READ(top_kind, top_data, i);
        if (c == '_')
            Py_RETURN_FALSE;
        digits = digits && Py_UNICODE_ISDIGIT(c);
    }
    return PyBool_FromLong(!digits);
}

/* The number of newlines in `text[from:to]` (`text.count("\n", from, to)`; 0 when `to` is
 * not past `from`). */
static Py_ssize_t newlines(int kind, const void *data, Py_ssize_t n, Py_ssize_t from,
                           Py_ssize_t to)
{
    if (from < 0)
        from = 0;
    if (to > n)
        to = n;
    Py_ssize_t lines = 0;
    if (kind == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *p = data, *end = (const Py_UCS1 *)data + (to > from ? to : from);
        for (p += from; p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
            lines++;
        return lines;
    }
    for (Py_ssize_t i = from; i < to; i++)
        lines += PyUnicode_READ(kind, data, i) == '\n';
    return lines;
}

/* Append `value` and the line `line` to `values` and `lines`: 0, or -1 with an exception set. */
static int emit(PyObject *values, PyObject *lines, PyObject *value, Py_ssize_t line)
{
    if (PyList_Append(values, value) < 0)
        return -1;
    return append_index(lines, line);
}

/* Append the pair (`a`, `b`) to `list`: 0, or -1 with an exception set. */
static int append_pair(PyObject *list, Py_ssize_t a, Py_ssize_t b)
{
    PyObject *pair = Py_BuildValue("(nn)", a, b);
    int done = pair == NULL ? -1 : PyList_Append(list, pair);
    Py_XDECREF(pair);
    return done;
}

/* Where a walk goes on from, read from `args[0]`, `args[1]`, `args[2]`: the index (0 if
 * negative), the line at `*last` and `*last`. 0, or -1 with an exception set (OverflowError
 * for one beyond a quarter of the Py_ssize_t range, where a count added to it, or the index
 * past it, could overflow and read outside the list). */
static int walk_from(PyObject *const *args, Py_ssize_t *i, Py_ssize_t *line, Py_ssize_t *last)
{
    const Py_ssize_t bound = PY_SSIZE_T_MAX / 4;
    *i = PyLong_AsSsize_t(args[0]);
    *line = PyLong_AsSsize_t(args[1]);
    *last = PyLong_AsSsize_t(args[2]);
    if (PyErr_Occurred())
        return -1;
    if (*i > bound || *line > bound || *line < -bound || *last > bound || *last < -bound) {
        PyErr_SetString(PyExc_OverflowError, "a walk's index, line or place is out of range");
        return -1;
    }
    if (*i < 0)
        *i = 0;
    return 0;
}

/* A new name's judgment (`_new_name` in extract.py) for an ASCII token: the public suffix
 * decision and the file-name and program-name rules, with tables that extract.py hands over
 * once (`judge_tables`) from the same data its Python decides with: the public suffix list's
 * ICANN rules as the `publicsuffixlist` package reads them from the file it ships, the
 * top-level labels split as `suffixes.top_labels` splits them, and suffixes.py's sets. Until
 * then, and for a name outside ASCII or holding an A-label (`xn--`), the Python judges. */

/* A set of strings: open addressing over their bytes, FNV-1a, at most half full. */
typedef struct {
    char **keys;
    Py_ssize_t *sizes;
    size_t mask;
} StrSet;

enum {
    T_ALONE, T_DEEPER, T_RULES, T_INTERNAL, T_FILE_LIKE, T_HOST_FIRST, T_FILE_STEMS, T_ARCHIVE,
    T_HOST_LABELS, T_WELL_KNOWN, T_PROGRAM_NAMES, T_CODE_FIRST, T_CODE_OBJECTS, T_ATTRIBUTE,
    T_PACKAGE_FIRST, T_ALTERNATIVE_ROOTS, T_COUNT
};
static StrSet TABLES[T_COUNT];
static int JUDGE_READY = 0;
static Py_ssize_t MAX_LABELS = 0; /* the most labels of a rule (`_maxlabel` of the package) */

static size_t fnv(const char *s, Py_ssize_t n)
{
    uint64_t h = 14695981039346656037ULL;
    for (Py_ssize_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return (size_t)h;
}

static void set_free(StrSet *set)
{
    if (set->keys != NULL)
        for (size_t i = 0; i <= set->mask; i++)
            PyMem_Free(set->keys[i]);
    PyMem_Free(set->keys);
    PyMem_Free(set->sizes);
    set->keys = NULL;
    set->sizes = NULL;
    set->mask = 0;
}

static int set_has(const StrSet *set, const char *s, Py_ssize_t n)
{
    if (set->keys == NULL)
        return 0;
    for (size_t h = fnv(s, n) & set->mask;; h = (h + 1) & set->mask) {
        if (set->keys[h] == NULL)
            return 0;
        if (set->sizes[h] == n && memcmp(set->keys[h], s, (size_t)n) == 0)
            return 1;
    }
}

/* Fill `set` with the strings of `items` (any iterable of str): 0, or -1 with an exception
 * set. Also counts the most labels of one (for the rules). */
static int set_build(StrSet *set, PyObject *items, Py_ssize_t *max_labels)
{
    PyObject *list = PySequence_List(items);
    if (list == NULL)
        return -1;
    Py_ssize_t count = PyList_GET_SIZE(list);
    size_t slots = 8;
    while (slots < (size_t)count * 2 + 2)
        slots *= 2;
    set->keys = PyMem_Calloc(slots, sizeof(char *));
    set->sizes = PyMem_Calloc(slots, sizeof(Py_ssize_t));
    set->mask = slots - 1;
    if (set->keys == NULL || set->sizes == NULL) {
        Py_DECREF(list);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        Py_ssize_t n;
        const char *s = PyUnicode_Check(item) ? PyUnicode_AsUTF8AndSize(item, &n) : NULL;
        if (s == NULL && PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
            /* a rule holding a lone surrogate (suffixes.py reads the list's file with
             * surrogateescape): it names no ASCII name, and the Python never matches it
             * either; nor can it be the longest rule that matters to the walk */
            PyErr_Clear();
            continue;
        }
        if (s == NULL) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "judge_tables() takes sets of str");
            Py_DECREF(list);
            return -1;
        }
        if (max_labels != NULL) {
            Py_ssize_t labels = 1;
            for (Py_ssize_t k = 0; k < n; k++)
                labels += s[k] == '.';
            if (labels > *max_labels)
                *max_labels = labels;
        }
        size_t h = fnv(s, n) & set->mask;
        for (; set->keys[h] != NULL; h = (h + 1) & set->mask)
            if (set->sizes[h] == n && memcmp(set->keys[h], s, (size_t)n) == 0)
                break;
        if (set->keys[h] != NULL)
            continue; /* already in */
        char *copy = PyMem_Malloc((size_t)n + 1);
        if (copy == NULL) {
            Py_DECREF(list);
            PyErr_NoMemory();
            return -1;
        }
        memcpy(copy, s, (size_t)n);
        copy[n] = '\0';
        set->keys[h] = copy;
        set->sizes[h] = n;
    }
    Py_DECREF(list);
    return 0;
}

/* judge_tables(alone, deeper, rules, internal, file_like, host_first, file_stems, archive,
 * host_labels, well_known, program_names, code_first, code_objects, attribute, package_first,
 * alternative_roots) -> None: the tables `judge_name` decides with (see extract.py's `_teach_c`); called again,
 * it replaces them. */
static PyObject *judge_tables(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != T_COUNT) {
        PyErr_Format(PyExc_TypeError, "judge_tables() takes %d arguments", (int)T_COUNT);
        return NULL;
    }
    JUDGE_READY = 0;
    MAX_LABELS = 0;
    for (int t = 0; t < T_COUNT; t++)
        set_free(&TABLES[t]);
    for (int t = 0; t < T_COUNT; t++) {
        if (set_build(&TABLES[t], args[t], t == T_RULES ? &MAX_LABELS : NULL) < 0) {
            for (int k = 0; k < T_COUNT; k++)
                set_free(&TABLES[k]);
            MAX_LABELS = 0;
            return NULL;
        }
    }
    JUDGE_READY = 1;
    Py_RETURN_NONE;
}

static inline int is_upper(char c) { return c >= 'A' && c <= 'Z'; }
static inline int is_lower(char c) { return c >= 'a' && c <= 'z'; }
static inline int is_digit(char c) { return c >= '0' && c <= '9'; }

static Py_ssize_t find_char(const char *s, Py_ssize_t n, char c)
{
    const char *p = memchr(s, c, (size_t)n);
    return p == NULL ? -1 : p - s;
}

static Py_ssize_t rfind_char(const char *s, Py_ssize_t n, char c)
{
    for (Py_ssize_t i = n - 1; i >= 0; i--)
        if (s[i] == c)
            return i;
    return -1;
}

/* `s.isdigit()` for ASCII `s` */
static int all_digits(const char *s, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++)
        if (!is_digit(s[i]))
            return 0;
    return n > 0;
}

/* _is_plain_name(low, top) for the lower-case ASCII `low` (its last label `top`, after a dot,
 * `top_n` long): as plain_name below. */
static int plain_bytes(const char *low, Py_ssize_t n, Py_ssize_t top_n)
{
    if (n == 0 || n > 253 || top_n == 0)
        return 0;
    char previous = '.';
    Py_ssize_t label = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = low[i];
        if (c == '%' || c == '+' || (c == '.' && (previous == '.' || previous == '-'))
            || (c == '-' && previous == '.'))
            return 0;
        label = c == '.' ? 0 : label + 1;
        if (label > 63)
            return 0;
        previous = c;
    }
    const char *top = low + n - top_n;
    if (top[top_n - 1] == '-' || find_char(top, top_n, '_') >= 0)
        return 0;
    return !all_digits(top, top_n);
}

/* `registrable(name)` of suffixes.py for the lower-case ASCII `name` (at most 253): the
 * package's privatesuffix is not None, its walk (`_countpublic`, unknown suffixes not
 * accepted) over the suffixes of the name, longest first. */
static int registrable_bytes(const char *name, Py_ssize_t n)
{
    if (n > 0 && name[n - 1] == '.')
        n--; /* as the package: a trailing dot is dropped */
    Py_ssize_t starts[256];
    Py_ssize_t labels = 0;
    starts[labels++] = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (name[i] == '.') {
            if (labels >= 255)
                return 0;
            starts[labels++] = i + 1;
        }
    }
    for (Py_ssize_t k = 0; k < labels; k++) { /* an empty label: no domain */
        Py_ssize_t end = k + 1 < labels ? starts[k + 1] - 1 : n;
        if (end == starts[k])
            return 0;
    }
    char buffer[260];
    Py_ssize_t from = labels - (MAX_LABELS + 1);
    Py_ssize_t publen = 0;
    for (Py_ssize_t i = from > 0 ? from : 0; i < labels; i++) {
        Py_ssize_t depth = labels - i;
        const char *s = name + starts[i];
        Py_ssize_t size = n - starts[i];
        buffer[0] = '!';
        memcpy(buffer + 1, s, (size_t)size);
        if (set_has(&TABLES[T_RULES], buffer, size + 1)) {
            publen = depth - 1;
            break;
        }
        buffer[0] = '*';
        buffer[1] = '.';
        memcpy(buffer + 2, s, (size_t)size);
        if (set_has(&TABLES[T_RULES], buffer, size + 2)) {
            publen = i > 0 ? depth + 1 : depth;
            break;
        }
        if (set_has(&TABLES[T_RULES], s, size)) {
            publen = depth;
            break;
        }
    }
    return publen != 0 && labels >= publen + 1;
}

/* `s.isupper()` (`upper`) or `s.islower()` for ASCII: a letter, and none of the other case */
static int ascii_one_case(const char *s, Py_ssize_t n, int upper)
{
    int cased = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (upper ? is_lower(s[i]) : is_upper(s[i]))
            return 0;
        cased |= upper ? is_upper(s[i]) : is_lower(s[i]);
    }
    return cased;
}

/* `looks_like_file_name(name, written)` of suffixes.py, for ASCII */
static int file_name_bytes(const char *name, const char *written, Py_ssize_t n)
{
    Py_ssize_t dot = rfind_char(name, n, '.');
    if (dot < 0)
        return 0;
    const char *tld = name + dot + 1;
    Py_ssize_t tld_n = n - dot - 1, head_n = dot;
    Py_ssize_t first_n = find_char(name, head_n, '.');
    int rest = first_n >= 0 && first_n + 1 < head_n; /* `rest` of head.partition(".") */
    if (first_n < 0)
        first_n = head_n;
    int file_like = set_has(&TABLES[T_FILE_LIKE], tld, tld_n);
    if ((first_n == 32 || first_n == 40) && (!rest || file_like)) {
        int hex = !all_digits(name, first_n);
        for (Py_ssize_t i = 0; hex && i < first_n; i++)
            hex = is_digit(name[i]) || (name[i] >= 'a' && name[i] <= 'f');
        if (hex)
            return 1;
    }
    if (!file_like || set_has(&TABLES[T_WELL_KNOWN], name, n))
        return 0;
    if (!rest) {
        if (!set_has(&TABLES[T_HOST_FIRST], tld, tld_n))
            return 1;
        return first_n == 1 || set_has(&TABLES[T_FILE_STEMS], name, first_n)
               || !ascii_one_case(written, n, 0) || find_char(written, n, '_') >= 0;
    }
    if (set_has(&TABLES[T_ARCHIVE], tld, tld_n) && !set_has(&TABLES[T_HOST_LABELS], name, first_n))
        return 1;
    for (Py_ssize_t at = 0; at <= head_n;) { /* a label of digits alone */
        Py_ssize_t end = find_char(name + at, head_n - at, '.');
        end = end < 0 ? head_n : at + end;
        if (all_digits(name + at, end - at))
            return 1;
        at = end + 1;
    }
    return 0;
}

/* `is_program_name(written, name)` of suffixes.py, for ASCII */
static int program_name_bytes(const char *name, const char *written, Py_ssize_t n)
{
    if (set_has(&TABLES[T_PROGRAM_NAMES], name, n))
        return 1;
    Py_ssize_t first_n = find_char(name, n, '.');
    const char *rest = first_n < 0 ? name + n : name + first_n + 1;
    Py_ssize_t rest_n = first_n < 0 ? 0 : n - first_n - 1;
    if (first_n < 0)
        first_n = n;
    if (set_has(&TABLES[T_CODE_FIRST], name, first_n)
        || (set_has(&TABLES[T_PACKAGE_FIRST], name, first_n) && find_char(rest, rest_n, '.') >= 0))
        return 1;
    if (set_has(&TABLES[T_CODE_OBJECTS], name, first_n) && set_has(&TABLES[T_ATTRIBUTE], rest, rest_n))
        return 1;
    if (!is_upper(written[0]) || ascii_one_case(written, n, 1) || find_char(written, n, '-') >= 0)
        return 0;
    if (n >= 4 && memcmp(name + n - 4, ".com", 4) == 0)
        return 0;
    for (Py_ssize_t i = 0; i < n; i++) /* every label after the first starts with a capital */
        if (written[i] == '.' && (i + 1 >= n || !is_upper(written[i + 1])))
            return 0;
    return 1;
}

/* `is_file_or_program_name(name, written)` of suffixes.py, for ASCII */
static int file_or_program_bytes(const char *name, const char *written, Py_ssize_t n)
{
    Py_ssize_t dot = rfind_char(name, n, '.');
    Py_ssize_t head_n = dot < 0 ? 0 : dot;
    const char *tld = name + dot + 1;
    Py_ssize_t first_n = find_char(name, n, '.');
    if (first_n < 0)
        first_n = n;
    if (!set_has(&TABLES[T_FILE_LIKE], tld, n - dot - 1) && head_n != 32 && head_n != 40
        && !is_upper(written[0]) && !set_has(&TABLES[T_PROGRAM_NAMES], name, n)
        && !set_has(&TABLES[T_CODE_FIRST], name, first_n)
        && !set_has(&TABLES[T_PACKAGE_FIRST], name, first_n)
        && !set_has(&TABLES[T_CODE_OBJECTS], name, first_n))
        return 0;
    return file_name_bytes(name, written, n) || program_name_bytes(name, written, n);
}

/* What `_new_name(tok)` of extract.py gives, a new reference: the name (`!` + the name for a
 * file-like one) or None; NULL without an exception when the Python must judge `tok` (the
 * tables are not handed over yet, it is not ASCII, or its name holds an A-label), or with
 * one. */
static PyObject *judge(PyObject *tok)
{
    if (!JUDGE_READY || !PyUnicode_IS_ASCII(tok))
        return NULL;
    const char *all = (const char *)PyUnicode_DATA(tok);
    Py_ssize_t all_n = PyUnicode_GET_LENGTH(tok);
    Py_ssize_t at = rfind_char(all, all_n, '@');
    int email = at >= 0;
    const char *s = all + at + 1;
    Py_ssize_t n = all_n - at - 1;
    Py_ssize_t dot = rfind_char(s, n, '.');
    if (dot < 0 || n > 253) /* no name is longer: every branch of the Python says None */
        Py_RETURN_NONE;
    char value[256];
    value[0] = '!';
    char *low = value + 1;
    for (Py_ssize_t i = 0; i < n; i++)
        low[i] = is_upper(s[i]) ? (char)(s[i] + 32) : s[i];
    for (Py_ssize_t i = 0; i + 4 <= n; i++)
        if (low[i] == 'x' && low[i + 1] == 'n' && low[i + 2] == '-' && low[i + 3] == '-')
            return NULL;
    const char *top = low + dot + 1;
    Py_ssize_t top_n = n - dot - 1;
    if (set_has(&TABLES[T_ALONE], top, top_n)) {
        if (dot == 0 || !plain_bytes(low, n, top_n))
            Py_RETURN_NONE;
    }
    else if (!set_has(&TABLES[T_DEEPER], top, top_n) || !plain_bytes(low, n, top_n)
             || !registrable_bytes(low, n))
        Py_RETURN_NONE;
    if (set_has(&TABLES[T_INTERNAL], top, top_n))
        Py_RETURN_NONE;
    if (!email && file_or_program_bytes(low, s, n))
        return PyUnicode_FromStringAndSize(value, n + 1);
    return PyUnicode_FromStringAndSize(low, n);
}

/* judge_name(tok) -> str | None | NotImplemented: what `_new_name(tok)` gives, or
 * NotImplemented where the Python judges (see judge). */
static PyObject *judge_name(PyObject *Py_UNUSED(self), PyObject *tok)
{
    if (!is_str(tok, "judge_name"))
        return NULL;
    PyObject *value = judge(tok);
    if (value == NULL && !PyErr_Occurred())
        Py_RETURN_NOTIMPLEMENTED;
    return value;
}

enum { WALK_SKIP, WALK_EMIT, WALK_PYTHON };

/* Whether `tok` is a dotted quad (`_DOTTED_QUAD.fullmatch(tok)`: four numbers of 0 to 255,
 * written without a leading zero, between three dots). */
static int dotted_quad(PyObject *tok)
{
    int kind = PyUnicode_KIND(tok);
    const void *data = PyUnicode_DATA(tok);
    Py_ssize_t n = PyUnicode_GET_LENGTH(tok), i = 0;
    for (int part = 0; part < 4; part++) {
        if (part > 0 && (i >= n || PyUnicode_READ(kind, data, i++) != '.'))
            return 0;
        int value = 0, digits = 0;
        for (; i < n && digits < 4; i++, digits++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (c < '0' || c > '9')
                break;
            value = value * 10 + (int)(c - '0');
        }
        if (digits == 0 || digits > 3 || value > 255)
            return 0;
        if (digits > 1 && PyUnicode_READ(kind, data, i - digits) == '0')
            return 0;
    }
    return i == n;
}

/* What the names pass (`_Scan.names` in extract.py) does with the token `tok` found at
 * `start` when that needs no judgment of its own: WALK_SKIP (it gives nothing), WALK_EMIT
 * (it gives `*value`, a new reference; `*quad` says whether it is a dotted quad), or
 * WALK_PYTHON (the Python path must look at it: a token to trim or cut after a `$`, a name
 * the judge here leaves to it (outside ASCII, an A-label, the tables full), a URL's host that
 * is no name, a quad after `version` and text outside ASCII, tcpdump's `1.2.3.4.443`, a
 * file-like name in defanged text); -1 with an exception set. */
static int walk_name(int kind, const void *data, Py_ssize_t n, PyObject *name, Py_ssize_t end,
                     int url, int defanged, PyObject **value, int *quad);

/* The name a token not in the memo stands for, judged here (`_name` of extract.py: the memo
 * `memo` and the table `known` of the values found are filled as it fills them): a new
 * reference; NULL without an exception when the Python must judge it (see judge; or a table
 * is full, which the Python empties, or the token is too long to be remembered or not a plain
 * str), or with one. */
static PyObject *judged(PyObject *tok, PyObject *memo, PyObject *known, Py_ssize_t known_max,
                        Py_ssize_t names_max, PyObject *domain)
{
    if (!PyUnicode_CheckExact(tok) || PyUnicode_GET_LENGTH(tok) > 253 + 65
        || PyDict_GET_SIZE(memo) >= names_max || PyDict_GET_SIZE(known) >= known_max)
        return NULL;
    PyObject *name = judge(tok);
    if (name == NULL)
        return NULL;
    if (PyDict_SetItem(memo, tok, name) < 0) {
        Py_DECREF(name);
        return NULL;
    }
    if (name != Py_None) {
        int file_like = PyUnicode_READ_CHAR(name, 0) == '!';
        PyObject *key = file_like ? PyUnicode_Substring(name, 1, PyUnicode_GET_LENGTH(name)) : name;
        if (key == NULL || PyDict_SetItem(known, key, domain) < 0) {
            if (file_like)
                Py_XDECREF(key);
            Py_DECREF(name);
            return NULL;
        }
        if (file_like)
            Py_DECREF(key);
    }
    return name;
}

/* `_remember_if_nothing(tok)` of extract.py, for a token that gave nothing (neither trimmed
 * nor after a `$`, as every token this loop judges): kept in `never` if it gives nothing
 * wherever it is written (one dot, ASCII, not under an alternative root), the set emptied
 * when it holds `names_max`. 0, or -1 with an exception set. */
static int remember_if_nothing(PyObject *tok, PyObject *never, Py_ssize_t names_max)
{
    if (!JUDGE_READY || !PyUnicode_CheckExact(tok) || !PyUnicode_IS_ASCII(tok)
        || PyUnicode_GET_LENGTH(tok) > 253 + 65)
        return 0;
    const char *s = (const char *)PyUnicode_DATA(tok);
    Py_ssize_t n = PyUnicode_GET_LENGTH(tok);
    Py_ssize_t dot = find_char(s, n, '.');
    if (dot < 0 || find_char(s + dot + 1, n - dot - 1, '.') >= 0)
        return 0;
    char top[253 + 65];
    Py_ssize_t top_n = n - dot - 1;
    for (Py_ssize_t i = 0; i < top_n; i++)
        top[i] = is_upper(s[dot + 1 + i]) ? (char)(s[dot + 1 + i] + 32) : s[dot + 1 + i];
    if (set_has(&TABLES[T_ALTERNATIVE_ROOTS], top, top_n))
        return 0;
    if (PySet_GET_SIZE(never) >= names_max && PySet_Clear(never) < 0)
        return -1;
    return PySet_Add(never, tok);
}

/* `_name_before(text, slash)` of extract.py: whether the word right before the `/` at `slash`
 * (a run of `[0-9A-Za-z_.-]`, looked for in the 254 characters before it) is a dotted name
 * or address standing alone, not a URL's host or path (nor a path's component). */
static int name_before(int kind, const void *data, Py_ssize_t n, Py_ssize_t slash)
{
    if (slash < 0 || slash > n)
        return 0;
    Py_ssize_t low = slash > 254 ? slash - 254 : 0, begin = slash;
    int dot = 0;
    while (begin > low) {
        Py_UCS4 c = PyUnicode_READ(kind, data, begin - 1);
        if (!(c < 128 && (BITS[c] & ALNUM)) && c != '_' && c != '.' && c != '-')
            break;
        dot |= c == '.';
        begin--;
    }
    if (!dot || PyUnicode_READ(kind, data, begin) == '.' || (begin == low && slash - low == 254))
        return 0;
    if (begin == 0)
        return 1;
    Py_UCS4 c = PyUnicode_READ(kind, data, begin - 1);
    return c != '/' && c != '\\' && c != ':' && c != '@' && c != '%';
}

/* The run of `[0-9A-Za-z_.-]` (extract.py's _WORD_CHARS) that ends right before `at`, looked
 * for in the `reach` characters before it: where it begins. */
static Py_ssize_t word_before(int kind, const void *data, Py_ssize_t at, Py_ssize_t reach)
{
    Py_ssize_t low = at > reach ? at - reach : 0, begin = at;
    while (begin > low) {
        Py_UCS4 c = PyUnicode_READ(kind, data, begin - 1);
        if (!(c < 128 && (BITS[c] & ALNUM)) && c != '_' && c != '.' && c != '-')
            break;
        begin--;
    }
    return begin;
}

static int lower_ascii(Py_UCS4 c) { return c >= 'A' && c <= 'Z' ? (int)(c + 32) : (int)c; }

/* Whether `text[at:at + size]` is `word` in any case (`word` in lower case, ASCII). */
static int ascii_word_at(int kind, const void *data, Py_ssize_t at, const char *word,
                         Py_ssize_t size)
{
    for (Py_ssize_t k = 0; k < size; k++)
        if (lower_ascii(PyUnicode_READ(kind, data, at + k)) != word[k])
            return 0;
    return 1;
}

/* `_product_before(text, slash)` of extract.py: the word before the `/` at `slash` starts
 * with a letter, holds no dot and is no squid hierarchy code (_SQUID: `HIER_DIRECT`, `DIRECT`,
 * `CARP`, `PINNED`). */
static int product_before(int kind, const void *data, Py_ssize_t slash)
{
    Py_ssize_t begin = word_before(kind, data, slash, 32), size = slash - begin;
    if (size == 0 || !Py_UNICODE_ISALPHA(PyUnicode_READ(kind, data, begin)))
        return 0;
    int squid = 1, underscores = 0;
    Py_UCS4 previous = '_';
    for (Py_ssize_t k = begin; k < slash; k++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, k);
        if (c == '.')
            return 0;
        if (c == '_') {
            squid = squid && previous != '_';
            underscores++;
        }
        else
            squid = squid && c >= 'A' && c <= 'Z';
        previous = c;
    }
    squid = squid && previous != '_' && underscores > 0;
    if (!squid && (size == 6 || size == 4)) {
        const char *codes[] = {"DIRECT", "PINNED", "CARP"};
        for (int k = 0; k < 3 && !squid; k++) {
            squid = (Py_ssize_t)strlen(codes[k]) == size;
            for (Py_ssize_t j = 0; squid && j < size; j++)
                squid = PyUnicode_READ(kind, data, begin + j) == (Py_UCS4)codes[k][j];
        }
    }
    return !squid;
}

/* `_pinned(text, equals)` of extract.py: the word glued to the `==` at `equals` starts with a
 * letter and does not end in a word that names an address (_ADDRESS_WORD, any case). */
static int pinned(int kind, const void *data, Py_ssize_t equals)
{
    static const char *words[] = {"ip", "ipv4", "addr", "address", "src", "dst", "host",
                                  "server", "peer", "client", "source", "destination"};
    Py_ssize_t begin = word_before(kind, data, equals, 64), size = equals - begin;
    if (size == 0 || !Py_UNICODE_ISALPHA(PyUnicode_READ(kind, data, begin)))
        return 0;
    for (size_t k = 0; k < sizeof(words) / sizeof(*words); k++) {
        Py_ssize_t w = (Py_ssize_t)strlen(words[k]);
        if (w <= size && ascii_word_at(kind, data, equals - w, words[k], w))
            return 0;
    }
    return 1;
}

/* Whether `text[from:to]` ends in what _VERSION matches (`version`, any case, then maybe a
 * quote, space, `=` or `:`, space, a quote), for ASCII text: each part is optional and of
 * its own class, so reading them back from the end, each taken when there, decides. */
static int version_before(int kind, const void *data, Py_ssize_t from, Py_ssize_t to)
{
    Py_ssize_t k = to;
#define AT(j) PyUnicode_READ(kind, data, (j))
    if (k > from && (AT(k - 1) == '"' || AT(k - 1) == '\''))
        k--;
    while (k > from && Py_UNICODE_ISSPACE(AT(k - 1)))
        k--;
    if (k > from && (AT(k - 1) == '=' || AT(k - 1) == ':'))
        k--;
    while (k > from && Py_UNICODE_ISSPACE(AT(k - 1)))
        k--;
    if (k > from && (AT(k - 1) == '"' || AT(k - 1) == '\''))
        k--;
#undef AT
    return k - from >= 7 && ascii_word_at(kind, data, k - 7, "version", 7);
}

/* `_Scan.is_address(start, end)` of extract.py for the dotted quad `tok` at `start`-`end` (the
 * text starts with a newline, so `start` >= 1): 1 an address, 0 a product's version, a key's,
 * a pinned package's, a range or a version; -1 where the Python decides (text outside ASCII
 * before a quad that follows `version`, which its pattern reads in any case). `version`:
 * whether `ersion` or `ERSION` is in the 24 characters before `start`. */
static int is_address(int kind, const void *data, Py_ssize_t n, PyObject *tok, Py_ssize_t start,
                      Py_ssize_t end, int version)
{
#define CH(k) ((k) >= 0 && (k) < n ? PyUnicode_READ(kind, data, (k)) : 0)
    Py_UCS4 before = CH(start - 1);
    if (before == '/' && product_before(kind, data, start - 1))
        return 0; /* `Chrome/121.0.0.0`; but `HIER_DIRECT/1.2.3.4` is an address */
    if (before == '=') { /* `&v=1.4.0.2`, `ver=`: _VERSION_KEY in the 5 characters before */
        Py_ssize_t low = start > 5 ? start - 5 : 0, m = start - 1;
        if (m - 1 >= low && (CH(m - 1) == 'v' || CH(m - 1) == 'V')
            && (m - 1 == low || !(CH(m - 2) < 128 && ((BITS[CH(m - 2)] & ALNUM) || CH(m - 2) == '_'))))
            return 0;
        if (m - 3 >= low && ascii_word_at(kind, data, m - 3, "ver", 3)
            && (m - 3 == low || !(CH(m - 4) < 128 && ((BITS[CH(m - 4)] & ALNUM) || CH(m - 4) == '_'))))
            return 0;
        if (CH(start - 2) == '=' && pinned(kind, data, start - 2))
            return 0; /* `evil-pkg==1.2.3.4`; but `ip.addr==1.2.3.4` */
    }
    if (CH(end) == '/') { /* a range: `/` and 1 to 3 digits, no bit of the address past them */
        Py_ssize_t k = end + 1, prefix = 0;
        for (; k < n && k - end <= 3 && CH(k) >= '0' && CH(k) <= '9'; k++)
            prefix = prefix * 10 + (Py_ssize_t)(CH(k) - '0');
        if (k > end + 1 && !(CH(k) >= '0' && CH(k) <= '9') && prefix < 32) {
            uint64_t address = 0, part = 0;
            Py_ssize_t size = PyUnicode_GET_LENGTH(tok);
            for (Py_ssize_t j = 0; j < size; j++) {
                Py_UCS4 c = PyUnicode_READ_CHAR(tok, j);
                if (c == '.') {
                    address = (address << 8) | part;
                    part = 0;
                }
                else
                    part = part * 10 + (c - '0');
            }
            address = (address << 8) | part;
            if ((address & ((UINT64_C(1) << (32 - prefix)) - 1)) == 0)
                return 0;
        }
    }
    if (!version)
        return 1;
    Py_ssize_t near = start > 24 ? start - 24 : 0;
    for (Py_ssize_t k = near; k < start; k++)
        if (CH(k) >= 128)
            return -1;
    return !version_before(kind, data, near, start);
#undef CH
}

static int walk_trimmed(int kind, const void *data, Py_ssize_t n, PyObject *tok,
                        Py_ssize_t start, int raw, PyObject *memo, PyObject *never,
                        PyObject *known, PyObject *ipv4, Py_ssize_t known_max,
                        Py_ssize_t names_max, PyObject *domain, int defanged, PyObject **value,
                        int *quad);

static inline int edge(Py_UCS1 c) { return c == '_' || c == '%' || c == '+' || c == '-'; }

/* Whether the word a token that begins with `c` (`_` or `%`) starts ends with `c` as well, from
 * `at`, the token's end: `_CLOSING[c].match(text, at)` of extract.py, up to 64 characters
 * that are neither space nor `c`, then `c`, not before an ASCII letter or digit. */
static int closing(int kind, const void *data, Py_ssize_t n, Py_ssize_t at, Py_UCS4 c)
{
    Py_ssize_t k = at;
    while (k - at < 64 && k < n && PyUnicode_READ(kind, data, k) != c
           && !Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, k)))
        k++;
    if (k >= n || PyUnicode_READ(kind, data, k) != c)
        return 0;
    Py_UCS4 after = k + 1 < n ? PyUnicode_READ(kind, data, k + 1) : 0;
    return !(after < 128 && (BITS[after] & ALNUM));
}

/* What the names pass does with the token `tok` found at `start` (see walk_trimmed), a token
 * with `_%+-` at an end or a placeholder label trimmed first as `_trim` of extract.py does
 * (for an ASCII token): `*at` and `*length` say where the token it gave is. */
static int walk_token(int kind, const void *data, Py_ssize_t n, PyObject *tok, Py_ssize_t start,
                      PyObject *memo, PyObject *never, PyObject *known, PyObject *ipv4,
                      Py_ssize_t known_max, Py_ssize_t names_max, PyObject *domain, int defanged,
                      PyObject **value, int *quad, Py_ssize_t *at, Py_ssize_t *length)
{
    int contains = PySet_Contains(never, tok);
    if (contains != 0)
        return contains < 0 ? -1 : WALK_SKIP;
    Py_ssize_t size = PyUnicode_GET_LENGTH(tok);
    /* the text starts with a newline, as the extractor's does, so that what is before a
     * token is read in it, never from its end as a negative index would */
    if (size == 0 || start < 1 || start > n - size || PyUnicode_READ(kind, data, 0) != '\n')
        return WALK_PYTHON; /* not a token the finders give: Python says what it is */
    *at = start;
    *length = size;
    int tok_kind = PyUnicode_KIND(tok);
    const void *tok_data = PyUnicode_DATA(tok);
    Py_UCS4 first = PyUnicode_READ(tok_kind, tok_data, 0);
    Py_UCS4 last = PyUnicode_READ(tok_kind, tok_data, size - 1);
    int trim = first == '_' || first == '%' || first == '+' || first == '-' || last == '_'
               || last == '%' || last == '+' || last == '-';
    for (Py_ssize_t k = 1; k < size - 1 && !trim; k++) {
        Py_UCS4 c = PyUnicode_READ(tok_kind, tok_data, k);
        trim = c == '%' || c == '+'; /* a placeholder label */
    }
    if (!trim)
        return walk_trimmed(kind, data, n, tok, start, 1, memo, never, known, ipv4, known_max,
                            names_max, domain, defanged, value, quad);
    if (!PyUnicode_CheckExact(tok) || !PyUnicode_IS_ASCII(tok))
        return WALK_PYTHON;
    const Py_UCS1 *t = PyUnicode_1BYTE_DATA(tok);
    int closed = (first == '_' || first == '%') && closing(kind, data, n, start + size, first);
    if (first == '_' && start >= 3 && PyUnicode_READ(kind, data, start - 3) == '.'
        && PyUnicode_READ(kind, data, start - 2) == '.'
        && PyUnicode_READ(kind, data, start - 1) == ' ')
        closed = 1; /* a reStructuredText link target, `.. _evil.com: <url>` */
    Py_ssize_t body = size;
    while (body > 0 && edge(t[body - 1]))
        body--;
    if (body == 0)
        return WALK_SKIP;
    int wrapped = closed || body < size || t[body - 1] <= '9';
    Py_ssize_t head = 0;
    while (head < body && (wrapped ? edge(t[head]) : (t[head] == '+' || t[head] == '-')))
        head++;
    if (memchr(t + head, '@', (size_t)(body - head)) == NULL) {
        Py_ssize_t mark = -1;
        for (Py_ssize_t k = head; k < body; k++)
            if (t[k] == '%' || t[k] == '+')
                mark = k;
        if (mark >= 0) {
            const Py_UCS1 *dot = memchr(t + mark, '.', (size_t)(body - mark));
            if (dot == NULL)
                return WALK_SKIP;
            head = dot - t + 1;
        }
    }
    if (memchr(t + head, '.', (size_t)(body - head)) == NULL)
        return WALK_SKIP;
    PyObject *trimmed = PyUnicode_Substring(tok, head, body);
    if (trimmed == NULL)
        return -1;
    *at = start + head;
    *length = body - head;
    int what = walk_trimmed(kind, data, n, trimmed, start + head, 0, memo, never, known, ipv4,
                            known_max, names_max, domain, defanged, value, quad);
    Py_DECREF(trimmed);
    return what;
}

/* What the names pass does with the token `tok` at `start`, as found (`raw`) or trimmed, when
 * that needs no judgment of the Python's: WALK_SKIP (it gives nothing), WALK_EMIT (it gives
 * `*value`, a new reference; `*quad` says whether it is a dotted quad), or WALK_PYTHON (see
 * above); -1 with an exception set. */
static int walk_trimmed(int kind, const void *data, Py_ssize_t n, PyObject *tok,
                        Py_ssize_t start, int raw, PyObject *memo, PyObject *never,
                        PyObject *known, PyObject *ipv4, Py_ssize_t known_max,
                        Py_ssize_t names_max, PyObject *domain, int defanged, PyObject **value,
                        int *quad)
{
#define CH(k) ((k) >= 0 && (k) < n ? PyUnicode_READ(kind, data, (k)) : 0)
    Py_ssize_t size = PyUnicode_GET_LENGTH(tok);
    int tok_kind = PyUnicode_KIND(tok);
    const void *tok_data = PyUnicode_DATA(tok);
    Py_UCS4 last = PyUnicode_READ(tok_kind, tok_data, size - 1);
    Py_UCS4 before = CH(start - 1);
    Py_ssize_t end = start + size;
    if (before == '$')
        return WALK_PYTHON; /* a variable, then a name */
    if (last <= '9') { /* no top-level domain ends in a digit: an address or nothing */
        PyObject *kind_of = PyDict_GetItemWithError(known, tok);
        if (kind_of == NULL && PyErr_Occurred())
            return -1;
        if (kind_of != ipv4) {
            Py_ssize_t dots = 0;
            for (Py_ssize_t k = 0; k < size; k++)
                dots += PyUnicode_READ(tok_kind, tok_data, k) == '.';
            if (dots != 3 || !dotted_quad(tok))
                return dots == 4 ? WALK_PYTHON : WALK_SKIP; /* `1.2.3.4.443 > ` */
            if (PyDict_GET_SIZE(known) >= known_max)
                return WALK_PYTHON; /* Python empties the tables */
            if (PyDict_SetItem(known, tok, ipv4) < 0)
                return -1;
        }
        /* `ersion` or `ERSION` (as the Python looks for) in the 24 characters before it */
        int version = 0;
        for (Py_ssize_t k = start > 24 ? start - 24 : 0; k + 6 <= start && !version; k++) {
            Py_UCS4 c = CH(k);
            version = (c == 'e' && CH(k + 1) == 'r' && CH(k + 2) == 's' && CH(k + 3) == 'i'
                       && CH(k + 4) == 'o' && CH(k + 5) == 'n')
                      || (c == 'E' && CH(k + 1) == 'R' && CH(k + 2) == 'S' && CH(k + 3) == 'I'
                          && CH(k + 4) == 'O' && CH(k + 5) == 'N');
        }
        if (before == '/' || before == '=' || CH(end) == '/' || version) {
            /* a product's version, a range, a key's version: `_Scan.is_address` */
            int address = is_address(kind, data, n, tok, start, end, version);
            if (address < 0)
                return WALK_PYTHON;
            if (!address)
                return WALK_SKIP;
        }
        Py_INCREF(tok);
        *value = tok;
        *quad = 1;
        return WALK_EMIT;
    }
    /* after a `/` or `\`: a URL's host (1), a path component (2) or a name like any other (0),
     * as _after_slash says */
    int url = 0;
    if (before == '/' || before == '\\') {
        Py_UCS4 two = CH(start - 2);
        if (before == '\\')
            url = two == '\\' && !Py_UNICODE_ISALNUM(CH(start - 3)) ? 0 : 2;
        else if (two == '/')
            url = CH(start - 3) == ':';
        else if (two == '\\' && CH(start - 3) == '/' && CH(start - 4) == '\\')
            url = CH(start - 5) == ':';
        else if (two == ':' && Py_UNICODE_ISALPHA(CH(start - 3)) && Py_UNICODE_ISALPHA(CH(start - 4)))
            url = 1;
        else if (Py_UNICODE_ISALNUM(two) && CH(end) != '/')
            url = name_before(kind, data, n, start - 1) ? 0 : 2; /* `evil1.com/evil2.com` */
        else
            url = 2;
    }
    PyObject *name = PyDict_GetItemWithError(memo, tok);
    if (name == NULL) {
        if (PyErr_Occurred())
            return -1;
        name = judged(tok, memo, known, known_max, names_max, domain);
        if (name == NULL)
            return PyErr_Occurred() ? -1 : WALK_PYTHON; /* the Python judges it */
    }
    else
        Py_INCREF(name);
    if (name == Py_None && url != 1 && raw && remember_if_nothing(tok, never, names_max) < 0) {
        Py_DECREF(name);
        return -1;
    }
    int what = walk_name(kind, data, n, name, end, url, defanged, value, quad);
    Py_DECREF(name);
    return what;
#undef CH
}

/* The rest of walk_token for a token whose name is `name` (the memo's value, a reference the
 * caller holds), at `start`-`end`, after a `/` or `\\` as `url` says. */
static int walk_name(int kind, const void *data, Py_ssize_t n, PyObject *name, Py_ssize_t end,
                     int url, int defanged, PyObject **value, int *quad)
{
#define CH(k) ((k) >= 0 && (k) < n ? PyUnicode_READ(kind, data, (k)) : 0)
    if (url == 2)
        return WALK_SKIP;
    if (name == Py_None)
        return url == 1 ? WALK_PYTHON : WALK_SKIP; /* a URL's host under an alternative root */
    if (!PyUnicode_Check(name) || PyUnicode_GET_LENGTH(name) < 2)
        return WALK_PYTHON;
    int file_like = PyUnicode_READ_CHAR(name, 0) == '!';
    if (url == 1) { /* a URL's host is a domain, even one that looks like a file's name */
        *value = file_like ? PyUnicode_Substring(name, 1, PyUnicode_GET_LENGTH(name)) : name;
        if (*value == NULL)
            return -1;
        if (!file_like)
            Py_INCREF(name);
        *quad = 0;
        return WALK_EMIT;
    }
    if (!file_like) {
        Py_UCS4 after = CH(end), next = CH(end + 1);
        file_like = after == '(' || (after == ' ' && next == '{') || (after == '.' && next == '*');
    }
    if (file_like) /* a domain only if defanged, and not written plain on its line */
        return defanged ? WALK_PYTHON : WALK_SKIP;
    Py_INCREF(name);
    *value = name;
    *quad = 0;
    return WALK_EMIT;
#undef CH
}

/* names_walk(text, tokens, starts, i, line, last, memo, never, known, ipv4, known_max, values,
 * lines, long_names, quads, defanged, names_max, domain) -> (i, line, last): the names pass's loop over the tokens
 * (`_Scan.names` in extract.py) from token `i`, for the tokens that need no judgment: those
 * that give nothing are skipped, and those whose value is known are appended to `values` with
 * their line (counted from `line`, the line at `last`), `long_names` and `quads` as the Python
 * does. It stops at the first token the Python path must look at, and says where it is and
 * the line at `last` (`i` is the number of tokens when none is left). */
static PyObject *names_walk(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 18) {
        PyErr_SetString(PyExc_TypeError, "names_walk() takes 18 arguments");
        return NULL;
    }
    PyObject *text = args[0], *tokens = args[1], *starts = args[2];
    PyObject *memo = args[6], *never = args[7], *known = args[8], *ipv4 = args[9];
    PyObject *values = args[11], *lines = args[12], *long_names = args[13], *quads = args[14];
    if (!is_str(text, "names_walk"))
        return NULL;
    if (!PyList_Check(tokens) || !PyList_Check(starts) || !PyDict_Check(memo)
        || !PySet_Check(never) || !PyDict_Check(known) || !PyList_Check(values)
        || !PyList_Check(lines) || !PyList_Check(long_names)
        || !(quads == Py_None || PyList_Check(quads))) {
        PyErr_SetString(PyExc_TypeError, "names_walk(): an argument of the wrong type");
        return NULL;
    }
    Py_ssize_t i, line, last;
    if (walk_from(args + 3, &i, &line, &last) < 0)
        return NULL;
    Py_ssize_t known_max = PyLong_AsSsize_t(args[10]);
    Py_ssize_t names_max = PyLong_AsSsize_t(args[16]);
    PyObject *domain = args[17];
    int defanged = PyObject_IsTrue(args[15]);
    if (PyErr_Occurred() || defanged < 0)
        return NULL;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    /* the lists may be changed by code a collection runs: their sizes are read every time */
    for (; i < PyList_GET_SIZE(tokens) && i < PyList_GET_SIZE(starts); i++) {
        PyObject *tok = PyList_GET_ITEM(tokens, i);
        if (!PyUnicode_Check(tok))
            break; /* Python's to say what that is */
        Py_ssize_t start = PyLong_AsSsize_t(PyList_GET_ITEM(starts, i));
        if (start == -1 && PyErr_Occurred())
            return NULL;
        Py_INCREF(tok);
        PyObject *value = NULL;
        int quad = 0;
        Py_ssize_t size = 0;
        int what = walk_token(kind, data, n, tok, start, memo, never, known, ipv4, known_max,
                              names_max, domain, defanged, &value, &quad, &start, &size);
        Py_DECREF(tok);
        if (what < 0)
            return NULL;
        if (what == WALK_PYTHON)
            break;
        if (what == WALK_SKIP)
            continue;
        int bad = (quad && quads != Py_None
                   && append_pair(quads, start, PyList_GET_SIZE(values)) < 0)
                  || (!quad && size > 32 && append_pair(long_names, start, start + size) < 0);
        if (!bad) {
            line += newlines(kind, data, n, last, start);
            last = start;
            bad = emit(values, lines, value, line) < 0;
        }
        Py_DECREF(value);
        if (bad)
            return NULL;
    }
    return Py_BuildValue("(nnn)", i, line, last);
}

/* Whether the lower-case ASCII `window` of `size` bytes holds one of the words that may key a
 * fingerprint (`hash`, `ja`, `ssh`, `serial`, `btih`, `print`, `commit`, `/blob`, `/tree`,
 * `uid`: what _Scan.hashes looks for before its pattern): one pass, on the first letter. */
static int holds_key(const char *window, Py_ssize_t size)
{
#define AT(word) (size - k >= (Py_ssize_t)sizeof(word) - 1 \
                  && memcmp(window + k, word, sizeof(word) - 1) == 0)
    for (Py_ssize_t k = 0; k < size; k++) {
        switch (window[k]) {
        case 'h': if (AT("hash")) return 1; break;
        case 'j': if (AT("ja")) return 1; break;
        case 's': if (AT("ssh") || AT("serial")) return 1; break;
        case 'b': if (AT("btih")) return 1; break;
        case 'p': if (AT("print")) return 1; break;
        case 'c': if (AT("commit")) return 1; break;
        case '/': if (AT("/blob") || AT("/tree")) return 1; break;
        case 'u': if (AT("uid")) return 1; break;
        default: break;
        }
    }
    return 0;
#undef AT
}

/* hashes_walk(text, spans, k, line, last, long_names, values, lines[, pending]) -> (k, line,
 * last): the
 * hash pass's loop over the runs of hex digits (`_Scan.hashes` in extract.py; `spans` as
 * `hex_runs` gives them, `k` the index in it of the run to look at first), for the runs that
 * need no judgment: those of another length than 32, 40 or 64 and those of digits alone are
 * skipped, and those with no key word in the 40 characters before them (all ASCII), nor a
 * dot beside them while `long_names` is true (a name may hold them), are appended to `values`
 * in lower case with their line (counted from `line`, the line at `last`). It stops at the
 * first run the Python path must look at, and says where it is and the line at `last` (`k`
 * is the length of `spans` when none is left). Given a list `pending`, a run the Python must
 * judge by what is before or beside it (a key word, a dot, text outside ASCII) is given as
 * the others are, and the pair (its index in `spans`, its place in `values`) appended to
 * `pending`, for the Python to take back the ones that are no file hash: a text of such runs
 * costs no call each. */
static PyObject *hashes_walk(PyObject *Py_UNUSED(self), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8 && nargs != 9) {
        PyErr_SetString(PyExc_TypeError, "hashes_walk() takes 8 or 9 arguments");
        return NULL;
    }
    PyObject *text = args[0], *spans = args[1], *values = args[6], *lines = args[7];
    PyObject *pending = nargs == 9 ? args[8] : Py_None;
    if (!is_str(text, "hashes_walk"))
        return NULL;
    if (!PyList_Check(spans) || !PyList_Check(values) || !PyList_Check(lines)
        || !(pending == Py_None || PyList_Check(pending))) {
        PyErr_SetString(PyExc_TypeError, "hashes_walk(): an argument of the wrong type");
        return NULL;
    }
    Py_ssize_t k, line, last;
    if (walk_from(args + 2, &k, &line, &last) < 0)
        return NULL;
    int long_names = PyObject_IsTrue(args[5]);
    if (long_names < 0)
        return NULL;
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
#define CH(j) ((j) >= 0 && (j) < n ? PyUnicode_READ(kind, data, (j)) : 0)
    for (; k + 1 < PyList_GET_SIZE(spans); k += 2) {
        Py_ssize_t start = PyLong_AsSsize_t(PyList_GET_ITEM(spans, k));
        Py_ssize_t end = PyLong_AsSsize_t(PyList_GET_ITEM(spans, k + 1));
        if (PyErr_Occurred())
            return NULL;
        if (start < 1 || end > n || end <= start)
            break; /* not a run hex_runs gives: Python's */
        Py_ssize_t size = end - start;
        if (size != 32 && size != 40 && size != 64)
            continue;
        int digits = 1, ascii = 1;
        for (Py_ssize_t j = start; j < end && (digits || ascii); j++) {
            Py_UCS4 c = CH(j);
            digits = digits && c >= '0' && c <= '9';
            ascii = ascii && c < 128;
        }
        if (digits)
            continue;
        if (!ascii)
            break; /* not a run hex_runs gives: Python's */
        char window[40];
        Py_ssize_t from = start > 40 ? start - 40 : 0, wide = start - from;
        int plain = 1;
        for (Py_ssize_t j = 0; j < wide && plain; j++) {
            Py_UCS4 c = CH(from + j);
            plain = c < 128;
            window[j] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        int judged = !(!plain || holds_key(window, wide)
                       || (long_names && (CH(start - 1) == '.' || CH(end) == '.')));
        if (!judged && pending == Py_None)
            break; /* a fingerprint's key, a label of a name: Python says */
        /* or Python says later: the run is given, and its index and place kept in `pending` */
        if (!judged && append_pair(pending, k, PyList_GET_SIZE(values)) < 0)
            return NULL;
        PyObject *value = PyUnicode_New(size, 127);
        if (value == NULL)
            return NULL;
        Py_UCS1 *out = PyUnicode_1BYTE_DATA(value);
        for (Py_ssize_t j = 0; j < size; j++) {
            Py_UCS4 c = CH(start + j);
            out[j] = (Py_UCS1)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        line += newlines(kind, data, n, last, start);
        last = start;
        int bad = emit(values, lines, value, line) < 0;
        Py_DECREF(value);
        if (bad)
            return NULL;
    }
#undef CH
    return Py_BuildValue("(nnn)", k, line, last);
}

static int compare_ucs4(const void *a, const void *b)
{
    Py_UCS4 x = *(const Py_UCS4 *)a, y = *(const Py_UCS4 *)b;
    return (x > y) - (x < y);
}

/* Add the code point `c` (never 0) to the open-addressing set `*slots` of `*size` slots (a
 * power of two, or 0) holding `*count`, kept at most half full: 0, or -1 out of memory. */
static int point_add(Py_UCS4 **slots, size_t *size, Py_ssize_t *count, Py_UCS4 c)
{
    if ((size_t)(*count + 1) * 2 > *size) {
        size_t bigger = *size ? *size * 2 : 64;
        Py_UCS4 *fresh = PyMem_Calloc(bigger, sizeof(Py_UCS4));
        if (fresh == NULL)
            return -1;
        for (size_t k = 0; k < *size; k++) {
            Py_UCS4 old = (*slots)[k];
            if (old != 0) {
                size_t h = (old * 2654435761u) & (bigger - 1);
                while (fresh[h] != 0)
                    h = (h + 1) & (bigger - 1);
                fresh[h] = old;
            }
        }
        PyMem_Free(*slots);
        *slots = fresh;
        *size = bigger;
    }
    size_t h = (c * 2654435761u) & (*size - 1);
    for (; (*slots)[h] != 0; h = (h + 1) & (*size - 1))
        if ((*slots)[h] == c)
            return 0;
    (*slots)[h] = c;
    (*count)++;
    return 0;
}

/* not_ascii(text) -> str: each character of `text` outside ASCII once, in the order of their
 * code points (`"".join(sorted(set(_NOT_ASCII.findall(text))))` in extract.py): one pass with
 * a bit for each code point of the Basic Multilingual Plane (8 KB on the stack), the characters past it (emoji, private use) kept in a set of their own and
 * sorted apart, so that a short line with one emoji costs no bitmap of all 1.1 M code points. */
static PyObject *not_ascii(PyObject *Py_UNUSED(self), PyObject *arg)
{
    if (!is_str(arg, "not_ascii"))
        return NULL;
    int kind = PyUnicode_KIND(arg);
    const void *data = PyUnicode_DATA(arg);
    Py_ssize_t n = PyUnicode_GET_LENGTH(arg);
    unsigned char seen[0x10000 / 8];
    Py_UCS4 most = 0; /* the highest in the plane */
    memset(seen, 0, kind == PyUnicode_1BYTE_KIND ? 0x100 / 8 : sizeof(seen));
    Py_UCS4 *astral = NULL, last = 0;
    size_t slots = 0;
    Py_ssize_t count = 0, distinct = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 128)
            continue;
        if (c < 0x10000) {
            unsigned char bit = (unsigned char)(1u << (c & 7));
            if (!(seen[c >> 3] & bit)) {
                seen[c >> 3] |= bit;
                count++;
                if (c > most)
                    most = c;
            }
            continue;
        }
        if (c != last && point_add(&astral, &slots, &distinct, c) < 0) {
            PyMem_Free(astral);
            return PyErr_NoMemory();
        }
        last = c; /* a run of one character is looked up once */
    }
    Py_ssize_t k = 0;
    for (size_t j = 0; j < slots; j++) /* the set's code points, packed at its front */
        if (astral[j] != 0)
            astral[k++] = astral[j];
    if (distinct > 0) {
        qsort(astral, (size_t)distinct, sizeof(Py_UCS4), compare_ucs4);
        most = astral[distinct - 1];
    }
    PyObject *out = PyUnicode_New(count + distinct, most);
    if (out != NULL) {
        int out_kind = PyUnicode_KIND(out);
        void *out_data = PyUnicode_DATA(out);
        k = 0;
        for (Py_ssize_t w = 128 / 8; k < count; w += 8) { /* eight bytes at a time: most are 0 */
            uint64_t any;
            memcpy(&any, seen + w, sizeof(any));
            for (Py_ssize_t j = w; any != 0 && j < w + 8; j++)
                for (unsigned bits = seen[j]; bits; bits &= bits - 1)
                    PyUnicode_WRITE(out_kind, out_data, k++, (Py_UCS4)(j * 8) + (Py_UCS4)__builtin_ctz(bits));
        }
        for (Py_ssize_t j = 0; j < distinct; j++)
            PyUnicode_WRITE(out_kind, out_data, k++, astral[j]);
    }
    PyMem_Free(astral);
    return out;
}

/* split_lines(text) -> text.split("\n"): the lines of a decoded block (blocks.py), the
 * newlines found by memchr in 1-byte text; any other text split by str.split itself. */
static PyObject *split_lines(PyObject *Py_UNUSED(module), PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "split_lines takes a str");
        return NULL;
    }
    if (PyUnicode_KIND(text) != PyUnicode_1BYTE_KIND) {
        PyObject *newline = PyUnicode_FromOrdinal('\n');
        if (newline == NULL)
            return NULL;
        PyObject *out = PyUnicode_Split(text, newline, -1);
        Py_DECREF(newline);
        return out;
    }
    const char *s = (const char *)PyUnicode_1BYTE_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text), start = 0;
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (;;) {
        const char *nl = memchr(s + start, '\n', (size_t)(n - start));
        Py_ssize_t end = nl != NULL ? nl - s : n;
        PyObject *line = PyUnicode_Substring(text, start, end);
        if (line == NULL || PyList_Append(out, line) < 0) {
            Py_XDECREF(line);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(line);
        if (nl == NULL)
            return out;
        start = end + 1;
    }
}

static PyMethodDef methods[] = {
    {"dotted_names", dotted_names, METH_O, "The tokens and starts of _dotted_names(text)."},
    {"hashes_walk", (PyCFunction)(void (*)(void))hashes_walk, METH_FASTCALL,
     "The hash pass's loop over the runs that need no judgment."},
    {"hex_runs", hex_runs, METH_O, "The spans of _hex_runs(text), flat."},
    {"ipv6_runs", ipv6_runs, METH_O, "The spans of _ipv6_candidates(text), flat."},
    {"judge_name", judge_name, METH_O, "_new_name(tok) of extract.py, or NotImplemented."},
    {"judge_tables", (PyCFunction)(void (*)(void))judge_tables, METH_FASTCALL,
     "The tables judge_name decides with."},
    {"names_walk", (PyCFunction)(void (*)(void))names_walk, METH_FASTCALL,
     "The names pass's loop over the tokens that need no judgment."},
    {"not_ascii", not_ascii, METH_O, "Each character of text outside ASCII once."},
    {"plain_name", (PyCFunction)(void (*)(void))plain_name, METH_FASTCALL,
     "_is_plain_name(low, top) of extract.py."},
    {"refang_windows", refang_windows, METH_O, "_py_refang_windows(text) of normalize.py."},
    {"split_lines", split_lines, METH_O, "text.split('\\n'), the newlines found by memchr."},
    {"skip_lines", (PyCFunction)(void (*)(void))skip_lines, METH_FASTCALL,
     "_py_skip_lines(text, at, count) of extract.py."},
    {"triggers", triggers, METH_O, "The starts of normalize._TRIGGER's matches."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_scan", "The text extractor's candidate finders, in C.", -1, methods,
    NULL, NULL, NULL, NULL,
};

/* The digest of the _scan.c this module was built from (hatch_build.py passes it): native.py
   uses the module only when it matches the _scan.c beside it, so an editable install that
   pulled a newer _scan.c without building again runs the Python path, not stale C. */
#ifndef SCAN_SOURCE
#define SCAN_SOURCE ""
#endif

PyMODINIT_FUNC PyInit__scan(void)
{
    init_bits();
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddStringConstant(m, "SOURCE", SCAN_SOURCE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
