#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import CSwitchyardSystem
import NIOCore
import SwitchyardCore

/// Why a reload was refused; the description names the file and the reason.
struct ReloadError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// SHA-256 of a file's content, as lowercase hex.
func sha256Hex(ofFile path: String) throws -> String {
    var hex = [CChar](repeating: 0, count: 65)
    let code = swy_sha256_file(path, &hex)
    guard code == 0 else {
        throw ReloadError("plugin \(path) cannot be read: \(String(cString: strerror(code)))")
    }
    return hex.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
}

/// Proves a plugin set before any worker serves it: one worker process, started
/// exactly as a real one, loads every file (ABI checks, constructors,
/// `on_worker_start`), says hello, then stops (`on_worker_stop`). It never
/// takes a task. Blocking: run it off the event loop.
enum PluginProbe {
    struct Result {
        var files: [String]
        var hashes: [String: String]
        var hello: WorkerHello
    }

    /// How long loading may take before the probe is killed and the set refused.
    static let deadlineSeconds: UInt64 = 60

    static func run(
        files: [String], executable: String, environment: [String], config: WorkerConfig
    ) throws -> Result {
        var hashes: [String: String] = [:]
        for file in files { hashes[file] = try sha256Hex(ofFile: file) }
        let child = try ProbeProcess.start(
            executable: executable, arguments: [WorkerProcess.argument], environment: environment,
            seconds: deadlineSeconds)
        defer { child.close() }
        var out = ByteBuffer()
        HostToWorker.config(config).write(to: &out)
        child.send(out)

        var input = ByteBuffer()
        var loading: (file: String, handler: String)?
        var hello: WorkerHello?
        _ = child.receive(into: &input) { input in
            while let frame = try? Frame.read(from: &input) {
                switch try? WorkerToHost(frame: frame) {
                case .loading(let file, let handler): loading = (file, handler)
                case .hello(let said):
                    hello = said
                    return true
                default: continue
                }
            }
            return false
        }
        if let hello {
            // Let it run on_worker_stop and exit; it has nothing else to do.
            var stop = ByteBuffer()
            HostToWorker.stop.write(to: &stop)
            child.send(stop)
            _ = child.waitForExit(deadline: swy_monotonic_ns() + 10_000_000_000)
            return Result(files: files, hashes: hashes, hello: hello)
        }
        let exit = child.waitForExit(deadline: max(child.deadline, swy_monotonic_ns() + 1_000_000_000))
        let how = exit.map { "\($0)" } ?? "did not finish loading within \(deadlineSeconds) s and was killed"
        guard let loading else { throw ReloadError("the probe worker \(how) before loading any plugin") }
        if loading.handler.isEmpty {
            throw ReloadError("plugin \(loading.file): the probe worker \(how) while the file was being opened")
        }
        if loading.handler == WorkerProcess.selfTestMarker {
            throw ReloadError("plugin \(loading.file): the probe worker \(how) in the plugin's self-test")
        }
        if let name = BindingLoader.bindingName(loading: loading.handler) {
            throw ReloadError("binding \(name): the probe worker \(how) while opening library `\(loading.file)`")
        }
        throw ReloadError(
            "plugin \(loading.file): the probe worker \(how) in on_worker_start of handler `\(loading.handler)`")
    }
}
