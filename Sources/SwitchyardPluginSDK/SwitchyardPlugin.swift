/// Builds the descriptor a Switchyard host reads from a plugin written in Swift.
///
/// A plugin is a dynamic library that exports one C symbol, `swy_plugin_entry`. In Swift
/// that symbol is one function that hands the plugin's handlers to ``export(name:version:handlers:)``:
///
/// ```swift
/// import SwitchyardPluginSDK
///
/// @_cdecl("swy_plugin_entry")
/// public func swy_plugin_entry() -> UnsafeRawPointer {
///     SwitchyardPlugin.export(name: "greeter", version: "1.0.0", handlers: [
///         TaskHandler("greet") { task in
///             guard let name = task.payloadText else {
///                 return .failure("greet: payload is not valid UTF-8")
///             }
///             return .success("hello, \(name)")
///         }
///     ])
/// }
/// ```
///
/// See `sdk/ABI.md` for the contract the descriptor implements.
public enum SwitchyardPlugin {
    /// Returns the plugin descriptor (`const swy_plugin_t *`) for `swy_plugin_entry` to return.
    ///
    /// The first call builds the descriptor from its arguments; every later call, from any
    /// thread, returns the same pointer and ignores its arguments. The descriptor and
    /// everything it points to stay valid for the life of the process, as the ABI requires.
    ///
    /// - Parameters:
    ///   - name: The plugin's name, shown in the host's logs and status.
    ///   - version: Free-text version of the plugin, such as `"1.2.0"`.
    ///   - handlers: The task handlers the plugin provides. Each name must be 1-255 bytes of
    ///     `[A-Za-z0-9_.-]` and unique across every plugin the host loads; the host refuses a
    ///     handler that breaks these rules and logs why.
    public static func export(name: String, version: String, handlers: [TaskHandler]) -> UnsafeRawPointer {
        exportedDescriptor.get {
            PluginDescriptor.make(name: name, version: version, handlers: handlers)
        }
    }
}
