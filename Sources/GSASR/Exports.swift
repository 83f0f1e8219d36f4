@_exported import GSASRCheckpoint
@_exported import GSASRImage
@_exported import GSASRRaster
@_exported import GSASRTensor
