import ArgumentParser
import Foundation
import SwitchyardCore
import Yams

/// `serve --config-file PATH`: a YAML mapping whose keys are `serve`'s flag
/// names without the leading dashes (`listen`, `data-dir`, `max-queue`, ...),
/// plus `bindings`, which only the file can declare.
///
/// The file is turned into the flags it stands for, placed before the command
/// line's own, and parsed again: a value goes through the same parsing and
/// checks as the flag, and a flag on the command line wins over the file
/// (repeatable flags, `strategy` and `config`, add to the file's; for the same
/// key or handler the command line's comes last, so it wins).
struct ServeConfigFile {
    /// The flags the file's settings stand for, e.g. `["--workers", "4"]`.
    var arguments: [String] = []
    var bindings: [BindingSpec] = []

    /// How a key's value becomes flags.
    enum Kind {
        /// One scalar: `--key VALUE`.
        case value
        /// A scalar or a list of scalars: `--key A --key B`.
        case list
        /// A mapping of keys to scalars: `--key K=V` for each (`config`).
        case keyValues
        /// true or false: `--key` or `--no-key` (`watch`, `allow-insecure-plugins`).
        case flag
    }

    /// Every `serve` flag but `--config-file`, by its name in the file.
    static let keys: [String: Kind] = [
        "listen": .value, "workers": .value, "plugins": .value, "watch": .flag, "data-dir": .value, "store": .value,
        "sync": .value, "max-queue": .value, "default-timeout": .value, "retry-base": .value,
        "retry-max": .value, "retry-jitter": .value, "aging": .value, "keep-results": .value,
        "strategy": .list, "strategy-fault-limit": .value, "drain-timeout": .value, "config": .keyValues, "prefetch": .value, "max-prefetch": .value, "window-budget": .value, "max-attempts": .value,
        "max-frame-size": .value, "shutdown-timeout": .value, "log-level": .value,
        "allow-insecure-plugins": .flag, "worker-memory": .value, "worker-cpu": .value, "worker-env": .list,
        "auth": .value, "auth-max-failures": .value, "auth-penalty": .value, "insecure": .flag,
        "tls-cert": .value, "tls-key": .value,
        "max-payload-size": .value, "max-handler-name": .value, "max-connections": .value,
        "max-connections-per-address": .value, "max-in-flight": .value, "handshake-timeout": .value,
        "idle-timeout": .value, "lease": .value, "heartbeat": .value, "poll-interval": .value,
    ]
    static let bindingKeys = ["name", "library", "symbol", "signature"]

    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    init(path: String) throws(Invalid) {
        func fail(_ why: String) -> Invalid { Invalid(description: "config file \(path): \(why)") }
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw fail("cannot read it: \(error.localizedDescription)")
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw fail("not valid YAML: \(error)")
        }
        guard let root else { return }  // an empty file sets nothing
        guard let mapping = root.mapping else { throw fail("expected a mapping of settings at the top level") }
        let known = (Self.keys.keys + ["bindings"]).sorted().joined(separator: ", ")
        var seen: Set<String> = []
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string else { throw fail("a key is not a plain name") }
            guard seen.insert(key).inserted else { throw fail("`\(key)` is set twice") }
            if key == "bindings" {
                bindings = try Self.readBindings(value, fail: fail)
                continue
            }
            guard let kind = Self.keys[key] else {
                throw fail("unknown key `\(key)`; known keys: \(known)")
            }
            switch kind {
            case .value:
                guard let scalar = value.scalar, !Self.isNull(value) else {
                    throw fail("`\(key)` must be a single value, as for --\(key)")
                }
                arguments += ["--\(key)", scalar.string]
            case .list:
                let items: [Node] = value.sequence.map { Array($0) } ?? [value]
                for item in items {
                    guard let scalar = item.scalar, !Self.isNull(item) else {
                        throw fail("`\(key)` must be a value or a list of values, as for --\(key)")
                    }
                    arguments += ["--\(key)", scalar.string]
                }
            case .flag:
                guard let bool = value.scalar.flatMap({ Bool.construct(from: $0) }) else {
                    throw fail("`\(key)` must be true or false, as for --\(key) or --no-\(key)")
                }
                arguments.append(bool ? "--\(key)" : "--no-\(key)")
            case .keyValues:
                guard let pairs = value.mapping else {
                    throw fail("`\(key)` must be a mapping of keys to values, e.g. `greet.word: hi`")
                }
                for (name, item) in pairs {
                    guard let name = name.scalar?.string, let scalar = item.scalar else {
                        throw fail("`\(key)` must map keys to single values")
                    }
                    arguments += ["--\(key)", "\(name)=\(scalar.string)"]
                }
            }
        }
    }

    private static func isNull(_ node: Node) -> Bool {
        guard let scalar = node.scalar else { return false }
        return scalar.style == .plain && ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }

    private static func readBindings(_ node: Node, fail: (String) -> Invalid) throws(Invalid) -> [BindingSpec] {
        guard let list = node.sequence else {
            throw fail("`bindings` must be a list of {name, library, symbol, signature}")
        }
        var specs: [BindingSpec] = []
        for (index, item) in list.enumerated() {
            let label = "bindings[\(index)]"
            guard let mapping = item.mapping else { throw fail("\(label) must be a mapping") }
            var fields: [String: String] = [:]
            for (keyNode, value) in mapping {
                guard let key = keyNode.scalar?.string else { throw fail("\(label): a key is not a plain name") }
                guard bindingKeys.contains(key) else {
                    throw fail("\(label): unknown key `\(key)`; a binding has \(bindingKeys.joined(separator: ", "))")
                }
                guard let scalar = value.scalar, !isNull(value), !scalar.string.isEmpty else {
                    throw fail("\(label): `\(key)` must be a non-empty string")
                }
                fields[key] = scalar.string
            }
            for key in bindingKeys where fields[key] == nil {
                throw fail("\(label)\(fields["name"].map { " (`\($0)`)" } ?? ""): `\(key)` is missing")
            }
            let spec = BindingSpec(
                name: fields["name"]!, library: fields["library"]!, symbol: fields["symbol"]!,
                signature: fields["signature"]!)
            guard !specs.contains(where: { $0.name == spec.name }) else {
                throw fail("\(label): binding `\(spec.name)` is declared twice")
            }
            specs.append(spec)
        }
        return specs
    }
}
