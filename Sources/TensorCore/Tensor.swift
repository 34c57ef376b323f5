import Foundation

/// A dense, row-major Float32 tensor.
///
/// `Tensor` is a `Sendable` value with copy-on-write storage: copies are
/// cheap, and the first mutation of a shared copy duplicates the buffer.
///
/// ```swift
/// let a = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
/// let b = Tensor.random(shape: [3, 4], seed: 42)
/// let c = try ReferenceBackend().matmul(a, b)   // [2, 4]
/// ```
public struct Tensor: Sendable, Equatable, CustomStringConvertible {
    public private(set) var shape: Shape
    /// Row-major elements; `Array` supplies the copy-on-write behaviour.
    public private(set) var scalars: [Float]

    /// Creates a tensor from row-major scalars; the count must equal the shape's element count.
    public init(shape: Shape, scalars: [Float]) throws {
        guard shape.elementCount == scalars.count else {
            throw TensorError(.shapeMismatch, "shape \(shape) needs \(shape.elementCount) scalars but \(scalars.count) were given")
        }
        self.shape = shape
        self.scalars = scalars
    }

    /// A tensor with every element zero.
    public init(zeros shape: Shape) {
        self.shape = shape
        self.scalars = [Float](repeating: 0, count: shape.elementCount)
    }

    /// A tensor with every element equal to `value`.
    public init(repeating value: Float, shape: Shape) {
        self.shape = shape
        self.scalars = [Float](repeating: value, count: shape.elementCount)
    }

    /// Creates a tensor by filling a fresh buffer of `shape.elementCount` elements.
    ///
    /// Backends use this to write results without an extra copy.
    public init(shape: Shape, unsafeUninitializedCapacity initializer: (inout UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows {
        self.shape = shape
        let n = shape.elementCount
        self.scalars = try [Float](unsafeUninitializedCapacity: n) { buffer, count in
            try initializer(&buffer)
            count = n
        }
    }

    /// Distributions for ``random(shape:seed:distribution:)``.
    public enum Distribution: Sendable, Hashable {
        case uniform(low: Float, high: Float)
        case normal(mean: Float, standardDeviation: Float)
    }

    /// A tensor of seeded pseudo-random values (reproducible across runs and platforms).
    public static func random(shape: Shape, seed: UInt64, distribution: Distribution = .uniform(low: -1, high: 1)) -> Tensor {
        var rng = SplitMix64(seed: seed)
        var t = Tensor(zeros: shape)
        t.scalars.withUnsafeMutableBufferPointer { p in
            switch distribution {
            case let .uniform(low, high):
                for i in p.indices { p[i] = low + (high - low) * rng.nextUnitFloat() }
            case let .normal(mean, sd):
                var i = 0
                while i < p.count {
                    // Box–Muller: two normals from two uniforms.
                    let u1 = max(rng.nextUnitDouble(), 1e-300), u2 = rng.nextUnitDouble()
                    let r = (-2 * log(u1)).squareRoot()
                    p[i] = mean + sd * Float(r * cos(2 * Double.pi * u2))
                    if i + 1 < p.count { p[i + 1] = mean + sd * Float(r * sin(2 * Double.pi * u2)) }
                    i += 2
                }
            }
        }
        return t
    }

    public var rank: Int { shape.rank }
    public var elementCount: Int { scalars.count }

    /// The same elements viewed with another shape of equal element count.
    public func reshaped(_ newShape: Shape) throws -> Tensor {
        guard newShape.elementCount == elementCount else {
            throw TensorError(.shapeMismatch, "cannot reshape \(shape) (\(elementCount) elements) to \(newShape) (\(newShape.elementCount) elements)")
        }
        var t = self
        t.shape = newShape
        return t
    }

    /// Element at a multi-dimensional index (bounds are checked).
    public subscript(indices: Int...) -> Float {
        get { scalars[flatIndex(indices)] }
        set { scalars[flatIndex(indices)] = newValue }
    }

    private func flatIndex(_ indices: [Int]) -> Int {
        precondition(indices.count == shape.rank, "index \(indices) has rank \(indices.count), tensor has rank \(shape.rank)")
        var flat = 0
        for (i, idx) in indices.enumerated() {
            precondition(idx >= 0 && idx < shape[i], "index \(indices) out of bounds for shape \(shape)")
            flat = flat * shape[i] + idx
        }
        return flat
    }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try scalars.withUnsafeBufferPointer(body)
    }

    public mutating func withUnsafeMutableBufferPointer<R>(_ body: (inout UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        try scalars.withUnsafeMutableBufferPointer(body)
    }

    /// True when no element is NaN or infinite.
    public var isFinite: Bool { scalars.allSatisfy { $0.isFinite } }

    /// Throws ``TensorError/Code/nonFinite`` naming the first NaN/Inf element.
    public func checkFinite(_ name: String) throws {
        if let i = scalars.firstIndex(where: { !$0.isFinite }) {
            throw TensorError(.nonFinite, "\(name) of shape \(shape) holds \(scalars[i]) at flat index \(i); replace NaN/Inf values before calling")
        }
    }

    public var description: String {
        let preview = scalars.prefix(8).map { String($0) }.joined(separator: ", ")
        return "Tensor(shape: \(shape), [\(preview)\(scalars.count > 8 ? ", …" : "")])"
    }
}

// MARK: - Float16

extension Tensor {
    /// Creates a Float32 tensor from IEEE half-precision values (storage and transfer format).
    public init(shape: Shape, float16 values: [Float16]) throws {
        guard shape.elementCount == values.count else {
            throw TensorError(.shapeMismatch, "shape \(shape) needs \(shape.elementCount) Float16 values but \(values.count) were given")
        }
        self.shape = shape
        self.scalars = values.map { Float($0) }
    }

    /// The elements rounded to IEEE half precision (round to nearest even; out-of-range values become ±inf).
    public func float16Scalars() -> [Float16] { scalars.map { Float16($0) } }

    /// The elements as raw little-endian half-precision bit patterns.
    public func float16Bits() -> [UInt16] { scalars.map { Float16($0).bitPattern } }
}

// MARK: - Seeded random numbers

/// A small, fast, seedable generator (SplitMix64); identical sequences on every platform.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * (1.0 / Float(1 << 24)) }
    /// Uniform in [0, 1).
    public mutating func nextUnitDouble() -> Double { Double(next() >> 11) * (1.0 / Double(UInt64(1) << 53)) }
}
