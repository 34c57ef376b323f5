import Dispatch
import Synchronization

/// Fires callbacks at monotonic deadlines from one background thread.
///
/// Attempt timers exist on every upstream call but almost never fire, so arming and disarming one
/// must be cheap: here it is a lock and a heap insertion or removal. The thread is signalled only
/// when a new timer is due before the thread's next wake-up, so with one attempt timeout for all
/// requests it wakes about once per timeout period, not once per request. `Task.sleep` in a child task, the obvious alternative,
/// creates a task, arms a Dispatch timer and must be woken to observe its cancellation: measured
/// at about 100 µs of added latency per gateway request on this project's 2-core machine.
final class DeadlineTimers: Sendable {
    static let shared = DeadlineTimers()

    private struct Entry {
        var deadline: UInt64  // DispatchTime uptime nanoseconds
        var id: UInt64
        var action: @Sendable () -> Void
    }

    /// A binary min-heap on `deadline` with each id's position, so a cancelled timer is removed at once.
    private struct State: ~Copyable {
        var heap: [Entry] = []
        var positions: [UInt64: Int] = [:]
        var nextID: UInt64 = 0
        var started = false
        /// When the timer thread will wake by itself (`UInt64.max`: only when signalled). A new
        /// timer due no earlier needs no signal: the thread re-reads the heap when it wakes.
        var sleepingUntil: UInt64 = .max

        mutating func insert(_ entry: Entry) {
            heap.append(entry)
            positions[entry.id] = heap.count - 1
            siftUp(heap.count - 1)
        }

        mutating func remove(id: UInt64) -> Bool {
            guard let index = positions.removeValue(forKey: id) else { return false }
            let last = heap.count - 1
            if index != last {
                heap.swapAt(index, last)
                positions[heap[index].id] = index
            }
            heap.removeLast()
            if index < heap.count {
                siftDown(index)
                siftUp(index)
            }
            return true
        }

        mutating func popDue(now: UInt64) -> [@Sendable () -> Void] {
            var due: [@Sendable () -> Void] = []
            while let first = heap.first, first.deadline <= now {
                due.append(first.action)
                _ = remove(id: first.id)
            }
            return due
        }

        private mutating func siftUp(_ start: Int) {
            var child = start
            while child > 0 {
                let parent = (child - 1) / 2
                guard heap[child].deadline < heap[parent].deadline else { return }
                heap.swapAt(child, parent)
                positions[heap[child].id] = child
                positions[heap[parent].id] = parent
                child = parent
            }
        }

        private mutating func siftDown(_ start: Int) {
            var parent = start
            while true {
                let left = 2 * parent + 1, right = left + 1
                var smallest = parent
                if left < heap.count, heap[left].deadline < heap[smallest].deadline { smallest = left }
                if right < heap.count, heap[right].deadline < heap[smallest].deadline { smallest = right }
                guard smallest != parent else { return }
                heap.swapAt(parent, smallest)
                positions[heap[parent].id] = parent
                positions[heap[smallest].id] = smallest
                parent = smallest
            }
        }
    }

    private let state = Mutex(State())
    private let wake = DispatchSemaphore(value: 0)

    /// Timers armed and not yet fired or cancelled.
    var pending: Int { state.withLock { $0.heap.count } }

    /// Calls `action` on the timer thread once `delay` has passed, unless cancelled first.
    /// Returns the id to pass to ``cancel(_:)``.
    func schedule(after delay: Duration, _ action: @escaping @Sendable () -> Void) -> UInt64 {
        // Saturating: a delay past Int64.max nanoseconds (about 292 years) is "never" below, not a trap.
        let whole = max(0, delay.components.seconds).multipliedReportingOverflow(by: 1_000_000_000)
        let nanoseconds = whole.overflow
            ? UInt64.max : UInt64(whole.partialValue) &+ UInt64(max(0, delay.components.attoseconds / 1_000_000_000))
        let deadline = DispatchTime.now().uptimeNanoseconds &+ min(nanoseconds, UInt64(Int64.max) / 2)
        let (id, signal, start) = state.withLock { state in
            state.nextID &+= 1
            state.insert(Entry(deadline: deadline, id: state.nextID, action: action))
            let start = !state.started
            state.started = true
            let signal = deadline < state.sleepingUntil
            if signal { state.sleepingUntil = deadline }  // one signal per earlier wake-up
            return (state.nextID, signal, start)
        }
        if start {
            // A dedicated serial queue: Dispatch gives it its own thread, which this loop keeps.
            DispatchQueue(label: "inferencekit.routing.deadline-timers").async { self.run() }
        } else if signal {
            wake.signal()
        }
        return id
    }

    /// Disarms a timer; returns whether it was still pending (false once it has fired).
    @discardableResult
    func cancel(_ id: UInt64) -> Bool {
        state.withLock { $0.remove(id: id) }
    }

    private func run() {
        while true {
            let now = DispatchTime.now().uptimeNanoseconds
            let (due, next) = state.withLock { state in
                let due = state.popDue(now: now)
                let next = state.heap.first?.deadline ?? .max
                if due.isEmpty { state.sleepingUntil = next }
                return (due, next)
            }
            for action in due { action() }
            guard due.isEmpty else { continue }
            if next == .max {
                wake.wait()
            } else {
                _ = wake.wait(timeout: DispatchTime(uptimeNanoseconds: next))
            }
        }
    }
}
