import AsyncHTTPClient
import Foundation
import HummingbirdTLS
import NIOCore
import NIOPosix
import Routing
import Testing

@testable import GatewayServer

/// `server.tls`: the gateway serves HTTPS with a PEM certificate and key (a self-signed test pair
/// for localhost / 127.0.0.1 in Fixtures, generated once with openssl, valid for 100 years).
@Suite struct TLSListenerTests {
    static var fixtures: String {
        Bundle.module.resourceURL!.appendingPathComponent("Fixtures").path
    }

    static func yaml(cert: String, key: String) -> String {
        """
        server: { tls: { cert_file: "\(cert)", key_file: "\(key)" } }
        upstreams:
          - { id: a, type: openai, base_url: "http://127.0.0.1:{port:a}/v1" }
        models:
          - name: m
            backends: [ { upstream: a } ]
        """
    }

    @Test func servesHTTPSAndRefusesPlainHTTP() async throws {
        let mock = try MockUpstream(configuration: .init(), logger: quietLogger)
        let port = try await mock.start()
        let text = Self.yaml(cert: Self.fixtures + "/tls-cert.pem", key: Self.fixtures + "/tls-key.pem")
            .replacingOccurrences(of: "{port:a}", with: String(port))
        let server = try GatewayHTTPServer.make(configuration: try GatewayServerConfiguration.parse(text), environment: [:], overridePort: 0)
        let running = try await server.start()
        var configuration = HTTPClient.Configuration()
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .none  // self-signed test certificate
        configuration.tlsConfiguration = tls
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        do {
            #expect(running.baseURL.hasPrefix("https://"))
            var request = HTTPClientRequest(url: running.baseURL + "/v1/chat/completions")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: Harness.chat()))
            let response = try await client.execute(request, timeout: .seconds(10))
            #expect(response.status.code == 200)
            let body = try await response.body.collect(upTo: 1 << 20)
            #expect(try WireJSON.decode(ChatCompletionResponse.self, from: body).choices.isEmpty == false)
            // Plain HTTP to the TLS port gets no HTTP answer.
            let plain = HTTPClientRequest(url: "http://127.0.0.1:\(running.port)/health")
            await #expect(throws: (any Error).self) { _ = try await client.execute(plain, timeout: .seconds(5)) }
        } catch {
            try? await client.shutdown()
            await running.stop()
            await mock.stop()
            throw error
        }
        try await client.shutdown()
        await running.stop()
        await mock.stop()
    }

    @Test func unreadableOrWrongFilesAreNamedErrors() throws {
        func error(_ cert: String, _ key: String) -> GatewayError? {
            do {
                let file = try GatewayServerConfiguration.parse(Self.yaml(cert: cert, key: key).replacingOccurrences(of: "{port:a}", with: "1"))
                _ = try file.tlsConfiguration()
                return nil
            } catch let error as GatewayError {
                return error
            } catch {
                return nil
            }
        }
        let missing = error("/nonexistent/cert.pem", Self.fixtures + "/tls-key.pem")
        #expect(missing?.code == .invalidConfiguration && missing?.message.contains("/nonexistent/cert.pem") == true)
        let swapped = error(Self.fixtures + "/tls-key.pem", Self.fixtures + "/tls-cert.pem")  // a key is not a certificate
        #expect(swapped?.code == .invalidConfiguration && swapped?.message.contains("cert_file") == true)
        // A valid key that belongs to another certificate (generated beside it with openssl ecparam).
        let mismatched = error(Self.fixtures + "/tls-cert.pem", Self.fixtures + "/tls-other-key.pem")
        #expect(mismatched?.code == .invalidConfiguration && mismatched?.message.contains("does not match") == true)
        let badKey = error(Self.fixtures + "/tls-cert.pem", Self.fixtures + "/tls-cert.pem")
        #expect(badKey?.code == .invalidConfiguration && badKey?.message.contains("key_file") == true)
        let typo = try? GatewayServerConfiguration.parse("server: { tls: { cert: a, key_file: b } }\nupstreams: []\nmodels: []")
        #expect(typo == nil)
    }

    /// With Swift concurrency on the event loops (`runConcurrencyOnEventLoops`), `make` runs on a
    /// loop. A configuration that fails after the upstream clients exist (a bad `server.tls` file;
    /// a retry section only the Routing gateway rejects) must still be a named error, not
    /// AsyncHTTPClient's "syncShutdown() must not be called when on an EventLoop" trap.
    @Test func configurationErrorsFromAnEventLoopAreNamedErrors() async throws {
        let badTLS = try GatewayServerConfiguration.parse(
            Self.yaml(cert: "/nonexistent/cert.pem", key: Self.fixtures + "/tls-key.pem").replacingOccurrences(of: "{port:a}", with: "1"))
        let badRetry = try GatewayServerConfiguration.parse(
            Self.yaml(cert: "x", key: "y").replacingOccurrences(of: "{port:a}", with: "1")
                .replacingOccurrences(of: "server: { tls: { cert_file: \"x\", key_file: \"y\" } }",
                                      with: "retry: { initial_backoff_seconds: 5, max_backoff_seconds: 1 }"))
        for (file, expected) in [(badTLS, "/nonexistent/cert.pem"), (badRetry, "backoff")] {
            let outcome = try await MultiThreadedEventLoopGroup.singleton.any().submit { () -> String in
                do {
                    _ = try GatewayHTTPServer.make(configuration: file, environment: [:])
                    return "made a server"
                } catch let error as GatewayError {
                    return error.message
                } catch {
                    return "\(error)"
                }
            }.get()
            #expect(outcome.contains(expected), "\(outcome)")
        }
    }
}
