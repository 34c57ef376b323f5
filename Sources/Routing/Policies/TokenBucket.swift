/// A token bucket with exact integer arithmetic: `limit` tokens per `window`, refilled continuously.
///
/// The level is kept in *token-microseconds* (`tokens × window_µs`) so refill is
/// `elapsed_µs × limit` with no rounding; a key allowed N tokens per minute gets exactly N
/// from a full bucket, and the wait reported when the bucket is short is the exact time until
/// enough has refilled (rounded up to the microsecond, so a client retrying then is admitted).
///
/// The level may go negative (debt) when usage reported after a response exceeds what was
/// charged at admission; the debt is repaid by refill before anything else is admitted.
public struct TokenBucket: Sendable, Hashable {
    public let limit: Int64
    public let window: Duration
    /// Level in token-microseconds.
    private(set) var level: Int64
    private var lastRefill: RoutingInstant
    private let windowMicros: Int64

    /// The largest supported `limit`, so that `limit × window_µs` fits in 63 bits for windows up to a day.
    public static let maxLimit: Int64 = 100_000_000

    /// - Throws: ``RoutingError`` (`invalidConfiguration`) for a non-positive or absurd limit or window.
    public init(limit: Int, per window: Duration, now: RoutingInstant) throws(RoutingError) {
        let micros = Self.micros(window)
        guard limit > 0, Int64(limit) <= Self.maxLimit else {
            throw RoutingError(.invalidConfiguration, "rate limit \(limit) must be between 1 and \(Self.maxLimit)")
        }
        guard micros >= 1000, micros <= 86_400_000_000 else {
            throw RoutingError(.invalidConfiguration, "rate-limit window \(window) must be between 1 ms and 1 day")
        }
        // Refill and waits compute up to ±2 capacities: keep 4 × capacity within 63 bits.
        guard !Int64(limit).multipliedReportingOverflow(by: micros * 4).overflow else {
            throw RoutingError(.invalidConfiguration, "rate limit \(limit) per \(window) is too large: use a shorter window")
        }
        self.limit = Int64(limit)
        self.window = window
        self.windowMicros = micros
        self.level = Int64(limit) * micros
        self.lastRefill = now
    }

    static func micros(_ duration: Duration) -> Int64 {
        let (seconds, atto) = duration.components
        return seconds * 1_000_000 + atto / 1_000_000_000_000
    }

    private var capacity: Int64 { limit * windowMicros }

    mutating func refill(now: RoutingInstant) {
        let elapsed = Self.micros(now - lastRefill)
        guard elapsed > 0 else { return }
        lastRefill = lastRefill + .microseconds(elapsed)
        // Cap elapsed so the product cannot overflow; a full window refills everything anyway.
        let steps = min(elapsed, windowMicros * 2)
        level = min(capacity, level + steps * limit)
    }

    /// Whole tokens available now (negative while in debt).
    public mutating func available(now: RoutingInstant) -> Int64 {
        refill(now: now)
        return level >= 0 ? level / windowMicros : -((-level + windowMicros - 1) / windowMicros)
    }

    /// The time until the bucket holds at least `tokens` (zero when it already does).
    public mutating func timeUntil(tokens: Int64, now: RoutingInstant) -> Duration {
        refill(now: now)
        // More than the limit never fits; clamping keeps the product in range.
        let needed = min(max(0, tokens), limit) * windowMicros - level
        guard needed > 0 else { return .zero }
        return .microseconds((needed + limit - 1) / limit)
    }

    /// The time until the level is above zero (zero when it already is).
    public mutating func timeUntilPositive(now: RoutingInstant) -> Duration {
        refill(now: now)
        guard level <= 0 else { return .zero }
        return .microseconds((-level + 1 + limit - 1) / limit)
    }

    /// Whether `tokens` could ever be taken at once (more than the limit never fits).
    public func canEverHold(_ tokens: Int64) -> Bool { tokens <= limit }

    /// Removes `tokens` (may drive the level into debt; callers check first).
    public mutating func take(_ tokens: Int64, now: RoutingInstant) {
        refill(now: now)
        // Bound the debt to one window so a single huge usage report cannot lock a key out for long.
        // Saturating arithmetic: whatever count a caller (or an upstream's usage report) passes.
        let (charge, o1) = max(0, tokens).multipliedReportingOverflow(by: windowMicros)
        let (after, o2) = level.subtractingReportingOverflow(charge)
        level = o1 || o2 ? -capacity : max(after, -capacity)
    }

    /// Returns `tokens` (e.g. an admission estimate above the real usage), capped at the capacity.
    public mutating func give(_ tokens: Int64, now: RoutingInstant) {
        refill(now: now)
        let (credit, o1) = max(0, tokens).multipliedReportingOverflow(by: windowMicros)
        let (after, o2) = level.addingReportingOverflow(credit)
        level = o1 || o2 ? capacity : min(capacity, after)
    }
}
