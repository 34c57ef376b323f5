import CInferenceKitBLAS
import Synchronization

/// Process-wide control of OpenBLAS's own thread pool.
///
/// OpenBLAS serialises concurrent multi-threaded GEMM calls behind one lock,
/// so kernels that run many small GEMMs in parallel (attention blocks,
/// batches of small products) switch OpenBLAS to one thread while they run
/// and restore the previous count afterwards. The count is global to the
/// process; a reference count under a `Mutex` makes nested and concurrent
/// users safe: the first user saves the count, the last one restores it.
/// While any such kernel runs, other OpenBLAS calls in the process run on one
/// thread (correct, only slower).
package enum OpenBLASThreads {
    private struct State {
        var users = 0
        var saved: Int32 = 1
    }

    private static let state = Mutex(State())

    /// OpenBLAS's current thread count.
    package static var current: Int { Int(openblas_get_num_threads()) }

    /// The count OpenBLAS returns to once no single-thread user runs: the saved count while users
    /// run, else the current one. Stable under concurrent users (unlike ``current``).
    package static var restingCount: Int {
        state.withLock { s in Int(s.users > 0 ? s.saved : openblas_get_num_threads()) }
    }

    /// Runs `body` with OpenBLAS limited to one thread.
    package static func withSingleThread<R>(_ body: () throws -> R) rethrows -> R {
        state.withLock { s in
            if s.users == 0 {
                s.saved = openblas_get_num_threads()
                openblas_set_num_threads(1)
            }
            s.users += 1
        }
        defer {
            state.withLock { s in
                s.users -= 1
                if s.users == 0 { openblas_set_num_threads(s.saved) }
            }
        }
        return try body()
    }
}
