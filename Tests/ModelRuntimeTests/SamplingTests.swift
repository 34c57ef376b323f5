import Foundation
import Testing
@testable import ModelRuntime

@Suite("Sampling and stop strings")
struct SamplingTests {
    let logits: [Float] = [2.0, 1.5, 0.3, -1.0, 1.9, 0.0, -3.0]

    /// The distribution the parameters define, computed here from the definitions (not from the sampler).
    func expected(temperature: Float, topK: Int, topP: Float, minP: Float) -> [Double] {
        let scaled = logits.map { Double($0 / temperature) }
        let m = scaled.max()!
        var p = scaled.map { exp($0 - m) }
        let z = p.reduce(0, +)
        p = p.map { $0 / z }
        var order = Array(p.indices).sorted { p[$0] > p[$1] }
        if topK > 0 { order = Array(order.prefix(topK)) }
        let kept = order.reduce(0.0) { $0 + p[$1] }
        var acc = 0.0
        var nucleus: [Int] = []
        for i in order {
            nucleus.append(i)
            acc += p[i]
            if acc >= Double(topP) * kept { break }
        }
        let pmax = p[order[0]]
        nucleus = nucleus.filter { p[$0] >= Double(minP) * pmax }
        var q = [Double](repeating: 0, count: p.count)
        let mass = nucleus.reduce(0.0) { $0 + p[$1] }
        for i in nucleus { q[i] = p[i] / mass }
        return q
    }

    @Test("draws follow temperature / top-k / top-p / min-p", arguments: [
        (Float(1), 0, Float(1), Float(0)), (Float(0.7), 0, Float(0.8), Float(0)), (Float(1.3), 3, Float(1), Float(0)),
        (Float(1), 0, Float(1), Float(0.3)), (Float(0.9), 4, Float(0.9), Float(0.1)),
    ])
    func distribution(temperature: Float, topK: Int, topP: Float, minP: Float) {
        var sampler = Sampler(parameters: SamplingParameters(temperature: temperature, topK: topK, topP: topP, minP: minP, seed: 1234))
        let n = 40_000
        var counts = [Int](repeating: 0, count: logits.count)
        logits.withUnsafeBufferPointer { row in
            for _ in 0..<n { counts[sampler.sample(row).token] += 1 }
        }
        let want = expected(temperature: temperature, topK: topK, topP: topP, minP: minP)
        for i in logits.indices {
            let got = Double(counts[i]) / Double(n)
            if want[i] == 0 {
                #expect(counts[i] == 0, "token \(i) is outside the kept set but was drawn \(counts[i]) times")
            } else {
                // 5 standard errors of a binomial proportion.
                let se = (want[i] * (1 - want[i]) / Double(n)).squareRoot()
                #expect(abs(got - want[i]) <= 5 * se + 1e-3, "token \(i): \(got) vs \(want[i])")
            }
        }
    }

    @Test("greedy, bias, bans and penalties")
    func deterministicRules() {
        logits.withUnsafeBufferPointer { row in
            var greedy = Sampler(parameters: .greedy)
            #expect(greedy.sample(row).token == 0)
            #expect(greedy.sample(row, banned: [0]).token == 4)
            var biased = Sampler(parameters: SamplingParameters(temperature: 1, logitBias: [6: 100], seed: 3))
            for _ in 0..<50 { #expect(biased.sample(row).token == 6) }
            // Repetition penalty 2 halves token 0's positive logit (2.0 → 1.0): token 4 (1.9) wins greedily.
            var rep = Sampler(parameters: SamplingParameters(temperature: 0, repetitionPenalty: 2), promptTokens: [0])
            #expect(rep.sample(row).token == 4)
            // Frequency penalty: after emitting token 0 once, 2.0 − 0.2 = 1.8 < 1.9.
            var freq = Sampler(parameters: SamplingParameters(temperature: 0, frequencyPenalty: 0.2))
            #expect(freq.sample(row).token == 0)
            #expect(freq.sample(row).token == 4)
        }
    }

    @Test("logprobs are the log-softmax of the raw logits")
    func logprobs() {
        logits.withUnsafeBufferPointer { row in
            let (lp, top) = Sampler.logprobs(row, token: 2, top: 3)
            let z = logits.reduce(0.0) { $0 + exp(Double($1)) }
            #expect(abs(Double(lp) - (Double(logits[2]) - log(z))) < 1e-5)
            #expect(top.map(\.token) == [0, 4, 1])
            #expect(top[0].logprob >= top[1].logprob && top[1].logprob >= top[2].logprob)
        }
    }

    @Test("sampling parameters out of range are typed errors naming the field")
    func validation() {
        func check(_ p: SamplingParameters, _ field: String) {
            do {
                try p.validate(vocabularySize: 10)
                Issue.record("\(field): accepted")
            } catch {
                #expect(error.code == .invalidSampling && error.message.contains(field), "\(error)")
            }
        }
        check(SamplingParameters(temperature: -1), "temperature")
        check(SamplingParameters(topP: 1.5), "top_p")
        check(SamplingParameters(minP: -0.1), "min_p")
        check(SamplingParameters(repetitionPenalty: 0), "repetition_penalty")
        check(SamplingParameters(logitBias: [10: 1]), "logit_bias")
        check(SamplingParameters(topK: -5), "top_k")
    }

    @Test("stop strings match across token boundaries and are never emitted")
    func stopStrings() {
        var m = StopMatcher(stops: ["o w", "END"])
        var out = ""
        var stopped = false
        for piece in ["Hel", "lo", " wor", "ld"] {
            let (e, s) = m.append(piece)
            out += e
            if s { stopped = true; break }
        }
        #expect(stopped && out == "Hell")
        // A possible prefix is held back, then released when it turns out not to be a stop.
        var h = StopMatcher(stops: ["END"])
        #expect(h.append("the EN").emit == "the ")
        #expect(h.append("D").stopped)
        var r = StopMatcher(stops: ["END"])
        #expect(r.append("the EN").emit == "the ")
        #expect(r.append("ds").emit == "ENds")
        #expect(r.finish() == "")
    }
}
