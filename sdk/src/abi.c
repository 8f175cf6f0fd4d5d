/* The ABI target carries the header; this file gives the C target a source
 * and checks at compile time that the layout promises of ABI 1 hold. */
#include "switchyard.h"

_Static_assert(sizeof(swy_status_t) == 4, "swy_status_t is a 32-bit enum");
_Static_assert(sizeof(swy_worker_state_t) == 4, "swy_worker_state_t is a 32-bit enum");
_Static_assert(sizeof(swy_strategy_event_kind_t) == 4, "swy_strategy_event_kind_t is a 32-bit enum");
_Static_assert(offsetof(swy_plugin_t, abi_version) == 0, "abi_version comes first");
_Static_assert(offsetof(swy_plugin_t, struct_size) == 4, "struct_size comes second");
_Static_assert(offsetof(swy_handler_t, struct_size) == 0, "handler struct_size comes first");
_Static_assert(offsetof(swy_task_t, struct_size) == 0, "task struct_size comes first");
_Static_assert(offsetof(swy_host_api_t, struct_size) == 4, "host api struct_size comes second");

/* Dispatch strategies: struct_size first in every struct that can grow. */
_Static_assert(offsetof(swy_worker_view_t, struct_size) == 0, "worker view struct_size comes first");
_Static_assert(offsetof(swy_workers_t, struct_size) == 0, "workers struct_size comes first");
_Static_assert(offsetof(swy_task_meta_t, struct_size) == 0, "task meta struct_size comes first");
_Static_assert(offsetof(swy_strategy_event_t, struct_size) == 0, "event struct_size comes first");
_Static_assert(offsetof(swy_strategy_t, struct_size) == 0, "strategy struct_size comes first");
_Static_assert(SWY_PICK_HOLD == -1, "SWY_PICK_HOLD is -1");

/* The first ABI 1 layout on LP64 (64-bit Linux and macOS), as sdk/ABI.md lists it.
 * Reorder or retype nothing here: append, and leave these sizes as the minimum. */
#if UINTPTR_MAX == 0xFFFFFFFFFFFFFFFFu && SIZE_MAX == 0xFFFFFFFFFFFFFFFFu
/* The first ABI 1 layout of swy_plugin_t ends at 56 bytes; self_test was appended after it. */
_Static_assert(offsetof(swy_plugin_t, self_test) == 56, "swy_plugin_t's first ABI 1 layout is 56 bytes on LP64");
_Static_assert(sizeof(swy_plugin_t) == 64, "swy_plugin_t is 64 bytes on LP64 with self_test");
_Static_assert(offsetof(swy_plugin_t, strategy_count) == 40, "strategy_count at 40");
_Static_assert(offsetof(swy_plugin_t, strategies) == 48, "strategies at 48");
_Static_assert(sizeof(swy_handler_t) == 48, "swy_handler_t is 48 bytes on LP64");
_Static_assert(sizeof(swy_task_t) == 48, "swy_task_t is 48 bytes on LP64");
_Static_assert(sizeof(swy_host_api_t) == 48, "swy_host_api_t is 48 bytes on LP64");

_Static_assert(sizeof(swy_worker_view_t) == 56, "swy_worker_view_t is 56 bytes on LP64");
_Static_assert(offsetof(swy_worker_view_t, in_flight) == 16, "in_flight at 16");
_Static_assert(offsetof(swy_worker_view_t, tasks_done) == 24, "tasks_done at 24");
_Static_assert(offsetof(swy_worker_view_t, handler_bits) == 40, "handler_bits at 40");
_Static_assert(sizeof(swy_workers_t) == 24, "swy_workers_t is 24 bytes on LP64");
_Static_assert(offsetof(swy_workers_t, views) == 16, "views at 16");
_Static_assert(sizeof(swy_task_meta_t) == 56, "swy_task_meta_t is 56 bytes on LP64");
_Static_assert(offsetof(swy_task_meta_t, key_len) == 32, "key_len at 32");
_Static_assert(offsetof(swy_task_meta_t, payload_size) == 48, "payload_size at 48");
_Static_assert(sizeof(swy_strategy_event_t) == 32, "swy_strategy_event_t is 32 bytes on LP64");
_Static_assert(offsetof(swy_strategy_event_t, service_ns) == 24, "service_ns at 24");
_Static_assert(sizeof(swy_strategy_t) == 56, "swy_strategy_t is 56 bytes on LP64");
_Static_assert(offsetof(swy_strategy_t, pick) == 32, "pick at 32");
_Static_assert(offsetof(swy_strategy_t, reserved) == 48, "reserved at 48");
#endif

/* The ABI version of this header, for hosts that want to report it. */
unsigned swy_abi_version(void) { return SWY_ABI_VERSION; }
