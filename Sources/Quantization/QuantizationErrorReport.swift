import Foundation

/// How far a quantized tensor is from the original, computed in Float64.
public struct QuantizationErrorReport: Sendable, Hashable, Codable, CustomStringConvertible {
    /// The tensor's name.
    public let name: String
    /// The format's ``QuantizationFormat/name``.
    public let format: String
    /// Number of weights compared.
    public let count: Int
    /// Root-mean-square error `sqrt(mean((x − x̂)²))`.
    public let rmse: Double
    /// Largest `|x − x̂|`.
    public let maxAbsError: Double
    /// Signal-to-quantization-noise ratio `10·log10(Σx² / Σ(x − x̂)²)` in dB (`+∞` when exact).
    public let sqnrDB: Double
    /// `x·x̂ / (|x|·|x̂|)`; 1 when both are all zero.
    public let cosineSimilarity: Double

    /// Compares `original` and `reconstructed` element by element (equal counts).
    public init(name: String, format: QuantizationFormat, original: [Float], reconstructed: [Float]) {
        self.name = name
        self.format = format.name
        var se = 0.0, sx = 0.0, sy = 0.0, sxy = 0.0, mx = 0.0
        let n = min(original.count, reconstructed.count)
        for i in 0..<n {
            let x = Double(original[i]), y = Double(reconstructed[i])
            let e = x - y
            se += e * e; sx += x * x; sy += y * y; sxy += x * y
            mx = max(mx, abs(e))
        }
        count = n
        rmse = n > 0 ? (se / Double(n)).squareRoot() : 0
        maxAbsError = mx
        sqnrDB = se == 0 ? .infinity : sx == 0 ? -.infinity : 10 * log10(sx / se)
        if sx == 0 && sy == 0 { cosineSimilarity = 1 }
        else if sx == 0 || sy == 0 { cosineSimilarity = 0 }
        else { cosineSimilarity = sxy / (sx.squareRoot() * sy.squareRoot()) }
    }

    public var description: String {
        String(format: "%@ [%@]: rmse %.3g, max|e| %.3g, SQNR %.2f dB, cos %.6f", name, format, rmse, maxAbsError, sqnrDB, cosineSimilarity)
    }
}
