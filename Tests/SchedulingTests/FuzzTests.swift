import Foundation
import KVPaging
import Testing
@testable import Scheduling

/// Seeded mutation fuzzing of the three text inputs users hand the simulator: CSV traces, JSON Lines
/// traces and step-timing CSVs. Every mutated input must either parse or throw a ``SchedulingError``
/// (a crash fails the whole run). Oracles, independent of the parsers' own output:
/// - a line-numbered error names a line that exists in the input;
/// - errors are reported at the *first* bad line: the input cut just before that line raises no
///   line-numbered error at or after it;
/// - whatever parses is valid (``InferenceRequest/validate()``), sorted by arrival, and simulates to
///   completion with every request either finished or rejected with a reason (checked on a sample).
@Suite struct TraceFuzzTests {
    static let csvSeed = """
        # a comment line
        arrival_time,prompt_tokens,output_tokens,priority
        0.0,12,5,0
        0.25,40,3,1

        0.5,7,9,-2
        1.75,200,1,0
        """
    static let jsonlSeed = """
        {"arrival_time": 0, "prompt_tokens": 3, "output_tokens": 2, "prompt_token_ids": [5, 6, 7]}
        # comment
        {"timestamp": 0.5, "input_tokens": 30, "output_tokens": 4, "priority": 1}
        {"arrival": 1.5, "prompt_len": 8, "output_len": 16}
        """
    static let timingSeed = """
        prefill_tokens,decode_tokens,context_tokens,step_time_ms
        512,0,0,31.5
        0,32,8000,12.25
        256,16,4000,24
        0,64,16000,15.5
        1024,8,2000,60
        """

    /// Fragments a mutation may insert: separators, line breaks of every kind, signs, exponents,
    /// non-numbers, numbers beyond `Int` and `Double`, JSON punctuation, non-ASCII text.
    static let fragments = [
        ",", ",,", "\n", "\r\n", "\r", "-", ".", "e", "E309", "nan", "NaN", "inf", "-inf", "0", "-1", "1e308", "1e-320",
        "9223372036854775807", "9223372036854775808", "-9223372036854775808", "99999999999999999999999", "1000000001",
        "\"", "{", "}", "[", "]", ":", "null", "true", "false", " ", "\t", "#", "é", "\u{2028}", "\u{0}", "[[[[[[[[",
        "\"prompt_tokens\": 1e12", "\"prompt_token_ids\": [1, 2]", "\"priority\": 1e15", "arrival_time", "step_time",
    ]

    static func mutate(_ text: String, _ rng: inout SimulationRandom) -> String {
        var chars = Array(text)
        let edits = 1 + rng.index(below: 4)
        for _ in 0..<edits {
            let pos = chars.isEmpty ? 0 : rng.index(below: chars.count + 1)
            switch rng.index(below: 7) {
            case 0 where !chars.isEmpty && pos < chars.count:  // delete a short range
                chars.removeSubrange(pos..<min(chars.count, pos + 1 + rng.index(below: 6)))
            case 1, 2:  // insert a fragment
                chars.insert(contentsOf: fragments[rng.index(below: fragments.count)], at: pos)
            case 3 where pos < chars.count:  // replace one character with a printable one
                chars[pos] = Character(UnicodeScalar(UInt8(32 + rng.index(below: 95))))
            case 4:  // duplicate or drop a whole line
                var lines = String(chars).components(separatedBy: "\n")
                let i = rng.index(below: lines.count)
                if rng.unit() < 0.5 { lines.insert(lines[i], at: i) } else { lines.remove(at: i) }
                chars = Array(lines.joined(separator: "\n"))
            case 5:  // truncate
                chars.removeSubrange(pos...)
            default:  // swap two characters
                if chars.count > 1 { chars.swapAt(pos % chars.count, rng.index(below: chars.count)) }
            }
        }
        return String(chars)
    }

    /// Checks one input against `parse` and returns the parsed value when it parsed.
    static func check<T>(_ text: String, _ what: String, _ parse: (String) throws -> T) -> T? {
        do {
            return try parse(text)
        } catch let e as SchedulingError {
            #expect(e.code == .malformedInput, "\(what): \(e) for input \(text.debugDescription)")
            let lines = TraceReader.textLines(text)
            guard let line = e.line else {
                // Only "nothing in the file" errors come without a line.
                #expect(e.message.contains("empty") || e.message.contains("no requests"), "\(what): unnumbered error \(e)")
                return nil
            }
            #expect(line >= 1 && line <= lines.count, "\(what): error at line \(line) of \(lines.count): \(e)")
            // The first bad line: everything before it raises nothing line-numbered at or after it.
            let prefix = lines.prefix(max(0, line - 1)).joined(separator: "\n")
            do { _ = try parse(prefix) } catch let p as SchedulingError {
                #expect(p.line == nil || p.line! < line, "\(what): error at line \(line), but its prefix fails at \(String(describing: p.line)): \(p)")
            } catch {
                Issue.record("\(what): prefix threw \(error)")
            }
            return nil
        } catch {
            Issue.record("\(what): not a SchedulingError: \(error)")
            return nil
        }
    }

    @Test(arguments: ["csv", "jsonl"])
    func mutatedTracesParseOrFailWithTheirLine(format: String) throws {
        let iterations = ProcessInfo.processInfo.environment["INFERENCEKIT_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 2500
        var rng = SimulationRandom(seed: format == "csv" ? 0xC5F : 0x150)
        let seed = format == "csv" ? Self.csvSeed : Self.jsonlSeed
        let parse: (String) throws -> [InferenceRequest] = { text in
            format == "csv" ? try TraceReader.parseCSV(text) : try TraceReader.parseJSONLines(text)
        }
        var parsed = 0, simulated = 0
        for i in 0..<iterations {
            let text = Self.mutate(seed, &rng)
            guard let requests = Self.check(text, format, parse) else { continue }
            parsed += 1
            #expect(!requests.isEmpty)
            for r in requests {
                #expect(throws: Never.self, "\(format) parsed an invalid request from \(text.debugDescription)") { try r.validate() }
            }
            #expect(zip(requests, requests.dropFirst()).allSatisfy { $0.arrivalTime <= $1.arrivalTime })
            // Every 25th parsed trace runs through a small server: all requests end finished or rejected.
            if i % 25 == 0, requests.count <= 50 {
                let r = try ServingSimulator.run(requests, configuration: SimulationConfiguration(
                    policy: ContinuousBatchingPolicy(), kv: KVCacheConfiguration(blockCount: 64, blockSize: 16, maxSequenceLength: 4096),
                    executionModel: try LinearStepModel.constant(0.01)))
                #expect(r.records.count + r.rejected.count == requests.count)
                #expect(r.rejected.allSatisfy { !$0.reason.isEmpty })
                simulated += 1
            }
        }
        // The campaign exercised both outcomes.
        #expect(parsed > iterations / 20 && parsed < iterations - iterations / 20, "\(format): \(parsed) of \(iterations) parsed")
        #expect(simulated > 0)
    }

    @Test func mutatedStepTimingsParseOrFailWithTheirLine() throws {
        let iterations = ProcessInfo.processInfo.environment["INFERENCEKIT_FUZZ_ITERATIONS"].flatMap(Int.init) ?? 2500
        var rng = SimulationRandom(seed: 0x7133)
        var parsed = 0, fitted = 0
        for _ in 0..<iterations {
            let text = Self.mutate(Self.timingSeed, &rng)
            guard let samples = Self.check(text, "timings", { try LinearStepModel.parseTimings(csv: $0) }) else { continue }
            parsed += 1
            #expect(samples.allSatisfy { $0.seconds.isFinite && $0.seconds > 0 && $0.shape.prefillTokens >= 0 && $0.shape.decodeTokens >= 0 && $0.shape.contextTokens >= 0 })
            // A fit either succeeds with finite, non-negative per-token coefficients or says why not.
            do {
                let f = try LinearStepModel.fit(samples)
                fitted += 1
                let m = f.model
                #expect([m.beta0, m.beta1, m.beta2, m.beta3, f.rmse].allSatisfy(\.isFinite) && m.beta1 >= 0 && m.beta2 >= 0 && m.beta3 >= 0)
            } catch let e as SchedulingError {
                #expect(e.code == .fitFailed || e.code == .invalidArgument)
            }
        }
        #expect(parsed > iterations / 20, "timings: \(parsed) of \(iterations) parsed")
        #expect(fitted > 0)
    }

    @Test func windowsAndOldMacLineEndingsParseLikeUnix() throws {
        // "\r\n" is one Swift Character: a parser splitting on "\n" alone would see a CRLF file as a single line.
        let unix = try TraceReader.parseCSV(Self.csvSeed)
        #expect(unix.count == 4)
        #expect(try TraceReader.parseCSV(Self.csvSeed.replacingOccurrences(of: "\n", with: "\r\n")) == unix)
        #expect(try TraceReader.parseCSV(Self.csvSeed.replacingOccurrences(of: "\n", with: "\r")) == unix)
        let jsonl = try TraceReader.parseJSONLines(Self.jsonlSeed)
        #expect(try TraceReader.parseJSONLines(Self.jsonlSeed.replacingOccurrences(of: "\n", with: "\r\n")) == jsonl)
        let timings = try LinearStepModel.parseTimings(csv: Self.timingSeed)
        #expect(try LinearStepModel.parseTimings(csv: Self.timingSeed.replacingOccurrences(of: "\n", with: "\r\n")) == timings)
        // Line numbers count CRLF lines one each: the bad value sits on line 4.
        let bad = "arrival_time,prompt_tokens,output_tokens\r\n0,1,1\r\n\r\n1,x,1\r\n"
        #expect { try TraceReader.parseCSV(bad) } throws: { ($0 as? SchedulingError)?.line == 4 }
    }

    @Test func absurdNumbersAreTypedErrorsNotTraps() throws {
        // Token counts near Int.max would overflow `prompt + output` in admission; they are refused at the line.
        for field in ["9223372036854775807", "1000000001", "-9223372036854775808"] {
            let csv = "arrival_time,prompt_tokens,output_tokens,priority\n0,\(field),1,0\n"
            #expect { try TraceReader.parseCSV(csv) } throws: { ($0 as? SchedulingError)?.line == 2 }
            let pri = "arrival_time,prompt_tokens,output_tokens,priority\n0,1,1,\(field)\n"
            #expect { try TraceReader.parseCSV(pri) } throws: { ($0 as? SchedulingError)?.line == 2 }
        }
        #expect { try TraceReader.parseJSONLines("{\"arrival_time\": 0, \"prompt_tokens\": 1e12, \"output_tokens\": 1}") } throws: { ($0 as? SchedulingError)?.line == 1 }
        #expect { try TraceReader.parseJSONLines("{\"arrival_time\": 1e400, \"prompt_tokens\": 1, \"output_tokens\": 1}") } throws: { ($0 as? SchedulingError)?.line == 1 }
        // A deeply nested JSON line is an error on its line, not a stack overflow.
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect { try TraceReader.parseJSONLines(deep) } throws: { ($0 as? SchedulingError)?.line == 1 }
        // The same limits hold for requests built in code.
        #expect(throws: SchedulingError.self) { try InferenceRequest(id: 0, arrivalTime: 0, promptTokens: Int.max, outputTokens: 1).validate() }
        #expect(throws: SchedulingError.self) { try InferenceRequest(id: 0, arrivalTime: 0, promptTokens: 1, outputTokens: Int.max).validate() }
        #expect(throws: SchedulingError.self) { try SyntheticWorkload(arrivals: .poisson(rate: 1), promptLength: .constant(Int.max), count: 2, sharedPrefixFraction: 1, sharedPrefixLength: 5).generate() }
        #expect(throws: SchedulingError.self) { try SyntheticWorkload(arrivals: .poisson(rate: 1), count: 2, sharedPrefixFraction: 1, sharedPrefixLength: Int.max).generate() }
        #expect(throws: SchedulingError.self) { try SyntheticWorkload(arrivals: .poisson(rate: 1), promptLength: .uniform(min: 1, max: Int.max), count: 2).generate() }
        #expect(throws: SchedulingError.self) {
            try SyntheticWorkload(arrivals: .poisson(rate: 1), count: 2, priorityMix: [.init(priority: 0, weight: 1e308), .init(priority: 1, weight: 1e308)]).generate()
        }
        // A log-normal whose samples overflow Double clamps to its maximum instead of trapping in Int(_:).
        let wild = try SyntheticWorkload(arrivals: .poisson(rate: 1), promptLength: .logNormal(median: 1e300, sigma: 50, min: 1, max: 4096), count: 50).generate()
        #expect(wild.allSatisfy { $0.promptTokens >= 1 && $0.promptTokens <= 4096 })
    }
}

@Suite struct KVPoolBoundaryTests {
    /// The KV cache holds at most prompt + output − 1 tokens (the last output token is emitted, never fed
    /// back). 8 blocks × 16 tokens = 128 token slots, no watermark: prompt 100 + output 29 peaks at exactly
    /// 128 and must run; prompt 100 + output 30 peaks at 129 (9 blocks) and can never run.
    @Test func requestExactlyFillingThePoolRunsOneMoreTokenIsRejected() throws {
        let kv = KVCacheConfiguration(blockCount: 8, blockSize: 16, maxSequenceLength: 4096)
        #expect(kv.watermarkBlocks == 0)
        let reqs = [InferenceRequest(id: 0, arrivalTime: 0, promptTokens: 100, outputTokens: 29),
                    InferenceRequest(id: 1, arrivalTime: 0.5, promptTokens: 100, outputTokens: 30)]
        for policy: any BatchingPolicy in [ContinuousBatchingPolicy(), NoBatchingPolicy(), try StaticBatchingPolicy(batchSize: 2)] {
            let r = try ServingSimulator.run(reqs, configuration: SimulationConfiguration(policy: policy, kv: kv, executionModel: try LinearStepModel.constant(0.01)))
            #expect(r.records.map(\.id) == [0], "\(policy.name)")
            #expect(r.records.first?.outputTokens == 29)
            #expect(r.rejected.map(\.id) == [1] && r.rejected.first?.reason.contains("9 KV blocks") == true, "\(policy.name): \(r.rejected)")
            #expect(r.finalKVUsage[0].activeBlocks == 0)
        }
    }
}
