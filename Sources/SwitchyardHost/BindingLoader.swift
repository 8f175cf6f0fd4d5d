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

    /// What `load` reports as it goes.
    enum Event {
        /// A library is about to be opened (`marker`: the WORKER_LOADING handler).
        case opening(library: String, marker: String)
        /// A library loaded from an untrusted place under --allow-insecure-plugins.
        case insecure(TrustProblem)
    }

    /// Each binding prepared, or skipped with the reason: an invalid or taken
    /// handler name, a library or symbol not found, a signature that does not
    /// parse, or a library the dynamic linker found in a place others could
    /// have written (PluginTrust; the host checks a library given as a path
    /// before any worker opens it, and a bare name like `libm.so.6` is checked
    /// here once the linker has found it, after its constructors ran in this
    /// worker, which then never calls it). `report` sees each event.
    static func load(
        _ specs: [BindingSpec], takenNames: [String: String], allowInsecure: Bool = false,
        report: (Event) -> Void = { _ in }
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
                report(.opening(library: spec.library, marker: loadingMarker(spec.name)))
                let function = try BoundFunction(spec)
                if !spec.library.contains("/"), let path = function.libraryPath,
                    let problem = PluginTrust.check(path, as: "library of binding `\(spec.name)`")
                {
                    guard allowInsecure else {
                        skipped.append(SkippedBinding(name: spec.name, reason: problem.description))
                        continue
                    }
                    report(.insecure(problem))
                }
                bound.append(function)
                taken[spec.name] = "binding `\(spec.name)`"
            } catch {
                skipped.append(SkippedBinding(name: spec.name, reason: error.description))
            }
        }
        return (bound, skipped)
    }
}
