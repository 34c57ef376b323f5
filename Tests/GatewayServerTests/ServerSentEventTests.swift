import NIOCore
import Testing

@testable import GatewayServer

@Suite struct ServerSentEventTests {
    /// Feeds `text` to a fresh parser in pieces of `piece` bytes.
    func parse(_ text: String, piece: Int) throws -> [ServerSentEvent] {
        var parser = ServerSentEventParser()
        let bytes = Array(text.utf8)
        var events: [ServerSentEvent] = []
        var start = 0
        while start < bytes.count {
            let end = min(bytes.count, start + piece)
            events += try parser.feed(bytes[start..<end])
            start = end
        }
        return events
    }

    @Test func parsesOpenAIStyleStreamInAnyChunking() throws {
        // Hand-written stream: two data events, a comment, an event with a name and an id, and [DONE].
        let text = "data: {\"a\":1}\n\n: keep-alive\n\nevent: update\nid: 7\ndata: {\"b\":2}\n\ndata: [DONE]\n\n"
        let expected = [
            ServerSentEvent(data: "{\"a\":1}"),
            ServerSentEvent(event: "update", data: "{\"b\":2}", id: "7"),
            // The last event ID persists until another `id:` line (WHATWG "last event ID buffer").
            ServerSentEvent(data: "[DONE]", id: "7"),
        ]
        for piece in [1, 2, 3, 5, 7, 64, 1000] {
            #expect(try parse(text, piece: piece) == expected, "piece size \(piece)")
        }
    }

    @Test func handlesCRLFAndBareCRAndMultilineData() throws {
        // CRLF line ends, a bare-CR line end, and two data lines joined with LF (WHATWG rules).
        let text = "data: line one\r\ndata: line two\r\n\r\ndata:no-space\r\rdata: x\n\n"
        for piece in [1, 2, 4, 100] {
            let events = try parse(text, piece: piece)
            #expect(events == [
                ServerSentEvent(data: "line one\nline two"),
                ServerSentEvent(data: "no-space"),
                ServerSentEvent(data: "x"),
            ], "piece size \(piece)")
        }
    }

    @Test func blankLinesWithoutDataDispatchNothingAndTruncationIsReported() throws {
        var parser = ServerSentEventParser()
        #expect(try parser.feed(Array("\n\n\nevent: x\n\n".utf8)).isEmpty)
        #expect(try parser.feed(Array("data: partial".utf8)).isEmpty)
        #expect(parser.finish() == true)
        #expect(parser.finish() == false)
    }

    @Test func oversizedEventIsATypedError() throws {
        var parser = ServerSentEventParser(maximumEventBytes: 16)
        #expect(throws: GatewayError.self) {
            _ = try parser.feed(Array("data: 0123456789abcdefghij\n\n".utf8))
        }
    }

    @Test func encodingRoundTripsThroughTheParser() throws {
        let events = [
            ServerSentEvent(data: "{\"x\":\"y\"}"),
            ServerSentEvent(event: "e", data: "multi\nline\r\ntext", id: "1"),
            ServerSentEvent.done,
        ]
        var buffer = ByteBuffer()
        for event in events { event.write(to: &buffer) }
        var parser = ServerSentEventParser()
        let parsed = try parser.feed(buffer)
        // CRLF inside data becomes a line break and comes back as LF.
        // The id "1" persists onto the following event, as the specification's last-event-ID buffer does.
        #expect(parsed == [events[0], ServerSentEvent(event: "e", data: "multi\nline\ntext", id: "1"), ServerSentEvent(data: "[DONE]", id: "1")])
        let text = String(buffer: events[0].encoded)
        #expect(text == "data: {\"x\":\"y\"}\n\n")
    }
}
