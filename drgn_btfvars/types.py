"""Conversion of BTF types to drgn types.

:class:`TypeConverter` turns a type id of a :class:`~drgn_btfvars.btf.Btf`
(the vmlinux base BTF, a module's split BTF or the variable BTF) into a drgn
:class:`~drgn.Type`, aiming for exactly what drgn builds from the kernel's
DWARF:

* Converted types are cached per BTF object and type id: drgn never frees or
  deduplicates the structure, union, enum and function types it is given.
* Structure and union members are converted lazily (drgn accepts a callable
  for a member's type), so converting ``struct task_struct`` does not convert
  everything it reaches.
* A ``FWD`` declaration is completed from any loaded BTF that defines the same
  tag (the same chain first, then vmlinux, then the other modules).
* ``char`` keeps the signedness the BTF records (pahole copies it from the
  DWARF base type, so x86's ``-funsigned-char`` since Linux 6.2 is honoured).
* BTF cannot tell an array of unknown size (``int x[]``) from a zero-length
  array (``int x[0]``): both are arrays of 0 elements. A 0-element array is
  shown as ``[]`` (a flexible array member, a pointer to an array of unknown
  size) except as a structure member that is not the last one, where only the
  GNU zero-length form is valid C. The kernel still has a few zero-length
  arrays as a last member (9–15 per kernel, against ~900 flexible arrays);
  those show as ``[]`` where DWARF says ``[0]``.
* ``TYPE_TAG`` is transparent and ``DECL_TAG`` is ignored for typing.

This module knows nothing of where BTF bytes come from.
"""

from typing import Callable, Dict, List, Optional, Tuple

from drgn import (
    Language,
    Object,
    Program,
    Qualifiers,
    Type,
    TypeEnumerator,
    TypeKind,
    TypeMember,
    TypeParameter,
)

from drgn_btfvars.btf import Btf, BtfError, BtfKind, BtfType

__all__ = ("TypeConverter", "BtfConversionError", "owner_of")

_QUALIFIER_KINDS = {
    BtfKind.CONST: Qualifiers.CONST,
    BtfKind.VOLATILE: Qualifiers.VOLATILE,
    BtfKind.RESTRICT: Qualifiers.RESTRICT,
}

# The name GCC's DWARF gives an enum's underlying type (DW_AT_type of the
# enumeration), by (size, signed).
_ENUM_COMPATIBLE_NAMES = {
    (1, False): "unsigned char",
    (1, True): "signed char",
    (2, False): "short unsigned int",
    (2, True): "short int",
    (4, False): "unsigned int",
    (4, True): "int",
    (8, False): "long unsigned int",
    (8, True): "long int",
}

_COMPOUND_KINDS = (int(BtfKind.STRUCT), int(BtfKind.UNION))
_UNKNOWN = object()
_BTF_INT_SIGNED = 1
_BTF_INT_BOOL = 4
# Bounds a qualifier/typedef chain; BTF with a longer one is malformed.
_MAX_CHAIN = 64
# Bounds types converted inside one another (pointer to array of typedef ...);
# real kernels nest a dozen at most, corrupt BTF could recurse without end.
_MAX_DEPTH = 100


class BtfConversionError(BtfError):
    """A BTF type that cannot be represented as a drgn type."""


def _underlying(t: Type) -> Type:
    """``t`` without its typedefs (drgn builds typedef chains eagerly: finite)."""
    while t.kind == TypeKind.TYPEDEF:
        t = t.type
    return t


def owner_of(btf: Btf, type_id: int) -> Btf:
    """Return the BTF object of ``btf``'s chain that defines ``type_id``."""
    b: Optional[Btf] = btf
    while b is not None:
        if type_id >= b.first_id:
            if type_id >= b.end_id:
                break
            return b
        b = b.base
    raise BtfError(f"type id {type_id} is out of range for BTF {btf.name or '?'}")


class _MemberThunk:
    """A member's type, converted when drgn first asks (one object, where a
    closure or partial takes three or more: conversion makes thousands)."""

    __slots__ = ("conv", "owner", "type_id", "bit_field_size", "zero_length", "key")

    def __init__(self, conv: "TypeConverter", owner: Btf, type_id: int, bit_field_size: int,
                 zero_length: bool, key: object) -> None:
        self.conv, self.owner, self.type_id = conv, owner, type_id
        self.bit_field_size, self.zero_length, self.key = bit_field_size, zero_length, key

    def __call__(self) -> object:
        return self.conv._member_thunk(self.owner, self.type_id, self.bit_field_size,
                                       self.zero_length, self.key)


class TypeConverter:
    """Converts BTF types to drgn types for one program.

    :param prog: The program the types belong to.
    :param complete_fwd: Called with ``(btf, tag, is_union)`` for a ``FWD``;
        returns ``(btf, type_id)`` of a complete definition or ``None``.
    """

    def __init__(
        self,
        prog: Program,
        complete_fwd: Optional[Callable[[Btf, str, bool], Optional[Tuple[Btf, int]]]] = None,
    ) -> None:
        self.prog = prog
        self._complete_fwd = complete_fwd
        # id(btf) -> {type_id: Type}; the Btf objects are kept alive by
        # _btfs so that id() values are never reused.
        self._cache: Dict[int, Dict[int, Type]] = {}
        # id(btf) -> {type_id: Type} of what type() returned (qualifiers applied).
        self._done: Dict[int, Dict[int, Type]] = {}
        self._int_fields: Dict[int, Dict[int, Optional[Tuple[int, int]]]] = {}
        # id(btf) -> {member key: Type, Object or thunk} (see _member).
        self._members: Dict[int, Dict[object, object]] = {}
        self._btfs: Dict[int, Btf] = {}
        self._int_by_name: Dict[Tuple[str, int, bool], Type] = {}
        self._language = Language.C
        self._active: set = set()  # (id(btf), type_id) being converted

    # Public API

    def type(self, btf: Btf, type_id: int) -> Type:
        """Return the drgn type for ``type_id`` of ``btf`` (any id of its chain)."""
        done = self._done.get(id(btf))
        if done is None:
            done = self._per_btf(self._done, btf)
        result = done.get(type_id)
        if result is None:
            result = done[type_id] = self._guarded(btf, type_id)
        return result

    def converted(self, btf: Btf) -> Dict[int, Type]:
        """The types :meth:`type` has returned for ids of ``btf``, by id: the
        cache itself (kept up to date; read it, never write it)."""
        return self._per_btf(self._done, btf)

    def _per_btf(self, store: Dict[int, Dict[int, Type]], btf: Btf) -> Dict[int, Type]:
        """``store``'s dict for ``btf`` (made on first use; the Btf is kept
        alive in _btfs so that its id() is never reused)."""
        d = store.get(id(btf))
        if d is None:
            d = store[id(btf)] = {}
            self._btfs[id(btf)] = btf
        return d

    def _guarded(self, btf: Btf, type_id: int) -> Type:
        """:meth:`_qualified`, refusing reference cycles (which only corrupt
        BTF has: struct and union members and parameters are converted lazily,
        so a real cycle always goes through one of them), absurd nesting, and
        whatever drgn itself refuses to build, as BtfConversionError."""
        key = (id(btf), type_id)
        active = self._active
        if key in active:
            raise BtfConversionError(f"{btf.name or 'BTF'}: type id {type_id}: reference cycle "
                                     "(the type refers to itself with no struct or union in "
                                     "between)")
        if len(active) >= _MAX_DEPTH:
            raise BtfConversionError(f"{btf.name or 'BTF'}: type id {type_id}: types nested "
                                     f"more than {_MAX_DEPTH} deep")
        active.add(key)
        try:
            return self._qualified(btf, type_id)
        except (ValueError, OverflowError) as e:  # drgn refuses it (e.g. a name not UTF-8)
            raise BtfConversionError(f"{btf.name or 'BTF'}: type id {type_id}: {e}") from e
        finally:
            active.discard(key)

    def _qualified(self, btf: Btf, type_id: int) -> Type:
        if type_id == 0:
            return self.prog.void_type(language=self._language)
        qualifiers = Qualifiers.NONE
        owner = owner_of(btf, type_id)
        t: Optional[BtfType] = None
        for _ in range(_MAX_CHAIN):
            if owner.raw_kind(type_id) in _COMPOUND_KINDS:
                t = None  # read raw by _compound: no decoded record
                break
            t = owner.record(type_id)
            q = _QUALIFIER_KINDS.get(t.kind)
            if q is not None:
                qualifiers |= q
            elif t.kind != BtfKind.TYPE_TAG:
                break
            type_id = t.type
            if type_id == 0:
                return self.prog.void_type(qualifiers=qualifiers, language=self._language)
            owner = owner_of(owner, type_id)
        else:
            raise BtfConversionError(
                f"type id {type_id}: qualifier chain longer than {_MAX_CHAIN}"
            )
        result = self._unqualified(owner, type_id, t)
        if qualifiers:
            result = result.qualified(result.qualifiers | qualifiers)
        return result

    def enum_compatible_type(self, size: int, signed: bool) -> Type:
        """The integer type drgn's DWARF reader gives an enum of that size."""
        name = _ENUM_COMPATIBLE_NAMES.get((size, signed))
        if name is None:
            raise BtfConversionError(f"no integer type for an enum of {size} bytes")
        return self._int_type(name, size, signed)

    # Internals

    def _unqualified(self, owner: Btf, type_id: int, t: Optional[BtfType]) -> Type:
        """The type of ``type_id`` without qualifiers: ``t`` is its decoded
        record, or None for a STRUCT or UNION (read raw)."""
        cache = self._cache.get(id(owner))
        if cache is None:
            cache = self._per_btf(self._cache, owner)
        result = cache.get(type_id)
        if result is None:
            result = self._compound(owner, type_id) if t is None else self._convert(owner, t)
            cache[type_id] = result
        return result

    def _int_type(self, name: str, size: int, signed: bool) -> Type:
        key = (name, size, signed)
        t = self._int_by_name.get(key)
        if t is None:
            t = self.prog.int_type(name, size, signed, language=self._language)
            self._int_by_name[key] = t
        return t

    def _convert(self, owner: Btf, t: BtfType) -> Type:
        prog = self.prog
        kind = t.kind
        lang = self._language
        if kind == BtfKind.INT:
            if t.int_encoding & _BTF_INT_BOOL:
                return prog.bool_type(t.name, t.size, language=lang)
            return self._int_type(t.name, t.size, bool(t.int_encoding & _BTF_INT_SIGNED))
        if kind == BtfKind.FLOAT:
            return prog.float_type(t.name, t.size, language=lang)
        if kind == BtfKind.PTR:
            return prog.pointer_type(self.type(owner, t.type), language=lang)
        if kind == BtfKind.ARRAY:
            elem = self.type(owner, t.array_type)
            u = _underlying(elem)
            if u.kind == TypeKind.FUNCTION or not u.is_complete():  # C has no arrays of those
                raise BtfConversionError(f"{owner.name or 'BTF'}: type id {t.id}: an array "
                                         "of void, of functions or of an incomplete type")
            return prog.array_type(elem, t.array_nelems or None, language=lang)
        if kind == BtfKind.TYPEDEF:
            return prog.typedef_type(t.name, self._lazy_typedef_target(owner, t.type),
                                     language=lang)
        if kind == BtfKind.FUNC_PROTO:
            self._refuse_cycle(owner, t.id, kind)
        if kind in (BtfKind.STRUCT, BtfKind.UNION):
            return self._compound(owner, t.id)
        if kind in (BtfKind.ENUM, BtfKind.ENUM64):
            return self._enum(owner, t)
        if kind == BtfKind.FWD:
            return self._fwd(owner, t)
        if kind == BtfKind.FUNC_PROTO:
            return self._function(owner, t)
        if kind == BtfKind.FUNC:
            return self.type(owner, t.type)
        if kind == BtfKind.VAR:
            return self.type(owner, t.type)
        raise BtfConversionError(f"type id {t.id}: BTF kind {kind.name} is not a C type")

    def _lazy_typedef_target(self, owner: Btf, type_id: int) -> Type:
        # drgn's typedef_type needs the target eagerly; typedefs of structs are
        # cheap since struct members are lazy.
        return self.type(owner, type_id)

    def _refuse_cycle(self, owner: Btf, type_id: int, kind: BtfKind) -> None:
        # Members and parameters are converted lazily: a cycle through them
        # would only show when drgn prints or sizes the type.
        if owner.contains_itself(type_id) or owner.unnamed_cycle(type_id):
            raise BtfConversionError(f"{owner.name or 'BTF'}: type id {type_id}: {kind.name} "
                                     "refers to itself by value or without a named "
                                     "struct or union in between")

    def _member(self, owner: Btf, type_id: int, bit_field_size: int,
                zero_length: bool) -> object:
        """What a TypeMember takes for a member of type ``type_id``: the Type
        (or bit-field Object) when that type is converted already, else a
        thunk that converts it when drgn first asks. One per type id and form
        (per BTF object): members share a few thousand types."""
        key: object = (type_id, bit_field_size) if bit_field_size else (
            ~type_id if zero_length else type_id)
        members = self._members.get(id(owner))
        if members is None:
            members = self._members[id(owner)] = {}
        found = members.get(key)
        if found is None:
            done = self._done.get(id(owner))
            mt = done.get(type_id) if done is not None else None
            if mt is not None:
                try:
                    found = self._member_value(owner, type_id, mt, bit_field_size, zero_length)
                except BtfConversionError:  # raised when drgn asks, as for any member
                    pass
            if found is None:
                found = _MemberThunk(self, owner, type_id, bit_field_size, zero_length, key)
            members[key] = found
        return found

    def _member_thunk(self, owner: Btf, type_id: int, bit_field_size: int, zero_length: bool,
                      key: object) -> object:
        result = self._member_value(owner, type_id, self.type(owner, type_id), bit_field_size,
                                    zero_length)
        self._members[id(owner)][key] = result  # later structures take it as it is
        return result

    def _member_value(self, owner: Btf, type_id: int, mt: Type, bit_field_size: int,
                      zero_length: bool) -> object:
        if _underlying(mt).kind in (TypeKind.FUNCTION, TypeKind.VOID):
            raise BtfConversionError(f"{owner.name or 'BTF'}: type id {type_id}: a member "
                                     "cannot be a function or void")
        if bit_field_size:
            try:
                return Object(self.prog, mt, bit_field_size=bit_field_size)
            except ValueError as e:  # e.g. wider than its type
                raise BtfConversionError(f"{owner.name or 'BTF'}: bit field of type id "
                                         f"{type_id}: {e}") from e
        if zero_length and mt.kind == TypeKind.ARRAY and mt.length is None:
            # A member before a struct's last: a 0-element array is [0].
            return self.prog.array_type(mt.type, 0, qualifiers=mt.qualifiers,
                                        language=self._language)
        return mt

    def _compound(self, owner: Btf, type_id: int) -> Type:
        name, size, kind_flag, raw = owner.compound(type_id)
        is_struct = owner.raw_kind(type_id) == BtfKind.STRUCT
        self._refuse_cycle(owner, type_id, BtfKind.STRUCT if is_struct else BtfKind.UNION)
        members: List[TypeMember] = []
        last = len(raw) - 1
        member = self._member
        int_fields = self._int_fields.get(id(owner))
        if int_fields is None:
            int_fields = self._int_fields[id(owner)] = {}
        for i, (m_name, m_type, bit_offset, bit_field_size) in enumerate(raw):
            if not kind_flag:
                # Old encoding: the bit-field width (and an extra offset) are
                # in the member's INT type.
                int_field = int_fields.get(m_type, _UNKNOWN)
                if int_field is _UNKNOWN:
                    int_field = self._int_field(owner, m_type)
                if int_field is not None:
                    bit_offset += int_field[0]
                    bit_field_size = int_field[1]
            if bit_offset + bit_field_size > 8 * size:  # (a flexible array may start at the end)
                raise BtfConversionError(f"{owner.name or 'BTF'}: type id {type_id}: member "
                                         f"{m_name!r} at bit {bit_offset} is past the end of "
                                         f"the {size}-byte {'STRUCT' if is_struct else 'UNION'}")
            members.append(TypeMember(
                member(owner, m_type, bit_field_size, i != last and is_struct),
                m_name or None, bit_offset))
        make = self.prog.struct_type if is_struct else self.prog.union_type
        return make(name or None, size, members, language=self._language)

    def _int_field(self, owner: Btf, type_id: int) -> Optional[Tuple[int, int]]:
        """(extra bit offset, bit width) when ``type_id`` resolves to an INT
        narrower than its size (a bit field in the old encoding), else None;
        cached per type id (members share a few types)."""
        cache = self._int_fields.get(id(owner))
        if cache is None:
            cache = self._int_fields[id(owner)] = {}
        if type_id in cache:
            return cache[type_id]
        result = owner.int_bit_field(type_id) if type_id else None
        cache[type_id] = result
        return result

    def _enum(self, owner: Btf, t: BtfType) -> Type:
        signed = bool(t.kind_flag)
        if not signed and any(e.value < 0 for e in t.enumerators):
            signed = True
        if not signed and any(e.value >> (8 * t.size - 1) for e in t.enumerators) and \
                not owner.marks_signed_enums():
            # BTF before Linux 6.0 does not say which enums are signed: a value
            # with its sign bit set is -1 or 0xffffffff (both occur, and the
            # compatible type follows). Not found is better than a wrong type.
            raise BtfConversionError(
                f"{owner.name or 'BTF'}: type id {t.id}: enum {t.name or '(anonymous)'}: a "
                "value has its sign bit set and this BTF predates signed enums (Linux 6.0): "
                "signed or not is unknown")
        compatible = self.enum_compatible_type(t.size, signed)
        enumerators = [TypeEnumerator(e.name, e.value) for e in t.enumerators]
        return self.prog.enum_type(t.name or None, compatible, enumerators,
                                   language=self._language)

    def _fwd(self, owner: Btf, t: BtfType) -> Type:
        if not t.name:
            raise BtfConversionError(f"{owner.name or 'BTF'}: type id {t.id}: a FWD without "
                                     "a name")
        if self._complete_fwd is not None and t.name:
            found = self._complete_fwd(owner, t.name, t.fwd_union)
            if found is not None:
                btf, type_id = found
                return self.type(btf, type_id)
        make = self.prog.union_type if t.fwd_union else self.prog.struct_type
        return make(t.name or None, language=self._language)

    def _function(self, owner: Btf, t: BtfType) -> Type:
        params = [
            TypeParameter(self._param_thunk(owner, p.type), p.name or None) for p in t.params
        ]
        ret = self.type(owner, t.type)
        if _underlying(ret).kind in (TypeKind.FUNCTION, TypeKind.ARRAY):
            raise BtfConversionError(f"{owner.name or 'BTF'}: type id {t.id}: a function "
                                     "cannot return a function or an array")
        return self.prog.function_type(ret, params, t.variadic, language=self._language)

    def _param_thunk(self, owner: Btf, type_id: int) -> Callable[[], Type]:
        def thunk() -> Type:
            pt = self.type(owner, type_id)
            if _underlying(pt).kind in (TypeKind.FUNCTION, TypeKind.VOID):
                raise BtfConversionError(f"{owner.name or 'BTF'}: type id {type_id}: a "
                                         "parameter cannot be void or a function")
            return pt

        return thunk
