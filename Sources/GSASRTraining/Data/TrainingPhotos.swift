import Foundation
import GSASR
import GSASRImage

/// The high-resolution photos a training run samples from, decoded once and cached as 8-bit RGB.
///
/// The project trains only on the allowlist of ../shared/data/training-photos.md
/// (``TrainingPhotos/allowlist``): 38 photos from four Debian packages. Other photos on the
/// machine are kept for independent evaluation.
///
/// Assumption (named here and in the README): when `downscale` is 2, each photo is first
/// resized by 1/2 with the MATLAB-style antialiased bicubic (``Resize/imresize(_:scale:)``)
/// before it serves as high resolution, as DIV2K-style practice does to remove JPEG blocking.
/// The cache holds `Float(byte)/255`-exact bytes, so a crop converted back to float is
/// `uint8/255` exactly as `cv2.imread(...)/255` in the official dataset.
public struct TrainingPhotos: Sendable {
    public struct Photo: Sendable {
        public let name: String
        public let width: Int
        public let height: Int
        /// HWC RGB bytes.
        public let bytes: [UInt8]

        public init(name: String, width: Int, height: Int, bytes: [UInt8]) {
            precondition(bytes.count == width * height * 3, "photo \(name): \(bytes.count) bytes for \(width)x\(height) RGB")
            self.name = name
            self.width = width
            self.height = height
            self.bytes = bytes
        }
    }

    public let photos: [Photo]

    /// The 38 allowed training photos (absolute paths on a Debian machine).
    public static let allowlist: [String] = {
        let bg = "/usr/share/backgrounds/"
        let ubuntu = [
            "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace", "Picture_1A_by_freespace",
            "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi", "analogpattern_by_Peter_Nerlich",
            "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi", "greentock_by_Peter_Nerlich",
            "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi", "seeding_by_Clements_Engelhardt",
            "sunset_by_Aitzol_Berasategi", "Kleiber_by_Lukas_Baubkus",
        ].map { bg + $0 + ".jpg" }
        let mate = [
            "Aqua", "Blinds", "Dune", "FreshFlower", "Garden", "GreenMeadow", "LadyBird", "RainDrops", "Storm",
            "TwoWings", "Wood", "YellowFlower",
        ].map { bg + "mate/nature/" + $0 + ".jpg" }
        let lxqt = [
            "Butterfly-Kenneth-Wimer.jpg", "Valendas.png", "after-the-rain.jpg", "appleflower.png", "beam.png",
            "butterfly.png", "cloud.png", "drop.png", "flowers.png", "fog.jpg", "this-is-not-windows.jpg",
        ].map { "/usr/share/lxqt/wallpapers/" + $0 }
        return ubuntu + mate + lxqt
    }()

    public init(photos: [Photo]) { self.photos = photos }

    /// Loads photos. `paths` may name files or folders (every PNG/JPEG directly inside); when it
    /// is the literal `["allowlist"]`, the ``allowlist`` is used and every file must exist.
    /// Throws a one-line error naming the first missing or undecodable file.
    public static func load(
        paths: [String], downscale: Int = 2, minSide: Int, log: ((String) -> Void)? = nil
    ) throws -> TrainingPhotos {
        var files: [String] = []
        let fm = FileManager.default
        let requested = paths == ["allowlist"] ? allowlist : paths
        guard !requested.isEmpty else { throw TrainingError("no training photos given") }
        for p in requested {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: p, isDirectory: &isDir) else {
                throw TrainingError(
                    paths == ["allowlist"]
                        ? "training photo '\(p)' is missing: install the packages listed in the README (Training)"
                        : "training photo path '\(p)' does not exist")
            }
            if isDir.boolValue {
                let names = (try? fm.contentsOfDirectory(atPath: p)) ?? []
                let images = names.filter { ["png", "jpg", "jpeg"].contains(($0 as NSString).pathExtension.lowercased()) }
                    .sorted()
                guard !images.isEmpty else { throw TrainingError("training photo folder '\(p)' holds no PNG or JPEG") }
                files += images.map { (p as NSString).appendingPathComponent($0) }
            } else {
                files.append(p)
            }
        }
        guard downscale == 1 || downscale == 2 else { throw TrainingError("downscale must be 1 or 2, not \(downscale)") }
        var photos: [Photo] = []
        for f in files {
            let decoded: DecodedImage
            do {
                decoded = try ImageIO.load(URL(fileURLWithPath: f), maxPixels: 1 << 28)
            } catch {
                throw TrainingError("training photo '\(f)': \(error)")
            }
            var img = decoded.rgb
            if downscale == 2 { img = Resize.imresize(img, scale: 0.5) }
            guard min(img.width, img.height) >= minSide else {
                throw TrainingError(
                    "training photo '\(f)' is \(img.width)x\(img.height) after downscaling, smaller than a \(minSide)-pixel crop"
                )
            }
            let name = ((f as NSString).lastPathComponent as NSString).deletingPathExtension
            photos.append(Photo(name: name, width: img.width, height: img.height, bytes: img.bytes()))
            log?("  \(name): \(decoded.rgb.width)x\(decoded.rgb.height) -> \(img.width)x\(img.height)")
        }
        return TrainingPhotos(photos: photos)
    }

    public var megapixels: Double { Double(photos.reduce(0) { $0 + $1.width * $1.height }) / 1e6 }
}

/// A training failure meant for users: one line.
public struct TrainingError: Error, CustomStringConvertible, LocalizedError {
    public var description: String
    public init(_ d: String) { description = d }
    public var errorDescription: String? { description }
}
