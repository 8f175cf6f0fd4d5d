/* The ABI target carries the header; this file gives the C target a source
 * and checks at compile time that the layout promises of ABI 1 hold. */
#include "switchyard.h"

_Static_assert(sizeof(swy_status_t) == 4, "swy_status_t is a 32-bit enum");
_Static_assert(offsetof(swy_plugin_t, abi_version) == 0, "abi_version comes first");
_Static_assert(offsetof(swy_plugin_t, struct_size) == 4, "struct_size comes second");
_Static_assert(offsetof(swy_handler_t, struct_size) == 0, "handler struct_size comes first");
_Static_assert(offsetof(swy_task_t, struct_size) == 0, "task struct_size comes first");
_Static_assert(offsetof(swy_host_api_t, struct_size) == 4, "host api struct_size comes second");

/* The ABI version of this header, for hosts that want to report it. */
unsigned swy_abi_version(void) { return SWY_ABI_VERSION; }
