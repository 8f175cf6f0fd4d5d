/// Slows down addresses that guess tokens: counts failed authentications per
/// address and, at the limit, refuses the address for a penalty that doubles
/// each time it comes back to the limit.
///
/// Rules (docs/SECURITY.md):
/// - Every failed HELLO from an address counts, whichever connection it came
///   on; successes do not reset the count (else a client with one valid token
///   could guess at others without end).
/// - The `maxFailures`-th failure bars the address for `penalty`, doubled for
///   each earlier bar (`2 × penalty`, `4 × penalty`, ...) up to `maxPenalty`,
///   and the count starts again.
/// - An address with no failure for `maxPenalty` after its bar ended is
///   forgotten: its next bar is `penalty` again.
/// - At most `maxAddresses` are remembered; when full, forgotten ones go
///   first, then the one whose last failure is oldest.
///
/// It reads no clock: callers pass `now` in milliseconds (any monotonic
/// origin), so the rules are tested with chosen times. One instance is shared
/// by every connection of a server, on its event loop.
public final class AuthThrottle {
    public struct Policy: Sendable, Hashable {
        /// Failed authentications from one address before it is barred (default 3).
        public var maxFailures: Int
        /// The first bar, in milliseconds (default 10 s).
        public var penaltyMillis: Int64
        /// The longest bar (default 1 hour).
        public var maxPenaltyMillis: Int64
        /// Addresses remembered at once (default 10,000).
        public var maxAddresses: Int

        public init(
            maxFailures: Int = 3, penaltyMillis: Int64 = 10_000, maxPenaltyMillis: Int64 = 3_600_000,
            maxAddresses: Int = 10_000
        ) {
            self.maxFailures = maxFailures
            self.penaltyMillis = penaltyMillis
            self.maxPenaltyMillis = max(maxPenaltyMillis, penaltyMillis)
            self.maxAddresses = maxAddresses
        }
    }

    /// What a failure led to.
    public enum Outcome: Sendable, Hashable {
        /// `left` more failures and the address is barred.
        case tryAgain(left: Int)
        /// The address is barred for this many milliseconds.
        case barred(millis: Int64)
    }

    struct Entry {
        var failures = 0
        /// Bars so far; the next one lasts `penalty << strikes`.
        var strikes = 0
        var barredUntil: Int64 = .min
        var lastFailure: Int64
    }

    public let policy: Policy
    private var entries: [String: Entry] = [:]

    public init(policy: Policy = Policy()) {
        self.policy = policy
    }

    /// Milliseconds the address stays barred, or nil when it is not.
    public func barredFor(_ address: String, now: Int64) -> Int64? {
        guard let entry = entries[address], entry.barredUntil > now else { return nil }
        return entry.barredUntil - now
    }

    /// Counts a failed authentication from `address`.
    public func recordFailure(_ address: String, now: Int64) -> Outcome {
        var entry = entries[address] ?? makeRoom(now: now)
        if isForgotten(entry, now: now) { entry = Entry(lastFailure: now) }
        entry.failures += 1
        entry.lastFailure = now
        defer { entries[address] = entry }
        guard entry.failures >= policy.maxFailures else {
            return .tryAgain(left: policy.maxFailures - entry.failures)
        }
        let (doubled, overflow) = policy.penaltyMillis.multipliedReportingOverflow(by: Int64(1) << min(entry.strikes, 62))
        let bar = overflow ? policy.maxPenaltyMillis : min(doubled, policy.maxPenaltyMillis)
        entry.failures = 0
        entry.strikes += 1
        entry.barredUntil = now + bar
        return .barred(millis: bar)
    }

    /// Addresses remembered now (tests).
    public var count: Int { entries.count }

    private func isForgotten(_ entry: Entry, now: Int64) -> Bool {
        max(entry.barredUntil, entry.lastFailure) <= now - policy.maxPenaltyMillis
    }

    /// A fresh entry, after making room for it if the table is full.
    private func makeRoom(now: Int64) -> Entry {
        if entries.count >= policy.maxAddresses {
            entries = entries.filter { !isForgotten($0.value, now: now) }
        }
        if entries.count >= policy.maxAddresses,
            let oldest = entries.min(by: { $0.value.lastFailure < $1.value.lastFailure })?.key
        {
            entries[oldest] = nil
        }
        return Entry(lastFailure: now)
    }
}
