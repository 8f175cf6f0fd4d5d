/* The least_loaded strategy plugin has no public API: its one export is swy_plugin_entry. */
