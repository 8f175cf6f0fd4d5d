#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import CSwitchyardSystem

/// A shared object opened with `dlopen`. The one place that touches dlopen and dlsym.
///
/// Plugins are never closed: a plugin written in Swift leaves pointers in the
/// Swift runtime's tables, and unloading it makes later dynamic casts crash.
/// New plugin code arrives through new worker processes instead.
struct DynamicLibrary {
    struct LoadError: Error, CustomStringConvertible {
        var description: String
    }

    let path: String
    private let handle: UnsafeMutableRawPointer

    /// Opens `path` with every symbol resolved now and none shared with later libraries.
    init(path: String) throws {
        guard let handle = dlopen(path, RTLD_NOW | RTLD_LOCAL) else {
            let reason = dlerror().map { String(cString: $0) } ?? "dlopen failed"
            throw LoadError(description: reason)
        }
        self.path = path
        self.handle = handle
    }

    /// The file the dynamic linker opened: for a bare name such as
    /// `libm.so.6`, the path it found in the library search path.
    var resolvedPath: String? { swy_dl_path(handle).map { String(cString: $0) } }

    /// The address of `name`, or nil when the library does not export it.
    func symbol(_ name: String) -> UnsafeMutableRawPointer? {
        _ = dlerror()
        return dlsym(handle, name)
    }
}
