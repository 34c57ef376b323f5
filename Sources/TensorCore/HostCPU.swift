import Foundation

/// The host's processors, read once per process.
///
/// `ProcessInfo.activeProcessorCount` re-reads the affinity mask and cgroup limits on every call
/// (about 13.5 µs on this project's Linux machines), which is 6 % of a 200 µs decode GEMV when a
/// kernel asks for it per call. Kernels that size their thread split read this instead. A process
/// whose CPU affinity or quota changes while it runs keeps the count it started with.
public enum HostCPU {
    /// Processors available to this process at first use (at least 1).
    public static let activeProcessorCount = max(1, ProcessInfo.processInfo.activeProcessorCount)
}
