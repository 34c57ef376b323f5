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
    /// Suspends until the clock has passed `deadline`, without moving it (attempt timers). Throws
    /// `CancellationError` when the task is cancelled first. The default sleeps for the time left.
    func waitUntil(_ deadline: RoutingInstant) async throws
}

extension RoutingClock {
    public func waitUntil(_ deadline: RoutingInstant) async throws {
        let left = deadline - now
        if left > .zero { try await sleep(for: left) } else { try Task.checkCancellation() }
    }
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
/// `waitUntil(_:)` (attempt timers) suspends until `advance(by:)` or a `sleep(for:)` moves the
/// clock strictly past the deadline, so an upstream answering exactly at its timeout still answers.
public final class ManualClock: RoutingClock {
    private struct State: Sendable {
        var now: Duration = .zero
        var slept: Duration = .zero
        var nextWaiter: UInt64 = 0
        /// Waiters allocated but not yet suspended.
        var pending: Set<UInt64> = []
        /// Waiters cancelled before they suspended.
        var cancelled: Set<UInt64> = []
        var waiters: [UInt64: (deadline: Duration, continuation: CheckedContinuation<Void, any Error>)] = [:]

        /// Removes and returns the waiters whose deadline is now passed.
        mutating func due() -> [CheckedContinuation<Void, any Error>] {
            guard !waiters.isEmpty else { return [] }
            let ready = waiters.filter { $0.value.deadline < now }
            for id in ready.keys { waiters.removeValue(forKey: id) }
            return ready.values.map(\.continuation)
        }
    }

    private let state: Mutex<State>
    private let unixOrigin: Double

    public init(unixOrigin: Double = 1_800_000_000) {
        state = Mutex(State())
        self.unixOrigin = unixOrigin
    }

    public var now: RoutingInstant { state.withLock { RoutingInstant($0.now) } }
    public var unixSeconds: Double { unixOrigin + now.sinceOrigin.secondsDouble }
    /// Total time spent in `sleep(for:)`.
    public var totalSlept: Duration { state.withLock { $0.slept } }
    /// Timers currently suspended in `waitUntil(_:)`.
    public var pendingTimers: Int { state.withLock { $0.waiters.count } }

    /// Moves the clock forward (negative durations are ignored) and fires the timers it passes.
    public func advance(by duration: Duration) {
        guard duration > .zero else { return }
        let due = state.withLock {
            $0.now += duration
            return $0.due()
        }
        for continuation in due { continuation.resume() }
    }

    public func sleep(for duration: Duration) async throws {
        try Task.checkCancellation()
        guard duration > .zero else { return }
        let due = state.withLock {
            $0.now += duration
            $0.slept += duration
            return $0.due()
        }
        for continuation in due { continuation.resume() }
    }

    public func waitUntil(_ deadline: RoutingInstant) async throws {
        let id = state.withLock {
            $0.nextWaiter &+= 1
            $0.pending.insert($0.nextWaiter)
            return $0.nextWaiter
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let immediate: Result<Void, any Error>? = state.withLock {
                    $0.pending.remove(id)
                    if $0.cancelled.remove(id) != nil { return .failure(CancellationError()) }
                    if $0.now > deadline.sinceOrigin { return .success(()) }
                    $0.waiters[id] = (deadline.sinceOrigin, continuation)
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            let continuation = state.withLock { s -> CheckedContinuation<Void, any Error>? in
                if let waiter = s.waiters.removeValue(forKey: id) { return waiter.continuation }
                if s.pending.contains(id) { s.cancelled.insert(id) }
                return nil
            }
            continuation?.resume(throwing: CancellationError())
        }
    }
}
