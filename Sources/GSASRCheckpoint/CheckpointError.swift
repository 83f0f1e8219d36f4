/// Errors from reading or writing checkpoints and arrays. `description` is one line that names
/// the problem (and the file, key, opcode or global involved).
public struct CheckpointError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
