import Foundation
import GSASR
import Testing

#if canImport(Glibc)
    import Glibc
#endif

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// A `gsasr serve` process on a free port of 127.0.0.1, stopped when released.
final class ServerProcess {
    let process = Process()
    let port: Int
    let log: URL

    init(_ args: [String]) throws {
        log = try CLI.tempDir().appendingPathComponent("serve.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        process.executableURL = CLI.binary
        process.arguments = ["serve", "--port", "0"] + args
        let out = Pipe()
        process.standardOutput = out
        process.standardError = try FileHandle(forWritingTo: log)
        try process.run()
        var text = ""
        let deadline = Date().addingTimeInterval(120)
        while !text.contains("\n"), Date() < deadline {
            let d = out.fileHandleForReading.availableData
            if d.isEmpty { break }
            text += String(decoding: d, as: UTF8.self)
        }
        // "gsasr serve: listening on http://127.0.0.1:PORT (models: ...)"
        guard let r = text.range(of: "127.0.0.1:"),
            let p = Int(text[r.upperBound...].prefix { $0.isNumber })
        else {
            process.terminate()
            throw CLIError("server did not start: \(text) \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        }
        port = p
    }

    deinit {
        process.terminate()
        process.waitUntilExit()
    }

    struct Reply {
        var status: Int
        var headers: [String: String]
        var body: Data
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
        var error: String { json["error"] as? String ?? "" }
    }

    func request(_ method: String, _ path: String, body: Data? = nil, timeout: TimeInterval = 120) throws -> Reply {
        var req = URLRequest(url: URL(string: "http://127.0.0.1:\(port)\(path)")!)
        req.httpMethod = method
        req.httpBody = body
        req.timeoutInterval = timeout
        let box = ReplyBox()
        let done = DispatchSemaphore(value: 0)
        URLSession.shared.dataTask(with: req) { data, response, error in
            if let h = response as? HTTPURLResponse {
                var headers: [String: String] = [:]
                for (k, v) in h.allHeaderFields { headers[String(describing: k).lowercased()] = String(describing: v) }
                box.reply = Reply(status: h.statusCode, headers: headers, body: data ?? Data())
            }
            box.error = error
            done.signal()
        }.resume()
        done.wait()
        guard let reply = box.reply else {
            throw CLIError("\(method) \(path): no reply (\(String(describing: box.error)))")
        }
        return reply
    }

    /// Polls a job until it is final (at most `timeout` seconds, then an error).
    func waitForJob(_ id: String, timeout: TimeInterval = 300) throws -> Reply {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            let s = try request("GET", "/api/jobs/\(id)")
            let state = s.json["state"] as? String ?? ""
            if s.status != 200 || ["done", "failed", "cancelled"].contains(state) { return s }
            guard Date() < deadline else { throw CLIError("job \(id) is still \(state) after \(Int(timeout)) s") }
            Thread.sleep(forTimeInterval: 0.1)
        }
    }

    func counts() throws -> [String: Int] {
        (try request("GET", "/api/info").json["jobs"] as? [String: Int]) ?? [:]
    }
}

final class ReplyBox: @unchecked Sendable {
    var reply: ServerProcess.Reply?
    var error: Error?
}

struct CLIError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// `gsasr serve` over HTTP: the API's answers, its limits and its results.
@Suite(.serialized) struct ServeTests {
    static let seeding = CLI.packageRoot.appendingPathComponent("Examples/seeding_160x120.png")

    static func decode(_ d: Data) throws -> Image { try ImageIO.decode(d).rgb }

    /// Each bad request gets its JSON error and status, and the next good request succeeds.
    @Test func badInputGetsJSONErrors() throws {
        let s = try ServerProcess(["-m", CLI.smallModel.path, "--max-upload-mib", "20", "--max-output-pixels", "10000"])
        let png = try Data(contentsOf: CLI.photo)
        let bomb = try Data(
            contentsOf: CLI.packageRoot.appendingPathComponent("Tests/ImageTests/Fixtures/huge_header.png"))
        var rng = SystemRandomNumberGenerator()
        let random = Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &rng) })
        let cases: [(String, String, Data?, Int, String)] = [
            ("truncated PNG", "/api/jobs?scale=2", png.prefix(png.count / 2), 422, "upload"),
            ("PNG bomb", "/api/jobs?scale=2", bomb, 413, "100000x100000"),
            ("random bytes", "/api/jobs?scale=2", random, 415, "is not a PNG, JPEG, TIFF, HEIC or AVIF file"),
            ("50 MB body", "/api/jobs?scale=2", Data(count: 50 << 20), 413, "over the limit"),
            ("scale NaN", "/api/jobs?scale=nan", png, 422, "scale 'nan' is not a decimal number"),
            ("scale 0", "/api/jobs?scale=0", png, 422, "below 1"),
            ("scale 1e9", "/api/jobs?scale=1e9", png, 422, "over this server's limit"),
            ("scale text", "/api/jobs?scale=four", png, 422, "scale 'four' is not a decimal number"),
            ("no scale", "/api/jobs", png, 422, "one of scale, size, width or height"),
            ("two sizes", "/api/jobs?scale=2&width=100", png, 422, "only one of"),
            ("no body", "/api/jobs?scale=2", nil, 422, "no image"),
            ("unknown model", "/api/jobs?scale=2&model=nope", png, 422, "not served"),
            ("bad geometry", "/api/jobs?scale=2&geometry=floored", png, 422, "'floored' is not one of exact, official"),
            ("hex scale", "/api/jobs?scale=0x10", png, 422, "scale '0x10' is not a decimal number"),
            ("NUL after the scale", "/api/jobs?scale=2%00", png, 422, "scale '2\\u{0}' is not a decimal number"),
            ("scale inf", "/api/jobs?scale=inf", png, 422, "is not a decimal number"),
            ("repeated scale", "/api/jobs?scale=2&scale=3", png, 422, "parameter 'scale' is given more than once"),
            ("hex width", "/api/jobs?width=0x60", png, 422, "width '0x60' is not a whole number"),
            ("size too small", "/api/jobs?size=10x10", png, 422, "smaller than the input"),
            ("output too big", "/api/jobs?scale=3", png, 422, "exceeds the limit of 10000 pixels"),
            ("unknown job", "/api/jobs/0123", nil, 404, "unknown"),
            ("sync: bomb", "/api/upscale?scale=2", bomb, 413, "100000x100000"),
        ]
        for (name, path, body, status, mentions) in cases {
            let method = name == "unknown job" ? "GET" : "POST"
            let r = try s.request(method, path, body: body)
            print("serve: \(name) -> \(r.status) \(r.error)")
            #expect(r.status == status, "\(name): status \(r.status), expected \(status)")
            #expect(r.headers["content-type"]?.hasPrefix("application/json") == true, "\(name): not JSON")
            #expect(r.error.contains(mentions), "\(name): '\(r.error)' does not mention '\(mentions)'")
            #expect(r.json["status"] as? Int == status)
            if body != nil && !(body!.isEmpty) {
                #expect(
                    r.headers["connection"] == "close", "\(name): a refused request with a body keeps its connection")
            }
            // The server keeps serving: a good upscale right after.
            let good = try s.request("POST", "/api/upscale?scale=2", body: png)
            #expect(good.status == 200 && good.headers["content-type"] == "image/png", "\(name): next request failed")
            #expect(try Self.decode(good.body).width == 96)
        }
    }

    /// The router's own refusals are JSON lines too: 404 for an unknown path, 405 with `Allow`
    /// for a known path and another method.
    @Test func unknownRoutesAndWrongMethodsAreJSON() throws {
        let s = try ServerProcess(["-m", CLI.smallModel.path])
        for (method, path, status, allow, mentions) in [
            ("GET", "/nope", 404, nil, "no such page or API route: /nope"),
            ("GET", "/api/jobs/abc/other.png", 404, nil, "no such page"),
            ("POST", "/api/info", 405, "GET", "POST is not allowed on /api/info; use GET"),
            ("GET", "/api/upscale", 405, "POST", "use POST"),
            ("DELETE", "/api/jobs/abc", 405, "GET", "DELETE is not allowed"),
            ("GET", "/api/jobs/abc/cancel", 405, "POST", "use POST"),
        ] as [(String, String, Int, String?, String)] {
            let r = try s.request(method, path)
            print("serve: \(method) \(path) -> \(r.status) \(r.error) Allow: \(r.headers["allow"] ?? "-")")
            #expect(r.status == status, "\(method) \(path)")
            #expect(r.headers["content-type"]?.hasPrefix("application/json") == true, "\(method) \(path): not JSON")
            #expect(r.json["status"] as? Int == status)
            #expect(r.error.contains(mentions), "\(method) \(path): '\(r.error)'")
            if let allow { #expect(r.headers["allow"] == allow) }
        }
    }

    /// A raw TCP connection to the server on 127.0.0.1 that has sent `bytes` (nil when the
    /// connection failed). The caller closes it.
    static func rawConnection(port: Int, sending bytes: [UInt8]) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port).bigEndian)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            close(fd)
            return nil
        }
        _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
        return fd
    }

    /// Seconds until the server closes a raw connection that sent `bytes` and then nothing
    /// (nil: still open after `limit` seconds).
    static func secondsUntilClosed(port: Int, sending bytes: [UInt8], limit: Double) -> Double? {
        guard let fd = rawConnection(port: port, sending: bytes) else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: Int(limit), tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let t0 = Date()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                return Date().timeIntervalSince(t0)
            }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) { return nil }
        }
    }

    /// What one raw connection that sends `bytes` gets back, until the server closes it.
    static func rawExchange(port: Int, _ bytes: [UInt8]) -> String {
        guard let fd = rawConnection(port: port, sending: bytes) else { return "" }
        defer { close(fd) }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// What the HTTP parser refuses is a JSON 400 line too, and the connection is closed.
    @Test func unparsableRequestsAreJSON400() throws {
        let s = try ServerProcess(["-m", CLI.smallModel.path])
        for (label, request, mentions) in [
            (
                "over-long query",
                "GET /api/info?x=\(String(repeating: "a", count: 200_000)) HTTP/1.1\r\nHost: x\r\n\r\n",
                "the request line or headers are too long"
            ),
            ("not HTTP", "GARBAGE\r\n\r\n", "is not valid HTTP"),
        ] {
            let reply = Self.rawExchange(port: s.port, Array(request.utf8))
            print(
                "serve: \(label) -> \(reply.split(separator: "\r\n").first ?? "") \(reply.split(separator: "\r\n").last ?? "")"
            )
            #expect(reply.hasPrefix("HTTP/1.1 400"), "\(label)")
            #expect(
                reply.contains("application/json") && reply.contains(mentions) && reply.contains("\"status\":400"),
                "\(label): \(reply)")
        }
        #expect(try s.request("GET", "/api/info").status == 200)
    }

    /// Idle and half-sent connections are closed after --idle-timeout (issue 29): unfinished
    /// headers, a stalled body, keep-alive after a request; the server still answers afterwards.
    @Test func idleAndHalfSentConnectionsAreClosed() throws {
        let s = try ServerProcess(["-m", CLI.smallModel.path, "--idle-timeout", "1"])
        for (label, text) in [
            ("unfinished headers", "GET /api/info HTTP/1.1\r\nHost: x\r\n"),
            ("nothing sent", ""),
            ("keep-alive after a request", "GET /api/info HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("stalled body", "POST /api/jobs?scale=2 HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nxxxxxxxxxx"),
        ] {
            let t = Self.secondsUntilClosed(port: s.port, sending: Array(text.utf8), limit: 10)
            print(
                "serve --idle-timeout 1: \(label) -> closed after \(t.map { String(format: "%.2f s", $0) } ?? "never (10 s)")"
            )
            #expect(t != nil && t! < 3, "\(label)")
        }
        #expect(try s.request("GET", "/api/info").status == 200)
    }

    /// Past --max-connections a new connection gets an immediate 503 JSON line and is closed;
    /// once the idle ones time out, requests are served again.
    @Test func connectionsPastTheCapGetAnImmediate503() throws {
        let s = try ServerProcess(["-m", CLI.smallModel.path, "--max-connections", "20", "--idle-timeout", "8"])
        var fds: [Int32] = []
        defer { for fd in fds { close(fd) } }
        for _ in 0..<30 {
            if let fd = Self.rawConnection(port: s.port, sending: Array("GET /api/info HTTP/1.1\r\nHost: x\r\n".utf8)) {
                fds.append(fd)
            }
        }
        // Poll the connections (20 ms each) until the 10 over the cap have their 503, then once
        // more, so that an 11th would be seen too; at most 10 s.
        var answered = Set<Int32>()
        func pollOnce() {
            for fd in fds where !answered.contains(fd) {
                var tv = timeval(tv_sec: 0, tv_usec: 20_000)
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
                var buffer = [UInt8](repeating: 0, count: 4096)
                let n = recv(fd, &buffer, buffer.count, 0)
                if n > 0, String(decoding: buffer[0..<n], as: UTF8.self).hasPrefix("HTTP/1.1 503") {
                    answered.insert(fd)
                }
            }
        }
        let pollDeadline = Date().addingTimeInterval(10)
        while answered.count < 10 && Date() < pollDeadline { pollOnce() }
        pollOnce()
        let refused = answered.count
        let now = try s.request("GET", "/api/info")
        print(
            "serve --max-connections 20: 30 half-open -> \(refused) answered 503; next request \(now.status) \(now.error)"
        )
        #expect(refused == 10)
        #expect(now.status == 503 && now.error.contains("limit of 20 connections") && now.headers["retry-after"] == "1")
        let deadline = Date().addingTimeInterval(20)
        var status = 0
        while Date() < deadline {
            status = try s.request("GET", "/api/info").status
            if status == 200 { break }
            Thread.sleep(forTimeInterval: 0.2)
        }
        #expect(status == 200, "still refused 20 s later (idle timeout 8 s)")
    }

    /// `geometry=official|exact` gives the CLI's `--geometry` output, and the status says which.
    @Test func geometryParameterMatchesTheCLI() throws {
        let s = try ServerProcess(["-m", CLI.smallModel.path])
        let d = try CLI.tempDir()
        var results: [[Float]] = []
        for geometry in ["exact", "official"] {
            let r = try s.request(
                "POST", "/api/jobs?scale=3.7&geometry=\(geometry)", body: try Data(contentsOf: Self.seeding))
            #expect(r.status == 202, "\(r.error)")
            let id = try #require(r.json["id"] as? String)
            let st = try s.waitForJob(id)
            #expect(st.json["geometry"] as? String == geometry, "\(st.json)")
            let result = try Self.decode(try s.request("GET", "/api/jobs/\(id)/result.png").body)
            let out = d.appendingPathComponent("\(geometry).png")
            let c = try CLI.run([
                "-i", Self.seeding.path, "-o", out.path, "-m", CLI.smallModel.path, "-s", "3.7", "--geometry", geometry,
                "-q",
            ])
            #expect(c.status == 0, "\(c.stderr)")
            #expect(result.pixels == (try ImageIO.load(out).rgb).pixels, "\(geometry): differs from gsasr's output")
            results.append(result.pixels)
        }
        #expect(results.count == 2 && results[0] != results[1], "x3.7 renders the same in both geometries")
    }

    /// A job's result is the CLI's output; the zoom-1 re-render of the whole image is the
    /// result; the bicubic zoom at 1 is the bicubic result; zoom Z has the asked size.
    @Test func resultsMatchTheCLIAndTheZoomAtOne() throws {
        let s = try ServerProcess(["-m", CLI.smallModel.path])
        let r = try s.request("POST", "/api/jobs?scale=3", body: try Data(contentsOf: Self.seeding))
        #expect(r.status == 202, "\(r.error)")
        let id = try #require(r.json["id"] as? String)
        let st = try s.waitForJob(id)
        #expect(st.json["state"] as? String == "done", "\(st.json)")
        let result = try Self.decode(try s.request("GET", "/api/jobs/\(id)/result.png").body)
        let bicubic = try Self.decode(try s.request("GET", "/api/jobs/\(id)/bicubic.png").body)
        let d = try CLI.tempDir()
        let out = d.appendingPathComponent("cli.png")
        let c = try CLI.run(["-i", Self.seeding.path, "-o", out.path, "-m", CLI.smallModel.path, "-s", "3", "-q"])
        #expect(c.status == 0, "\(c.stderr)")
        let cli = try ImageIO.load(out).rgb
        #expect(result.width == 480 && result.height == 360)
        #expect(result.pixels == cli.pixels, "the served result differs from gsasr's output")
        let whole = "region=0,0,480,360&zoom=1"
        let z1 = try Self.decode(try s.request("GET", "/api/jobs/\(id)/zoom.png?\(whole)").body)
        #expect(z1.pixels == result.pixels)
        let b1 = try Self.decode(try s.request("GET", "/api/jobs/\(id)/zoom.png?\(whole)&method=bicubic").body)
        let lr = try ImageIO.load(Self.seeding).rgb
        let ref = Resize.imresize(lr, scale: 3, outWidth: 480, outHeight: 360)
        #expect(b1.pixels == bicubic.pixels)
        #expect(b1.pixels == ref.pixels.map { Float(ImageIO.quantize($0)) / 255 })
        let z8 = try s.request("GET", "/api/jobs/\(id)/zoom.png?region=10,20,40,30&zoom=8&overlay=1")
        #expect(z8.status == 200)
        let zi = try Self.decode(z8.body)
        #expect(zi.width == 320 && zi.height == 240)
        let download = try s.request("GET", "/api/jobs/\(id)/result.png?download=1")
        #expect(download.headers["content-disposition"]?.contains("attachment") == true)
        for (path, status) in [
            ("zoom.png?region=470,350,40,30", 422), ("zoom.png?region=1,2,3", 422),
            ("zoom.png?region=0,0,8,8&zoom=9", 422),
            ("zoom.png?region=0,0,8,8&zoom=-1", 422), ("zoom.png?region=0,0,8,8&method=x", 422),
            ("zoom.png", 422),
        ] {
            let e = try s.request("GET", "/api/jobs/\(id)/\(path)")
            print("serve: \(path) -> \(e.status) \(e.error)")
            #expect(e.status == status && !e.error.isEmpty, "\(path)")
        }
    }

    /// With no room to wait, a second job while one runs gets 503 and Retry-After; a job nobody
    /// polls is cancelled; an `/api/upscale` whose client goes away is cancelled.
    @Test func queueLimitAbandonAndDisconnect() throws {
        let s = try ServerProcess(["--queue", "0", "--concurrent-jobs", "1", "--abandon-after", "1"])
        // The bundled model on a 256x256 crop takes seconds, long enough to be seen running.
        let big = try Self.photo256()
        let first = try s.request("POST", "/api/jobs?scale=4", body: big)
        #expect(first.status == 202, "\(first.error)")
        let second = try s.request("POST", "/api/jobs?scale=4", body: big)
        print(
            "serve: second job while one runs -> \(second.status) \(second.error), Retry-After \(second.headers["retry-after"] ?? "-")"
        )
        #expect(second.status == 503)
        #expect(Int(second.headers["retry-after"] ?? "") ?? 0 >= 1)
        // Not polled for over a second: cancelled at the next block. Wait for it on /api/info (a
        // status request for the job itself would keep it alive), polling, up to 30 s.
        let deadline = Date().addingTimeInterval(30)
        while (try s.counts()["cancelled"] ?? 0) < 1 && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
        let id = try #require(first.json["id"] as? String)
        let st = try s.request("GET", "/api/jobs/\(id)")
        #expect(st.json["state"] as? String == "cancelled", "\(st.json)")
        // Its worker stops at the next block (attention blocks, UPNet, slices of the heads).
        var stopped = false
        for _ in 0..<40 where !stopped {
            stopped = try s.counts()["running"] == 0
            if !stopped { Thread.sleep(forTimeInterval: 0.05) }
        }
        #expect(stopped, "the cancelled job still runs 2 s after its cancellation")
        // A client that disconnects: its job is cancelled, and the server is free again.
        var req = URLRequest(url: URL(string: "http://127.0.0.1:\(s.port)/api/upscale?scale=4")!)
        req.httpMethod = "POST"
        req.httpBody = big
        let task = URLSession.shared.dataTask(with: req) { _, _, _ in }
        task.resume()
        var running = 0
        for _ in 0..<100 where running == 0 {
            Thread.sleep(forTimeInterval: 0.05)
            running = try s.counts()["running"] ?? 0
        }
        #expect(running == 1)
        task.cancel()
        var counts: [String: Int] = [:]
        for _ in 0..<100 {
            Thread.sleep(forTimeInterval: 0.05)
            counts = try s.counts()
            if counts["running"] == 0 && counts["cancelled"] == 2 { break }
        }
        print("serve: after the disconnect: \(counts)")
        #expect(counts["running"] == 0 && counts["cancelled"] == 2 && counts["completed"] == 0)
    }

    /// A 256x256 PNG (the bundled photo tiled), encoded in memory.
    /// A side x side PNG tiled from the bundled photo.
    static func photo(side: Int) throws -> Data {
        let src = try ImageIO.load(seeding).rgb
        var px = [Float](repeating: 0, count: side * side * 3)
        for y in 0..<side {
            for x in 0..<side {
                for c in 0..<3 { px[(y * side + x) * 3 + c] = src.pixels[((y % 120) * 160 + x % 160) * 3 + c] }
            }
        }
        return Data(try ImageIO.encodePNG(Image(width: side, height: side, pixels: px)))
    }

    /// The input limit agrees with the memory limit: by default it is derived from it, and the
    /// stated maximum (in /api/info, shown by the page) is accepted and finishes at the largest
    /// scale the output limit allows, while one more row and column is refused from the header;
    /// a given limit that the memory cannot hold stops the server at start-up, naming both.
    @Test func inputLimitAgreesWithTheMemoryLimit() throws {
        let args = ["-m", CLI.smallModel.path, "--job-memory-gib", "0.05", "--max-output-pixels", "90000"]
        let s = try ServerProcess(args)
        let limits = try #require(try s.request("GET", "/api/info").json["limits"] as? [String: Any])
        let maxIn = try #require(limits["maxInputPixels"] as? Int)
        let side = Int(Double(maxIn).squareRoot())
        print(
            "serve: --job-memory-gib 0.05 --max-output-pixels 90000 -> inputs up to \(maxIn) pixels (\(side)x\(side))")
        #expect(side * side == maxIn && side >= 12)
        let scale = (300.0 / Double(side) * 1000).rounded(.down) / 1000
        let r = try s.request("POST", "/api/jobs?scale=\(scale)", body: try Self.photo(side: side))
        #expect(r.status == 202, "\(side)x\(side) at x\(scale): \(r.error)")
        if let id = r.json["id"] as? String {
            #expect(try s.waitForJob(id).json["state"] as? String == "done")
        }
        let over = try s.request("POST", "/api/jobs?scale=1", body: try Self.photo(side: side + 1))
        #expect(over.status == 413, "\(over.error)")
        let bad = try CLI.run(["serve", "--port", "0"] + args + ["--max-input-pixels", "\(maxIn + 1)"])
        print("serve --max-input-pixels \(maxIn + 1) -> exit \(bad.status): \(bad.stderr)")
        #expect(bad.status != 0 && bad.stderr.split(separator: "\n").count == 1)
        #expect(bad.stderr.contains("--max-input-pixels \(maxIn + 1) conflicts with --job-memory-gib"))
    }

    static func photo256() throws -> Data {
        let src = try ImageIO.load(seeding).rgb
        var px = [Float](repeating: 0, count: 256 * 256 * 3)
        for y in 0..<256 {
            for x in 0..<256 {
                for c in 0..<3 { px[(y * 256 + x) * 3 + c] = src.pixels[((y % 120) * 160 + x % 160) * 3 + c] }
            }
        }
        return Data(try ImageIO.encodePNG(Image(width: 256, height: 256, pixels: px)))
    }
}
