import NIOCore

/// One server-sent event, as OpenAI-compatible servers use them for streamed
/// chat completions (`data: {json}` events, ended by `data: [DONE]`).
///
/// The framing follows the WHATWG "event stream interpretation" rules: lines end
/// with LF, CRLF or CR; `data` lines are joined with LF; a line starting with `:`
/// is a comment; an empty line dispatches the event.
public struct ServerSentEvent: Sendable, Equatable {
    /// The `event:` field, or `nil` for the default `message` event.
    public var event: String?
    /// The `data:` lines, joined by `\n`.
    public var data: String
    /// The `id:` field, if any.
    public var id: String?

    public init(event: String? = nil, data: String, id: String? = nil) {
        self.event = event
        self.data = data
        self.id = id
    }

    /// The terminal event OpenAI-compatible streams end with.
    public static let done = ServerSentEvent(data: "[DONE]")

    /// True for the `data: [DONE]` sentinel.
    public var isDone: Bool { data == "[DONE]" }

    /// Appends this event in wire format (`event:`/`id:` lines if set, one
    /// `data:` line per line of ``data``, then a blank line).
    public func write(to buffer: inout ByteBuffer) {
        if let event {
            buffer.writeString("event: ")
            buffer.writeString(event)
            buffer.writeInteger(UInt8(ascii: "\n"))
        }
        if let id {
            buffer.writeString("id: ")
            buffer.writeString(id)
            buffer.writeInteger(UInt8(ascii: "\n"))
        }
        var start = data.utf8.startIndex
        let utf8 = data.utf8
        while true {
            let end = utf8[start...].firstIndex(where: { $0 == UInt8(ascii: "\n") || $0 == UInt8(ascii: "\r") }) ?? utf8.endIndex
            buffer.writeString("data: ")
            buffer.writeBytes(utf8[start..<end])
            buffer.writeInteger(UInt8(ascii: "\n"))
            if end == utf8.endIndex { break }
            var next = utf8.index(after: end)
            if utf8[end] == UInt8(ascii: "\r"), next < utf8.endIndex, utf8[next] == UInt8(ascii: "\n") {
                next = utf8.index(after: next)
            }
            start = next
        }
        buffer.writeInteger(UInt8(ascii: "\n"))
    }

    /// This event in wire format.
    public var encoded: ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(data.utf8.count + 16)
        write(to: &buffer)
        return buffer
    }

    /// A `data:` event around raw JSON bytes (which contain no newlines when
    /// produced by `JSONEncoder`), written without an intermediate `String`.
    public static func encodeData(json: some Collection<UInt8>, into buffer: inout ByteBuffer) {
        buffer.writeString("data: ")
        buffer.writeBytes(json)
        buffer.writeString("\n\n")
    }
}

/// An incremental parser for `text/event-stream` bodies: feed it the body's
/// bytes in whatever chunks the network delivers, get whole events back.
///
/// A single event (or line) larger than ``maximumEventBytes`` is an error, so a
/// broken or hostile upstream cannot make the gateway buffer without bound.
public struct ServerSentEventParser: Sendable {
    /// The largest event (sum of its lines) accepted, in bytes.
    public let maximumEventBytes: Int

    private var line: [UInt8] = []
    private var lastWasCR = false
    private var dataLines: [String] = []
    private var eventName: String?
    private var eventID: String?
    private var eventBytes = 0

    /// - Parameter maximumEventBytes: the largest event accepted (default 8 MiB).
    public init(maximumEventBytes: Int = 8 << 20) {
        self.maximumEventBytes = max(1, maximumEventBytes)
    }

    /// Parses the next chunk of the stream and returns the events it completed.
    /// - Throws: ``GatewayError`` with code `.malformedStream` when an event exceeds the size limit.
    public mutating func feed(_ bytes: some Sequence<UInt8>) throws -> [ServerSentEvent] {
        var events: [ServerSentEvent] = []
        for byte in bytes {
            if byte == UInt8(ascii: "\n") {
                if lastWasCR {
                    lastWasCR = false
                    continue  // the LF of a CRLF pair; the line already ended at the CR
                }
                if let event = endLine() { events.append(event) }
            } else if byte == UInt8(ascii: "\r") {
                lastWasCR = true
                if let event = endLine() { events.append(event) }
            } else {
                lastWasCR = false
                line.append(byte)
                eventBytes += 1
                if eventBytes > maximumEventBytes {
                    throw GatewayError(
                        .malformedStream,
                        "a server-sent event exceeded \(maximumEventBytes) bytes; the upstream stream is malformed or the limit is too small"
                    )
                }
            }
        }
        return events
    }

    /// Parses a `ByteBuffer` chunk.
    public mutating func feed(_ buffer: ByteBuffer) throws -> [ServerSentEvent] {
        try buffer.withUnsafeReadableBytes { try feed($0) }
    }

    /// Ends the stream. Per the specification an event that was not terminated
    /// by a blank line is discarded; this returns whether such a partial event
    /// was pending (a truncated stream).
    public mutating func finish() -> Bool {
        let truncated = !line.isEmpty || !dataLines.isEmpty
        line.removeAll()
        dataLines.removeAll()
        eventName = nil
        eventID = nil
        eventBytes = 0
        return truncated
    }

    private mutating func endLine() -> ServerSentEvent? {
        defer { line.removeAll(keepingCapacity: true) }
        if line.isEmpty {
            // Blank line: dispatch.
            defer {
                dataLines.removeAll(keepingCapacity: true)
                eventName = nil
                eventBytes = 0
            }
            guard !dataLines.isEmpty else { return nil }
            return ServerSentEvent(event: eventName, data: dataLines.joined(separator: "\n"), id: eventID)
        }
        if line[0] == UInt8(ascii: ":") { return nil }  // comment
        let field: String
        var value: Substring.UTF8View
        let whole = String(decoding: line, as: UTF8.self)
        if let colon = whole.utf8.firstIndex(of: UInt8(ascii: ":")) {
            field = String(whole[..<colon])
            value = whole.utf8[whole.utf8.index(after: colon)...]
            if value.first == UInt8(ascii: " ") { value = value.dropFirst() }
        } else {
            field = whole
            value = whole.utf8[whole.utf8.endIndex...]
        }
        let text = String(Substring(value))
        switch field {
        case "data": dataLines.append(text)
        case "event": eventName = text
        case "id": if !text.utf8.contains(0) { eventID = text }
        default: break  // `retry` and unknown fields are ignored by clients of this gateway
        }
        return nil
    }
}
