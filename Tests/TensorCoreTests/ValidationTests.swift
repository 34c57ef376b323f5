import Testing
@testable import TensorCore

/// Bad input gets a typed error naming the shapes, on every backend; these
/// tests pin the shared validation the backends use.
@Suite struct ValidationTests {
    let backend = ReferenceBackend()

    private func code(_ body: () throws -> Tensor) -> TensorError.Code? {
        do { _ = try body(); return nil } catch let e as TensorError { return e.code } catch { return nil }
    }

    @Test func matmulErrors() throws {
        let a = Tensor(zeros: [2, 3]), b = Tensor(zeros: [4, 5])
        #expect(code { try backend.matmul(a, b) } == .shapeMismatch)
        #expect(code { try backend.matmul(Tensor(zeros: [2]), b) } == .invalidRank)
        #expect(code { try backend.matmul(a, Tensor(zeros: [2, 3, 4])) } == .invalidRank)
        #expect(code { try backend.matmul(Tensor(zeros: [2, 3, 4]), Tensor(zeros: [3, 4, 5])) } == .shapeMismatch)
        #expect(code { try backend.matmul(Tensor(zeros: [0, 3]), Tensor(zeros: [3, 2])) } == .invalidArgument)
        do {
            _ = try backend.matmul(a, b)
        } catch let e as TensorError {
            #expect(e.message.contains("[2, 3]") && e.message.contains("[4, 5]"))
        }
    }

    @Test func attentionErrors() throws {
        let q = Tensor(zeros: [1, 6, 2, 8]), kv = Tensor(zeros: [1, 4, 5, 8])
        // Hq = 6 is not a multiple of Hkv = 4.
        #expect(code { try backend.attention(query: q, key: kv, value: kv, causal: false, scale: 1) } == .shapeMismatch)
        let q4 = Tensor(zeros: [1, 4, 2, 8])
        #expect(code { try backend.attention(query: q4, key: kv, value: kv, causal: false, scale: .nan) } == .nonFinite)
        #expect(code { try backend.attention(query: q4, key: kv, value: kv, causal: false, scale: .infinity) } == .nonFinite)
        #expect(code { try backend.attention(query: Tensor(zeros: [4, 2, 8]), key: kv, value: kv, causal: false, scale: 1) } == .invalidRank)
        #expect(code { try backend.attention(query: Tensor(zeros: [1, 4, 2, 7]), key: kv, value: kv, causal: false, scale: 1) } == .shapeMismatch)
        #expect(code { try backend.attention(query: q4, key: kv, value: Tensor(zeros: [1, 4, 6, 8]), causal: false, scale: 1) } == .shapeMismatch)
        #expect(code { try backend.attention(query: Tensor(zeros: [1, 4, 9, 8]), key: kv, value: kv, causal: true, scale: 1) } == .shapeMismatch)
        #expect(code { try backend.attention(query: Tensor(zeros: [1, 4, 0, 8]), key: kv, value: kv, causal: false, scale: 1) } == .invalidArgument)
    }

    @Test func elementwiseAndNormErrors() throws {
        let x = Tensor(zeros: [2, 4])
        #expect(code { try backend.add(x, Tensor(zeros: [3])) } == .shapeMismatch)
        #expect(code { try backend.mul(x, Tensor(zeros: [2, 4, 1])) } == .shapeMismatch)
        #expect(code { try backend.rmsNorm(x, weight: Tensor(zeros: [3]), epsilon: 1e-5) } == .shapeMismatch)
        #expect(code { try backend.rmsNorm(x, weight: Tensor(zeros: [4]), epsilon: .nan) } == .invalidArgument)
        #expect(code { try backend.rope(Tensor(zeros: [1, 1, 2, 3]), positions: [0, 1], theta: 10_000, style: .halfSplit) } == .invalidArgument)
        #expect(code { try backend.rope(Tensor(zeros: [1, 1, 2, 4]), positions: [0], theta: 10_000, style: .halfSplit) } == .shapeMismatch)
        #expect(code { try backend.rope(Tensor(zeros: [1, 1, 2, 4]), positions: [0, -1], theta: 10_000, style: .halfSplit) } == .invalidArgument)
        #expect(code { try backend.softmax(Tensor(zeros: [3, 0])) } == .invalidArgument)
    }

    @Test func registrySelection() throws {
        let registry = BackendRegistry([ReferenceBackend.provider])
        #expect(try registry.backend(named: "REFERENCE").name == "reference")
        #expect(try registry.defaultBackend(environment: [:]).name == "reference")
        #expect(try registry.defaultBackend(environment: ["INFERENCEKIT_BACKEND": "reference"]).name == "reference")
        #expect(throws: TensorError.self) { try registry.defaultBackend(environment: ["INFERENCEKIT_BACKEND": "cuda"]) }
        let failing = BackendProvider(name: "broken", summary: "always fails") {
            throw TensorError(.backendUnavailable, "no device")
        }
        let entries = BackendRegistry([failing, ReferenceBackend.provider]).list()
        #expect(entries.map(\.isAvailable) == [false, true])
        #expect(try BackendRegistry([failing, ReferenceBackend.provider]).defaultBackend(environment: [:]).name == "reference")
    }
}
