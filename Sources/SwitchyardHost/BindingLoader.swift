import SwitchyardCore

/// Prepares the configured bindings in a worker process, after its plugins.
enum BindingLoader {
    /// The plugin name bound handlers carry in WORKER_HELLO and `status`.
    static let pluginName = "ffi"

    /// The `handler` of the WORKER_LOADING frame sent before a binding's library
    /// is opened: a space never occurs in a handler name, so it cannot be mistaken for one.
    static func loadingMarker(_ name: String) -> String { "binding \(name)" }

    /// The binding named by a WORKER_LOADING `handler`, if it is a binding's marker.
    static func bindingName(loading handler: String) -> String? {
        handler.hasPrefix("binding ") ? String(handler.dropFirst("binding ".count)) : nil
    }

    /// Each binding prepared, or skipped with the reason: an invalid or taken
    /// handler name, a library or symbol not found, a signature that does not parse.
    /// `announce(library, marker)` runs before each library is opened.
    static func load(
        _ specs: [BindingSpec], takenNames: [String: String], announce: (String, String) -> Void = { _, _ in }
    ) -> (bound: [BoundFunction], skipped: [SkippedBinding]) {
        var taken = takenNames
        var bound: [BoundFunction] = []
        var skipped: [SkippedBinding] = []
        for spec in specs {
            if let problem = HandlerName.validate(spec.name) {
                skipped.append(SkippedBinding(name: spec.name, reason: problem))
                continue
            }
            if let owner = taken[spec.name] {
                skipped.append(
                    SkippedBinding(
                        name: spec.name,
                        reason: "handler `\(spec.name)` is already provided by \(owner); rename the binding"))
                continue
            }
            do {
                announce(spec.library, loadingMarker(spec.name))
                bound.append(try BoundFunction(spec))
                taken[spec.name] = "binding `\(spec.name)`"
            } catch {
                skipped.append(SkippedBinding(name: spec.name, reason: error.description))
            }
        }
        return (bound, skipped)
    }
}
