// wordcount: the shipped Swift plugin. UTF-8 text in, counts out as JSON:
//   {"bytes":N,"characters":N,"lines":N,"words":N}
// Payloads that are not valid UTF-8 fail permanently. See WordCount.swift for what is counted.
import SwitchyardPluginSDK

/// The plugin's entry point: the one symbol the host looks up after `dlopen`.
@_cdecl("swy_plugin_entry")
public func swy_plugin_entry() -> UnsafeRawPointer {
    SwitchyardPlugin.export(
        name: "wordcount", version: "1.0.0",
        handlers: [
            TaskHandler("wordcount") { task in
                guard let counts = task.withPayloadBytes({ WordCount(utf8: $0) }) else {
                    return .failure("wordcount: payload is not valid UTF-8")
                }
                return .success(counts.json)
            }
        ])
}
