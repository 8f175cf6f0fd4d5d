import SwitchyardABI
import SwitchyardCore

/// One handler from a loaded plugin, with its hooks as typed function pointers.
struct PluginHandler {
    typealias Start = @convention(c) (
        OpaquePointer?, UnsafePointer<swy_host_api_t>?, UnsafeMutableRawPointer?,
        UnsafeMutablePointer<UnsafeMutableRawPointer?>?
    ) -> Int32
    typealias Message = @convention(c) (
        OpaquePointer?, UnsafePointer<swy_host_api_t>?, UnsafePointer<swy_task_t>?, UnsafeMutableRawPointer?,
        UnsafeMutableRawPointer?
    ) -> swy_status_t
    typealias Stop = @convention(c) (
        OpaquePointer?, UnsafePointer<swy_host_api_t>?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?
    ) -> Void

    let name: String
    /// The name as the C string handed to on_message (the plugin's own, which outlives the process).
    let cName: UnsafePointer<CChar>
    let plugin: String
    let pluginVersion: String
    let file: String
    let handlerData: UnsafeMutableRawPointer?
    let onWorkerStart: Start?
    let onMessage: Message
    let onWorkerStop: Stop?
}

/// A plugin file that passed every check, and its handlers.
struct LoadedPlugin {
    let file: String
    let name: String
    let version: String
    let handlers: [PluginHandler]
    /// Handlers of this file that were refused (bad name, no on_message).
    let refused: [SkippedPlugin]
    /// The plugin's self-test, if it has one (run only in a reload's probe worker).
    let selfTest: (@convention(c) (OpaquePointer?, UnsafePointer<swy_host_api_t>?) -> Int32)?
}

/// Loads plugin files and checks them against ABI 1. Runs in worker processes.
enum PluginLoader {
    static let abiVersion = UInt32(SWY_ABI_VERSION)
    static let entrySymbol = SWY_PLUGIN_ENTRY_SYMBOL

    struct Refusal: Error, CustomStringConvertible {
        var description: String
    }

    /// Opens `file` and validates its descriptor.
    static func load(_ file: String) throws -> LoadedPlugin {
        let library: DynamicLibrary
        do {
            library = try DynamicLibrary(path: file)
        } catch {
            throw Refusal(description: "not a loadable shared object: \(error)")
        }
        guard let entryAddress = library.symbol(entrySymbol) else {
            throw Refusal(
                description:
                    "does not export `\(entrySymbol)`; a Switchyard plugin must define `const swy_plugin_t *swy_plugin_entry(void)` (see sdk/ABI.md)"
            )
        }
        typealias Entry = @convention(c) () -> UnsafePointer<swy_plugin_t>?
        let entry = unsafeBitCast(entryAddress, to: Entry.self)
        guard let descriptorPointer = entry() else {
            throw Refusal(description: "`\(entrySymbol)` returned NULL instead of a plugin descriptor")
        }
        // Read the two leading fields first: they are the same in every ABI version.
        let raw = UnsafeRawPointer(descriptorPointer)
        let version = raw.loadUnaligned(as: UInt32.self)
        let structSize = raw.loadUnaligned(fromByteOffset: 4, as: UInt32.self)
        guard version == abiVersion else {
            throw Refusal(
                description:
                    "was built for plugin ABI \(version); this host speaks ABI \(abiVersion): rebuild it against this host's sdk/include/switchyard.h"
            )
        }
        guard structSize >= pluginDescriptorFirstSize else {
            throw Refusal(
                description:
                    "declares a plugin descriptor of \(structSize) bytes; ABI \(abiVersion) needs at least \(pluginDescriptorFirstSize): rebuild it against this host's sdk/include/switchyard.h"
            )
        }
        let descriptor = readPluginDescriptor(raw, structSize: structSize)
        let pluginName = descriptor.name.map { String(cString: $0) } ?? ""
        let pluginVersion = descriptor.version.map { String(cString: $0) } ?? ""
        guard !pluginName.isEmpty else {
            throw Refusal(description: "has an empty plugin name")
        }
        guard descriptor.strategy_count == 0 else {
            // A strategy plugin is loaded by the host itself (StrategyLibrary), never by workers.
            throw Refusal(
                description:
                    "declares dispatch strategies: it is a strategy plugin, which the host loads itself, not a handler plugin for workers (see sdk/ABI.md, Dispatch strategies)"
            )
        }
        guard descriptor.handler_count == 0 || descriptor.handler_size >= MemoryLayout<swy_handler_t>.size else {
            throw Refusal(
                description:
                    "declares handlers of \(descriptor.handler_size) bytes; ABI \(abiVersion) needs at least \(MemoryLayout<swy_handler_t>.size)"
            )
        }
        guard descriptor.handler_count <= 4096, descriptor.handler_count == 0 || descriptor.handlers != nil else {
            throw Refusal(description: "declares \(descriptor.handler_count) handlers but no valid handler array")
        }

        var handlers: [PluginHandler] = []
        var refused: [SkippedPlugin] = []
        let base = UnsafeRawPointer(descriptor.handlers)
        for index in 0..<Int(descriptor.handler_count) {
            // Step by the plugin's own stride so later, larger handler structs still read right.
            let handler = base!.advanced(by: index * Int(descriptor.handler_size)).loadUnaligned(as: swy_handler_t.self)
            guard let cName = handler.name else {
                refused.append(SkippedPlugin(file: file, reason: "handler #\(index) has no name"))
                continue
            }
            let name = String(cString: cName)
            if let problem = HandlerName.validate(name) {
                refused.append(SkippedPlugin(file: file, reason: "handler #\(index): \(problem)"))
                continue
            }
            guard let onMessage = handler.on_message else {
                refused.append(SkippedPlugin(file: file, reason: "handler `\(name)` has no on_message hook"))
                continue
            }
            handlers.append(
                PluginHandler(
                    name: name, cName: cName, plugin: pluginName, pluginVersion: pluginVersion, file: file,
                    handlerData: handler.handler_data,
                    onWorkerStart: handler.on_worker_start,
                    onMessage: onMessage,
                    onWorkerStop: handler.on_worker_stop))
        }
        return LoadedPlugin(
            file: file, name: pluginName, version: pluginVersion, handlers: handlers, refused: refused,
            selfTest: descriptor.self_test)
    }
}

/// The size of `swy_plugin_t` in the first ABI 1 layout (before `self_test`
/// was appended): smaller is refused, larger is read up to what we know.
let pluginDescriptorFirstSize = MemoryLayout<swy_plugin_t>.offset(of: \swy_plugin_t.self_test)!

/// Copies a plugin descriptor of `structSize` bytes into a zeroed one: fields
/// beyond what the plugin was built with read as 0 / NULL ("absent"), and
/// nothing past its own struct is read (sdk/ABI.md section 11).
func readPluginDescriptor(_ raw: UnsafeRawPointer, structSize: UInt32) -> swy_plugin_t {
    var descriptor = swy_plugin_t()
    withUnsafeMutableBytes(of: &descriptor) { target in
        target.copyMemory(
            from: UnsafeRawBufferPointer(start: raw, count: min(Int(structSize), MemoryLayout<swy_plugin_t>.size)))
    }
    return descriptor
}
