#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import NIOCore
import SwitchyardCore

/// How a task should be run: everything a SUBMIT can say besides the handler
/// and the payload.
///
///     let id = try await client.submitBackground(
///         "report", payload: ByteBuffer(string: "2026-Q3"),
///         options: SubmitOptions(delay: .seconds(30), timeout: .seconds(10), uniqueKey: "report-2026-Q3"))
///
/// Values are checked before anything is sent: an invalid one throws a
/// `SwitchyardError` with code `.badRequest` naming the option.
public struct SubmitOptions: Sendable, Hashable {
    /// Higher runs first; -1,000,000 ... 1,000,000. Equal priorities run in submit order.
    public var priority: Int32
    /// Attempts allowed, counting the first, 1 ... 100; nil takes the server's default.
    public var maxAttempts: UInt32?
    /// Run no sooner than this long after the server accepts the task: 0 ... 366
    /// days, rounded up to whole milliseconds. Give `delay` or `runAt`, not both.
    public var delay: Duration?
    /// Run no sooner than this time (the server's clock decides when it has
    /// come), at most 366 days ahead. Give `delay` or `runAt`, not both.
    public var runAt: Date?
    /// Per-attempt time limit, 1 ms ... 7 days, rounded up to whole
    /// milliseconds: an attempt that runs longer is killed with its worker and
    /// counts as failed with `.timeout`. Nil takes the server's default.
    public var timeout: Duration?
    /// Routing key, 1-255 bytes of UTF-8.
    public var key: String?
    /// Deduplication key, 1-255 bytes of UTF-8: while a task with the same
    /// unique key is queued, scheduled, waiting to retry or running, the submit
    /// gets that task (its id, or its result when waiting) instead of a new one.
    public var uniqueKey: String?

    public init(
        priority: Int32 = 0, maxAttempts: UInt32? = nil, delay: Duration? = nil, runAt: Date? = nil,
        timeout: Duration? = nil, key: String? = nil, uniqueKey: String? = nil
    ) {
        self.priority = priority
        self.maxAttempts = maxAttempts
        self.delay = delay
        self.runAt = runAt
        self.timeout = timeout
        self.key = key
        self.uniqueKey = uniqueKey
    }

    /// The SUBMIT these options make, checked against the protocol's limits.
    ///
    /// - Throws: `SwitchyardError` with code `.badRequest` naming the option at fault.
    public func request(handler: String, payload: ByteBuffer, background: Bool) throws -> SubmitRequest {
        var request = SubmitRequest(
            handler: handler, payload: payload, priority: priority, background: background, maxAttempts: maxAttempts,
            key: key, uniqueKey: uniqueKey)
        if delay != nil && runAt != nil {
            throw Self.invalid("give SubmitOptions.delay or SubmitOptions.runAt, not both")
        }
        if let delay {
            guard delay >= .zero else {
                throw Self.invalid("SubmitOptions.delay is \(delay); it must not be negative")
            }
            guard let millis = Self.wholeMillis(delay), millis <= WireProtocol.maxDelayMillis else {
                throw Self.invalid(
                    "SubmitOptions.delay is \(delay); the limit is 366 days (\(WireProtocol.maxDelayMillis) ms)")
            }
            request.delayMillis = millis
        }
        if let runAt {
            let millis = (runAt.timeIntervalSince1970 * 1000).rounded()
            guard millis >= 1, let exact = EpochMillis(exactly: millis) else {
                throw Self.invalid(
                    "SubmitOptions.runAt is \(runAt); it must be after 1970-01-01T00:00:00Z")
            }
            request.runAt = exact
        }
        if let timeout {
            guard timeout > .zero else {
                throw Self.invalid(
                    "SubmitOptions.timeout is \(timeout); it must be positive (leave it nil for the server's default)")
            }
            guard let millis = Self.wholeMillis(timeout), millis <= UInt64(WireProtocol.timeoutMillisRange.upperBound)
            else {
                throw Self.invalid(
                    "SubmitOptions.timeout is \(timeout); the limit is 7 days (\(WireProtocol.timeoutMillisRange.upperBound) ms)"
                )
            }
            request.timeoutMillis = UInt32(millis)
        }
        try SwitchyardError.checkLocally { try request.validate() }
        return request
    }

    /// A non-negative duration in milliseconds, rounded up; nil when it does not fit in a UInt64.
    static func wholeMillis(_ duration: Duration) -> UInt64? {
        let (seconds, attoseconds) = duration.components
        guard seconds >= 0, attoseconds >= 0 else { return seconds == 0 && attoseconds == 0 ? 0 : nil }
        let attosecondsPerMilli: Int64 = 1_000_000_000_000_000
        let (fromSeconds, overflow) = UInt64(seconds).multipliedReportingOverflow(by: 1000)
        guard !overflow else { return nil }
        let fraction = attoseconds / attosecondsPerMilli + (attoseconds % attosecondsPerMilli == 0 ? 0 : 1)
        let (total, overflow2) = fromSeconds.addingReportingOverflow(UInt64(fraction))
        return overflow2 ? nil : total
    }

    private static func invalid(_ message: String) -> SwitchyardError {
        SwitchyardError(code: .badRequest, message: message)
    }
}
