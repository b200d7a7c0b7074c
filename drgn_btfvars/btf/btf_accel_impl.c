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

/* The strings of a chain: segment j holds offsets [start[j], start[j] + len[j]). */
static const char *chain_str(const char *const *segs, const uint32_t *start,
                             const uint32_t *len, int nseg, uint32_t off)
{
    for (int j = nseg - 1; j >= 0; j--)
        if (off >= start[j] && off - start[j] < len[j])
            return segs[j] + (off - start[j]);
    return NULL;
}

static uint32_t hash_str(const char *s, size_t *lenp)
{
    /* FNV-1a, 32 bit. */
    uint32_t h = 2166136261u;
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    while (p[n]) {
        h ^= p[n++];
        h *= 16777619u;
    }
    if (lenp)
        *lenp = n;
    return h;
}

static uint32_t hash_mem(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

/*
 * Build the name index: an open-addressing table (size a power of two,
 * mask = size - 1) of record index + 1 (0 = empty), for every named record.
 * Linear probing keeps records of one name in ascending id order.
 * hashes (count entries) receives each record's name hash.
 * Returns the number of named records, or -1 if a name offset has no string.
 */
long btfv_index_build(const uint32_t *w, const uint32_t *offs, size_t count,
                      const char *const *segs, const uint32_t *start, const uint32_t *len,
                      int nseg, uint32_t *table, uint32_t mask, uint32_t *hashes)
{
    long named = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t no = w[offs[i]], h, slot;
        const char *s;
        if (!no)
            continue;
        s = chain_str(segs, start, len, nseg, no);
        if (!s)
            return -1;
        h = hash_str(s, NULL);
        hashes[i] = h;
        slot = h & mask;
        while (table[slot])
            slot = (slot + 1) & mask;
        table[slot] = (uint32_t)i + 1;
        named++;
    }
    return named;
}

/* Record indexes named name[0:n], ascending, into out (max entries); returns how many
   there are (may exceed max: call again with a larger buffer). */
long btfv_index_find(const char *name, size_t n, const uint32_t *w, const uint32_t *offs,
                     const char *const *segs, const uint32_t *start, const uint32_t *len,
                     int nseg, const uint32_t *table, uint32_t mask, const uint32_t *hashes,
                     uint32_t *out, size_t max)
{
    uint32_t h = hash_mem(name, n), slot = h & mask;
    long found = 0;
    while (table[slot]) {
        uint32_t i = table[slot] - 1;
        if (hashes[i] == h) {
            const char *s = chain_str(segs, start, len, nseg, w[offs[i]]);
            if (s && memcmp(s, name, n) == 0 && s[n] == '\0') {
                if ((size_t)found < max)
                    out[found] = i;
                found++;
            }
        }
        slot = (slot + 1) & mask;
    }
    return found;
}
