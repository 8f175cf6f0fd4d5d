import SwitchyardCore

/// Prepares the configured bindings in a worker process, after its plugins.
enum BindingLoader {
    /// The plugin name bound handlers carry in WORKER_HELLO and `status`.
    static let pluginName = "ffi"

    /// Each binding prepared, or skipped with the reason: an invalid or taken
    /// handler name, a library or symbol not found, a signature that does not parse.
    static func load(_ specs: [BindingSpec], takenNames: [String: String]) -> (
        bound: [BoundFunction], skipped: [SkippedBinding]
    ) {
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
                bound.append(try BoundFunction(spec))
                taken[spec.name] = "binding `\(spec.name)`"
            } catch {
                skipped.append(SkippedBinding(name: spec.name, reason: error.description))
            }
        }
        return (bound, skipped)
    }
}
