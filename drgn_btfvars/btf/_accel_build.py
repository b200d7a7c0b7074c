"""cffi build script for the optional BTF accelerator ``drgn_btfvars.btf._accel``.

setup.py lists it in ``cffi_modules``; its build_ext never fails the install, and
the reader falls back to pure Python when the module cannot be imported.
The C source is the hand-written ``btf_accel_impl.c`` next to this file.
"""

import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

CDEF = """
int btfv_walk(const uint32_t *w, size_t n, const int32_t *fix, const uint32_t *ele,
              uint32_t *offs, size_t *count, uint32_t *err);
uint32_t btfv_max_name_off(const uint32_t *w, const uint32_t *offs, size_t count);
void btfv_kinds(const uint32_t *w, const uint32_t *offs, size_t count, uint8_t *out);
long btfv_find_word(const uint32_t *w, size_t n, uint32_t value, size_t from);
struct btfv_names {
    const uint32_t *w;
    const uint32_t *offs;
    size_t count;
    const char *const *segs;
    const uint32_t *start;
    const uint32_t *len;
    int nseg;
    uint32_t *table;
    uint32_t mask;
    uint32_t *hashes;
    uint32_t *link;
};
long btfv_index_build(struct btfv_names *ix);
long btfv_index_find(const struct btfv_names *ix, const char *name, size_t n, uint32_t *out,
                     size_t max);
size_t btfv_var_locations(const uint32_t *w, const uint32_t *offs, size_t count,
                          uint32_t first_id, uint32_t *sec, uint32_t *off);
long btfv_var_find(const struct btfv_names *ix, const char *name, size_t n);
int btfv_cycles(const struct btfv_names *strs, uint32_t first_id, uint32_t root, int by_value,
                uint32_t *state, uint32_t *idx, uint32_t *low, uint32_t *stack,
                uint32_t *cs_node, uint32_t *cs_edge, uint8_t *flags);
size_t btfv_enum_name_words(const uint32_t *w, const uint32_t *offs, size_t count,
                            uint32_t *out);
"""

ffibuilder = FFI()
ffibuilder.cdef(CDEF)
# The implementation is compiled as a second source of the extension (so setuptools
# also puts it in an sdist); the generated wrapper only needs the prototypes.
_IMPL = os.path.relpath(os.path.join(HERE, "btf_accel_impl.c"))
ffibuilder.set_source("drgn_btfvars.btf._accel", "#include <stddef.h>\n#include <stdint.h>\n" + CDEF,
                      sources=[_IMPL], extra_compile_args=["-O2"])

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=os.path.join(HERE, "..", ".."), verbose=True)
