/* The compiled otlp_proto walk: one pass over an ExportTraceServiceRequest's wire bytes that sums its
 * spans per group, so no Python code runs per span.
 *
 * A group is what stream/ingest/formats/otlp/fold.py calls a SpanGroup: the spans of one ResourceSpans
 * entry with the same kind and the same wanted attribute values. Per group the walk keeps the span
 * count, the error count, the first and last end time and the first `max_trace_ids` distinct trace ids
 * with the number of the span that brought each. Inbound spans with caller attributes or a parent are
 * summed per (group, caller values, resource of the parent span); of each distinct set of caller values the walk
 * reads the addresses (touches.caller_facts, for ASCII X-Forwarded-For hops), so Python works per address it has
 * not seen, not per combination of caller attributes.
 *
 * The walk is only ever stricter than the pure-Python decoder: whatever it is not sure of (any input
 * the lean protobuf schema or the limits would refuse, and shapes valid data never has, such as groups
 * on the wire) makes walk() return None, and the caller decodes the message with the pure-Python walk,
 * which then gives its usual answer or DecodeError. So the compiled walk never has to reproduce an
 * error reason, only a clean message's sums.
 *
 * Hostile bytes: every varint and length is bounds-checked against the enclosing message; the only
 * recursion (an AnyValue's arrays) stops at MAX_VALUE_DEPTH; what is allocated is bounded by the
 * input's length (groups, pending inbound spans and the key scratch buffer each grow with spans).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_KEYS 64
#define KEY_TABLE_SIZE 256 /* a power of two, well over twice MAX_KEYS: probes stay short */
#define MAX_VALUE_DEPTH 16
#define TRACE_ID_SIZE 16

/* What a wanted span attribute key is (flags passed by configure()). */
enum {
    WANTED_INBOUND = 1,   /* read on SERVER and CONSUMER spans */
    WANTED_OUTBOUND = 2,  /* read on CLIENT and PRODUCER spans */
    WANTED_INTERNAL = 4,  /* read on every other kind */
    KEY_CALLER = 8,       /* who called an inbound span: kept apart from the group's values */
    KEY_URL = 16,         /* a URL, left out when the hosts named make it irrelevant */
    KEY_HOST = 32,        /* a host that decides whether the URL is needed */
    CALLER_FORWARDED = 64, /* the caller keys by what they say: X-Forwarded-For, the client, the peer address */
    CALLER_CLIENT = 128,
    CALLER_PEER = 256,
    NAME_CANONICAL = 512, /* the key's name is its canonical one, whose value wins over another name's */
};

typedef struct {
    const uint8_t *start;
    Py_ssize_t size;
} Slice;

typedef struct {
    PyObject *name; /* the key as an interned str */
    const char *text;
    Py_ssize_t size;
    int flags;
} Key;

typedef struct {
    Key keys[MAX_KEYS];
    int count;
    signed char slots[KEY_TABLE_SIZE]; /* key index + 1, 0 where empty */
} KeyTable;

typedef uint64_t KeySet; /* bit i: key i of a KeyTable (MAX_KEYS bits) */

typedef struct {
    int inbound_kinds[8];
    int inbound_count;
    int outbound_kinds[8];
    int outbound_count;
    int64_t error_code;
    uint64_t seed; /* of the walk's hash tables, random per process */
    KeyTable span_keys;
    KeyTable resource_keys;
    KeySet inbound_keys, outbound_keys, internal_keys, caller_keys, url_keys, host_keys;
    KeySet forwarded_keys, client_keys, peer_keys, canonical_keys;
    int configured;
} Config;

static Config config;

/* ---------------------------------------------------------------- wire format */

static int read_varint_slow(const uint8_t **at, const uint8_t *end, uint64_t *value) {
    uint64_t result = 0;
    const uint8_t *p = *at;
    for (int shift = 0; shift < 64; shift += 7) {
        if (p >= end) return -1;
        uint8_t byte = *p++;
        if (shift == 63 && byte > 1) return -1; /* more than 64 bits */
        result |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *at = p;
            *value = result;
            return 0;
        }
    }
    return -1;
}

/* Tags, lengths and small numbers take one or two bytes: read those inline, the rest in read_varint_slow. */
static inline int read_varint(const uint8_t **at, const uint8_t *end, uint64_t *value) {
    const uint8_t *p = *at;
    if (p < end && p[0] < 0x80) {
        *value = p[0];
        *at = p + 1;
        return 0;
    }
    if (end - p >= 2 && p[1] < 0x80) {
        *value = (uint64_t)(p[0] & 0x7F) | (uint64_t)p[1] << 7;
        *at = p + 2;
        return 0;
    }
    return read_varint_slow(at, end, value);
}

/* One field's tag; 0 at the end of the message, -1 on anything malformed or a group (wire types 3, 4). */
static inline int read_tag(const uint8_t **at, const uint8_t *end, uint32_t *field, int *wire_type) {
    uint64_t tag;
    if (*at >= end) return 0;
    if (read_varint(at, end, &tag) < 0 || tag > UINT32_MAX) return -1;
    *field = (uint32_t)(tag >> 3);
    *wire_type = (int)(tag & 7);
    if (*field == 0 || *wire_type == 3 || *wire_type == 4 || *wire_type > 5) return -1;
    return 1;
}

static inline int read_bytes(const uint8_t **at, const uint8_t *end, Slice *out) {
    uint64_t size;
    if (read_varint(at, end, &size) < 0 || size > (uint64_t)(end - *at)) return -1;
    out->start = *at;
    out->size = (Py_ssize_t)size;
    *at += size;
    return 0;
}

static int skip_field(const uint8_t **at, const uint8_t *end, int wire_type) {
    uint64_t ignored;
    Slice slice;
    switch (wire_type) {
    case 0: return read_varint(at, end, &ignored);
    case 1: if (end - *at < 8) return -1; *at += 8; return 0;
    case 2: return read_bytes(at, end, &slice);
    case 5: if (end - *at < 4) return -1; *at += 4; return 0;
    default: return -1;
    }
}

/* The next occurrence of length-delimited field `wanted` of a message, skipping the others: 1 with `out` set,
 * 0 at the end, -1 when malformed (or when `wanted` is not length-delimited). */
static int next_field(const uint8_t **at, const uint8_t *end, uint32_t wanted, Slice *out) {
    uint32_t field;
    int wire_type, found;
    while ((found = read_tag(at, end, &field, &wire_type)) > 0) {
        if (field == wanted) return wire_type == 2 && read_bytes(at, end, out) == 0 ? 1 : -1;
        if (skip_field(at, end, wire_type) < 0) return -1;
    }
    return found;
}

/* Strict UTF-8, as Python's decoder takes it: no overlong forms, surrogates or code points past U+10FFFF. */
static int valid_utf8(const uint8_t *p, Py_ssize_t size) {
    const uint8_t *end = p + size;
    uint64_t word;
    while (end - p >= 8) { /* ASCII, eight bytes at a time */
        memcpy(&word, p, 8);
        if (word & 0x8080808080808080ULL) break;
        p += 8;
    }
    while (p < end) {
        uint8_t byte = *p;
        if (byte < 0x80) { p++; continue; }
        int more;
        uint32_t low = 0x80, high = 0xBF;
        if (byte >= 0xC2 && byte <= 0xDF) more = 1;
        else if (byte >= 0xE0 && byte <= 0xEF) {
            more = 2;
            if (byte == 0xE0) low = 0xA0;
            if (byte == 0xED) high = 0x9F;
        } else if (byte >= 0xF0 && byte <= 0xF4) {
            more = 3;
            if (byte == 0xF0) low = 0x90;
            if (byte == 0xF4) high = 0x8F;
        } else return 0;
        if (end - p <= more) return 0;
        if (p[1] < low || p[1] > high) return 0;
        for (int i = 2; i <= more; i++)
            if ((p[i] & 0xC0) != 0x80) return 0;
        p += more + 1;
    }
    return 1;
}

/* An int32 field's varint: a value or a negative one sign-extended to 64 bits; -1 for anything wider. */
static int as_int32(uint64_t number, int *value) {
    if (number > INT32_MAX && number < 0xFFFFFFFF80000000ULL) return -1;
    *value = (int32_t)(uint32_t)number;
    return 0;
}

/* A message of a string (field 1, strict UTF-8) and one more length-delimited field, as protobuf reads it: the
 * last of each is kept in `text` and `other`; `check_other`, when given, checks every `other` (a message field
 * merges its occurrences). 0, or -1 when malformed. A map entry (`check_other` NULL) must hold nothing else and
 * each field once: protobuf keeps an entry with unknown fields out of the map, and this walk does not guess. */
static int read_text_and(const uint8_t *p, const uint8_t *end, uint32_t other_field, Slice *text, Slice *other,
                         int (*check_other)(Slice, int), int depth) {
    uint32_t field;
    int wire_type, found, seen = 0;
    *text = *other = (Slice){p, 0};
    while ((found = read_tag(&p, end, &field, &wire_type)) > 0) {
        Slice slice;
        if (field != 1 && field != other_field) {
            if (check_other == NULL || skip_field(&p, end, wire_type) < 0) return -1;
            continue;
        }
        if (check_other == NULL && (seen & (1 << (field == 1)))) return -1;
        seen |= 1 << (field == 1);
        if (wire_type != 2 || read_bytes(&p, end, &slice) < 0) return -1;
        if (field == other_field) {
            if (check_other != NULL && check_other(slice, depth) < 0) return -1;
            *other = slice;
        } else if (!valid_utf8(slice.start, slice.size)) {
            return -1;
        } else {
            *text = slice;
        }
    }
    return found;
}

static int check_array_value(Slice array, int depth);

/* A serialized AnyValue as the lean schema parses it (string_value 1, array_value 5); `text` its string_value. */
static int check_any_value(const uint8_t *p, const uint8_t *end, int depth, Slice *text) {
    Slice array;
    if (depth > MAX_VALUE_DEPTH) return -1;
    return read_text_and(p, end, 5, text, &array, check_array_value, depth + 1);
}

static int check_array_value(Slice array, int depth) {
    const uint8_t *p = array.start, *end = array.start + array.size;
    Slice item, text;
    int found;
    while ((found = next_field(&p, end, 1, &item)) > 0)
        if (check_any_value(item.start, item.start + item.size, depth, &text) < 0) return -1;
    return found;
}

/* An attribute value as proto_value() reads it: a short string sliced out, anything else parsed. */
static int check_attribute_value(Slice value, Slice *text) {
    const uint8_t *p = value.start;
    if (value.size > 2 && p[0] == 0x0A && p[1] == value.size - 2) {
        text->start = p + 2;
        text->size = value.size - 2;
        return valid_utf8(text->start, text->size) ? 0 : -1;
    }
    return check_any_value(p, p + value.size, 0, text);
}

/* ---------------------------------------------------------------- wanted keys */

static unsigned key_hash(const uint8_t *text, Py_ssize_t size) {
    if (size == 0) return 0;
    return ((unsigned)size * 31u + text[0] * 7u + text[size - 1] * 13u + text[size / 2]) & (KEY_TABLE_SIZE - 1);
}

static int key_index(const KeyTable *table, const uint8_t *text, Py_ssize_t size) {
    unsigned slot = key_hash(text, size);
    for (int probes = 0; probes < KEY_TABLE_SIZE; probes++) {
        int entry = table->slots[slot];
        if (entry == 0) return -1;
        const Key *key = &table->keys[entry - 1];
        if (key->size == size && memcmp(key->text, text, (size_t)size) == 0) return entry - 1;
        slot = (slot + 1) & (KEY_TABLE_SIZE - 1);
    }
    return -1;
}

static void clear_keys(KeyTable *table) {
    for (int i = 0; i < table->count; i++) Py_CLEAR(table->keys[i].name);
    table->count = 0;
    memset(table->slots, 0, sizeof(table->slots));
}

static int fill_keys(KeyTable *table, PyObject *entries) {
    PyObject *sequence = PySequence_Fast(entries, "keys must be a sequence of (key, flags)");
    if (sequence == NULL) return -1;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(sequence);
    if (count > MAX_KEYS) {
        Py_DECREF(sequence);
        PyErr_SetString(PyExc_ValueError, "too many wanted keys");
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *name;
        int flags;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(sequence, i), "Ui", &name, &flags)) goto failed;
        Py_ssize_t size;
        const char *text = PyUnicode_AsUTF8AndSize(name, &size);
        if (text == NULL) goto failed;
        if (key_index(table, (const uint8_t *)text, size) >= 0) continue;
        Py_INCREF(name);
        PyUnicode_InternInPlace(&name);
        Key *key = &table->keys[table->count];
        key->name = name;
        key->text = PyUnicode_AsUTF8AndSize(name, &key->size);
        key->flags = flags;
        unsigned slot = key_hash((const uint8_t *)text, size);
        while (table->slots[slot] != 0) slot = (slot + 1) & (KEY_TABLE_SIZE - 1);
        table->slots[slot] = (signed char)(++table->count);
    }
    Py_DECREF(sequence);
    return 0;
failed:
    Py_DECREF(sequence);
    return -1;
}

static int fill_kinds(PyObject *kinds, int *out, int *count) {
    PyObject *sequence = PySequence_Fast(kinds, "kinds must be a sequence of int");
    if (sequence == NULL) return -1;
    Py_ssize_t size = PySequence_Fast_GET_SIZE(sequence);
    *count = 0;
    for (Py_ssize_t i = 0; i < size && i < 8; i++) {
        long kind = PyLong_AsLong(PySequence_Fast_GET_ITEM(sequence, i));
        if (kind == -1 && PyErr_Occurred()) {
            Py_DECREF(sequence);
            return -1;
        }
        out[(*count)++] = (int)kind;
    }
    Py_DECREF(sequence);
    return 0;
}

PyDoc_STRVAR(configure_doc,
"configure(span_keys, resource_keys, inbound_kinds, outbound_kinds, error_code, seed)\n\n"
"The wanted attribute keys (as (key, flags) pairs), the inbound and outbound span kinds and the ERROR\n"
"status code, from stream.ingest.formats.otlp.semconv, so they are written down once; a random seed\n"
"for the walk's hash tables.");

static KeySet keys_with(const KeyTable *table, int flag) {
    KeySet keys = 0;
    for (int i = 0; i < table->count; i++)
        if (table->keys[i].flags & flag) keys |= (KeySet)1 << i;
    return keys;
}

static PyObject *configure(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *span_keys, *resource_keys, *inbound, *outbound;
    long long error_code;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "OOOOLK", &span_keys, &resource_keys, &inbound, &outbound, &error_code, &seed))
        return NULL;
    config.configured = 0;
    clear_keys(&config.span_keys);
    clear_keys(&config.resource_keys);
    if (fill_keys(&config.span_keys, span_keys) < 0 || fill_keys(&config.resource_keys, resource_keys) < 0 ||
        fill_kinds(inbound, config.inbound_kinds, &config.inbound_count) < 0 ||
        fill_kinds(outbound, config.outbound_kinds, &config.outbound_count) < 0) {
        return NULL;
    }
    const KeyTable *keys = &config.span_keys;
    config.inbound_keys = keys_with(keys, WANTED_INBOUND);
    config.outbound_keys = keys_with(keys, WANTED_OUTBOUND);
    config.internal_keys = keys_with(keys, WANTED_INTERNAL);
    config.caller_keys = keys_with(keys, KEY_CALLER);
    config.url_keys = keys_with(keys, KEY_URL);
    config.host_keys = keys_with(keys, KEY_HOST);
    config.forwarded_keys = keys_with(keys, CALLER_FORWARDED);
    config.client_keys = keys_with(keys, CALLER_CLIENT);
    config.peer_keys = keys_with(keys, CALLER_PEER);
    config.canonical_keys = keys_with(keys, NAME_CANONICAL);
    config.error_code = error_code;
    config.seed = seed;
    config.configured = 1;
    Py_RETURN_NONE;
}

/* ---------------------------------------------------------------- hash tables */

/* Byte strings to numbers, for one message. Linear probing with a random seed; a lookup that probes more than
 * MAX_PROBES slots (only crafted collisions do) gives up, and the message goes to the pure-Python walk, so no
 * input makes the walk quadratic. Keys are copied into an arena; everything grows with the message. */
#define MAX_PROBES 64

typedef struct {
    uint64_t hash;
    Py_ssize_t offset, size; /* the key in the arena; offset -1 where the slot is empty */
    Py_ssize_t value;
} Entry;

typedef struct {
    Entry *entries;
    Py_ssize_t capacity, count; /* capacity: 0 or a power of two */
    uint8_t *arena;
    Py_ssize_t arena_capacity, arena_used;
} Table;

static uint64_t hash_bytes(const uint8_t *p, Py_ssize_t size) {
    uint64_t hash = config.seed ^ ((uint64_t)size * 0x9E3779B97F4A7C15ULL), word;
    for (; size >= 8; p += 8, size -= 8) {
        memcpy(&word, p, 8);
        hash = (hash ^ word) * 0xBF58476D1CE4E5B9ULL;
        hash ^= hash >> 29;
    }
    word = 0;
    memcpy(&word, p, (size_t)size);
    hash = (hash ^ word) * 0x94D049BB133111EBULL;
    return hash ^ (hash >> 31);
}

static int table_grow(Table *table) {
    Py_ssize_t capacity = table->capacity ? table->capacity * 2 : 64;
    Entry *entries = PyMem_Calloc((size_t)capacity, sizeof(Entry));
    if (entries == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < capacity; i++) entries[i].offset = -1;
    for (Py_ssize_t i = 0; i < table->capacity; i++) {
        Entry *entry = &table->entries[i];
        if (entry->offset < 0) continue;
        Py_ssize_t slot = (Py_ssize_t)(entry->hash & (uint64_t)(capacity - 1));
        while (entries[slot].offset >= 0) slot = (slot + 1) & (capacity - 1);
        entries[slot] = *entry;
    }
    PyMem_Free(table->entries);
    table->entries = entries;
    table->capacity = capacity;
    return 0;
}

static int arena_keep(Table *table, const uint8_t *key, Py_ssize_t size) {
    if (table->arena_capacity - table->arena_used < size) {
        Py_ssize_t capacity = table->arena_capacity ? table->arena_capacity : 4096;
        while (capacity - table->arena_used < size) capacity *= 2;
        uint8_t *arena = PyMem_Realloc(table->arena, (size_t)capacity);
        if (arena == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        table->arena = arena;
        table->arena_capacity = capacity;
    }
    memcpy(table->arena + table->arena_used, key, (size_t)size);
    table->arena_used += size;
    return 0;
}

/* The entry of `key`; with `add`, a new one (value -1) when absent. NULL when absent and not added, when probing
 * gave up, or (with an exception set) when out of memory. */
static Entry *table_entry(Table *table, const uint8_t *key, Py_ssize_t size, int add) {
    if (add && 2 * (table->count + 1) > table->capacity && table_grow(table) < 0) return NULL;
    if (table->capacity == 0) return NULL;
    uint64_t hash = hash_bytes(key, size);
    Py_ssize_t mask = table->capacity - 1, slot = (Py_ssize_t)(hash & (uint64_t)mask);
    for (int probe = 0; probe < MAX_PROBES; probe++, slot = (slot + 1) & mask) {
        Entry *entry = &table->entries[slot];
        if (entry->offset < 0) {
            if (!add) return NULL;
            entry->offset = table->arena_used;
            if (arena_keep(table, key, size) < 0) {
                entry->offset = -1;
                return NULL;
            }
            entry->hash = hash;
            entry->size = size;
            entry->value = -1;
            table->count++;
            return entry;
        }
        if (entry->hash == hash && entry->size == size && memcmp(table->arena + entry->offset, key, (size_t)size) == 0)
            return entry;
    }
    return NULL;
}

static void table_free(Table *table) {
    PyMem_Free(table->entries);
    PyMem_Free(table->arena);
}

/* ---------------------------------------------------------------- one message */

typedef struct {
    Py_ssize_t resource;
    int kind;
    Py_ssize_t values;   /* its wanted values, callers aside: an index into Walk.value_sets */
    uint64_t spans, errors, first, last;
    PyObject *sample;    /* [(span number, trace id), ...] */
} Group;

typedef struct {
    Py_ssize_t group;
    Py_ssize_t callers;  /* index into Walk.value_sets, -1 for none */
    Slice parent;
} InboundSpan;

typedef struct {
    Py_ssize_t group, callers, parent_resource, spans;
} InboundRow;

typedef struct {
    KeySet keys;
    Py_ssize_t first; /* the value of each key, in key order, from Walk.slices[first] on */
    Slice address, client, peer; /* of a set of caller values: what caller_rows() says of them */
} FoundValues;

typedef struct {
    Py_ssize_t max_spans, max_attributes, max_trace_ids;
    Py_ssize_t resource_count, resource;
    Py_ssize_t spans;
    Group *groups;
    Py_ssize_t group_count, group_capacity;
    FoundValues *value_sets;   /* each group's wanted values, and the distinct callers of its inbound spans */
    Py_ssize_t value_set_count, value_set_capacity;
    Slice *slices;             /* the raw values of the value sets (each set takes its keys' count) */
    Py_ssize_t slice_count, slice_capacity;
    InboundSpan *inbound;
    Py_ssize_t inbound_count, inbound_capacity;
    InboundRow *rows;
    Py_ssize_t row_count, row_capacity;
    Table group_index;         /* group key -> group number */
    Table caller_index;        /* group number and caller values -> value set number */
    Table span_resource;       /* span id -> resource number, when the message has several resources */
    Table row_index;           /* group, callers and parent resource numbers -> row number */
    uint8_t *scratch;          /* a group's key bytes */
    KeySet present;            /* the wanted keys the current span or resource carries */
    Slice found[MAX_KEYS];     /* their raw values (the last entry of each key) */
} Walk;

static void *grow(void *items, Py_ssize_t *capacity, Py_ssize_t count, size_t item_size) {
    if (count < *capacity) return items;
    Py_ssize_t wanted = *capacity ? *capacity * 2 : 64;
    void *grown = PyMem_Realloc(items, (size_t)wanted * item_size);
    if (grown == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    *capacity = wanted;
    return grown;
}

#define GROW(walk, array, counter) \
    grow((walk)->array, &(walk)->counter##_capacity, (walk)->counter##_count, sizeof(*(walk)->array))

static int is_kind(int kind, const int *kinds, int count) {
    for (int i = 0; i < count; i++)
        if (kinds[i] == kind) return 1;
    return 0;
}

#define FOR_EACH_KEY(index, set) \
    for (KeySet remaining_ = (set); remaining_; remaining_ &= remaining_ - 1) \
        for (int index = __builtin_ctzll(remaining_), once_ = 1; once_; once_ = 0)

/* One attribute map entry (key 1, value 2); the walk keeps the last value of each wanted key. */
static int read_entry(Walk *walk, Slice entry, const KeyTable *keys) {
    const uint8_t *p = entry.start;
    Py_ssize_t key_end = 2 + (entry.size >= 2 ? p[1] : 0);
    Slice key, value;
    /* the usual layout, key then value with a one-byte length each, is read without read_text_and's loop */
    if (entry.size >= 4 && p[0] == 0x0A && p[1] < 0x80 && key_end + 2 <= entry.size && p[key_end] == 0x12 &&
        p[key_end + 1] < 0x80 && key_end + 2 + p[key_end + 1] == entry.size) {
        key = (Slice){p + 2, p[1]};
        value = (Slice){p + key_end + 2, p[key_end + 1]};
        if (!valid_utf8(key.start, key.size)) return -1;
    } else if (read_text_and(p, p + entry.size, 2, &key, &value, NULL, 0) < 0) {
        return -1;
    }
    int index = key_index(keys, key.start, key.size);
    if (index >= 0) {
        walk->present |= (KeySet)1 << index;
        walk->found[index] = value;
    }
    return 0;
}

/* (first, bytes of `second`): `first` borrowed, or made from `number` when NULL. */
static PyObject *pair_of(PyObject *first, const Py_ssize_t *number, Slice second) {
    PyObject *made = first == NULL ? PyLong_FromSsize_t(*number) : NULL;
    PyObject *bytes = PyBytes_FromStringAndSize((const char *)second.start, second.size);
    PyObject *pair = (first || made) && bytes ? PyTuple_Pack(2, first ? first : made, bytes) : NULL;
    Py_XDECREF(made);
    Py_XDECREF(bytes);
    return pair;
}

/* ((key, raw value), ...) of `keys`, in key order; `values` holds their raw values in the same order. */
static PyObject *values_tuple(const KeyTable *table, KeySet keys, const Slice *values) {
    PyObject *tuple = PyTuple_New(__builtin_popcountll(keys));
    Py_ssize_t position = 0;
    if (tuple == NULL) return NULL;
    FOR_EACH_KEY(i, keys) {
        PyObject *pair = pair_of(table->keys[i].name, NULL, values[position]);
        if (pair == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
        PyTuple_SET_ITEM(tuple, position++, pair);
    }
    return tuple;
}

/* The key of a group in the scratch buffer: its numbers, then (key index, 4-byte size, bytes) per key of `keys`
 * (a value is shorter than the message, whose size the caller bounds to 32 bits). */
static Py_ssize_t scratch_key(Walk *walk, const int64_t *numbers, int number_count, KeySet keys) {
    uint8_t *out = walk->scratch;
    memcpy(out, numbers, sizeof(int64_t) * (size_t)number_count);
    out += sizeof(int64_t) * (size_t)number_count;
    FOR_EACH_KEY(i, keys) {
        uint32_t size = (uint32_t)walk->found[i].size;
        *out++ = (uint8_t)i;
        memcpy(out, &size, sizeof(size));
        out += sizeof(size);
        memcpy(out, walk->found[i].start, (size_t)walk->found[i].size);
        out += walk->found[i].size;
    }
    return out - walk->scratch;
}

/* The number `table` gives the scratch key, with `make` run for a new one; -1 on an exception, -2 when the
 * table gave up probing or `make` refused the span. */
static Py_ssize_t number_of(Walk *walk, Table *table, Py_ssize_t size, Py_ssize_t (*make)(Walk *, void *),
                            void *context) {
    Entry *entry = table_entry(table, walk->scratch, size, 1);
    if (entry == NULL) return PyErr_Occurred() ? -1 : -2;
    if (entry->value < 0) entry->value = make(walk, context);
    return entry->value;
}

typedef struct {
    int kind;
    KeySet keys;
} GroupShape;

/* The current span's values of `keys` (slices of the message), kept as a new value set; -1 on an exception, -2
 * when one is not a value the pure-Python walk reads. Values are checked here, once per distinct set: a span whose
 * group or callers are known carries the same bytes. */
static Py_ssize_t keep_values(Walk *walk, KeySet keys) {
    FOR_EACH_KEY(i, keys) {
        Slice text;
        if (check_attribute_value(walk->found[i], &text) < 0) return -2;
    }
    FoundValues *sets = GROW(walk, value_sets, value_set);
    if (sets == NULL) return -1;
    walk->value_sets = sets;
    /* room for every key at once: grow() doubles, and a set holds at most MAX_KEYS, no more than the 64 it starts at */
    Slice *slices = grow(walk->slices, &walk->slice_capacity, walk->slice_count + MAX_KEYS - 1, sizeof(Slice));
    if (slices == NULL) return -1;
    walk->slices = slices;
    sets[walk->value_set_count] = (FoundValues){keys, walk->slice_count, {NULL, 0}, {NULL, 0}, {NULL, 0}};
    FOR_EACH_KEY(i, keys) slices[walk->slice_count++] = walk->found[i];
    return walk->value_set_count++;
}

static Py_ssize_t make_group(Walk *walk, void *context) {
    const GroupShape *shape = context;
    Group *groups = GROW(walk, groups, group);
    if (groups == NULL) return -1;
    walk->groups = groups;
    Py_ssize_t values = keep_values(walk, shape->keys);
    if (values < 0) return values;
    Py_ssize_t number = walk->group_count;
    Group *group = &groups[walk->group_count++];
    memset(group, 0, sizeof(Group));
    group->resource = walk->resource;
    group->kind = shape->kind;
    group->values = values;
    group->first = UINT64_MAX;
    group->sample = PyList_New(0);
    return group->sample ? number : -1;
}

/* The key whose value the fold reads for one role of caller key (MessageFold._values): one with its canonical name
 * wins, else the last name in sorted order; -1 when the span has none. */
static int role_key(const Walk *walk, KeySet role) {
    int chosen = -1;
    FOR_EACH_KEY(i, walk->present & role) {
        int canonical = (int)(config.canonical_keys >> i & 1), chosen_canonical;
        if (chosen >= 0) {
            chosen_canonical = (int)(config.canonical_keys >> chosen & 1);
            if (canonical < chosen_canonical || (canonical == chosen_canonical &&
                strcmp(config.span_keys.keys[i].text, config.span_keys.keys[chosen].text) < 0)) continue;
        }
        chosen = i;
    }
    return chosen;
}

/* text(proto_value(raw)) of a checked value: its string_value (empty for none, arrays and other types). */
static Slice role_text(const Walk *walk, KeySet role) {
    Slice text = {NULL, 0};
    int key = role_key(walk, role);
    if (key >= 0 && check_attribute_value(walk->found[key], &text) < 0) text.size = 0;
    return text;
}

/* The first of _texts(proto_value(raw)) of a checked value: its string_value, else the first non-empty string_value
 * among its array's items (array_value fields merge, so the items run over all of them); empty when none. */
static Slice first_text(Slice value) {
    const uint8_t *p = value.start, *end = value.start + value.size;
    Slice text = {NULL, 0}, array, item;
    if (check_attribute_value(value, &text) < 0) return (Slice){NULL, 0};
    if (text.size > 0) return text;
    while (next_field(&p, end, 5, &array) > 0) {
        const uint8_t *q = array.start;
        while (next_field(&q, array.start + array.size, 1, &item) > 0)
            if (check_any_value(item.start, item.start + item.size, 1, &text) == 0 && text.size > 0) return text;
    }
    text.size = 0;
    return text;
}

static int is_python_space(uint8_t byte) { /* what str.strip() removes, within ASCII */
    return (byte >= 0x09 && byte <= 0x0D) || (byte >= 0x1C && byte <= 0x20);
}

/* touches._without_port of ASCII text: an IPv6 address out of its brackets, an IPv4 address without its port. */
static Slice without_port(Slice text) {
    const uint8_t *p = text.start;
    if (text.size > 0 && p[0] == '[') {
        const uint8_t *close = memchr(p + 1, ']', (size_t)(text.size - 1));
        return (Slice){p + 1, (close ? close : p + text.size) - (p + 1)};
    }
    Py_ssize_t colon = text.size - 1, dots = 0;
    while (colon >= 0 && p[colon] != ':') colon--;
    if (colon < 0 || colon == text.size - 1) return text;
    for (Py_ssize_t i = colon + 1; i < text.size; i++)
        if (p[i] < '0' || p[i] > '9') return text;
    for (Py_ssize_t i = 0; i < colon; i++) dots += p[i] == '.';
    return dots == 3 ? (Slice){p, colon} : text;
}

/* What touches.caller_facts reads of a set of caller values: the caller's address (the first X-Forwarded-For hop
 * without its port, else the client, else the peer address) and the client and peer addresses; -2 when the hop
 * holds a byte outside ASCII (str.strip() and str.isdigit() know more than ASCII: the pure walk decides). */
static int caller_texts(Walk *walk, FoundValues *set) {
    set->client = role_text(walk, config.client_keys);
    set->peer = role_text(walk, config.peer_keys);
    set->address = set->client.size > 0 ? set->client : set->peer;
    int forwarded = role_key(walk, config.forwarded_keys);
    if (forwarded < 0) return 0;
    Slice hop = first_text(walk->found[forwarded]);
    const uint8_t *comma = hop.size > 0 ? memchr(hop.start, ',', (size_t)hop.size) : NULL;
    if (comma != NULL) hop.size = comma - hop.start;
    for (Py_ssize_t i = 0; i < hop.size; i++)
        if (hop.start[i] >= 0x80) return -2;
    while (hop.size > 0 && is_python_space(hop.start[0])) hop.start++, hop.size--;
    while (hop.size > 0 && is_python_space(hop.start[hop.size - 1])) hop.size--;
    if (hop.size > 0) set->address = without_port(hop);
    return 0;
}

static Py_ssize_t make_callers(Walk *walk, void *context) {
    (void)context;
    Py_ssize_t number = keep_values(walk, walk->present & config.caller_keys);
    if (number < 0) return number;
    return caller_texts(walk, &walk->value_sets[number]) < 0 ? -2 : number;
}

/* Adds the span's trace id to its group's sample while the sample has room and lacks it. */
static int sample_trace_id(Walk *walk, Group *group, Slice trace_id) {
    Py_ssize_t size = PyList_GET_SIZE(group->sample);
    if (size >= walk->max_trace_ids) return 0;
    for (Py_ssize_t i = 0; i < size; i++) {
        PyObject *seen = PyTuple_GET_ITEM(PyList_GET_ITEM(group->sample, i), 1);
        if (memcmp(PyBytes_AS_STRING(seen), trace_id.start, TRACE_ID_SIZE) == 0) return 0;
    }
    Py_ssize_t span_number = walk->spans - 1;
    PyObject *entry = pair_of(NULL, &span_number, trace_id);
    if (entry == NULL) return -1;
    int failed = PyList_Append(group->sample, entry);
    Py_DECREF(entry);
    return failed;
}

/* Whether the span's URL can change what it touches: only when no host is named, or one is an AWS endpoint
 * (any host value that is not one string counts as none named); -1 when a host value is not valid. */
static int url_needed(Walk *walk) {
    static const char suffix[] = ".amazonaws.com";
    const Py_ssize_t suffix_size = sizeof(suffix) - 1;
    KeySet hosts = walk->present & config.host_keys;
    if (!hosts) return 1;
    FOR_EACH_KEY(i, hosts) {
        Slice text;
        if (check_attribute_value(walk->found[i], &text) < 0) return -1;
        if (text.size == 0) return 1;
        if (text.size < suffix_size) continue;
        const uint8_t *tail = text.start + text.size - suffix_size;
        int matches = 1;
        for (Py_ssize_t j = 0; j < suffix_size && matches; j++)
            matches = (tail[j] >= 'A' && tail[j] <= 'Z' ? tail[j] + 32 : tail[j]) == (uint8_t)suffix[j];
        if (matches) return 1;
    }
    return 0;
}

/* The span's status: 1 when its code is ERROR, 0 when not, -1 when it is not a valid Status. */
static int is_error(Slice status) {
    const uint8_t *p = status.start, *end = status.start + status.size;
    uint32_t field;
    int wire_type, found;
    uint64_t code = 0;
    while ((found = read_tag(&p, end, &field, &wire_type)) > 0) {
        if (field == 3) {
            if (wire_type != 0 || read_varint(&p, end, &code) < 0) return -1;
        } else if (skip_field(&p, end, wire_type) < 0) {
            return -1;
        }
    }
    int value;
    if (found < 0 || as_int32(code, &value) < 0) return -1;
    return value == config.error_code;
}

/* Keeps an inbound span with callers or a parent, for inbound_rows; -1 on an exception, -2 to give up. */
static int keep_inbound(Walk *walk, Py_ssize_t group, Slice parent) {
    KeySet callers = walk->present & config.caller_keys;
    Py_ssize_t number = -1;
    if (callers) {
        int64_t group_number = group;
        number = number_of(walk, &walk->caller_index, scratch_key(walk, &group_number, 1, callers), make_callers,
                           NULL);
        if (number < 0) return (int)number;
    } else if (parent.size == 0) {
        return 0;
    }
    InboundSpan *spans = GROW(walk, inbound, inbound);
    if (spans == NULL) return -1;
    walk->inbound = spans;
    spans[walk->inbound_count++] = (InboundSpan){group, number, parent};
    return 0;
}

/* Returns 0 when the span was summed, 1 when the message must go to the pure-Python walk, -1 on an exception. */
static int walk_span(Walk *walk, Slice span) {
    const uint8_t *p = span.start, *end = span.start + span.size;
    Slice trace_id = {p, 0}, span_id = {p, 0}, parent = {p, 0}, status = {p, 0}, slice;
    uint64_t kind_number = 0, end_ns = 0;
    Py_ssize_t attributes = 0;
    uint32_t field;
    int wire_type, found;
    walk->present = 0;
    if (++walk->spans > walk->max_spans) return 1;
    while ((found = read_tag(&p, end, &field, &wire_type)) > 0) {
        switch (field) {
        case 1: case 2: case 4: case 9: case 15:
            if (wire_type != 2 || read_bytes(&p, end, &slice) < 0) return 1;
            if (field == 1) trace_id = slice;
            else if (field == 2) span_id = slice;
            else if (field == 4) parent = slice;
            else if (field == 15) status = slice;
            else if (++attributes > walk->max_attributes || read_entry(walk, slice, &config.span_keys) < 0) return 1;
            break;
        case 6:
            if (wire_type != 0 || read_varint(&p, end, &kind_number) < 0) return 1;
            break;
        case 8:
            if (wire_type != 1 || end - p < 8) return 1;
            end_ns = 0;
            for (int shift = 56; shift >= 0; shift -= 8) end_ns = end_ns << 8 | p[shift / 8]; /* little-endian */
            p += 8;
            break;
        default:
            if (skip_field(&p, end, wire_type) < 0) return 1;
        }
    }
    int kind, error = is_error(status);
    if (found < 0 || trace_id.size != TRACE_ID_SIZE || error < 0 || as_int32(kind_number, &kind) < 0) return 1;
    int inbound = is_kind(kind, config.inbound_kinds, config.inbound_count);
    KeySet wanted = inbound ? config.inbound_keys
        : is_kind(kind, config.outbound_kinds, config.outbound_count) ? config.outbound_keys : config.internal_keys;
    walk->present &= wanted;
    if (!inbound && (walk->present & config.url_keys)) {
        int needed = url_needed(walk);
        if (needed < 0) return 1;
        if (!needed) walk->present &= ~config.url_keys;
    }
    int64_t numbers[2] = {walk->resource, kind};
    GroupShape shape = {kind, walk->present & ~config.caller_keys};
    Py_ssize_t size = scratch_key(walk, numbers, 2, shape.keys);
    Py_ssize_t index = number_of(walk, &walk->group_index, size, make_group, &shape);
    if (index < 0) return index == -2 ? 1 : -1;
    Group *group = &walk->groups[index];
    group->spans++;
    group->errors += (uint64_t)error;
    if (end_ns < group->first) group->first = end_ns;
    if (end_ns > group->last) group->last = end_ns;
    if (sample_trace_id(walk, group, trace_id) < 0) return -1;
    if (walk->resource_count > 1 && span_id.size > 0) {
        Entry *entry = table_entry(&walk->span_resource, span_id.start, span_id.size, 1);
        if (entry == NULL) return PyErr_Occurred() ? -1 : 1;
        entry->value = walk->resource; /* the last span with this id wins, as in a dict */
    }
    if (!inbound) return 0;
    int kept = keep_inbound(walk, index, parent);
    return kept == -2 ? 1 : kept;
}

/* The same three-way answer as walk_span, for each span of one ResourceSpans entry. */
static int walk_spans(Walk *walk, Slice resource_spans) {
    const uint8_t *p = resource_spans.start;
    Slice scope, span;
    int found, inner = 0;
    while (inner == 0 && (found = next_field(&p, resource_spans.start + resource_spans.size, 2, &scope)) > 0) {
        const uint8_t *q = scope.start;
        while ((inner = next_field(&q, scope.start + scope.size, 2, &span)) > 0) {
            int outcome = walk_span(walk, span);
            if (outcome != 0) return outcome;
        }
    }
    return found < 0 || inner < 0 ? 1 : 0;
}

/* A ResourceSpans entry's wanted resource attributes (its resource fields merge, as protobuf merges them);
 * Py_None (not a new reference) when the pure-Python walk must decide. */
static PyObject *resource_values(Walk *walk, Slice resource_spans) {
    const uint8_t *p = resource_spans.start;
    Slice resource, entry;
    int found, inner = 0;
    walk->present = 0;
    while (inner == 0 && (found = next_field(&p, resource_spans.start + resource_spans.size, 1, &resource)) > 0) {
        const uint8_t *q = resource.start;
        while ((inner = next_field(&q, resource.start + resource.size, 1, &entry)) > 0)
            if (read_entry(walk, entry, &config.resource_keys) < 0) return Py_None;
    }
    if (found < 0 || inner < 0) return Py_None;
    FOR_EACH_KEY(i, walk->present) {
        Slice text;
        if (check_attribute_value(walk->found[i], &text) < 0) return Py_None;
    }
    Slice values[MAX_KEYS];
    int count = 0;
    FOR_EACH_KEY(i, walk->present) values[count++] = walk->found[i];
    return values_tuple(&config.resource_keys, walk->present, values);
}

/* The inbound spans summed per (group, callers, resource of the parent span), in order of first appearance;
 * 1 when a table gave up probing, -1 on an exception. */
static int count_inbound(Walk *walk) {
    for (Py_ssize_t i = 0; i < walk->inbound_count; i++) {
        InboundSpan *span = &walk->inbound[i];
        Py_ssize_t parent_resource = -1;
        if (walk->resource_count > 1 && span->parent.size > 0) {
            Entry *parent = table_entry(&walk->span_resource, span->parent.start, span->parent.size, 0);
            if (parent != NULL) parent_resource = parent->value;
        }
        Py_ssize_t numbers[3] = {span->group, span->callers, parent_resource};
        Entry *entry = table_entry(&walk->row_index, (const uint8_t *)numbers, sizeof(numbers), 1);
        if (entry == NULL) return PyErr_Occurred() ? -1 : 1;
        if (entry->value >= 0) {
            walk->rows[entry->value].spans++;
            continue;
        }
        InboundRow *rows = GROW(walk, rows, row);
        if (rows == NULL) return -1;
        walk->rows = rows;
        entry->value = walk->row_count;
        rows[walk->row_count++] = (InboundRow){span->group, span->callers, parent_resource, 1};
    }
    return 0;
}

static PyObject *text_of(Slice text) { /* checked UTF-8 */
    return PyUnicode_DecodeUTF8((const char *)text.start, text.size, NULL);
}

/* The non-empty of two texts, as a tuple. */
static PyObject *texts_tuple(Slice first, Slice second) {
    Slice texts[2];
    Py_ssize_t count = 0;
    if (first.size > 0) texts[count++] = first;
    if (second.size > 0) texts[count++] = second;
    PyObject *tuple = PyTuple_New(count);
    for (Py_ssize_t i = 0; tuple != NULL && i < count; i++) {
        PyObject *text = text_of(texts[i]);
        if (text == NULL) Py_CLEAR(tuple);
        else PyTuple_SET_ITEM(tuple, i, text);
    }
    return tuple;
}

/* (group, caller address, the client and peer addresses there are, parent resource, spans) per row. */
static PyObject *inbound_rows(Walk *walk) {
    static const FoundValues no_callers = {0, 0, {NULL, 0}, {NULL, 0}, {NULL, 0}};
    PyObject *rows = PyList_New(walk->row_count);
    for (Py_ssize_t i = 0; rows != NULL && i < walk->row_count; i++) {
        InboundRow *row = &walk->rows[i];
        const FoundValues *found = row->callers < 0 ? &no_callers : &walk->value_sets[row->callers];
        PyObject *address = text_of(found->address);
        PyObject *addresses = address ? texts_tuple(found->client, found->peer) : NULL;
        PyObject *item = addresses ? Py_BuildValue("(nNNnn)", row->group, address, addresses, row->parent_resource,
                                                   row->spans) : NULL;
        if (addresses == NULL) Py_XDECREF(address);
        if (item == NULL) Py_CLEAR(rows);
        else PyList_SET_ITEM(rows, i, item);
    }
    return rows;
}

static PyObject *group_rows(Walk *walk) {
    PyObject *rows = PyList_New(walk->group_count);
    for (Py_ssize_t i = 0; rows != NULL && i < walk->group_count; i++) {
        Group *group = &walk->groups[i];
        const FoundValues *found = &walk->value_sets[group->values];
        PyObject *values = values_tuple(&config.span_keys, found->keys, &walk->slices[found->first]);
        PyObject *row = values ? Py_BuildValue("(niNKKKKO)", group->resource, group->kind, values,
                                               (unsigned long long)group->spans, (unsigned long long)group->errors,
                                               (unsigned long long)group->first, (unsigned long long)group->last,
                                               group->sample) : NULL;
        if (row == NULL) Py_CLEAR(rows);
        else PyList_SET_ITEM(rows, i, row);
    }
    return rows;
}

/* The ResourceSpans entries of the request, counted and checked at the top level; -1 when malformed. */
static Py_ssize_t count_resource_spans(const uint8_t *p, const uint8_t *end) {
    Py_ssize_t count = 0;
    Slice resource_spans;
    int found;
    while ((found = next_field(&p, end, 1, &resource_spans)) > 0) count++;
    return found < 0 ? -1 : count;
}

static void free_walk(Walk *walk) {
    for (Py_ssize_t i = 0; i < walk->group_count; i++) Py_XDECREF(walk->groups[i].sample);
    PyMem_Free(walk->groups);
    PyMem_Free(walk->value_sets);
    PyMem_Free(walk->slices);
    PyMem_Free(walk->inbound);
    PyMem_Free(walk->rows);
    PyMem_Free(walk->scratch);
    table_free(&walk->group_index);
    table_free(&walk->caller_index);
    table_free(&walk->span_resource);
    table_free(&walk->row_index);
}

/* 0 when every span was summed, 1 when the message goes to the pure-Python walk, -1 on an exception. */
static int walk_request(Walk *walk, const uint8_t *p, const uint8_t *end, PyObject *resources) {
    Slice resource_spans;
    while (next_field(&p, end, 1, &resource_spans) > 0) { /* checked by count_resource_spans */
        PyObject *values = resource_values(walk, resource_spans);
        if (values == Py_None) return 1;
        if (values == NULL || PyList_Append(resources, values) < 0) {
            Py_XDECREF(values);
            return -1;
        }
        Py_DECREF(values);
        int outcome = walk_spans(walk, resource_spans);
        if (outcome != 0) return outcome;
        walk->resource++;
    }
    return count_inbound(walk);
}

PyDoc_STRVAR(walk_doc,
"walk(message, max_spans, max_attributes, max_trace_ids) -> (resources, groups, inbound) or None\n\n"
"resources: per ResourceSpans entry, its wanted attributes as ((key, raw AnyValue bytes), ...).\n"
"groups, in order of first appearance: (resource number, kind, wanted span attributes, spans, errors,\n"
"first end time, last end time, [(span number, trace id), ...] the first max_trace_ids distinct).\n"
"inbound: (group number, caller address, (client address, peer address) those there are, resource number\n"
"of the parent span or -1, spans), the addresses as touches.caller_facts reads them.\n"
"None when the pure-Python walk must decide (a limit, malformed bytes, or anything unusual).");

static PyObject *walk(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer message;
    Walk state;
    memset(&state, 0, sizeof(state));
    if (!PyArg_ParseTuple(args, "y*nnn", &message, &state.max_spans, &state.max_attributes, &state.max_trace_ids))
        return NULL;
    if (!config.configured) {
        PyBuffer_Release(&message);
        PyErr_SetString(PyExc_RuntimeError, "wire.configure() was not called");
        return NULL;
    }
    const uint8_t *start = message.buf, *end = start + message.len;
    PyObject *result = NULL, *resources = NULL;
    int outcome = 1;
    state.resource_count = message.len > UINT32_MAX ? -1 : count_resource_spans(start, end);
    if (state.resource_count < 0) goto done;
    /* a key holds two numbers, then per key at most its 5-byte header and its value, all within the message */
    state.scratch = PyMem_Malloc((size_t)message.len + 2 * sizeof(int64_t) + MAX_KEYS * 5);
    resources = PyList_New(0);
    if (state.scratch == NULL || resources == NULL) {
        if (state.scratch == NULL) PyErr_NoMemory();
        outcome = -1;
        goto done;
    }
    outcome = walk_request(&state, start, end, resources);
    if (outcome == 0) {
        PyObject *groups = group_rows(&state);
        PyObject *inbound = groups ? inbound_rows(&state) : NULL;
        if (groups && inbound) result = Py_BuildValue("(ONN)", resources, groups, inbound);
        else Py_XDECREF(groups);
    }
done:
    if (outcome > 0) result = Py_NewRef(Py_None);
    Py_XDECREF(resources);
    free_walk(&state);
    PyBuffer_Release(&message);
    return result;
}

static PyMethodDef methods[] = {
    {"configure", configure, METH_VARARGS, configure_doc},
    {"walk", walk, METH_VARARGS, walk_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef wire_module = {
    PyModuleDef_HEAD_INIT, "wire",
    "The compiled otlp_proto walk (see stream.ingest.formats.otlp.protobuf).", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_wire(void) {
    return PyModule_Create(&wire_module);
}
