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
    /// Suspends until the clock has passed `deadline`, without moving it. Throws
    /// `CancellationError` when the task is cancelled first. The default sleeps for the time left.
    func waitUntil(_ deadline: RoutingInstant) async throws
    /// Calls `action` once the clock has passed `deadline`, unless the returned timer is cancelled
    /// first (attempt timers). `action` runs on a thread of the clock's choosing and must be quick.
    /// The default runs a task that waits with ``waitUntil(_:)``; ``SystemRoutingClock`` uses one
    /// shared timer thread, so arming and cancelling cost no task and no thread switch.
    func scheduleTimer(at deadline: RoutingInstant, _ action: @escaping @Sendable () -> Void) -> RoutingTimer
}

extension RoutingClock {
    public func waitUntil(_ deadline: RoutingInstant) async throws {
        let left = deadline - now
        if left > .zero { try await sleep(for: left) } else { try Task.checkCancellation() }
    }

    public func scheduleTimer(at deadline: RoutingInstant, _ action: @escaping @Sendable () -> Void) -> RoutingTimer {
        let task = Task {
            do {
                try await waitUntil(deadline)
            } catch {
                return
            }
            action()
        }
        return RoutingTimer { task.cancel() }
    }
}

/// A timer armed with ``RoutingClock/scheduleTimer(at:_:)``.
public struct RoutingTimer: Sendable {
    private let disarm: @Sendable () -> Void

    public init(cancel: @escaping @Sendable () -> Void) { disarm = cancel }

    /// Disarms the timer; its action will not run unless it has already started. Idempotent.
    public func cancel() { disarm() }
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

    public func scheduleTimer(at deadline: RoutingInstant, _ action: @escaping @Sendable () -> Void) -> RoutingTimer {
        let id = DeadlineTimers.shared.schedule(after: deadline - now, action)
        return RoutingTimer { DeadlineTimers.shared.cancel(id) }
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
        var waiters: [UInt64: (deadline: Duration, waiter: Waiter)] = [:]

        /// Removes and returns the waiters whose deadline is now passed.
        mutating func due() -> [Waiter] {
            guard !waiters.isEmpty else { return [] }
            let ready = waiters.filter { $0.value.deadline < now }
            for id in ready.keys { waiters.removeValue(forKey: id) }
            return ready.values.map(\.waiter)
        }
    }

    /// A suspended `waitUntil` or a scheduled timer action.
    enum Waiter: Sendable {
        case continuation(CheckedContinuation<Void, any Error>)
        case action(@Sendable () -> Void)

        func fire() {
            switch self {
            case .continuation(let continuation): continuation.resume()
            case .action(let action): action()
            }
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
    /// Timers currently armed: suspended in `waitUntil(_:)` or scheduled with `scheduleTimer(at:_:)`.
    public var pendingTimers: Int { state.withLock { $0.waiters.count } }

    /// Moves the clock forward (negative durations are ignored) and fires the timers it passes.
    public func advance(by duration: Duration) {
        guard duration > .zero else { return }
        let due = state.withLock {
            $0.now += duration
            return $0.due()
        }
        for waiter in due { waiter.fire() }
    }

    public func sleep(for duration: Duration) async throws {
        try Task.checkCancellation()
        guard duration > .zero else { return }
        let due = state.withLock {
            $0.now += duration
            $0.slept += duration
            return $0.due()
        }
        for waiter in due { waiter.fire() }
    }

    /// Fires when the clock moves strictly past `deadline` (as `waitUntil`); armed synchronously,
    /// so a test can advance the clock right after the call that armed it.
    public func scheduleTimer(at deadline: RoutingInstant, _ action: @escaping @Sendable () -> Void) -> RoutingTimer {
        let id: UInt64? = state.withLock {
            guard $0.now <= deadline.sinceOrigin else { return nil }
            $0.nextWaiter &+= 1
            $0.waiters[$0.nextWaiter] = (deadline.sinceOrigin, .action(action))
            return $0.nextWaiter
        }
        guard let id else {
            action()
            return RoutingTimer {}
        }
        return RoutingTimer { [self] in _ = state.withLock { $0.waiters.removeValue(forKey: id) } }
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
                    $0.waiters[id] = (deadline.sinceOrigin, .continuation(continuation))
                    return nil
                }
                if let immediate { continuation.resume(with: immediate) }
            }
        } onCancel: {
            let continuation = state.withLock { s -> CheckedContinuation<Void, any Error>? in
                if let waiter = s.waiters.removeValue(forKey: id), case .continuation(let continuation) = waiter.waiter {
                    return continuation
                }
                if s.pending.contains(id) { s.cancelled.insert(id) }
                return nil
            }
            continuation?.resume(throwing: CancellationError())
        }
    }
}
