import Dispatch
import Synchronization
import Testing
@testable import Routing

/// The shared timer thread behind `SystemRoutingClock.scheduleTimer`, and the manual clock's timers.
@Suite(.serialized) struct DeadlineTimerTests {
    final class Fired: Sendable {
        let ids = Mutex<[Int]>([])
        let times = Mutex<[Int: UInt64]>([:])
        func record(_ id: Int) {
            let now = DispatchTime.now().uptimeNanoseconds
            ids.withLock { $0.append(id) }
            times.withLock { $0[id] = now }
        }
    }

    /// Waits (really) until `condition` holds or `limit` passes.
    static func eventually(_ limit: Duration = .seconds(5), _ condition: () -> Bool) async {
        let start = ContinuousClock.now
        while !condition(), ContinuousClock.now - start < limit { try? await Task.sleep(for: .milliseconds(2)) }
    }

    /// Random delays, a random half cancelled: exactly the others fire, none early, each once,
    /// and the heap is empty afterwards. A shadow set is the oracle.
    @Test(arguments: [UInt64(1), 2, 3])
    func firesExactlyTheTimersNotCancelled(seed: UInt64) async {
        let timers = DeadlineTimers()
        let fired = Fired()
        var rng = SplitMixGenerator(seed: seed)
        var expected: Set<Int> = []
        var armed: [(id: UInt64, index: Int, deadline: UInt64)] = []
        for index in 0..<300 {
            let delay = Duration.milliseconds(Int(rng.next() % 120))
            let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(delay.components.attoseconds / 1_000_000_000)
                + UInt64(delay.components.seconds) * 1_000_000_000
            let id = timers.schedule(after: delay) { fired.record(index) }
            armed.append((id, index, deadline))
            expected.insert(index)
        }
        for entry in armed where rng.next() % 2 == 0 {
            if timers.cancel(entry.id) { expected.remove(entry.index) }
        }
        await Self.eventually { fired.ids.withLock { Set($0) } == expected && timers.pending == 0 }
        try? await Task.sleep(for: .milliseconds(150))  // past every deadline: nothing else may fire
        let ids = fired.ids.withLock { $0 }
        #expect(ids.count == expected.count, "a timer fired twice or a cancelled one fired")
        #expect(Set(ids) == expected)
        #expect(timers.pending == 0)
        let times = fired.times.withLock { $0 }
        for entry in armed where expected.contains(entry.index) {
            #expect((times[entry.index] ?? 0) >= entry.deadline, "timer \(entry.index) fired before its deadline")
        }
    }

    /// A later timer does not delay an earlier one armed after it (the thread is woken for it).
    @Test func anEarlierTimerArmedLaterStillFiresOnTime() async {
        let timers = DeadlineTimers()
        let fired = Fired()
        _ = timers.schedule(after: .seconds(30)) { fired.record(0) }
        try? await Task.sleep(for: .milliseconds(20))  // the thread is now asleep until +30 s
        let armedAt = DispatchTime.now().uptimeNanoseconds
        _ = timers.schedule(after: .milliseconds(10)) { fired.record(1) }
        await Self.eventually { fired.ids.withLock { $0 } == [1] }
        let firedAt = fired.times.withLock { $0[1] } ?? .max
        #expect(fired.ids.withLock { $0 } == [1])
        #expect(firedAt >= armedAt + 10_000_000 && firedAt < armedAt + 2_000_000_000)
        #expect(timers.pending == 1)
    }

    /// Cancelling is idempotent and reports whether the timer was still pending.
    @Test func cancelReportsWhetherPending() async {
        let timers = DeadlineTimers()
        let fired = Fired()
        let a = timers.schedule(after: .seconds(60)) { fired.record(0) }
        #expect(timers.cancel(a))
        #expect(!timers.cancel(a))
        let b = timers.schedule(after: .zero) { fired.record(1) }
        await Self.eventually { fired.ids.withLock { $0 } == [1] }
        #expect(!timers.cancel(b))
        #expect(timers.pending == 0)
    }

    /// The manual clock fires a scheduled action only once the clock is strictly past the deadline,
    /// counts it in `pendingTimers`, and a cancelled one never fires.
    @Test func manualClockTimers() {
        let clock = ManualClock()
        let fired = Fired()
        let a = clock.scheduleTimer(at: RoutingInstant(.seconds(5))) { fired.record(0) }
        let b = clock.scheduleTimer(at: RoutingInstant(.seconds(7))) { fired.record(1) }
        #expect(clock.pendingTimers == 2)
        clock.advance(by: .seconds(5))
        #expect(fired.ids.withLock { $0 }.isEmpty)  // exactly at the deadline: not yet
        clock.advance(by: .milliseconds(1))
        #expect(fired.ids.withLock { $0 } == [0])
        b.cancel()
        clock.advance(by: .seconds(10))
        #expect(fired.ids.withLock { $0 } == [0])
        #expect(clock.pendingTimers == 0)
        a.cancel()  // after firing: harmless
        _ = clock.scheduleTimer(at: RoutingInstant(.seconds(1))) { fired.record(2) }  // already past: at once
        #expect(fired.ids.withLock { $0 } == [0, 2])
    }

    /// Timers armed while the thread runs actions — from another thread, and from inside an action —
    /// fire once the actions are done, not at the next wake-up the thread had planned (30 s away here).
    @Test func timersArmedWhileActionsRunAreNotMissed() async {
        let timers = DeadlineTimers()
        let fired = Fired()
        let running = Atomic(false)
        _ = timers.schedule(after: .seconds(30)) { fired.record(0) }
        _ = timers.schedule(after: .milliseconds(5)) {
            running.store(true, ordering: .sequentiallyConsistent)
            _ = timers.schedule(after: .milliseconds(1)) { fired.record(2) }  // re-entrant
            let until = DispatchTime.now().uptimeNanoseconds + 60_000_000
            while DispatchTime.now().uptimeNanoseconds < until {}  // a slow action holding the thread
            fired.record(1)
        }
        await Self.eventually { running.load(ordering: .sequentiallyConsistent) }
        let armedAt = DispatchTime.now().uptimeNanoseconds
        _ = timers.schedule(after: .milliseconds(10)) { fired.record(3) }  // due while the action still runs
        await Self.eventually { Set(fired.ids.withLock { $0 }) == [1, 2, 3] }
        let times = fired.times.withLock { $0 }
        #expect(Set(fired.ids.withLock { $0 }) == [1, 2, 3])
        #expect((times[3] ?? .max) >= armedAt + 10_000_000 && (times[3] ?? .max) < armedAt + 2_000_000_000)
        #expect((times[2] ?? .max) >= (times[1] ?? 0), "the re-entrant timer fired while its action still ran")
        #expect(timers.pending == 1)
    }

    /// Absurdly long delays (a policy with a time budget of centuries, `Duration.seconds(Int64.max)`)
    /// arm a timer that stays pending instead of trapping on an overflowing nanosecond count, and a
    /// timer after them still fires (the far deadline must not wrap round to the near past).
    @Test func absurdDelaysArmWithoutTrapping() async {
        let timers = DeadlineTimers()
        let fired = Fired()
        let far = [Duration.seconds(Int64.max), .seconds(10_000_000_000), .seconds(9_300_000_000) + .milliseconds(999)]
        let ids = far.enumerated().map { index, delay in timers.schedule(after: delay) { fired.record(index) } }
        _ = timers.schedule(after: .milliseconds(5)) { fired.record(99) }
        await Self.eventually { fired.ids.withLock { $0 } == [99] }
        try? await Task.sleep(for: .milliseconds(20))
        #expect(fired.ids.withLock { $0 } == [99], "a far-future timer fired")
        #expect(timers.pending == far.count)
        for id in ids { #expect(timers.cancel(id)) }
        let clock = SystemRoutingClock()
        clock.scheduleTimer(at: clock.now + .seconds(Int64.max)) { fired.record(100) }.cancel()
    }

    /// The system clock's timers go through the shared timer thread.
    @Test func systemClockTimerFiresAndCancels() async {
        let clock = SystemRoutingClock()
        let fired = Fired()
        let kept = clock.scheduleTimer(at: clock.now + .milliseconds(5)) { fired.record(0) }
        let dropped = clock.scheduleTimer(at: clock.now + .milliseconds(5)) { fired.record(1) }
        dropped.cancel()
        await Self.eventually { fired.ids.withLock { $0 } == [0] }
        try? await Task.sleep(for: .milliseconds(20))
        #expect(fired.ids.withLock { $0 } == [0])
        kept.cancel()
    }
}
