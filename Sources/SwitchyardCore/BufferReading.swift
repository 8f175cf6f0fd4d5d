import NIOCore

/// Checked field readers for frame bodies: every read names the field it was
/// reading, so a truncated or malformed body gets an error that says where.
extension ByteBuffer {
    @inlinable
    mutating func readField<T: FixedWidthInteger>(_ name: StaticString, as: T.Type = T.self) throws -> T {
        guard let value = readInteger(as: T.self) else {
            throw ProtocolError(.badFrame, "frame body ends inside the field `\(name)`")
        }
        return value
    }

    /// A string with a u8 length prefix (names: 1-255 bytes).
    @inlinable
    mutating func readShortString(_ name: StaticString) throws -> String {
        let length = try readField(name, as: UInt8.self)
        return try readUTF8(name, length: Int(length))
    }

    /// A string with a u16 length prefix (messages).
    @inlinable
    mutating func readMediumString(_ name: StaticString) throws -> String {
        let length = try readField(name, as: UInt16.self)
        return try readUTF8(name, length: Int(length))
    }

    @inlinable
    mutating func readUTF8(_ name: StaticString, length: Int) throws -> String {
        guard let view = readSlice(length: length) else {
            throw ProtocolError(.badFrame, "frame body ends inside the field `\(name)`")
        }
        guard let string = String(validating: view.readableBytesView, as: UTF8.self) else {
            throw ProtocolError(.badFrame, "field `\(name)` is not valid UTF-8")
        }
        return string
    }

    /// Writes at most 255 bytes of `string`, cut at a Unicode scalar boundary.
    @inlinable
    mutating func writeShortString(_ string: String) {
        let utf8 = string.utf8.prefixKeepingScalars(255)
        writeInteger(UInt8(utf8.count))
        writeBytes(utf8)
    }

    /// Writes at most 65535 bytes of `string`, cut at a Unicode scalar boundary.
    @inlinable
    mutating func writeMediumString(_ string: String) {
        let utf8 = string.utf8.prefixKeepingScalars(Int(UInt16.max))
        writeInteger(UInt16(utf8.count))
        writeBytes(utf8)
    }

    /// Writes a string-valued SUBMIT option: u8 tag, u16 length, the UTF-8.
    /// The value is not cut to the option's limit (a server names an overlong
    /// key rather than a cut one colliding with another); only to 65535 bytes,
    /// at a Unicode scalar boundary, so the frame stays well formed.
    @inlinable
    mutating func writeStringOption(_ tag: UInt8, _ value: String) {
        let utf8 = value.utf8.prefixKeepingScalars(Int(UInt16.max))
        writeMultipleIntegers(tag, UInt16(utf8.count))
        writeBytes(utf8)
    }

    /// Fails when bytes are left over after the last field of a fixed layout.
    @inlinable
    func expectEnd(_ frame: StaticString) throws {
        if readableBytes != 0 {
            throw ProtocolError(.badFrame, "\(frame) frame has \(readableBytes) unexpected trailing bytes")
        }
    }
}

extension String.UTF8View {
    /// The first `maxLength` bytes at most, never ending inside a multi-byte
    /// scalar: a cut string must still be valid UTF-8 for the peer to accept it.
    @inlinable
    func prefixKeepingScalars(_ maxLength: Int) -> Substring.UTF8View {
        var end = index(startIndex, offsetBy: maxLength, limitedBy: endIndex) ?? endIndex
        // Back off over continuation bytes (0b10xxxxxx) to the start of a scalar.
        while end != endIndex, end != startIndex, self[end] & 0xC0 == 0x80 {
            formIndex(before: &end)
        }
        return self[startIndex..<end]
    }
}
