/// Which column data key sealed a compact value: a keyspace (the proxy's numeric id for a column
/// key hierarchy, e.g. one branch key) and a key version within it. Stored in clear in the envelope
/// so that values sealed before a rotation keep opening with the old version.
public struct CompactKeyID: Hashable, Sendable, CustomStringConvertible {
    /// The keyspace number.
    public var keyspace: UInt32
    /// The key version within the keyspace.
    public var version: UInt32

    public init(keyspace: UInt32, version: UInt32) {
        self.keyspace = keyspace
        self.version = version
    }

    public var description: String { "\(keyspace)/v\(version)" }
}
