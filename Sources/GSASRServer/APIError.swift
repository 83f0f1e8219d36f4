import Foundation
import Hummingbird

/// A refused request: an HTTP status and one line saying what was wrong, sent as
/// `{"error": "...", "status": N}`. 503 carries `Retry-After`.
public struct APIError: Error, HTTPResponseError, CustomStringConvertible, Sendable {
    public var status: HTTPResponse.Status
    public var message: String
    public var retryAfter: Int?
    /// The `Allow` header of a 405.
    public var allow: String?

    public init(_ status: HTTPResponse.Status, _ message: String, retryAfter: Int? = nil) {
        self.status = status
        self.message = message
        self.retryAfter = retryAfter
    }

    public var description: String { "\(status.code) \(message)" }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"]
        if let retryAfter { headers[.retryAfter] = "\(retryAfter)" }
        if let allow { headers[.allow] = allow }
        // A refused request that came with a body may not have been read to its end: close the
        // connection rather than read what is left (the client reconnects for its next request).
        let hasBody =
            (request.headers[.contentLength].flatMap { Int($0) } ?? 0) > 0 || request.headers[.transferEncoding] != nil
        if hasBody || status == .contentTooLarge { headers[.connection] = "close" }
        let body = JSONBody.encode(ErrorBody(error: message, status: Int(status.code)))
        return Response(status: status, headers: headers, body: ResponseBody(byteBuffer: ByteBuffer(bytes: body)))
    }

    static func tooLarge(_ m: String) -> APIError { APIError(.contentTooLarge, m) }
    static func unsupported(_ m: String) -> APIError { APIError(.unsupportedMediaType, m) }
    static func unprocessable(_ m: String) -> APIError { APIError(.unprocessableContent, m) }
    static func notFound(_ m: String) -> APIError { APIError(.notFound, m) }
}

/// JSON bodies of the API (Foundation's encoder, keys sorted so that responses are stable).
enum JSONBody {
    static func encode<T: Encodable>(_ value: T) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return Array((try? encoder.encode(value)) ?? Data("{}".utf8))
    }

    static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json; charset=utf-8", .cacheControl: "no-store"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: encode(value))))
    }
}

struct ErrorBody: Encodable {
    var error: String
    var status: Int
}
