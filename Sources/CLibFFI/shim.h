/* libffi for Swift. Swift 6 refuses `&ffi_type_double` (a mutable C global), so each
 * ffi_type the host uses is reached through an accessor. OWNERSHIP: libffi; the
 * pointers are valid for the life of the process and must not be modified. */
#ifndef SWY_CLIBFFI_SHIM_H
#define SWY_CLIBFFI_SHIM_H

#include <ffi.h>

static inline ffi_type *swy_ffi_type_void(void) { return &ffi_type_void; }
static inline ffi_type *swy_ffi_type_uint8(void) { return &ffi_type_uint8; }
static inline ffi_type *swy_ffi_type_sint8(void) { return &ffi_type_sint8; }
static inline ffi_type *swy_ffi_type_uint16(void) { return &ffi_type_uint16; }
static inline ffi_type *swy_ffi_type_sint16(void) { return &ffi_type_sint16; }
static inline ffi_type *swy_ffi_type_uint32(void) { return &ffi_type_uint32; }
static inline ffi_type *swy_ffi_type_sint32(void) { return &ffi_type_sint32; }
static inline ffi_type *swy_ffi_type_uint64(void) { return &ffi_type_uint64; }
static inline ffi_type *swy_ffi_type_sint64(void) { return &ffi_type_sint64; }
static inline ffi_type *swy_ffi_type_float(void) { return &ffi_type_float; }
static inline ffi_type *swy_ffi_type_double(void) { return &ffi_type_double; }
static inline ffi_type *swy_ffi_type_pointer(void) { return &ffi_type_pointer; }

/* ffi_prep_cif with the platform's default calling convention (FFI_DEFAULT_ABI is
 * an enum constant whose spelling differs across targets). */
static inline ffi_status swy_ffi_prep_cif(ffi_cif *cif, unsigned int nargs, ffi_type *rtype, ffi_type **atypes) {
    return ffi_prep_cif(cif, FFI_DEFAULT_ABI, nargs, rtype, atypes);
}

#endif
