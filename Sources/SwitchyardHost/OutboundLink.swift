import NIOCore

/// Frames waiting to go out on one channel. Everything the host writes during
/// one event-loop tick is gathered here and leaves in one write system call
/// when the dispatcher flushes at the end of the tick.
final class OutboundLink {
    let channel: Channel
    var buffer: ByteBuffer
    /// Already in the dispatcher's list of links to flush.
    var isDirty = false
    /// Payloads this large are handed to the channel as they are, not copied.
    static let copyLimit = 16 * 1024

    init(channel: Channel) {
        self.channel = channel
        self.buffer = channel.allocator.buffer(capacity: 4096)
    }

    /// Queues a large buffer without copying it, after what is already gathered.
    func appendLarge(_ bytes: ByteBuffer) {
        if buffer.readableBytes > 0 {
            channel.write(buffer, promise: nil)
            buffer = channel.allocator.buffer(capacity: 4096)
        }
        channel.write(bytes, promise: nil)
    }

    func flush() {
        isDirty = false
        if buffer.readableBytes > 0 {
            channel.write(buffer, promise: nil)
            buffer = channel.allocator.buffer(capacity: Swift.max(4096, buffer.capacity))
        }
        channel.flush()
    }
}
