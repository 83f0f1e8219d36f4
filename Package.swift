// swift-tools-version:6.0
// swift-gsasr: GSASR (arXiv 2501.06838) arbitrary-scale super-resolution in Swift.
//
// Module graph (dependencies flow one way):
//   gsasr (CLI) -> GSASRBench, GSASRServer (HTTP, Hummingbird), GSASRTraining (trainer, data, YAML; CMPI: Open MPI via dlopen)
//     -> GSASR (models, pipeline) -> GSASRRaster, GSASRCheckpoint, GSASRImage (libpng, libjpeg-turbo, libwebp, libtiff, libheif)
//   GSASR, GSASRRaster -> GSASRTensor (kernels, threads) -> BLAS (OpenBLAS via dlopen on Linux, Accelerate on Apple), CKernels (AVX2 softmax, AVX2 + FMA optimiser updates), CBF16 (bf16 matmul through oneDNN)
import Foundation
import PackageDescription

// OpenBLAS (Linux) is not linked: GSASRTensor/BLAS.swift dlopens it after choosing its kernel
// set (OPENBLAS_CORETYPE), which OpenBLAS reads when it loads. Runtime package: libopenblas0.
//
// No unsafe build flags: release builds are SwiftPM's -O with whole-module optimisation, so the
// parsers of untrusted files keep their bounds and overflow checks in the binary users run, and
// other packages can depend on this one by version. The kernels' speed comes from pointer
// loops; C code that must not contract a·b + c into an FMA says so with a pragma.

let package = Package(
    name: "swift-gsasr",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "GSASR", targets: ["GSASR"]),
        .executable(name: "gsasr", targets: ["GSASRCLI"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.19"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        // `swift package generate-documentation --target GSASR` (DocC; a build-time tool only).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng",
            providers: [.apt(["libpng-dev"]), .brew(["libpng"])]),
        .systemLibrary(
            name: "CTurboJPEG", path: "Sources/CTurboJPEG", pkgConfig: "libturbojpeg",
            providers: [.apt(["libturbojpeg0-dev"]), .brew(["jpeg-turbo"])]),
        .systemLibrary(
            name: "CJPEGLib", path: "Sources/CJPEGLib", pkgConfig: "libjpeg",
            providers: [.apt(["libjpeg62-turbo-dev"]), .brew(["jpeg-turbo"])]),
        .systemLibrary(
            name: "CWebP", path: "Sources/CWebP", pkgConfig: "libwebpmux",
            providers: [.apt(["libwebp-dev"]), .brew(["webp"])]),
        .systemLibrary(
            name: "CImageZlib", path: "Sources/CImageZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]),
        .systemLibrary(
            name: "CTIFF", path: "Sources/CTIFF", pkgConfig: "libtiff-4",
            providers: [.apt(["libtiff-dev"]), .brew(["libtiff"])]),
        .systemLibrary(
            name: "CHeif", path: "Sources/CHeif", pkgConfig: "libheif",
            providers: [.apt(["libheif-dev"]), .brew(["libheif"])]),
        // libpng and libjpeg report errors by longjmp; this C target keeps every such call
        // behind its own setjmp and returns error codes to Swift.
        // libtiff's tag API is variadic, which Swift cannot call: tiff_codec.c wraps it.
        .target(name: "CImageCodec", dependencies: ["CPNG", "CJPEGLib", "CTIFF"]),
        // The softmax with AVX2 instructions, chosen at run time (the Swift code is built for
        // the x86-64 baseline); results identical to the portable Swift version.
        .target(name: "CKernels"),
        .target(name: "GSASRTensor", dependencies: ["CKernels", "CBF16"]),
        .target(
            name: "GSASRCheckpoint",
            dependencies: [.product(name: "ZIPFoundation", package: "ZIPFoundation")]),
        .target(
            name: "GSASRImage",
            dependencies: ["CPNG", "CTurboJPEG", "CImageCodec", "CWebP", "CImageZlib", "CTIFF", "CHeif"]),
        .target(name: "GSASRRaster", dependencies: ["GSASRTensor"]),
        // The bundled default model's files (Models/default), embedded in the binary (#embed).
        .target(name: "CDefaultModel"),
        .target(
            name: "GSASR",
            dependencies: [
                "GSASRTensor", "GSASRCheckpoint", "GSASRImage", "GSASRRaster", "CDefaultModel",
            ]),
        // Training apart from inference: the trainer, its data and the YAML reader (Yams), so
        // that the server and library users of GSASR do not link them.
        // bf16 matrix products through oneDNN (libdnnl-dev: headers in /usr/include, no pkg-config
        // file; oneDNN runs on OpenMP, libgomp).
        .target(
            name: "CBF16", linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("gomp", .when(platforms: [.linux]))]),
        // Open MPI, loaded at run time (dlopen) for data-parallel training: see Sources/CMPI/include/cmpi.h.
        .target(name: "CMPI"),
        .target(
            name: "GSASRTraining", dependencies: ["GSASR", "CMPI", .product(name: "Yams", package: "Yams")]),
        .target(name: "GSASRBench", dependencies: ["GSASR", "GSASRTraining"]),
        .target(
            name: "GSASRServer",
            dependencies: ["GSASR", .product(name: "Hummingbird", package: "hummingbird")]),
        .executableTarget(
            name: "GSASRCLI",
            dependencies: [
                "GSASR", "GSASRTraining", "GSASRBench", "GSASRServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .testTarget(
            name: "CheckpointTests",
            dependencies: ["GSASRCheckpoint", .product(name: "ZIPFoundation", package: "ZIPFoundation")],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "ImageTests", dependencies: ["GSASRImage", "CWebP", "CImageZlib"], resources: [.copy("Fixtures")]),
        .testTarget(name: "RasterTests", dependencies: ["GSASRRaster"], resources: [.copy("Fixtures")]),
        .testTarget(name: "TensorTests", dependencies: ["GSASRTensor"]),
        .testTarget(
            name: "GSASRTests",
            dependencies: ["GSASR", "GSASRTraining", .product(name: "ZIPFoundation", package: "ZIPFoundation")],
            resources: [.copy("Fixtures")]),
        .testTarget(
            name: "CLITests",
            dependencies: ["GSASR", "GSASRTraining", .product(name: "ZIPFoundation", package: "ZIPFoundation")]),
    ],
    swiftLanguageModes: [.v5]
)

// Fuzzing harness (libFuzzer): only with GSASR_FUZZ set, since it has no main of its own.
// Built and run by tools/fuzz.sh (Benchmarks/README.md says how).
if ProcessInfo.processInfo.environment["GSASR_FUZZ"] != nil {
    package.targets.append(
        .executableTarget(
            name: "GSASRFuzz", dependencies: ["GSASR", "GSASRImage", "GSASRCheckpoint"], path: "Fuzz/GSASRFuzz"))
    package.products.append(.executable(name: "GSASRFuzz", targets: ["GSASRFuzz"]))
}
