/* The round_robin strategy plugin has no public API: its one export is swy_plugin_entry. */
