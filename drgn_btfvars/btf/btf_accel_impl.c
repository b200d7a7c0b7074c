/*
 * drgn-btfvars BTF accelerator: the hot paths of the reader in C.
 *
 * Everything here works on the type section already converted to native-order
 * 32-bit words by the Python side; results and error reports mirror the
 * pure-Python implementation in reader.py exactly (the tests compare them).
 */
#include <stdint.h>
#include <stddef.h>
#include <string.h>

/*
 * Walk the records: store the word index where each record starts.
 * fix[k] = words of a kind-k record without its vlen elements (-1: kind not
 * known), ele[k] = words per vlen element.  offs must hold n / 3 + 1 entries.
 * Returns 0 and sets *count, or an error code (1 unknown kind, 2 record runs
 * past the end, 3 kind 0) with err[0] = record index, err[1] = word index,
 * err[2] = kind.
 */
int btfv_walk(const uint32_t *w, size_t n, const int32_t *fix, const uint32_t *ele,
              uint32_t *offs, size_t *count, uint32_t *err)
{
    size_t pos = 0, i = 0;

    while (pos < n) {
        uint32_t info, k;
        uint64_t next;

        if (pos + 1 >= n) {
            err[0] = (uint32_t)i; err[1] = (uint32_t)pos; err[2] = 0;
            *count = i;
            return 2;
        }
        info = w[pos + 1];
        k = (info >> 24) & 0x7f;
        if (fix[k] < 0) {
            err[0] = (uint32_t)i; err[1] = (uint32_t)pos; err[2] = k;
            *count = i;
            return k == 0 ? 3 : 1;
        }
        offs[i++] = (uint32_t)pos;
        next = (uint64_t)pos + (uint64_t)fix[k] + (uint64_t)(info & 0xffffff) * ele[k];
        if (next > n) {
            err[0] = (uint32_t)(i - 1); err[1] = (uint32_t)pos; err[2] = 0;
            *count = i;
            return 2;
        }
        pos = (size_t)next;
    }
    *count = i;
    return 0;
}

uint32_t btfv_max_name_off(const uint32_t *w, const uint32_t *offs, size_t count)
{
    uint32_t mx = 0;
    for (size_t i = 0; i < count; i++)
        if (w[offs[i]] > mx)
            mx = w[offs[i]];
    return mx;
}

void btfv_kinds(const uint32_t *w, const uint32_t *offs, size_t count, uint8_t *out)
{
    for (size_t i = 0; i < count; i++)
        out[i] = (w[offs[i] + 1] >> 24) & 0x7f;
}

/* Index of the first word at or after `from` equal to `value`, or -1. */
long btfv_find_word(const uint32_t *w, size_t n, uint32_t value, size_t from)
{
    for (size_t i = from; i < n; i++)
        if (w[i] == value)
            return (long)i;
    return -1;
}

/* The strings of a chain: segment j holds offsets [start[j], start[j] + len[j]).
   Returns the string and sets *end to its segment's end. */
static const char *chain_str(const char *const *segs, const uint32_t *start,
                             const uint32_t *len, int nseg, uint32_t off, const char **end)
{
    for (int j = nseg - 1; j >= 0; j--)
        if (off >= start[j] && off - start[j] < len[j]) {
            *end = segs[j] + len[j];
            return segs[j] + (off - start[j]);
        }
    return NULL;
}

/*
 * A fast string hash, 8 bytes per step: each chunk of the string (the last one
 * zero-padded) is mixed in as a 64-bit word. hash_nul() hashes a NUL-terminated
 * string that lies inside [s, end); hash_mem() hashes s[0:n]; both agree.
 */
#define HAS_ZERO(v) (((v) - 0x0101010101010101ull) & ~(v) & 0x8080808080808080ull)

static inline uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v;
    h *= 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

static inline uint32_t finish(uint64_t h, size_t n)
{
    h ^= n;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return (uint32_t)h;
}

/* The last, partial chunk (k < 8 bytes), assembled little-endian, zero-padded. */
static inline uint64_t tail_word(const char *s, size_t k)
{
    uint64_t v = 0;
    for (size_t j = 0; j < k; j++)
        v |= (uint64_t)(unsigned char)s[j] << (8 * j);
    return v;
}

static uint32_t hash_nul(const char *s, const char *end)
{
    uint64_t h = 0x243f6a8885a308d3ull;
    size_t n = 0;
    for (;;) {
        if (end - (s + n) >= 8) {
            uint64_t v, z;
            memcpy(&v, s + n, 8);
            z = HAS_ZERO(v);
            if (!z) {
                h = mix(h, v);
                n += 8;
                continue;
            }
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            {
                /* The lowest flagged byte is the first NUL (exact for the first one). */
                unsigned k = (unsigned)__builtin_ctzll(z) >> 3;
                v = k ? v & (~0ull >> (64 - 8 * k)) : 0;
                return finish(mix(h, v), n + k);
            }
#endif
        }
        /* The NUL is in the next 8 bytes (the string section ends with one). */
        size_t k = 0;
        while (s[n + k])
            k++;
        return finish(mix(h, tail_word(s + n, k)), n + k);
    }
}

static uint32_t hash_mem(const char *s, size_t n)
{
    uint64_t h = 0x243f6a8885a308d3ull;
    size_t i = 0;
    while (n - i >= 8) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        h = mix(h, v);
        i += 8;
    }
    return finish(mix(h, tail_word(s + i, n - i)), n);
}

/* A name index (see btfv_index_build); the Python side owns every array. */
struct btfv_names {
    const uint32_t *w;        /* the type section, native-order words */
    const uint32_t *offs;     /* positions of the indexed name words */
    size_t count;
    const char *const *segs;  /* the chain's string sections ... */
    const uint32_t *start;    /* ... their first chain-wide offsets ... */
    const uint32_t *len;      /* ... and lengths */
    int nseg;
    uint32_t *table;          /* open addressing: position index + 1, 0 = empty */
    uint32_t mask;            /* table size - 1 (a power of two) */
    uint32_t *hashes;         /* count entries */
    uint32_t *link;           /* count entries: next position of the same name + 1 */
};

/* The string at name word i of the index, and its segment's end. */
static inline const char *name_at(const struct btfv_names *ix, uint32_t i, const char **end)
{
    return chain_str(ix->segs, ix->start, ix->len, ix->nseg, ix->w[ix->offs[i]], end);
}

/* Do name words i and j (both non-zero) hold the same string? */
static int same_name(const struct btfv_names *ix, uint32_t i, uint32_t j)
{
    const char *ei, *ej;
    const char *a = name_at(ix, i, &ei);
    const char *b = name_at(ix, j, &ej);
    return a == b || strcmp(a, b) == 0;
}

/*
 * Build the name index of the words w[offs[i]] (record names: offs holds
 * each record's first word; or any other name words): for each distinct
 * name, the table holds the index + 1 of its first word (0 = empty); link[i]
 * chains i to another word of the same name (index + 1, 0 = last): the
 * first, then the others in descending order (callers sort). A zero word
 * (no name) is not indexed. Returns the number of distinct names, or -1 if
 * a word is not a string offset of the chain.
 */
long btfv_index_build(struct btfv_names *ix)
{
    const uint32_t *w = ix->w, *offs = ix->offs;
    uint32_t *table = ix->table, *hashes = ix->hashes, *link = ix->link, mask = ix->mask;
    size_t count = ix->count;
    long distinct = 0;
    const size_t AHEAD = 16;

    /* Pass 1: hash every name; strings are scattered, so fetch them ahead. */
    for (size_t i = 0; i < count; i++) {
        uint32_t no = w[offs[i]];
        const char *s, *end;
#if defined(__GNUC__)
        if (i + AHEAD < count) {
            uint32_t na = w[offs[i + AHEAD]];
            const char *ea;
            const char *sa = na ? chain_str(ix->segs, ix->start, ix->len, ix->nseg, na, &ea)
                                : NULL;
            if (sa)
                __builtin_prefetch(sa);
        }
#endif
        link[i] = 0;
        if (!no)
            continue;
        s = name_at(ix, (uint32_t)i, &end);
        if (!s)
            return -1;
        hashes[i] = hash_nul(s, end);
    }
    /* Pass 2: insert, fetching table slots ahead. */
    for (size_t i = 0; i < count; i++) {
        uint32_t h, slot;
#if defined(__GNUC__)
        if (i + AHEAD < count && w[offs[i + AHEAD]])
            __builtin_prefetch(&table[hashes[i + AHEAD] & mask]);
#endif
        if (!w[offs[i]])
            continue;
        h = hashes[i];
        slot = h & mask;
        for (;;) {
            uint32_t e = table[slot];
            if (!e) {
                table[slot] = (uint32_t)i + 1;
                distinct++;
                break;
            }
            if (hashes[e - 1] == h &&
                (w[offs[e - 1]] == w[offs[i]] || same_name(ix, e - 1, (uint32_t)i))) {
                link[i] = link[e - 1];
                link[e - 1] = (uint32_t)i + 1;
                break;
            }
            slot = (slot + 1) & mask;
        }
    }
    return distinct;
}

/* The index + 1 of the first word named name[0:n], or 0. */
static uint32_t index_head(const struct btfv_names *ix, const char *name, size_t n)
{
    uint32_t h = hash_mem(name, n), slot = h & ix->mask;
    while (ix->table[slot]) {
        uint32_t i = ix->table[slot] - 1;
        if (ix->hashes[i] == h) {
            const char *end;
            const char *s = name_at(ix, i, &end);
            if (s && (size_t)(end - s) > n && memcmp(s, name, n) == 0 && s[n] == '\0')
                return i + 1;
        }
        slot = (slot + 1) & ix->mask;
    }
    return 0;
}

/* Indexes named name[0:n] (first the lowest, then the others descending) into
   out (max entries); returns how many there are (may exceed max: call again
   with a larger buffer). */
long btfv_index_find(const struct btfv_names *ix, const char *name, size_t n, uint32_t *out,
                     size_t max)
{
    long found = 0;
    for (uint32_t j = index_head(ix, name, n); j; j = ix->link[j - 1]) {
        if ((size_t)found < max)
            out[found] = j - 1;
        found++;
    }
    return found;
}

#define BTFV_NO_SECTION 0xffffffffu

/*
 * Where each VAR of an object is: for record index i, sec[i] = the index of
 * the first DATASEC (in record order) with an entry for it, or
 * BTFV_NO_SECTION, and off[i] = that entry's offset. first_id is the
 * object's first type id. Returns 0, or the record index + 1 of the first VAR
 * whose type id is past the object's last (corrupt BTF).
 */
size_t btfv_var_locations(const uint32_t *w, const uint32_t *offs, size_t count,
                          uint32_t first_id, uint32_t *sec, uint32_t *off)
{
    uint32_t k = 0;
    for (size_t i = 0; i < count; i++)
        sec[i] = BTFV_NO_SECTION;
    for (size_t i = 0; i < count; i++) {
        uint32_t p = offs[i], info = w[p + 1], kind = (info >> 24) & 0x7f;
        if (kind == 14 && (uint64_t)w[p + 2] >= (uint64_t)first_id + count)
            return i + 1;
        if (kind != 15)
            continue;
        for (uint32_t j = 0; j < (info & 0xffffff); j++) {
            uint32_t vt = w[p + 3 + 3 * j];
            if (vt >= first_id && vt - first_id < count && sec[vt - first_id] == BTFV_NO_SECTION) {
                sec[vt - first_id] = k;
                off[vt - first_id] = w[p + 4 + 3 * j];
            }
        }
        k++;
    }
    return 0;
}

/*
 * The VAR named name[0:n] a lookup by name means (the first global, else the
 * first static, by type id) in a record-name index: its record index, or -1.
 */
long btfv_var_find(const struct btfv_names *ix, const char *name, size_t n)
{
    long best_global = -1, best_static = -1;
    for (uint32_t j = index_head(ix, name, n); j; j = ix->link[j - 1]) {
        long i = (long)j - 1;
        uint32_t p = ix->offs[i];
        if (((ix->w[p + 1] >> 24) & 0x7f) != 14)
            continue;
        if (ix->w[p + 3] != 0) {
            if (best_global < 0 || i < best_global)
                best_global = i;
        } else if (best_static < 0 || i < best_static) {
            best_static = i;
        }
    }
    return best_global >= 0 ? best_global : best_static;
}

/*
 * Word indexes of the enumerator names of every ENUM (2 words per entry) and
 * ENUM64 (3 words per entry) record, ascending, into out (which holds at
 * least n / 2 entries: every entry takes two words or more). Returns how many.
 */
size_t btfv_enum_name_words(const uint32_t *w, const uint32_t *offs, size_t count,
                            uint32_t *out)
{
    size_t k = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t p = offs[i], info = w[p + 1], kind = (info >> 24) & 0x7f, vlen, step;
        if (kind == 6)
            step = 2;
        else if (kind == 19)
            step = 3;
        else
            continue;
        vlen = info & 0xffffff;
        for (uint32_t j = 0; j < vlen; j++)
            out[k++] = p + 3 + step * j;
    }
    return k;
}

/*
 * Reference cycles (see reader.Btf._refs for the edges): a record's
 * references by value (struct and union members, array elements, typedef
 * and modifier targets, a prototype's return and parameter types, a VAR's or
 * FUNC's type), and, when !by_value, pointer targets too, but not through a
 * named struct or union (which then has no edges).
 */
static uint32_t n_refs(const struct btfv_names *strs, uint32_t p, int by_value)
{
    const uint32_t *w = strs->w;
    uint32_t info = w[p + 1], kind = (info >> 24) & 0x7f, vlen = info & 0xffffff;
    switch (kind) {
    case 4: case 5:  /* STRUCT UNION */
        if (!by_value && w[p]) {
            const char *end;
            const char *s = chain_str(strs->segs, strs->start, strs->len, strs->nseg, w[p], &end);
            if (s && *s)
                return 0;
        }
        return vlen;
    case 13:  /* FUNC_PROTO */
        return 1 + vlen;
    case 3: case 8: case 9: case 10: case 11: case 18: case 14: case 12:
        return 1;  /* ARRAY, modifiers, VAR, FUNC */
    case 2:  /* PTR */
        return !by_value;
    default:
        return 0;
    }
}

static uint32_t ref_at(const uint32_t *w, uint32_t p, uint32_t k)
{
    uint32_t kind = (w[p + 1] >> 24) & 0x7f;
    if (kind == 4 || kind == 5)
        return w[p + 4 + 3 * k];
    if (kind == 3)
        return w[p + 3];
    return w[p + 2 + 2 * k];  /* FUNC_PROTO: return type (k = 0), then parameters */
}

/*
 * Tarjan's strongly connected components over THIS object's records (ids
 * first_id ..; references to the base are leaves: a base never refers to a
 * split object), from record index root, resuming the state of earlier calls:
 * state[0] = counter; idx, low, stack, cs_node, cs_edge hold count entries
 * (idx zeroed before the first call); flags[i] bit 0 = on a cycle (reaches
 * itself), bit 1 = on the component stack. strs gives the words, record
 * offsets and strings. Returns 0, or -1 when a reference is past the object's
 * last id (corrupt: the caller falls back to the Python search).
 */
int btfv_cycles(const struct btfv_names *strs, uint32_t first_id, uint32_t root, int by_value,
                uint32_t *state, uint32_t *idx, uint32_t *low, uint32_t *stack,
                uint32_t *cs_node, uint32_t *cs_edge, uint8_t *flags)
{
    const uint32_t *w = strs->w, *offs = strs->offs;
    size_t count = strs->count, sp = 0, csp = 0;
    uint32_t counter = state[0];

    if (root >= count || idx[root])
        return 0;
    idx[root] = low[root] = ++counter;
    stack[sp++] = root;
    flags[root] |= 2;
    cs_node[csp] = root;
    cs_edge[csp++] = 0;
    while (csp) {
        uint32_t v = cs_node[csp - 1], k = cs_edge[csp - 1];
        if (k < n_refs(strs, offs[v], by_value)) {
            uint32_t t = ref_at(w, offs[v], k), u;
            cs_edge[csp - 1] = k + 1;
            if (t == 0 || t < first_id)
                continue;
            if ((uint64_t)t - first_id >= count) {
                state[0] = counter;
                return -1;
            }
            u = t - first_id;
            if (u == v) {
                flags[v] |= 1;
            } else if (!idx[u]) {
                idx[u] = low[u] = ++counter;
                stack[sp++] = u;
                flags[u] |= 2;
                cs_node[csp] = u;
                cs_edge[csp++] = 0;
            } else if ((flags[u] & 2) && idx[u] < low[v]) {
                low[v] = idx[u];
            }
            continue;
        }
        csp--;
        if (low[v] == idx[v]) {
            /* v roots a component: pop it; more than one member is a cycle. */
            size_t top = sp;
            while (stack[--sp] != v)
                ;
            for (size_t j = sp; j < top; j++) {
                flags[stack[j]] &= (uint8_t)~2;
                if (top - sp > 1)
                    flags[stack[j]] |= 1;
            }
        }
        if (csp && low[v] < low[cs_node[csp - 1]])
            low[cs_node[csp - 1]] = low[v];
    }
    state[0] = counter;
    return 0;
}
