#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension ChatCompletionRequest {
    /// Decodes a request body, turning every decoding failure into a 400 ``RoutingError`` whose
    /// message names the member at fault (`messages[1].role is required`, `temperature must be a
    /// number`, `the body is not valid JSON`).
    public init(jsonBody: some Collection<UInt8>) throws(RoutingError) {
        do {
            self = try JSONDecoder().decode(ChatCompletionRequest.self, from: Data(jsonBody))
        } catch {
            throw RoutingError.decodingFailure(error)
        }
    }
}

extension RoutingError {
    /// A 400 `invalid_request` describing a `DecodingError` in terms of the JSON body.
    public static func decodingFailure(_ error: any Error) -> RoutingError {
        func path(_ keys: [any CodingKey]) -> String {
            keys.reduce("") { out, key in
                if let index = key.intValue { return out + "[\(index)]" }
                return out.isEmpty ? key.stringValue : out + "." + key.stringValue
            }
        }
        guard let error = error as? DecodingError else {
            return RoutingError(.invalidRequest, "the request body could not be read: send a JSON object")
        }
        switch error {
        case .keyNotFound(let key, let context):
            let where_ = path(context.codingPath + [key])
            return RoutingError(.invalidRequest, "'\(where_)' is required", param: where_)
        case .typeMismatch(let type, let context), .valueNotFound(let type, let context):
            let where_ = path(context.codingPath)
            let expected: String
            switch type {
            case is String.Type: expected = "a string"
            case is Bool.Type: expected = "true or false"
            case is Int.Type, is Int64.Type: expected = "an integer"
            case is Double.Type: expected = "a number"
            case is [ChatMessage].Type, is [JSONValue].Type, is [String].Type: expected = "an array"
            default: expected = "a valid value"
            }
            if where_.isEmpty { return RoutingError(.invalidRequest, "the request body must be a JSON object") }
            return RoutingError(.invalidRequest, "'\(where_)' must be \(expected)", param: where_)
        case .dataCorrupted(let context):
            let where_ = path(context.codingPath)
            if where_.isEmpty { return RoutingError(.invalidRequest, "the request body is not valid JSON") }
            return RoutingError(.invalidRequest, "'\(where_)' has an invalid value", param: where_)
        @unknown default:
            return RoutingError(.invalidRequest, "the request body could not be decoded")
        }
    }
}

extension UpstreamError {
    /// The error for a non-2xx upstream response: its status, its wait (`retry-after-ms`, else
    /// `Retry-After`), and its OpenAI-style error body when it has one. A body that is not an
    /// OpenAI error is not quoted (it may echo request content).
    public init(httpStatus: Int, retryAfterMs: String?, retryAfter: String?, body: some Collection<UInt8>,
                nowUnixSeconds: Double) {
        let decoded = try? JSONDecoder().decode(OpenAIErrorBody.self, from: Data(body))
        self.init(kind: .status(httpStatus),
                  retryAfter: UpstreamError.parseRetryAfter(retryAfterMs: retryAfterMs, retryAfter: retryAfter,
                                                            nowUnixSeconds: nowUnixSeconds),
                  body: decoded,
                  message: decoded?.error.message ?? "HTTP \(httpStatus)")
    }
}
