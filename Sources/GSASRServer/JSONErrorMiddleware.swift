import Foundation
import Hummingbird

/// Every refusal is one JSON line, including the router's own: a path that no route knows is a
/// 404 and a known path with another method a 405 (with `Allow`), both as
/// `{"error": "...", "status": N}` like every ``APIError``; any other `HTTPError` a handler or
/// the router throws is turned into the same shape.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    /// The API's routes: method and path template (`:id` matches one segment).
    static var routes: [(method: HTTPRequest.Method, path: String)] {
        [
            (.get, "/"), (.get, "/api/info"), (.post, "/api/jobs"), (.get, "/api/jobs/:id"),
            (.post, "/api/jobs/:id/cancel"), (.get, "/api/jobs/:id/result.png"), (.get, "/api/jobs/:id/bicubic.png"),
            (.get, "/api/jobs/:id/zoom.png"), (.post, "/api/upscale"),
        ]
    }

    /// The methods that `path` has routes for (HEAD with GET, as Hummingbird answers it).
    static func methods(for path: String) -> [HTTPRequest.Method] {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        return routes.filter { route in
            let template = route.path.split(separator: "/", omittingEmptySubsequences: true)
            return template.count == segments.count
                && zip(template, segments).allSatisfy { $0.hasPrefix(":") || $0 == $1 }
        }.map(\.method)
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        do {
            return try await next(request, context)
        } catch let e as APIError {
            throw e
        } catch let e as HTTPError {
            if e.status == .notFound {
                let allowed = Self.methods(for: request.uri.path)
                if !allowed.isEmpty && !allowed.contains(request.method) {
                    var error = APIError(
                        .methodNotAllowed,
                        "\(request.method.rawValue) is not allowed on \(request.uri.path); use \(allowed.map(\.rawValue).joined(separator: " or "))"
                    )
                    error.allow = allowed.map(\.rawValue).joined(separator: ", ")
                    throw error
                }
                if allowed.isEmpty {
                    throw APIError(.notFound, "no such page or API route: \(request.uri.path.prefix(200))")
                }
            }
            throw APIError(e.status, e.body ?? e.status.reasonPhrase)
        }
    }
}
