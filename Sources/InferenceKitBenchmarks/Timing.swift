import Foundation

/// Wall-clock samples of repeated runs, summarised by their median.
public struct TimingSamples: Sendable, Codable, Hashable {
    /// Seconds per run, in the order measured.
    public var seconds: [Double]

    public init(seconds: [Double] = []) { self.seconds = seconds }

    public var median: Double? {
        guard !seconds.isEmpty else { return nil }
        let s = seconds.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    public var minimum: Double? { seconds.min() }
    public var maximum: Double? { seconds.max() }
}

/// Monotonic time in seconds.
@inline(__always)
func now() -> Double {
    Double(DispatchTime.now().uptimeNanoseconds) * 1e-9
}

/// Runs `body` once and returns its duration in seconds.
@inline(__always)
func timeOnce(_ body: () throws -> Void) rethrows -> Double {
    let start = now()
    try body()
    return now() - start
}
