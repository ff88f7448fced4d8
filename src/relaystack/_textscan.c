/* relaystack._textscan: stretches of template-shaped SSE events proven in one pass, in C.
 *
 * The pure-Python reference is relaystack/text_template.py; this module does the same proof
 * without one Python object per event. An event is proven when its payload is exactly
 * ``before + hole + after``, ``hole`` is the inside of one valid JSON string (no unescaped quote,
 * no raw byte below 0x20, only JSON escapes with \uXXXX surrogates paired, strict UTF-8 as
 * RFC 3629 says: what orjson and msgspec accept), and it is followed by the next event's
 * ``\n\ndata: `` or by the block's closing blank line. The walk stops at the first event that is
 * not so; the caller reads that one the careful way.
 *
 * prove_run(block, start, before, after) -> (events, end)
 * take_run(block, start, before, after) -> (events, end, holes)
 *     ``start``: where an event's payload starts in ``block``; ``end``: where the first event not
 *     proven starts (``len(block)`` when all were). ``holes``: the non-empty holes joined by
 *     ``\n`` (a byte a valid hole never holds raw), as the upstream escaped them.
 * take_every(block, start, before, after) -> (events, end, holes)
 *     take_run with every hole, empty ones too: ``holes`` splits at ``\n`` into exactly ``events``
 *     pieces (a stored stream's packed record, relaystack/stored_stream.py).
 * number_pieces(joined, first, head, middle, tail, before=b"") -> bytes
 *     ``before``, then ``head + str(first + k) + middle + piece + tail`` for the k-th piece of
 *     ``joined`` (split at ``\n``, as take_run joins holes), all in one bytes object: a front-end's
 *     numbered events (the Responses API's ``output_text.delta``) written without one Python
 *     object per event, after what it wrote before them (no second copy to join them).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static const char BOUNDARY[] = "\n\ndata: ";
#define BOUNDARY_LEN 8

enum { PLAIN = 0, QUOTE, BACKSLASH, CONTROL, LEAD2, LEAD3, LEAD4, BAD };

static unsigned char byte_class[256];

static void fill_byte_class(void)
{
    for (int c = 0; c < 256; c++) {
        unsigned char kind = PLAIN;
        if (c < 0x20) kind = CONTROL;
        else if (c == '"') kind = QUOTE;
        else if (c == '\\') kind = BACKSLASH;
        else if (c >= 0x80 && c < 0xC2) kind = BAD;  /* a continuation byte alone, or an overlong lead */
        else if (c >= 0xC2 && c < 0xE0) kind = LEAD2;
        else if (c >= 0xE0 && c < 0xF0) kind = LEAD3;
        else if (c >= 0xF0 && c < 0xF5) kind = LEAD4;
        else if (c >= 0xF5) kind = BAD;
        byte_class[c] = kind;
    }
}

static int hex4(const unsigned char *p, unsigned int *value)
{
    unsigned int v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned int)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned int)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned int)(c - 'A' + 10);
        else return 0;
    }
    *value = v;
    return 1;
}

static int is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

/* Bytes of one escape at p (p[0] is the backslash), or 0 if it is not a valid JSON escape. */
static Py_ssize_t escape_length(const unsigned char *p, const unsigned char *end)
{
    if (end - p < 2) return 0;
    switch (p[1]) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        return 2;
    case 'u': {
        unsigned int unit, low;
        if (end - p < 6 || !hex4(p + 2, &unit)) return 0;
        if (unit >= 0xDC00 && unit <= 0xDFFF) return 0;  /* a low surrogate alone */
        if (unit < 0xD800 || unit > 0xDBFF) return 6;
        /* a high surrogate must be followed by an escaped low one */
        if (end - p < 12 || p[6] != '\\' || p[7] != 'u' || !hex4(p + 8, &low)) return 0;
        return (low >= 0xDC00 && low <= 0xDFFF) ? 12 : 0;
    }
    default:
        return 0;
    }
}

/* Bytes of one UTF-8 sequence of 2 to 4 bytes at p, or 0 if it is not strict UTF-8. */
static Py_ssize_t utf8_length(const unsigned char *p, const unsigned char *end, unsigned char kind)
{
    unsigned char lead = p[0];
    if (kind == LEAD2)
        return (end - p >= 2 && is_continuation(p[1])) ? 2 : 0;
    if (kind == LEAD3) {
        if (end - p < 3 || !is_continuation(p[1]) || !is_continuation(p[2])) return 0;
        if (lead == 0xE0 && p[1] < 0xA0) return 0;  /* overlong */
        if (lead == 0xED && p[1] > 0x9F) return 0;  /* a surrogate */
        return 3;
    }
    if (end - p < 4 || !is_continuation(p[1]) || !is_continuation(p[2]) || !is_continuation(p[3])) return 0;
    if (lead == 0xF0 && p[1] < 0x90) return 0;  /* overlong */
    if (lead == 0xF4 && p[1] > 0x8F) return 0;  /* above U+10FFFF */
    return 4;
}

/* Length of the valid JSON string inside that starts at p and ends at the first unescaped quote,
 * or -1 when there is no such quote before end or a byte before it is not valid there. */
static Py_ssize_t string_inside(const unsigned char *p, const unsigned char *end)
{
    const unsigned char *s = p;
    while (s < end) {
        unsigned char kind = byte_class[*s];
        if (kind == PLAIN) {
            s++;
            continue;
        }
        Py_ssize_t step;
        switch (kind) {
        case QUOTE:
            return s - p;
        case BACKSLASH:
            step = escape_length(s, end);
            break;
        case LEAD2: case LEAD3: case LEAD4:
            step = utf8_length(s, end, kind);
            break;
        default:
            return -1;
        }
        if (step == 0) return -1;
        s += step;
    }
    return -1;
}

typedef struct {
    Py_ssize_t events;
    Py_ssize_t end;
} Run;

/* The walk: proves events from ``start`` on; when ``holes`` is given, copies each non-empty hole
 * there (each hole with ``every``) joined by a line feed, and sets ``*used`` to the bytes written. */
static Run walk(const unsigned char *block, Py_ssize_t size, Py_ssize_t start, const unsigned char *before,
                Py_ssize_t before_len, const unsigned char *after, Py_ssize_t after_len, unsigned char *holes,
                Py_ssize_t *used, int every)
{
    Run run = {0, start};
    const unsigned char *end = block + size;
    Py_ssize_t written = 0;
    int closed = size >= 2 && block[size - 2] == '\n' && block[size - 1] == '\n';
    Py_ssize_t pos = start;
    while (pos + before_len + after_len <= size && memcmp(block + pos, before, (size_t)before_len) == 0) {
        Py_ssize_t hole = pos + before_len;
        Py_ssize_t hole_len = string_inside(block + hole, end);
        if (hole_len < 0) break;
        Py_ssize_t tail = hole + hole_len;
        if (tail + after_len > size || memcmp(block + tail, after, (size_t)after_len) != 0) break;
        Py_ssize_t next = tail + after_len;
        int last = closed && next == size - 2;
        if (!last && (next + BOUNDARY_LEN > size || memcmp(block + next, BOUNDARY, BOUNDARY_LEN) != 0)) break;
        if (holes != NULL && (hole_len > 0 || every)) {
            if (every ? run.events > 0 : written > 0) holes[written++] = '\n';
            memcpy(holes + written, block + hole, (size_t)hole_len);
            written += hole_len;
        }
        run.events++;
        pos = last ? size : next + BOUNDARY_LEN;
        run.end = pos;
        if (last) break;
    }
    if (used != NULL) *used = written;
    return run;
}

typedef struct {
    Py_buffer block, before, after;
    Py_ssize_t start;
} Args;

static int parse_args(PyObject *const *args, Py_ssize_t nargs, Args *parsed)
{
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "expected (block, start, before, after)");
        return 0;
    }
    parsed->start = PyLong_AsSsize_t(args[1]);
    if (parsed->start == -1 && PyErr_Occurred()) return 0;
    if (PyObject_GetBuffer(args[0], &parsed->block, PyBUF_SIMPLE) < 0) return 0;
    if (PyObject_GetBuffer(args[2], &parsed->before, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&parsed->block);
        return 0;
    }
    if (PyObject_GetBuffer(args[3], &parsed->after, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&parsed->block);
        PyBuffer_Release(&parsed->before);
        return 0;
    }
    const unsigned char *before = parsed->before.buf, *after = parsed->after.buf;
    /* the hole must sit between the quotes of a JSON string, or proving it one would prove nothing */
    int quoted = parsed->before.len > 0 && before[parsed->before.len - 1] == '"' && parsed->after.len > 0 &&
                 after[0] == '"';
    if (!quoted || parsed->start < 0 || parsed->start > parsed->block.len) {
        PyErr_SetString(PyExc_ValueError, quoted ? "start is outside the block"
                                                 : "before must end and after must start with a quote");
        PyBuffer_Release(&parsed->block);
        PyBuffer_Release(&parsed->before);
        PyBuffer_Release(&parsed->after);
        return 0;
    }
    return 1;
}

static void release_args(Args *parsed)
{
    PyBuffer_Release(&parsed->block);
    PyBuffer_Release(&parsed->before);
    PyBuffer_Release(&parsed->after);
}

static PyObject *prove_run(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    Args a;
    if (!parse_args(args, nargs, &a)) return NULL;
    Run run = walk(a.block.buf, a.block.len, a.start, a.before.buf, a.before.len, a.after.buf, a.after.len,
                   NULL, NULL, 0);
    release_args(&a);
    return Py_BuildValue("(nn)", run.events, run.end);
}

static PyObject *take(PyObject *const *args, Py_ssize_t nargs, int every)
{
    Args a;
    if (!parse_args(args, nargs, &a)) return NULL;
    /* the holes and their separators fit in the bytes they come from */
    PyObject *holes = PyBytes_FromStringAndSize(NULL, a.block.len - a.start);
    if (holes == NULL) {
        release_args(&a);
        return NULL;
    }
    Py_ssize_t used = 0;
    Run run = walk(a.block.buf, a.block.len, a.start, a.before.buf, a.before.len, a.after.buf, a.after.len,
                   (unsigned char *)PyBytes_AS_STRING(holes), &used, every);
    release_args(&a);
    if (_PyBytes_Resize(&holes, used) < 0) return NULL;
    PyObject *result = Py_BuildValue("(nnN)", run.events, run.end, holes);
    return result;
}

static PyObject *take_run(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    return take(args, nargs, 0);
}

static PyObject *take_every(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    return take(args, nargs, 1);
}

/* the decimal digits of n (n >= 0) written at out; their number */
static Py_ssize_t write_decimal(char *out, Py_ssize_t n)
{
    char digits[24];
    Py_ssize_t count = 0;
    do {
        digits[count++] = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    for (Py_ssize_t i = 0; i < count; i++) out[i] = digits[count - 1 - i];
    return count;
}

static PyObject *number_pieces(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 5 && nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "number_pieces(joined, first, head, middle, tail, before=b'') takes 5 or 6 "
                                         "arguments");
        return NULL;
    }
    Py_ssize_t first = PyLong_AsSsize_t(args[1]);
    if (first == -1 && PyErr_Occurred()) return NULL;
    if (first < 0) {
        PyErr_SetString(PyExc_ValueError, "number_pieces: first must be >= 0");
        return NULL;
    }
    Py_buffer joined, head, middle, tail, before = {0};
    PyObject *out = NULL;
    if (PyObject_GetBuffer(args[0], &joined, PyBUF_SIMPLE) < 0) return NULL;
    if (PyObject_GetBuffer(args[2], &head, PyBUF_SIMPLE) < 0) goto no_head;
    if (PyObject_GetBuffer(args[3], &middle, PyBUF_SIMPLE) < 0) goto no_middle;
    if (PyObject_GetBuffer(args[4], &tail, PyBUF_SIMPLE) < 0) goto no_tail;
    if (nargs == 6 && PyObject_GetBuffer(args[5], &before, PyBUF_SIMPLE) < 0) goto no_before;
    const char *text = joined.buf;
    Py_ssize_t size = joined.len, pieces = size > 0 ? 1 : 0;
    for (const char *at = text; size > 0 && (at = memchr(at, '\n', (size_t)(text + size - at))) != NULL; at++)
        pieces++;
    /* at most 20 digits a number; the exact size is set at the end */
    Py_ssize_t frame = head.len + middle.len + tail.len + 20;
    if (pieces > 0 && frame > (PY_SSIZE_T_MAX - size - before.len) / pieces) {
        PyErr_NoMemory();
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, before.len + size + pieces * frame);
    if (out == NULL) goto done;
    char *write = PyBytes_AS_STRING(out);
    if (before.len > 0) memcpy(write, before.buf, (size_t)before.len);
    write += before.len;
    const char *piece = text, *end = text + size;
    for (Py_ssize_t k = 0; k < pieces; k++) {
        const char *stop = memchr(piece, '\n', (size_t)(end - piece));
        if (stop == NULL) stop = end;
        memcpy(write, head.buf, (size_t)head.len);
        write += head.len;
        write += write_decimal(write, first + k);
        memcpy(write, middle.buf, (size_t)middle.len);
        write += middle.len;
        memcpy(write, piece, (size_t)(stop - piece));
        write += stop - piece;
        memcpy(write, tail.buf, (size_t)tail.len);
        write += tail.len;
        piece = stop + 1;
    }
    if (_PyBytes_Resize(&out, write - PyBytes_AS_STRING(out)) < 0) out = NULL;
done:
    if (nargs == 6) PyBuffer_Release(&before);
no_before:
    PyBuffer_Release(&tail);
no_tail:
    PyBuffer_Release(&middle);
no_middle:
    PyBuffer_Release(&head);
no_head:
    PyBuffer_Release(&joined);
    return out;
}

static PyMethodDef methods[] = {
    {"prove_run", (PyCFunction)(void (*)(void))prove_run, METH_FASTCALL,
     "prove_run(block, start, before, after) -> (events, end): template events proven from start on."},
    {"take_run", (PyCFunction)(void (*)(void))take_run, METH_FASTCALL,
     "take_run(block, start, before, after) -> (events, end, holes): prove_run, with the non-empty holes "
     "joined by a line feed."},
    {"take_every", (PyCFunction)(void (*)(void))take_every, METH_FASTCALL,
     "take_every(block, start, before, after) -> (events, end, holes): take_run with every hole, empty ones too "
     "(holes splits into exactly events pieces)."},
    {"number_pieces", (PyCFunction)(void (*)(void))number_pieces, METH_FASTCALL,
     "number_pieces(joined, first, head, middle, tail, before=b'') -> bytes: before, then head + str(first + k) "
     "+ middle + piece + tail for each line-feed-separated piece of joined, k from 0."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "_textscan",
    "Template-shaped SSE events proven in one pass (the pure-Python reference: relaystack.text_template).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__textscan(void)
{
    fill_byte_class();
    return PyModule_Create(&module_def);
}
