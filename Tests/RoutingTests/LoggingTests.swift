import Logging
import Synchronization
import Testing
@testable import Routing

/// Collects every log record (message and metadata rendered to text).
final class CapturingLog: Sendable {
    let lines = Mutex<[String]>([])

    struct Handler: LogHandler {
        let sink: CapturingLog
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let all = metadata.merging(event.metadata ?? [:]) { $1 }
            sink.lines.withLock { $0.append("\(event.level) \(event.message) \(all) \(event.error.map { "\($0)" } ?? "")") }
        }
    }

    var logger: Logger { Logger(label: "test") { _ in Handler(sink: self) } }
}

@Suite struct LoggingTests {
    func run(logPrompts: Bool) async throws -> [String] {
        let capture = CapturingLog()
        let clock = ManualClock()
        let failing = InMemoryUpstream(id: "a", clock: clock) { _, _ in .fail(.status(503)) }
        let ok = InMemoryUpstream(id: "b", clock: clock, replying: "fine")
        let gateway = try Gateway(
            configuration: GatewayConfiguration(
                models: [ModelRoute(name: "gpt", backends: [Backend(id: "a"), Backend(id: "b", priority: 1)])],
                apiKeys: [APIKey(id: "team", secret: "sk-SECRET-123")],
                breaker: CircuitBreakerConfiguration(failureThreshold: 1), logPrompts: logPrompts),
            upstreams: ["a": failing, "b": ok], clock: clock, logger: capture.logger)
        let key = try gateway.authenticate(authorization: "Bearer sk-SECRET-123")
        _ = try await gateway.complete(ask("my secret medical question"), key: key)
        _ = await routingError { _ = try await gateway.complete(ask("another private prompt", model: "nope"), key: key) }
        _ = await routingError { _ = try gateway.authenticate(authorization: "Bearer sk-WRONG-999") }
        return capture.lines.withLock { $0 }
    }

    @Test func noPromptTextOrKeyMaterialByDefault() async throws {
        let lines = try await run(logPrompts: false)
        #expect(!lines.isEmpty)  // it does log (attempts, the breaker opening)
        for line in lines {
            #expect(!line.contains("medical") && !line.contains("private prompt"))
            #expect(!line.contains("SECRET") && !line.contains("WRONG"))
        }
    }

    @Test func promptsOnlyWhenAskedFor() async throws {
        let lines = try await run(logPrompts: true)
        #expect(lines.contains { $0.contains("my secret medical question") })
        #expect(!lines.contains { $0.contains("SECRET-123") })
    }
}
