#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The environment every worker and probe process starts with: the host's
/// own, scrubbed to an allow list, so a secret in the server's environment (a
/// database password, SWITCHYARD_TOKEN, a cloud key) never reaches plugin code
/// unless the operator passes it on with `serve --worker-env NAME`.
public enum WorkerEnvironment {
    /// Passed on when set: what a process needs to find programs and
    /// libraries, its user, its locale, its time zone and its temporary
    /// directory. `LC_*` is every locale category. `SWIFT_BACKTRACE` is
    /// always set (see `backtraceOff`).
    static let allowed = [
        "PATH", "HOME", "USER", "LOGNAME", "LANG", "LANGUAGE", "LC_*", "TZ", "TMPDIR", "LD_LIBRARY_PATH",
        "SWIFT_BACKTRACE",
    ]

    /// Workers run without Swift's crash backtracer unless the operator set
    /// SWIFT_BACKTRACE: symbolicating a plugin's crash takes seconds (measured:
    /// the crash test with 8 crashes took 5.4 s with it, 1.5 s without), while
    /// the slot is out of service. The host reports the signal, task and handler itself.
    static let backtraceOff = "SWIFT_BACKTRACE=enable=no"

    /// Whether `pattern` is a variable name (letters, digits, `_`, not
    /// starting with a digit), or such a name followed by `*` for a prefix.
    public static func isValidPattern(_ pattern: String) -> Bool {
        let name = pattern.hasSuffix("*") ? pattern.utf8.dropLast() : pattern.utf8[...]
        func letter(_ byte: UInt8) -> Bool { (65...90).contains(byte) || (97...122).contains(byte) || byte == 95 }
        guard let first = name.first, letter(first) else { return false }
        return name.allSatisfy { letter($0) || (48...57).contains($0) }
    }

    /// `NAME=value` entries of `environment` whose name the allow list or
    /// `extra` (names, or prefixes ending in `*`) names, in their original
    /// order, plus `SWIFT_BACKTRACE=enable=no` when it is not set.
    static func build(passing extra: [String], from environment: [String] = current()) -> [String] {
        let patterns = allowed + extra
        var kept = environment.filter { entry in
            let name = entry.prefix { $0 != "=" }
            return patterns.contains { pattern in
                pattern.hasSuffix("*") ? name.hasPrefix(pattern.dropLast()) : name == pattern
            }
        }
        if !kept.contains(where: { $0.hasPrefix("SWIFT_BACKTRACE=") }) { kept.append(backtraceOff) }
        return kept
    }

    /// This process's environment, as `NAME=value` entries.
    static func current() -> [String] {
        var entries: [String] = []
        var entry = environ
        while let pointer = entry.pointee {
            entries.append(String(cString: pointer))
            entry += 1
        }
        return entries
    }
}
