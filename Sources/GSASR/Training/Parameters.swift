import GSASRCheckpoint
import GSASRTensor

/// How a parameter's values are laid out in our tensor compared with PyTorch's.
public enum ParameterLayout: Sendable, Equatable {
    /// The same row-major layout as the official tensor.
    case plain
    /// A 3×3 convolution weight stored as (cout, ky, kx, cin) (see ``Conv3x3Weights``); the
    /// official tensor is (cout, cin, ky, kx). Element-wise code (Adam, EMA) is layout-blind;
    /// export and import permute.
    case conv3x3(cout: Int, cin: Int)
}

/// One learnable tensor under its official state-dict key. `value` may be a view into a stacked
/// tensor (k|v, q|k|v, the five heads' first layers): there is only one copy of every weight.
public struct NamedParameter: @unchecked Sendable {
    public let key: String
    public let value: Tensor
    public let layout: ParameterLayout
    /// The official shape (PyTorch's).
    public let torchShape: [Int]

    init(_ key: String, _ value: Tensor, layout: ParameterLayout = .plain) {
        self.key = key
        self.value = value
        self.layout = layout
        switch layout {
        case .plain: torchShape = value.shape
        case .conv3x3(let o, let i): torchShape = [o, i, 3, 3]
        }
    }

    /// A parameter record for another tensor of the same layout (a gradient, a moment, an EMA
    /// copy), to convert it to and from PyTorch's layout.
    public static func scratch(like p: NamedParameter, value: Tensor) -> NamedParameter {
        NamedParameter(p.key, value, layout: p.layout)
    }

    /// The values in PyTorch's layout.
    public func torchValues(of t: Tensor? = nil) -> [Float] {
        let src = (t ?? value).array
        switch layout {
        case .plain: return src
        case .conv3x3(let cout, let cin):
            var r = [Float](repeating: 0, count: src.count)
            for o in 0..<cout {
                for i in 0..<cin {
                    for tap in 0..<9 { r[(o * cin + i) * 9 + tap] = src[o * 9 * cin + tap * cin + i] }
                }
            }
            return r
        }
    }

    /// Overwrites the values from PyTorch's layout.
    public func setTorchValues(_ v: [Float]) {
        precondition(v.count == value.count, "\(key): \(v.count) values for \(value.count) elements")
        let p = value.ptr
        switch layout {
        case .plain: for j in 0..<v.count { p[j] = v[j] }
        case .conv3x3(let cout, let cin):
            for o in 0..<cout {
                for i in 0..<cin {
                    for tap in 0..<9 { p[o * 9 * cin + tap * cin + i] = v[(o * cin + i) * 9 + tap] }
                }
            }
        }
    }
}

/// A state-dict entry in the official order: a parameter, or an integer buffer
/// (`relative_position_index`).
public enum StateEntry: @unchecked Sendable {
    case parameter(NamedParameter)
    case buffer(key: String, shape: [Int], values: [Int64])

    public var key: String {
        switch self {
        case .parameter(let p): return p.key
        case .buffer(let k, _, _): return k
        }
    }
}

/// Gradient tensors, one per parameter *storage*: the gradient of a view is the same view of
/// the gradient storage, so the stacked layers and their official per-projection views share
/// one gradient, as they share one weight. Created zero-filled on first use.
public final class Gradients: @unchecked Sendable {
    private var storages: [ObjectIdentifier: Tensor.Storage] = [:]

    public init() {}

    /// The gradient of `t` (same shape, same offset into its own storage).
    public func of(_ t: Tensor) -> Tensor {
        let id = ObjectIdentifier(t.storage)
        let s: Tensor.Storage
        if let e = storages[id] {
            s = e
        } else {
            s = Tensor.Storage(count: t.storage.count)
            s.base.initialize(repeating: 0, count: max(1, t.storage.count))
            storages[id] = s
        }
        return Tensor(shape: t.shape, storage: s, offset: t.offset)
    }

    /// Sets every gradient to zero (PyTorch's zero_grad; the storages are kept).
    public func zero() {
        for s in storages.values { s.base.update(repeating: 0, count: max(1, s.count)) }
    }
}

extension Linear {
    func entries(_ prefix: String) -> [StateEntry] {
        var e: [StateEntry] = [.parameter(NamedParameter(prefix + "weight", weight))]
        if let bias { e.append(.parameter(NamedParameter(prefix + "bias", bias))) }
        return e
    }
}

extension LayerNorm {
    func entries(_ prefix: String) -> [StateEntry] {
        [.parameter(NamedParameter(prefix + "weight", weight)), .parameter(NamedParameter(prefix + "bias", bias))]
    }
}

extension Conv2d {
    func entries(_ prefix: String) -> [StateEntry] {
        [
            .parameter(
                NamedParameter(
                    prefix + "weight", weights.weight, layout: .conv3x3(cout: weights.cout, cin: weights.cin))),
            .parameter(NamedParameter(prefix + "bias", weights.bias)),
        ]
    }
}

extension MLP {
    func entries(_ prefix: String, first: String, second: String) -> [StateEntry] {
        fc1.entries(prefix + first + ".") + fc2.entries(prefix + second + ".")
    }
}

extension MultiheadAttention {
    func entries(_ prefix: String) -> [StateEntry] {
        [
            .parameter(NamedParameter(prefix + "in_proj_weight", inProjWeight)),
            .parameter(NamedParameter(prefix + "in_proj_bias", inProjBias)),
        ] + outProj.entries(prefix + "out_proj.")
    }
}

extension RelativePositionBias {
    func entries(_ prefix: String) -> [StateEntry] {
        [
            .parameter(NamedParameter(prefix + "relative_position_bias_table", table)),
            .buffer(key: prefix + "relative_position_index", shape: [nq, nk], values: indexInt64),
        ]
    }
}

extension EDSRNOUP {
    /// The official state dict, in `state_dict()` order.
    public var stateEntries: [StateEntry] {
        var e = convFirst.entries("conv_first.")
        for (i, b) in body.enumerated() {
            e += b.conv1.entries("body.\(i).conv1.") + b.conv2.entries("body.\(i).conv2.")
        }
        return e + convAfterBody.entries("conv_after_body.")
    }
}

extension Fea2GS {
    /// The official state dict, in `state_dict()` order (module registration order).
    public var stateEntries: [StateEntry] {
        var e: [StateEntry] = [
            .parameter(NamedParameter("gs_embedding", gsEmbedding)),
            .parameter(NamedParameter("pos_embedding", posEmbedding)),
        ]
        e += imgFeatProj0.entries("img_feat_proj.0.") + imgFeatProj2.entries("img_feat_proj.2.")
        for (b, block) in windowCrossattnBlocks.enumerated() {
            let p = "window_crossattn_blocks.\(b)."
            e += block.mlp.entries(p + "mlp.", first: "0", second: "2") + block.norm.entries(p + "norm.")
            for (l, layer) in block.blocks.enumerated() {
                let q = p + "blocks.\(l)."
                e += layer.gsCrossAttnScale.entries(q + "gs_cross_attn_scale.")
                e += layer.norm1.entries(q + "norm1.") + layer.norm2.entries(q + "norm2.")
                e += layer.norm3.entries(q + "norm3.") + layer.norm4.entries(q + "norm4.")
                let a = layer.windowCrossAttn, ap = q + "window_cross_attn."
                e += a.relativePosition.entries(ap)
                e += a.qhead.entries(ap + "qhead.") + a.khead.entries(ap + "khead.") + a.vhead.entries(ap + "vhead.")
                e += a.proj.entries(ap + "proj.")
                e += layer.mlpCrossattnScale.entries(q + "mlp_crossattn_scale.", first: "fc1", second: "fc2")
                e += layer.mlpCrossattnFeature.entries(q + "mlp_crossattn_feature.", first: "fc1", second: "fc2")
            }
        }
        for (b, block) in gsSelfattnBlocks.enumerated() {
            let p = "gs_selfattn_blocks.\(b)."
            e += block.mlp.entries(p + "mlp.", first: "0", second: "2") + block.norm.entries(p + "norm.")
            for (l, layer) in block.blocks.enumerated() {
                let q = p + "blocks.\(l)."
                e += layer.norm1.entries(q + "norm1.") + layer.norm2.entries(q + "norm2.")
                e += layer.norm3.entries(q + "norm3.") + layer.norm4.entries(q + "norm4.")
                let a = layer.gsSelfAttn, ap = q + "gs_self_attn."
                e += a.relativePosition.entries(ap) + a.proj.entries(ap + "proj.")
                e += a.qhead.entries(ap + "qhead.") + a.khead.entries(ap + "khead.") + a.vhead.entries(ap + "vhead.")
                e += layer.mlpSelfattn.entries(q + "mlp_selfattn.", first: "fc1", second: "fc2")
                e += layer.gsCrossAttnScale.entries(q + "gs_cross_attn_scale.")
                e += layer.mlpCrossattn.entries(q + "mlp_crossattn.", first: "fc1", second: "fc2")
            }
        }
        let heads = [
            ("sigma", mlpBlockSigma), ("rho", mlpBlockRho), ("alpha", mlpBlockAlpha), ("rgb", mlpBlockRgb),
            ("mean", mlpBlockMean),
        ]
        for (name, h) in heads {
            let p = "mlp_block_\(name)."
            e += h.l0.entries(p + "0.") + h.l2.entries(p + "2.") + h.l4.entries(p + "4.")
        }
        e += scaleMlp0.entries("scale_mlp.0.") + scaleMlp2.entries("scale_mlp.2.")
        e += upNet0.entries("UPNet.0.") + upNet2.entries("UPNet.2.")
        return e
    }
}

extension Array where Element == StateEntry {
    /// The learnable parameters only (`named_parameters()`).
    public var parameters: [NamedParameter] {
        compactMap { if case .parameter(let p) = $0 { return p } else { return nil } }
    }

    /// A ``StateDict`` of the current values in PyTorch's layout (`values` replaces each
    /// parameter's tensor, e.g. by its EMA copy, when given).
    public func stateDict(values: ((NamedParameter) -> Tensor)? = nil) -> StateDict {
        var sd = StateDict()
        for e in self {
            switch e {
            case .parameter(let p):
                sd.insert(
                    p.key, LoadedTensor(shape: p.torchShape, dtype: .float32, floats: p.torchValues(of: values?(p))))
            case .buffer(let k, let shape, let v):
                sd.insert(k, LoadedTensor(shape: shape, dtype: .int64, floats: v.map { Float($0) }, ints: v))
            }
        }
        return sd
    }
}
