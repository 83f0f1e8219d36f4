// swift-tools-version:6.0
// An example package that uses swift-gsasr as a library, depending on it by version as any other
// package would. By default it resolves this repository (three folders up) as a git URL at
// version 0.6.0 or later; SWIFT_GSASR_URL and SWIFT_GSASR_VERSION point it elsewhere (CI tags a
// clone of the commit under test, `.ci/run`). A published copy would say
// `.package(url: "https://github.com/OWNER/swift-gsasr", from: "0.6.0")`.
import Foundation
import PackageDescription

let here = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
let env = ProcessInfo.processInfo.environment
let url = env["SWIFT_GSASR_URL"] ?? here.deletingLastPathComponent().deletingLastPathComponent().absoluteString
let version = Version(env["SWIFT_GSASR_VERSION"] ?? "0.6.0")!
// SwiftPM names a URL dependency after the URL's last path component.
let identity = URL(string: url)!.deletingPathExtension().lastPathComponent.lowercased()

let package = Package(
    name: "UpscaleExample",
    platforms: [.macOS(.v13)],
    dependencies: [.package(url: url, from: version)],
    targets: [
        .executableTarget(
            name: "upscale-example", dependencies: [.product(name: "GSASR", package: identity)])
    ]
)
