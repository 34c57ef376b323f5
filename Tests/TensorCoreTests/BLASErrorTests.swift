import Testing
import TensorCore
import TensorCoreBLAS

/// Bad input gives the same typed error from BLASBackend as from ReferenceBackend.
@Suite("BLASBackend input validation")
struct BLASErrorTests {
    struct BadCall: CustomTestStringConvertible, Sendable {
        let name: String
        let expected: TensorError.Code
        let call: @Sendable (any ComputeBackend) throws -> Tensor
        var testDescription: String { name }
    }

    static let t2x3 = Tensor.random(shape: [2, 3], seed: 1)
    static let t4x5 = Tensor.random(shape: [4, 5], seed: 2)
    static let q = Tensor.random(shape: [1, 4, 3, 8], seed: 3)
    static let kv = Tensor.random(shape: [1, 2, 5, 8], seed: 4)

    static let cases: [BadCall] = [
        BadCall(name: "matmul inner dimensions differ", expected: .shapeMismatch) { try $0.matmul(t2x3, t4x5) },
        BadCall(name: "matmul rank 1", expected: .invalidRank) { try $0.matmul(Tensor(zeros: [3]), t2x3) },
        BadCall(name: "matmul rank 4", expected: .invalidRank) { try $0.matmul(Tensor(zeros: [1, 1, 2, 3]), t2x3) },
        BadCall(name: "matmul 2-D a with 3-D b", expected: .invalidRank) { try $0.matmul(t2x3, Tensor(zeros: [2, 3, 4])) },
        BadCall(name: "matmul batch sizes differ", expected: .shapeMismatch) { try $0.matmul(Tensor(zeros: [2, 2, 3]), Tensor(zeros: [3, 3, 4])) },
        BadCall(name: "matmul empty operand", expected: .invalidArgument) { try $0.matmul(Tensor(zeros: [0, 3]), Tensor(zeros: [3, 4])) },
        BadCall(name: "matmul transposed inner mismatch", expected: .shapeMismatch) {
            try $0.matmul(t2x3, t2x3, transposeA: false, transposeB: false)
        },
        BadCall(name: "attention rank 3 query", expected: .invalidRank) { try $0.attention(query: Tensor(zeros: [4, 3, 8]), key: kv, value: kv, causal: false, scale: 1) },
        BadCall(name: "attention Hq not a multiple of Hkv", expected: .shapeMismatch) {
            try $0.attention(query: Tensor(zeros: [1, 3, 3, 8]), key: kv, value: kv, causal: false, scale: 1)
        },
        BadCall(name: "attention head dims differ", expected: .shapeMismatch) {
            try $0.attention(query: Tensor(zeros: [1, 4, 3, 7]), key: kv, value: kv, causal: false, scale: 1)
        },
        BadCall(name: "attention key/value shapes differ", expected: .shapeMismatch) {
            try $0.attention(query: q, key: kv, value: Tensor(zeros: [1, 2, 6, 8]), causal: false, scale: 1)
        },
        BadCall(name: "attention batch differs", expected: .shapeMismatch) {
            try $0.attention(query: Tensor(zeros: [2, 4, 3, 8]), key: kv, value: kv, causal: false, scale: 1)
        },
        BadCall(name: "attention empty keys", expected: .invalidArgument) {
            try $0.attention(query: q, key: Tensor(zeros: [1, 2, 0, 8]), value: Tensor(zeros: [1, 2, 0, 8]), causal: false, scale: 1)
        },
        BadCall(name: "attention NaN scale", expected: .nonFinite) { try $0.attention(query: q, key: kv, value: kv, causal: false, scale: .nan) },
        BadCall(name: "attention infinite scale", expected: .nonFinite) { try $0.attention(query: q, key: kv, value: kv, causal: true, scale: .infinity) },
        BadCall(name: "causal attention with Tq > Tk", expected: .shapeMismatch) {
            try $0.attention(query: Tensor(zeros: [1, 4, 9, 8]), key: kv, value: kv, causal: true, scale: 1)
        },
        BadCall(name: "softmax empty last axis", expected: .invalidArgument) { try $0.softmax(Tensor(zeros: [3, 0])) },
        BadCall(name: "softmax rank 0", expected: .invalidRank) { try $0.softmax(Tensor(zeros: [])) },
        BadCall(name: "rmsNorm weight mismatch", expected: .shapeMismatch) { try $0.rmsNorm(t2x3, weight: Tensor(zeros: [2]), epsilon: 1e-5) },
        BadCall(name: "rmsNorm NaN epsilon", expected: .invalidArgument) { try $0.rmsNorm(t2x3, weight: Tensor(zeros: [3]), epsilon: .nan) },
        BadCall(name: "rope odd head dim", expected: .invalidArgument) { try $0.rope(Tensor(zeros: [1, 1, 2, 3]), positions: [0, 1], theta: 10_000, style: .halfSplit) },
        BadCall(name: "rope rank 2", expected: .invalidRank) { try $0.rope(t2x3, positions: [0, 1], theta: 10_000, style: .interleaved) },
        BadCall(name: "rope position count", expected: .shapeMismatch) { try $0.rope(q, positions: [0, 1], theta: 10_000, style: .halfSplit) },
        BadCall(name: "rope negative position", expected: .invalidArgument) { try $0.rope(q, positions: [0, -1, 2], theta: 10_000, style: .halfSplit) },
        BadCall(name: "rope theta ≤ 1", expected: .invalidArgument) { try $0.rope(q, positions: [0, 1, 2], theta: 1, style: .halfSplit) },
        BadCall(name: "add non-suffix shape", expected: .shapeMismatch) { try $0.add(t2x3, Tensor(zeros: [2])) },
        BadCall(name: "mul larger b", expected: .shapeMismatch) { try $0.mul(t2x3, Tensor(zeros: [1, 2, 3])) },
    ]

    @Test("bad input → TensorError with the reference backend's code and message", arguments: cases)
    func badInput(_ c: BadCall) {
        let blasError = Self.error { try c.call(BLASBackend()) }
        let referenceError = Self.error { try c.call(ReferenceBackend()) }
        #expect(blasError?.code == c.expected, "got \(String(describing: blasError))")
        #expect(blasError == referenceError)
        // The message names the offending shapes or value, so a user can fix the call.
        #expect((blasError?.message.count ?? 0) > 10)
    }

    @Test("configuration validation", arguments: [
        BLASBackend.Configuration(threads: -1),
        BLASBackend.Configuration(attentionRowsPerBlock: -5),
        BLASBackend.Configuration(attentionScoresPerBlock: 1 << 30),
    ])
    func badConfiguration(_ c: BLASBackend.Configuration) {
        #expect(Self.error { _ = try BLASBackend(configuration: c) }?.code == .invalidArgument)
    }

    @Test("provider creates a working backend and registers as `blas`")
    func provider() throws {
        let registry = BackendRegistry([ReferenceBackend.provider, BLASBackend.provider])
        let backend = try registry.backend(named: "BLAS")
        #expect(backend.name == "blas")
        #expect(backend.deviceDescription.contains("OpenBLAS"))
        let env = try registry.defaultBackend(environment: [BackendRegistry.environmentVariable: "blas"])
        #expect(env.name == "blas")
    }

    static func error<R>(_ body: () throws -> R) -> TensorError? {
        do {
            _ = try body()
            return nil
        } catch let e as TensorError {
            return e
        } catch {
            return TensorError(.deviceFailure, "unexpected error type: \(error)")
        }
    }
}
