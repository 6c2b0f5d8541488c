/*
 * json_scan.h: a validating JSON scanner that gives jansson's verdict
 * without building a tree. One pass over a buffer decides what jansson
 * 2.14's json_loadb(JSON_REJECT_DUPLICATES | JSON_DECODE_ANY) decides, with
 * the same error text (less jansson's " near '...'" tail) and position, and
 * reports the type and raw span of chosen members of a top-level object.
 * It never copies, modifies or keeps the input and allocates nothing unless
 * more than LB_JSON_KEYS_INLINE object keys are open at once. Valid objects
 * and arrays of the common kinds are decided by a structural walk that
 * finds each string's end 16 or 32 bytes at a time (json_struct.h),
 * anything else byte by byte: the result is the same either way
 * (res->exact says which decided). With shapes (lb_json_scan_shaped), an
 * object of a shape seen before is decided by that shape, again with the
 * same result.
 *
 * One deliberate difference: jansson drops a raw NUL byte that directly
 * follows a number or a literal ("[1\0]" loads); here every raw NUL byte is
 * an error, reported as any other stray control byte would be.
 */
#ifndef LB_JSON_SCAN_H
#define LB_JSON_SCAN_H

#include <stddef.h>
#include <stdint.h>

/** jansson 2.14's JSON_PARSER_MAX_DEPTH: values nest at most this deep. */
#define LB_JSON_MAX_DEPTH 2048

/** Object keys (over all open objects) tracked without allocating. */
#define LB_JSON_KEYS_INLINE 64

typedef enum {
        LB_JSON_ABSENT = 0,
        LB_JSON_OBJECT,
        LB_JSON_ARRAY,
        LB_JSON_STRING,
        LB_JSON_INTEGER, /* no fraction or exponent; fits long long */
        LB_JSON_REAL,
        LB_JSON_TRUE,
        LB_JSON_FALSE,
        LB_JSON_NULL
} lb_json_type_t;

/** Where a value lies in the scanned buffer. */
typedef struct {
        lb_json_type_t type;
        size_t off;  /* first byte; for strings the one after the quote */
        size_t len;  /* raw bytes; for strings those between the quotes */
        size_t dlen; /* strings: decoded bytes (== len iff no escapes) */
} lb_json_value_t;

/** A top-level member the caller wants: name in, value out. */
typedef struct {
        const char *name; /* decoded name, no NUL inside */
        size_t name_len;
        lb_json_value_t value; /* type LB_JSON_ABSENT when not present */
} lb_json_field_t;

typedef struct {
        lb_json_type_t type; /* of the whole value */
        size_t members;      /* members of the top-level object */
        size_t err_pos;      /* on error: jansson's error position */
        char err_text[80];   /* on error: jansson's message */
        int exact;  /* 1: decided byte by byte, not by the structural walk */
        int shaped; /* 1: decided by a known shape (lb_json_scan_shaped) */
} lb_json_result_t;

/** Most names the structural walk looks for; a scan for more is decided
 *  byte by byte (same result, slower). */
#define LB_JSON_NAMES_FAST 32

/**
 * The top-level member names a scan reports, prepared once
 * (lb_json_names_init) for any number of scans: what the walk compares
 * keys with (a name's first 8 bytes and a bucket of 64 per name).
 */
typedef struct {
        const lb_json_field_t *fields; /* the names (values unused) */
        size_t cnt;
        uint64_t lens;           /* bit n: a name of n bytes (63: 63 or more) */
        uint64_t buckets;        /* the names' buckets */
        uint64_t shared;         /* ... those of two names or more */
        unsigned char first[64]; /* by bucket: its first name's index */
        uint64_t sig[LB_JSON_NAMES_FAST]; /* each name's first 8 bytes */
} lb_json_names_t;

/** Most gaps (the bytes between two scalar values) in lb_json_shapes_t. */
#define LB_JSON_SHAPE_GAPS 255
/** Most bytes of all its gaps. */
#define LB_JSON_SHAPE_BYTES 8192
/** Most scalar values of a document whose shape is learned. */
#define LB_JSON_SHAPE_VALUES 128
/** Most gaps that may follow one gap: a new one there replaces the least
 *  recently found (keys in varying orders, say), which bounds what a
 *  document of no known shape costs to look up. */
#define LB_JSON_SHAPE_SIBLINGS 8
/** A gap's slot when the value after it is not a wanted member's. */
#define LB_JSON_SHAPE_NONE 0xff

/** One gap of a learned shape: a node of the tree of shapes (index 0 is
 *  the root, which has no bytes; 0 as a link: none). */
typedef struct {
        uint16_t off;       /* its bytes: bytes[off..off+len) */
        uint16_t len;       /* at most LB_JSON_SHAPE_BYTES */
        uint8_t child;      /* the first gap that may follow it */
        uint8_t sibling;    /* another gap that may follow its parent */
        uint8_t slot;       /* the name index of the value after it, or NONE */
        uint8_t kind;       /* what follows it: nothing (0, the document's
                               end), a string (1) or another scalar (2);
                               3 for gap 0, the root, which no step takes */
        uint8_t fork;       /* 1 + the offset of the byte that tells its
                               children apart (forks[]), or 0: none does */
        uint16_t tail_mask; /* bit i: byte i of its tail[] is the gap's */
} lb_json_gap_t;

/** The children of a gap that one byte, at the same offset in each, tells
 *  apart: that byte of each (byte i of bytes: child[i]'s) and which of
 *  bytes' bytes are children's (0x80 in each). */
typedef struct {
        uint64_t bytes, mask;
        uint8_t child[LB_JSON_SHAPE_SIBLINGS];
} lb_json_fork_t;

/**
 * The shapes of the top-level objects a scanner has accepted, to accept
 * the next ones of a known shape quickly (lb_json_scan_shaped). A shape
 * is the sequence of gaps between a document's scalar values (strings,
 * numbers, literals): its keys, brackets, colons, commas and whitespace,
 * byte for byte, and which values are strings (a gap before one ends with
 * its opening quote). Two documents with the same gaps and valid scalars
 * of those kinds in between have the same structure, keys and wanted
 * members, so only the scalars are checked. Shapes share their common
 * first gaps (a tree); when it is full, it is emptied and learned again.
 * Owned by one thread.
 */
typedef struct {
        const lb_json_names_t *names;
        lb_json_gap_t gap[LB_JSON_SHAPE_GAPS + 1];
        /* By gap of at most 32 bytes: its last 16 bytes, and its first
         * 16, of which those past a short gap (before, for the last 16)
         * are zeros. */
        _Alignas(16) unsigned char tail[LB_JSON_SHAPE_GAPS + 1][16];
        _Alignas(16) unsigned char head[LB_JSON_SHAPE_GAPS + 1][16];
        /* By last gap: its document's top-level members and the names it
         * lacks (bit i: names->fields[i]). */
        struct {
                uint32_t members, absent;
        } ends[LB_JSON_SHAPE_GAPS + 1];
        /* By gap whose fork is set: the byte that picks its child. */
        lb_json_fork_t forks[LB_JSON_SHAPE_GAPS + 1];
        size_t gap_cnt;    /* root included */
        size_t bytes_used; /* of bytes[], gaps padded to 16 */
        /* Scans a known shape decided, and those it did not, lately: a
         * shape is learned when they say learning pays, and at every 16th
         * miss in any case; while shapes do not pay, only every 16th
         * document is looked up (passed counts the others). */
        uint64_t hits, misses, passed;
        _Alignas(16) unsigned char bytes[LB_JSON_SHAPE_BYTES];
} lb_json_shapes_t;

/**
 * @brief An empty set of shapes for scans of names (which must outlive it).
 */
void lb_json_shapes_init(lb_json_shapes_t *shapes,
                         const lb_json_names_t *names);

/**
 * @brief lb_json_scan_names(buf, len, shapes->names, out, res), the same
 *        result in every way, decided by a known shape when buf has one
 *        (res->shaped) and else by a scan, whose shape may be learned.
 */
int lb_json_scan_shaped(const char *buf, size_t len, lb_json_shapes_t *shapes,
                        lb_json_field_t *out, lb_json_result_t *res);

/**
 * @brief Prepares the names of fields[0..cnt) (name, name_len; values are
 *        not read) for lb_json_scan_names. fields must outlive names.
 */
void lb_json_names_init(lb_json_names_t *names, const lb_json_field_t *fields,
                        size_t cnt);

/**
 * @brief lb_json_scan with names prepared once: out[0..names->cnt) get
 *        the values (only their value members are written; their names
 *        are not read).
 */
int lb_json_scan_names(const char *buf, size_t len,
                       const lb_json_names_t *names, lb_json_field_t *out,
                       lb_json_result_t *res);

/**
 * @brief Scans buf[0..len) as one JSON value (any type at the top, then
 *        only whitespace) under jansson's rules: RFC 8259 grammar, UTF-8
 *        without overlong forms or surrogates, escapes with paired
 *        surrogates and no "\u0000", integers that fit long long, reals
 *        that do not overflow a double, nesting of at most
 *        LB_JSON_MAX_DEPTH values and no duplicate (decoded) key in any
 *        object. When the top-level value is an object, each member whose
 *        decoded name equals a field's name is reported in that field.
 * @returns 0 when the value is accepted (res->type and res->members set,
 *          fields filled), -1 when rejected (res->err_pos and
 *          res->err_text set; fields are then meaningless).
 */
int lb_json_scan(const char *buf, size_t len, lb_json_field_t *fields,
                 size_t field_cnt, lb_json_result_t *res);

/**
 * @returns the length of the well-formed UTF-8 sequence at p[0..n) (n >= 1),
 *          or 0 when there is none: an ASCII byte, an overlong form, a
 *          surrogate, anything above U+10FFFF or a truncated sequence
 *          (jansson's utf8_check_first/_full; RFC 3629).
 */
size_t lb_utf8_len(const unsigned char *p, size_t n);

/**
 * @brief Decodes the first bytes of a string value found by lb_json_scan
 *        (raw = its off, raw_len = its len) into dst.
 * @returns the bytes written: min(decoded length, cap). The cut may fall
 *          inside a multi-byte character.
 */
size_t lb_json_unescape(const char *raw, size_t raw_len, char *dst, size_t cap);

/**
 * @returns the decoded length of a valid JSON string body raw[0..raw_len)
 *          (the bytes between its quotes): the dlen lb_json_scan reports.
 */
size_t lb_json_decoded_len(const char *raw, size_t raw_len);

/**
 * @returns 1 when string value v of buf decodes to exactly s[0..n), else 0.
 */
int lb_json_string_eq(const char *buf, const lb_json_value_t *v, const char *s,
                      size_t n);

#endif
