import CLibFFI
import NIOCore
import SwitchyardCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A C function bound as a task handler (`BindingSpec`): its library opened,
/// its symbol found and its call interface prepared with `ffi_prep_cif` once,
/// at load; `call` converts a payload, calls it with `ffi_call` and writes the
/// result. The one place that touches libffi and the raw argument cells.
///
/// Workers own one per binding; it is not thread-safe (a worker runs one task
/// at a time). Public for the benchmark in `bench/ffi` and for tests.
public final class BoundFunction {
    /// How a call ended.
    public enum Outcome: Sendable, Hashable {
        /// The result was written.
        case ok
        /// The payload does not fit the signature: BAD_ARGUMENTS, never retried.
        case badArguments(String)
        /// The call ran but its result cannot be used (too large, NULL bytes).
        case failed(String)
    }

    /// Why a binding could not be prepared; names the library, symbol or signature.
    public struct LoadError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public let spec: BindingSpec
    public let signature: BindingSignature
    /// The file the dynamic linker opened for `spec.library` (nil if it cannot say).
    public let libraryPath: String?

    private let function: @convention(c) () -> Void
    private let cif: UnsafeMutablePointer<ffi_cif>
    private let types: UnsafeMutablePointer<UnsafeMutablePointer<ffi_type>?>
    /// One 8-byte cell per C argument (a `bytes` argument takes two), and the
    /// pointers to them that ffi_call reads.
    private let cells: UnsafeMutableRawPointer
    private let cellPointers: UnsafeMutablePointer<UnsafeMutableRawPointer?>
    private let cellCount: Int
    /// Where ffi_call stores the return value (at least an ffi_arg), and the
    /// `size_t` an `out_len` argument points to.
    private let returnCell: UnsafeMutableRawPointer
    private let lengthCell: UnsafeMutablePointer<Int>
    /// Copies of string and bytes arguments (strings NUL-terminated) for the call.
    private var arena: UnsafeMutableRawPointer
    private var arenaCapacity: Int

    public init(_ spec: BindingSpec) throws(LoadError) {
        let signature: BindingSignature
        do {
            signature = try BindingSignature(parsing: spec.signature)
        } catch {
            throw LoadError(description: error.description)
        }
        let library: DynamicLibrary
        do {
            library = try DynamicLibrary(path: spec.library)
        } catch {
            throw LoadError(description: "cannot open library `\(spec.library)`: \(error)")
        }
        guard let address = library.symbol(spec.symbol) else {
            throw LoadError(description: "library `\(spec.library)` does not export `\(spec.symbol)`")
        }
        var cTypes: [UnsafeMutablePointer<ffi_type>] = []
        for parameter in signature.parameters {
            cTypes.append(Self.ffiType(parameter))
            if parameter == .bytes { cTypes.append(Self.sizeType) }
        }
        self.spec = spec
        self.signature = signature
        self.libraryPath = library.resolvedPath
        self.function = unsafeBitCast(address, to: (@convention(c) () -> Void).self)
        cellCount = cTypes.count
        types = .allocate(capacity: max(cellCount, 1))
        for (index, type) in cTypes.enumerated() { types[index] = type }
        cif = .allocate(capacity: 1)
        cells = .allocate(byteCount: max(cellCount, 1) * 8, alignment: 16)
        cellPointers = .allocate(capacity: max(cellCount, 1))
        for index in 0..<cellCount { cellPointers[index] = cells + index * 8 }
        returnCell = .allocate(byteCount: 16, alignment: 16)
        lengthCell = .allocate(capacity: 1)
        arenaCapacity = 256
        arena = .allocate(byteCount: arenaCapacity, alignment: 16)
        let status = swy_ffi_prep_cif(cif, UInt32(cellCount), Self.ffiType(signature.result), types)
        guard status == FFI_OK else {
            throw LoadError(description: "ffi_prep_cif refused signature `\(signature)` (status \(status.rawValue))")
        }
    }

    deinit {
        types.deallocate()
        cif.deallocate()
        cells.deallocate()
        cellPointers.deallocate()
        returnCell.deallocate()
        lengthCell.deallocate()
        arena.deallocate()
    }

    /// `size_t`.
    private static var sizeType: UnsafeMutablePointer<ffi_type> {
        MemoryLayout<Int>.size == 8 ? swy_ffi_type_uint64()! : swy_ffi_type_uint32()!
    }

    private static func ffiType(_ type: BindingType) -> UnsafeMutablePointer<ffi_type> {
        switch type {
        case .void: swy_ffi_type_void()
        case .bool, .uint8: swy_ffi_type_uint8()
        case .int8: swy_ffi_type_sint8()
        case .int16: swy_ffi_type_sint16()
        case .uint16: swy_ffi_type_uint16()
        case .int32: swy_ffi_type_sint32()
        case .uint32: swy_ffi_type_uint32()
        case .int64: swy_ffi_type_sint64()
        case .uint64: swy_ffi_type_uint64()
        case .float: swy_ffi_type_float()
        case .double: swy_ffi_type_double()
        case .string, .bytes, .outLength: swy_ffi_type_pointer()
        }
    }

    /// Calls the function with the arguments in `payload` (a JSON array, or the
    /// raw bytes for a single `bytes` argument) and appends its result to
    /// `result`: JSON, or the raw bytes of a `bytes` result. At most
    /// `maxResultSize` bytes are appended.
    public func call(payload: UnsafeRawBufferPointer, into result: inout ByteBuffer, maxResultSize: Int) -> Outcome {
        var values: [BindingValue] = []
        if !signature.takesRawPayload {
            do {
                values = try BindingArguments.decode(payload, for: signature)
            } catch {
                return .badArguments(error.message)
            }
        }
        // Copy string and bytes arguments where they stay put during the call.
        var need = 1
        for value in values { if case .bytes(let bytes) = value { need += bytes.count + 1 } }
        if need > arenaCapacity {
            arena.deallocate()
            arenaCapacity = max(need, arenaCapacity * 2)
            arena = .allocate(byteCount: arenaCapacity, alignment: 16)
        }
        var arenaUsed = 0
        var valueIndex = 0
        var cell = 0
        lengthCell.pointee = 0
        for parameter in signature.parameters {
            let slot = cells + cell * 8
            cell += 1
            switch parameter {
            case .outLength:
                slot.storeBytes(of: UnsafeMutableRawPointer(lengthCell), as: UnsafeMutableRawPointer.self)
                continue
            case .bytes where signature.takesRawPayload:
                // A non-NULL pointer even for an empty payload.
                slot.storeBytes(of: UnsafeRawPointer(payload.baseAddress ?? UnsafeRawPointer(arena)), as: UnsafeRawPointer.self)
                (cells + cell * 8).storeBytes(of: payload.count, as: Int.self)
                cell += 1
                continue
            default:
                break
            }
            let value = values[valueIndex]
            valueIndex += 1
            switch (parameter, value) {
            case (.bool, .bool(let flag)): slot.storeBytes(of: flag ? 1 : 0, as: UInt8.self)
            case (.int8, .signed(let number)): slot.storeBytes(of: Int8(truncatingIfNeeded: number), as: Int8.self)
            case (.int16, .signed(let number)): slot.storeBytes(of: Int16(truncatingIfNeeded: number), as: Int16.self)
            case (.int32, .signed(let number)): slot.storeBytes(of: Int32(truncatingIfNeeded: number), as: Int32.self)
            case (.int64, .signed(let number)): slot.storeBytes(of: number, as: Int64.self)
            case (.uint8, .unsigned(let number)): slot.storeBytes(of: UInt8(truncatingIfNeeded: number), as: UInt8.self)
            case (.uint16, .unsigned(let number)):
                slot.storeBytes(of: UInt16(truncatingIfNeeded: number), as: UInt16.self)
            case (.uint32, .unsigned(let number)):
                slot.storeBytes(of: UInt32(truncatingIfNeeded: number), as: UInt32.self)
            case (.uint64, .unsigned(let number)): slot.storeBytes(of: number, as: UInt64.self)
            case (.float, .float(let number)): slot.storeBytes(of: number, as: Float.self)
            case (.double, .double(let number)): slot.storeBytes(of: number, as: Double.self)
            case (.string, .bytes(let bytes)), (.bytes, .bytes(let bytes)):
                let start = arena + arenaUsed
                bytes.withUnsafeBytes { start.copyMemory(from: $0.baseAddress ?? UnsafeRawPointer(arena), byteCount: $0.count) }
                (start + bytes.count).storeBytes(of: 0, as: UInt8.self)
                arenaUsed += bytes.count + 1
                slot.storeBytes(of: UnsafeRawPointer(start), as: UnsafeRawPointer.self)
                if parameter == .bytes {
                    (cells + cell * 8).storeBytes(of: bytes.count, as: Int.self)
                    cell += 1
                }
            default:
                // BindingArguments.decode returns the case each type needs.
                return .failed("\(spec.name): internal error: argument \(valueIndex) does not match its type")
            }
        }
        returnCell.storeBytes(of: 0, as: UInt64.self)
        ffi_call(cif, function, returnCell, cellPointers)
        return writeResult(into: &result, maxResultSize: maxResultSize)
    }

    private func writeResult(into result: inout ByteBuffer, maxResultSize: Int) -> Outcome {
        // Integer results narrower than a register come back widened to an ffi_arg.
        let word = returnCell.load(as: UInt64.self)
        let start = result.writerIndex
        switch signature.result {
        case .void: BindingResultJSON.writeNull(to: &result)
        case .bool: BindingResultJSON.write(UInt8(truncatingIfNeeded: word) != 0, to: &result)
        case .int8: BindingResultJSON.write(Int64(Int8(truncatingIfNeeded: word)), to: &result)
        case .int16: BindingResultJSON.write(Int64(Int16(truncatingIfNeeded: word)), to: &result)
        case .int32: BindingResultJSON.write(Int64(Int32(truncatingIfNeeded: word)), to: &result)
        case .int64: BindingResultJSON.write(Int64(bitPattern: word), to: &result)
        case .uint8: BindingResultJSON.write(UInt64(UInt8(truncatingIfNeeded: word)), to: &result)
        case .uint16: BindingResultJSON.write(UInt64(UInt16(truncatingIfNeeded: word)), to: &result)
        case .uint32: BindingResultJSON.write(UInt64(UInt32(truncatingIfNeeded: word)), to: &result)
        case .uint64: BindingResultJSON.write(word, to: &result)
        case .float: BindingResultJSON.write(returnCell.load(as: Float.self), to: &result)
        case .double: BindingResultJSON.write(returnCell.load(as: Double.self), to: &result)
        case .string:
            // The function keeps ownership of the string; it is copied, never freed.
            guard let text = returnCell.load(as: UnsafePointer<CChar>?.self) else {
                BindingResultJSON.writeNull(to: &result)
                break
            }
            BindingResultJSON.writeString(UnsafeRawBufferPointer(start: text, count: strlen(text)), to: &result)
        case .bytes:
            let length = lengthCell.pointee
            guard length <= maxResultSize else {
                return .failed("\(spec.name): the result is \(length) bytes; the limit is \(maxResultSize)")
            }
            guard length > 0 else { break }
            guard let bytes = returnCell.load(as: UnsafeRawPointer?.self) else {
                return .failed("\(spec.name): returned NULL with out_len \(length)")
            }
            result.writeBytes(UnsafeRawBufferPointer(start: bytes, count: length))
        case .outLength:
            break  // refused by the signature parser
        }
        if result.writerIndex - start > maxResultSize {
            result.moveWriterIndex(to: start)
            return .failed("\(spec.name): the result is larger than the limit of \(maxResultSize) bytes")
        }
        return .ok
    }
}
