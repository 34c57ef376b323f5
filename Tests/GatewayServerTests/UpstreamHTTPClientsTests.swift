import AsyncHTTPClient
import NIOCore
import NIOPosix
import Testing

@testable import GatewayServer

/// One HTTP client per event loop: the client a call uses is the one of the loop it runs on.
@Suite struct UpstreamHTTPClientsTests {
    @Test func eachLoopGetsItsOwnClientAndOffLoopCallsTheFallback() async throws {
        let clients = UpstreamHTTPClients(maximumConnectionsPerHost: 8)
        let loops = Array(MultiThreadedEventLoopGroup.singleton.makeIterator())
        #expect(clients.all.count == loops.count)
        #expect(Set(clients.all.map(ObjectIdentifier.init)).count == loops.count)  // distinct clients
        for (index, loop) in loops.enumerated() {
            let chosen = try await loop.submit { ObjectIdentifier(clients.current) }.get()
            #expect(chosen == ObjectIdentifier(clients.all[index]), "loop \(index) did not get its own client")
        }
        #expect(ObjectIdentifier(clients.current) == ObjectIdentifier(clients.fallback))  // not on a loop here
        try await clients.shutdown()
    }

    @Test func aSingleClientServesEveryLoop() async throws {
        let client = HTTPUpstream.makeClient()
        let clients = UpstreamHTTPClients(client)
        for loop in MultiThreadedEventLoopGroup.singleton.makeIterator() {
            #expect(try await loop.submit { clients.current === client }.get())
        }
        try await clients.shutdown()
    }
}
