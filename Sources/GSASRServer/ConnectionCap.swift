import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import NIOHTTP1
import NIOHTTPTypes

/// The most connections the server holds at once. Past it, a new connection is answered at
/// once with a 503 JSON line (`Retry-After: 1`, `Connection: close`) and closed, so that a
/// flood of idle or half-open connections can never exhaust the process's file descriptors
/// (which made the accept loop spin at 100 % CPU) and the connections held stay bounded;
/// ``ServerLimits/idleTimeout`` then frees the idle ones.
public final class ConnectionCap: @unchecked Sendable {
    let limit: Int
    private let lock = NSLock()
    private var open = 0

    init(limit: Int) { self.limit = limit }

    /// Counts a new connection; false when it is over the limit (it is not counted then).
    func admit() -> Bool {
        lock.withLock {
            guard open < limit else { return false }
            open += 1
            return true
        }
    }

    func release() { lock.withLock { open -= 1 } }

    /// The default limit: the open-file limit minus 64 for the process's own files, at most 1024.
    public static func defaultLimit() -> Int {
        var rl = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &rl) == 0 else { return 1024 }
        let soft = UInt64(rl.rlim_cur)  // RLIM_INFINITY is the largest value: the min below takes 1024
        return Int(min(UInt64(1024), soft > 64 ? soft - 64 : 0))
    }
}

/// One per connection (Hummingbird's additional channel handlers): admits it or answers 503
/// and closes it; and answers what the HTTP parser cannot take with a JSON 400.
final class ConnectionCapHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    let cap: ConnectionCap
    private var counted = false
    private var refused = false

    init(cap: ConnectionCap) { self.cap = cap }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { admit(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        admit(context)
        if !refused { context.fireChannelActive() }
    }

    private func admit(_ context: ChannelHandlerContext) {
        guard !counted, !refused else { return }
        if cap.admit() {
            counted = true
            return
        }
        refused = true
        answerAndClose(
            context, .serviceUnavailable,
            "the server holds its limit of \(cap.limit) connections; try again shortly", retryAfter: true)
    }

    /// Writes one JSON refusal (`Connection: close`) and closes the connection.
    private func answerAndClose(
        _ context: ChannelHandlerContext, _ status: HTTPResponse.Status, _ message: String, retryAfter: Bool = false
    ) {
        let body = JSONBody.encode(ErrorBody(error: message, status: status.code))
        var head = HTTPResponse(status: status)
        head.headerFields[.contentType] = "application/json; charset=utf-8"
        head.headerFields[.contentLength] = "\(body.count)"
        if retryAfter { head.headerFields[.retryAfter] = "1" }
        head.headerFields[.connection] = "close"
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(bytes: body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in context.close(promise: nil) }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if refused { return }  // a refused connection's request is never processed
        context.fireChannelRead(data)
    }

    /// A request the HTTP parser cannot take (an over-long query or header line, a malformed
    /// request line) is answered as every refusal is: one JSON line, 400, and the connection
    /// closed (Hummingbird's own answer is an empty 400).
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError, !refused else {
            context.fireErrorCaught(error)
            return
        }
        refused = true
        let reason: String
        switch parserError {
        case .headerOverflow: reason = "the request line or headers are too long"
        default: reason = "the request is not valid HTTP/1.1 (\(parserError))"
        }
        answerAndClose(context, .badRequest, reason)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if counted {
            counted = false
            cap.release()
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        if counted {
            counted = false
            cap.release()
        }
    }
}
