// upscale-example INPUT OUTPUT.png SCALE: the library's common job in a dozen lines — the model
// built into the library, an image file in, the whole pipeline, a PNG out.
import Foundation
import GSASR

let args = CommandLine.arguments
guard args.count == 4, let scale = Double(args[3]) else {
    FileHandle.standardError.write(Data("usage: upscale-example INPUT OUTPUT.png SCALE\n".utf8))
    exit(2)
}
do {
    let model = try GSASRModel.bundledDefault()
    let input = try ImageIO.load(URL(fileURLWithPath: args[1]))
    let upscaler = Upscaler(model: model)
    let result = try upscaler.upscale(
        rgb: input.rgb.pixels, width: input.rgb.width, height: input.rgb.height, scale: scale
    ) { stage, fraction in
        if stage == .render && fraction >= 1 { FileHandle.standardError.write(Data("rendered\n".utf8)) }
    }
    let image = Image(width: result.width, height: result.height, pixels: result.pixels)
    try ImageIO.writePNG(image, to: URL(fileURLWithPath: args[2]))
    print("\(input.rgb.width)x\(input.rgb.height) -> \(result.width)x\(result.height), \(result.gaussianCount) Gaussians")
} catch {
    FileHandle.standardError.write(Data("upscale-example: \(error)\n".utf8))
    exit(1)
}
