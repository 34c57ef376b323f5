import Foundation
import TensorCore

/// Error measures used by the BLAS backend tests.
enum BLASTestMetrics {
    /// Normwise relative error `max|x − r| / max|r|` (the scale of the result, so entries near zero
    /// are judged against the size of the whole output, as a GEMM's rounding error is).
    static func relativeError(_ x: Tensor, _ reference: Tensor) -> Double {
        precondition(x.shape == reference.shape, "shapes differ: \(x.shape) vs \(reference.shape)")
        var num = 0.0, den = 0.0
        for (a, b) in zip(x.scalars, reference.scalars) {
            num = max(num, abs(Double(a) - Double(b)))
            den = max(den, abs(Double(b)))
        }
        return den == 0 ? num : num / den
    }

    /// Index of the first element where `|x − r| > rtol·|r| + atol` (nil when all agree; NaN must match NaN).
    static func firstMismatch(_ x: Tensor, _ reference: Tensor, rtol: Double, atol: Double) -> Int? {
        precondition(x.shape == reference.shape, "shapes differ: \(x.shape) vs \(reference.shape)")
        for (i, (a, b)) in zip(x.scalars, reference.scalars).enumerated() {
            if a.isNaN || b.isNaN {
                if a.isNaN != b.isNaN { return i }
                continue
            }
            if abs(Double(a) - Double(b)) > rtol * abs(Double(b)) + atol { return i }
        }
        return nil
    }

    /// A seed that differs between runs (fresh inputs every time), reported in failure messages.
    static func freshSeed() -> UInt64 { UInt64.random(in: 1...UInt64.max) }
}
