import Testing
@testable import TensorCore

@Suite struct TensorTests {
    @Test func copyOnWrite() throws {
        let a = try Tensor(shape: [2, 2], scalars: [1, 2, 3, 4])
        var b = a
        b[0, 1] = 9
        #expect(a[0, 1] == 2)
        #expect(b[0, 1] == 9)
    }

    @Test func scalarCountMustMatchShape() {
        #expect(throws: TensorError.self) { try Tensor(shape: [2, 3], scalars: [1, 2, 3]) }
        #expect(throws: TensorError.self) { try Tensor(zeros: [6]).reshaped([4, 2]) }
        #expect(throws: TensorError.self) { try Shape.validated([-1, 2]) }
        #expect(throws: TensorError.self) { try Shape.validated([Int.max, 3]) }
    }

    @Test func seededRandomIsReproducibleAndInRange() {
        let a = Tensor.random(shape: [1000], seed: 42)
        #expect(a == Tensor.random(shape: [1000], seed: 42))
        #expect(a != Tensor.random(shape: [1000], seed: 43))
        #expect(a.scalars.allSatisfy { $0 >= -1 && $0 < 1 })
        let n = Tensor.random(shape: [20_000], seed: 7, distribution: .normal(mean: 2, standardDeviation: 3))
        let mean = n.scalars.reduce(0, +) / Float(n.elementCount)
        let variance = n.scalars.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Float(n.elementCount)
        // Sample mean within ~5 standard errors (3/√20000 ≈ 0.021), variance within 5%.
        #expect(abs(mean - 2) < 0.11)
        #expect(abs(variance - 9) < 0.45)
    }

    @Test func float16RoundTrip() throws {
        // 1.0 = 0x3C00, -2.0 = 0xC000, 65504 is the largest finite half, 1/3 rounds to 0x3555.
        let t = try Tensor(shape: [4], scalars: [1, -2, 65504, 1.0 / 3.0])
        #expect(t.float16Bits() == [0x3C00, 0xC000, 0x7BFF, 0x3555])
        let back = try Tensor(shape: [4], float16: t.float16Scalars())
        #expect(back.scalars[0...2] == [1, -2, 65504])
        #expect(abs(back.scalars[3] - 1.0 / 3.0) < 1e-3)
        #expect(try Tensor(shape: [1], scalars: [1e6]).float16Scalars()[0].isInfinite)
    }

    @Test func checkFiniteNamesTheElement() throws {
        let t = try Tensor(shape: [3], scalars: [1, .nan, 2])
        #expect(!t.isFinite)
        #expect(throws: TensorError(.nonFinite, "w of shape [3] holds nan at flat index 1; replace NaN/Inf values before calling")) {
            try t.checkFinite("w")
        }
    }
}
