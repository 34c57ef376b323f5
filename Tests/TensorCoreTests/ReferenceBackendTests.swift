import Foundation
import Testing
@testable import TensorCore

/// The reference backend is the oracle for every other backend, so it is
/// checked here against values derived by hand (derivations in comments)
/// and against mathematical identities, never against its own output.
@Suite struct ReferenceBackendTests {
    let backend = ReferenceBackend()

    @Test func matmulHandComputed() throws {
        // [[1,2,3],[4,5,6]] · [[7,8],[9,10],[11,12]]
        // row 0: 1·7+2·9+3·11 = 58, 1·8+2·10+3·12 = 64
        // row 1: 4·7+5·9+6·11 = 139, 4·8+5·10+6·12 = 154
        let a = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        let b = try Tensor(shape: [3, 2], scalars: [7, 8, 9, 10, 11, 12])
        #expect(try backend.matmul(a, b).scalars == [58, 64, 139, 154])
        // Transposes: (aᵀ)ᵀ = a stored as [3, 2] with transposeA.
        let at = try Tensor(shape: [3, 2], scalars: [1, 4, 2, 5, 3, 6])
        let bt = try Tensor(shape: [2, 3], scalars: [7, 9, 11, 8, 10, 12])
        #expect(try backend.matmul(at, bt, transposeA: true, transposeB: true).scalars == [58, 64, 139, 154])
    }

    @Test func batchedMatmulMatchesPerBatchProducts() throws {
        let a = Tensor.random(shape: [3, 5, 7], seed: 11)
        let b = Tensor.random(shape: [3, 7, 4], seed: 12)
        let c = try backend.matmul(a, b)
        #expect(c.shape == [3, 5, 4])
        for batch in 0..<3 {
            for i in 0..<5 {
                for j in 0..<4 {
                    var acc = 0.0
                    for p in 0..<7 { acc += Double(a[batch, i, p]) * Double(b[batch, p, j]) }
                    #expect(abs(Double(c[batch, i, j]) - acc) <= 1e-6 * max(1, abs(acc)))
                }
            }
        }
        // A 2-D right operand is shared by every batch element.
        let w = Tensor.random(shape: [7, 4], seed: 13)
        let shared = try backend.matmul(a, w)
        for batch in 0..<3 {
            var slice = Tensor(zeros: [5, 7])
            for i in 0..<5 { for p in 0..<7 { slice[i, p] = a[batch, i, p] } }
            let single = try backend.matmul(slice, w)
            for i in 0..<5 { for j in 0..<4 { #expect(shared[batch, i, j] == single[i, j]) } }
        }
    }

    @Test func softmaxKnownValues() throws {
        // softmax([0, ln 2]) = [1, 2] / 3; adding a constant changes nothing.
        let x = try Tensor(shape: [2, 2], scalars: [0, Float(log(2.0)), 1000, 1000 + Float(log(2.0))])
        let y = try backend.softmax(x)
        for row in 0..<2 {
            #expect(abs(y[row, 0] - 1.0 / 3.0) < 1e-4)
            #expect(abs(y[row, 1] - 2.0 / 3.0) < 1e-4)
        }
    }

    @Test func rmsNormKnownValues() throws {
        // x = [3, 4]: mean(x²) = 12.5, rms = √12.5; weight [1, 2].
        let x = try Tensor(shape: [1, 2], scalars: [3, 4])
        let w = try Tensor(shape: [2], scalars: [1, 2])
        let y = try backend.rmsNorm(x, weight: w, epsilon: 0)
        let rms = Float(12.5.squareRoot())
        #expect(abs(y[0, 0] - 3 / rms) < 1e-6)
        #expect(abs(y[0, 1] - 8 / rms) < 1e-6)
    }

    @Test(arguments: RotaryStyle.allCases)
    func ropeRotatesPairsByPositionTimesFrequency(style: RotaryStyle) throws {
        // D = 4, theta = 100: inverse frequencies 100^0 = 1 and 100^(-2/4) = 0.1.
        // At position 3 the pairs rotate by 3 and 0.3 radians.
        let x = try Tensor(shape: [1, 1, 2, 4], scalars: [1, 2, 3, 4, 1, 2, 3, 4])
        let y = try backend.rope(x, positions: [0, 3], theta: 100, style: style)
        // Position 0 is the identity.
        #expect(Array(y.scalars[0..<4]) == [1, 2, 3, 4])
        let pairs = style == .halfSplit ? [(0, 2), (1, 3)] : [(0, 1), (2, 3)]
        for (i, (p0, p1)) in pairs.enumerated() {
            let angle = 3 * (i == 0 ? 1.0 : 0.1)
            let x0 = Double(x.scalars[4 + p0]), x1 = Double(x.scalars[4 + p1])
            #expect(abs(Double(y.scalars[4 + p0]) - (x0 * cos(angle) - x1 * sin(angle))) < 1e-6)
            #expect(abs(Double(y.scalars[4 + p1]) - (x0 * sin(angle) + x1 * cos(angle))) < 1e-6)
        }
    }

    @Test func siluAddMul() throws {
        let x = try Tensor(shape: [3], scalars: [0, 1, -2])
        let s = try backend.silu(x)
        // silu(0) = 0, silu(1) = 1/(1+e⁻¹), silu(-2) = -2/(1+e²)
        #expect(s.scalars[0] == 0)
        #expect(abs(Double(s.scalars[1]) - 1 / (1 + exp(-1.0))) < 1e-6)
        #expect(abs(Double(s.scalars[2]) + 2 / (1 + exp(2.0))) < 1e-6)
        let a = try Tensor(shape: [2, 3], scalars: [1, 2, 3, 4, 5, 6])
        let row = try Tensor(shape: [3], scalars: [10, 20, 30])
        #expect(try backend.add(a, row).scalars == [11, 22, 33, 14, 25, 36])
        #expect(try backend.mul(a, row).scalars == [10, 40, 90, 40, 100, 180])
        #expect(try backend.add(a, a).scalars == [2, 4, 6, 8, 10, 12])
    }

    @Test func attentionWithOneKeyReturnsItsValue() throws {
        // A single visible key gets softmax weight 1, so the output is its value row.
        let q = Tensor.random(shape: [1, 2, 1, 5], seed: 1)
        let k = Tensor.random(shape: [1, 2, 1, 5], seed: 2)
        let v = Tensor.random(shape: [1, 2, 1, 5], seed: 3)
        let o = try backend.attention(query: q, key: k, value: v, causal: false, scale: 0.7)
        #expect(o.scalars == v.scalars)
    }

    @Test func attentionWithEqualScoresAveragesValues() throws {
        // Zero queries give every key the same score, so the output is the mean of the visible values.
        // Causal with Tq = Tk = 3: query i sees keys 0...i, so outputs are prefix means.
        let q = Tensor(zeros: [1, 1, 3, 2])
        let k = Tensor.random(shape: [1, 1, 3, 2], seed: 4)
        let v = try Tensor(shape: [1, 1, 3, 2], scalars: [1, 10, 2, 20, 6, 60])
        let causal = try backend.attention(query: q, key: k, value: v, causal: true, scale: 1)
        #expect(causal.scalars.enumerated().allSatisfy { i, x in abs(x - [1, 10, 1.5, 15, 3, 30][i]) < 1e-6 })
        // Decode (Tq = 1) under the end-aligned causal mask sees every key.
        let q1 = Tensor(zeros: [1, 1, 1, 2])
        let decode = try backend.attention(query: q1, key: k, value: v, causal: true, scale: 1)
        #expect(abs(decode.scalars[0] - 3) < 1e-6 && abs(decode.scalars[1] - 30) < 1e-6)
    }

    @Test func groupedQueryHeadsReadTheirKVHead() throws {
        // Hq = 4, Hkv = 2: query heads 0,1 read kv head 0; heads 2,3 read kv head 1.
        // With one key per kv head each output equals that head's value.
        let q = Tensor.random(shape: [1, 4, 1, 3], seed: 5)
        let k = Tensor.random(shape: [1, 2, 1, 3], seed: 6)
        let v = try Tensor(shape: [1, 2, 1, 3], scalars: [1, 2, 3, 4, 5, 6])
        let o = try backend.attention(query: q, key: k, value: v, causal: false, scale: 1)
        #expect(o.scalars == [1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6])
    }

    @Test func attentionMatchesExplicitSoftmaxOfScores() throws {
        // Cross-check against the op-by-op formula softmax(q·kᵀ·s)·v built from matmul and softmax.
        let (tq, tk, d) = (5, 9, 6)
        let q = Tensor.random(shape: [1, 1, tq, d], seed: 7)
        let k = Tensor.random(shape: [1, 1, tk, d], seed: 8)
        let v = Tensor.random(shape: [1, 1, tk, d], seed: 9)
        let scores = try backend.matmul(q.reshaped([tq, d]), k.reshaped([tk, d]), transposeA: false, transposeB: true)
        let scaled = try backend.mul(scores, Tensor(repeating: 0.4, shape: [tk]))
        let expected = try backend.matmul(backend.softmax(scaled), v.reshaped([tk, d]))
        let o = try backend.attention(query: q, key: k, value: v, causal: false, scale: 0.4)
        for (x, y) in zip(o.scalars, expected.scalars) { #expect(abs(x - y) < 1e-5) }
    }
}
