import Synchronization
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A point in time of a ``RoutingClock``: the duration since the clock's origin.
public struct RoutingInstant: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var sinceOrigin: Duration
    public init(_ sinceOrigin: Duration) { self.sinceOrigin = sinceOrigin }
    public static let origin = RoutingInstant(.zero)

    public static func < (lhs: RoutingInstant, rhs: RoutingInstant) -> Bool { lhs.sinceOrigin < rhs.sinceOrigin }
    public static func + (lhs: RoutingInstant, rhs: Duration) -> RoutingInstant { RoutingInstant(lhs.sinceOrigin + rhs) }
    public static func - (lhs: RoutingInstant, rhs: Duration) -> RoutingInstant { RoutingInstant(lhs.sinceOrigin - rhs) }
    public static func - (lhs: RoutingInstant, rhs: RoutingInstant) -> Duration { lhs.sinceOrigin - rhs.sinceOrigin }
    public var description: String { "t+\(sinceOrigin)" }
}

/// The time source of the gateway. State machines never read a clock; their owner passes `now`.
public protocol RoutingClock: Sendable {
    /// Monotonic now.
    var now: RoutingInstant { get }
    /// Wall-clock time in seconds since 1970 (for `created` fields and HTTP-dates).
    var unixSeconds: Double { get }
    /// Suspends for `duration` (backoff waits).
    func sleep(for duration: Duration) async throws
}

/// The real clock: `ContinuousClock` for monotonic time.
public struct SystemRoutingClock: RoutingClock {
    private let origin: ContinuousClock.Instant
    private let originUnix: Double

    public init() {
        origin = ContinuousClock.now
        originUnix = Date().timeIntervalSince1970
    }

    public var now: RoutingInstant { RoutingInstant(ContinuousClock.now - origin) }
    public var unixSeconds: Double { originUnix + now.sinceOrigin.secondsDouble }
    public func sleep(for duration: Duration) async throws {
        try await Task.sleep(for: duration)
    }
}

/// A clock that moves only when told to; for tests and simulations.
///
/// `sleep(for:)` does not wait: it advances the clock by the duration and returns, so a gateway
/// driven by a `ManualClock` runs in virtual time (backoffs cost no wall time and are observable).
public final class ManualClock: RoutingClock {
    private let state: Mutex<(now: Duration, slept: Duration)>
    private let unixOrigin: Double

    public init(unixOrigin: Double = 1_800_000_000) {
        state = Mutex((.zero, .zero))
        self.unixOrigin = unixOrigin
    }

    public var now: RoutingInstant { state.withLock { RoutingInstant($0.now) } }
    public var unixSeconds: Double { unixOrigin + now.sinceOrigin.secondsDouble }
    /// Total time spent in `sleep(for:)`.
    public var totalSlept: Duration { state.withLock { $0.slept } }

    /// Moves the clock forward (negative durations are ignored).
    public func advance(by duration: Duration) {
        guard duration > .zero else { return }
        state.withLock { $0.now += duration }
    }

    public func sleep(for duration: Duration) async throws {
        try Task.checkCancellation()
        guard duration > .zero else { return }
        state.withLock {
            $0.now += duration
            $0.slept += duration
        }
    }
}
