/// An AWS KMS ARN, `arn:<partition>:kms:<region>:<account>:<key|alias>/<resource id>`, parsed per
/// the AWS Encryption SDK specification (aws-kms-key-arn.md).
public struct KMSARN: Hashable, Sendable, CustomStringConvertible {
    /// `key` or `alias`.
    public enum ResourceType: String, Hashable, Sendable {
        case key, alias
    }

    public var partition: String
    public var region: String
    public var account: String
    public var resourceType: ResourceType
    /// The key id (`mrk-…`, a UUID) or alias name without the `alias/` prefix.
    public var resourceId: String

    /// Builds an ARN from its parts.
    public init(partition: String = "aws", region: String, account: String, resourceType: ResourceType, resourceId: String) {
        self.partition = partition
        self.region = region
        self.account = account
        self.resourceType = resourceType
        self.resourceId = resourceId
    }

    /// Parses a KMS ARN.
    ///
    /// - Throws: `KMSError` `.invalidArn` when the string is not a valid AWS KMS ARN (6 `:`-separated
    ///   parts starting with `arn`, service `kms`, non-empty partition/region/account, resource
    ///   `key/<id>` or `alias/<name>` with a non-empty id; further `/` belong to the id).
    public init(parsing string: String) throws {
        let parts = string.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 6 else { throw KMSError(.invalidArn, "not an ARN: expected 6 ':'-separated parts") }
        guard parts[0] == "arn" else { throw KMSError(.invalidArn, "ARN must start with 'arn'") }
        guard !parts[1].isEmpty else { throw KMSError(.invalidArn, "ARN partition is empty") }
        guard parts[2] == "kms" else { throw KMSError(.invalidArn, "ARN service must be 'kms'") }
        guard !parts[3].isEmpty else { throw KMSError(.invalidArn, "ARN region is empty") }
        guard !parts[4].isEmpty else { throw KMSError(.invalidArn, "ARN account is empty") }
        let resource = parts[5]
        guard let slash = resource.firstIndex(of: "/") else {
            throw KMSError(.invalidArn, "ARN resource must be 'key/<id>' or 'alias/<name>'")
        }
        guard let type = ResourceType(rawValue: String(resource[..<slash])) else {
            throw KMSError(.invalidArn, "ARN resource type must be 'key' or 'alias'")
        }
        let id = String(resource[resource.index(after: slash)...])
        guard !id.isEmpty else { throw KMSError(.invalidArn, "ARN resource id is empty") }
        self.init(partition: parts[1], region: parts[3], account: parts[4], resourceType: type, resourceId: id)
    }

    public var description: String { "arn:\(partition):kms:\(region):\(account):\(resourceType.rawValue)/\(resourceId)" }

    /// Whether this is a multi-Region key ARN: resource type `key` and id starting with `mrk-`.
    /// Alias ARNs are never MRKs, even when the alias name starts with `mrk-`.
    public var isMultiRegionKey: Bool { resourceType == .key && resourceId.hasPrefix("mrk-") }

    /// This ARN with another region (for deriving the replica ARN of an MRK).
    public func inRegion(_ region: String) -> KMSARN {
        var copy = self
        copy.region = region
        return copy
    }
}

/// The MRK identity rules of the AWS Encryption SDK specification.
public enum KMSKeyIdentifier {
    /// Whether `identifier` (an ARN, `alias/…`, a key id) names a multi-Region key
    /// (aws-kms-key-arn.md "Identifying an AWS KMS multi-Region identifier").
    ///
    /// - Throws: `.invalidArn` when `identifier` starts with `arn:` but is not a valid KMS ARN.
    public static func isMultiRegion(_ identifier: String) throws -> Bool {
        if identifier.hasPrefix("arn:") { return try KMSARN(parsing: identifier).isMultiRegionKey }
        if identifier.hasPrefix("alias/") { return false }
        return identifier.hasPrefix("mrk-")
    }

    /// AWS KMS MRK Match for Decrypt: true when the identifiers are identical, or when both are MRK
    /// ARNs that agree on partition, service, account, resource type and id (the region is ignored).
    /// A bare `mrk-` key id matches an MRK ARN with the same id.
    public static func mrkMatch(_ a: String, _ b: String) -> Bool {
        if a == b { return true }
        guard (try? isMultiRegion(a)) == true, (try? isMultiRegion(b)) == true else { return false }
        switch (try? KMSARN(parsing: a), try? KMSARN(parsing: b)) {
        case let (x?, y?):
            return x.partition == y.partition && x.account == y.account && x.resourceType == y.resourceType
                && x.resourceId == y.resourceId
        case let (x?, nil): return x.resourceId == b
        case let (nil, y?): return y.resourceId == a
        case (nil, nil): return a == b
        }
    }

    /// Assert AWS KMS MRKs are unique: throws when two of `identifiers` name the same multi-Region
    /// key id; the error lists every identifier involved, not only the first duplicate.
    ///
    /// - Throws: `KMSError` `.configuration`; also `.invalidArn` for a malformed `arn:` identifier.
    public static func assertMRKsAreUnique(_ identifiers: [String]) throws {
        var byId: [String: [String]] = [:]
        var order: [String] = []
        for identifier in identifiers where try isMultiRegion(identifier) {
            let id = identifier.hasPrefix("arn:") ? try KMSARN(parsing: identifier).resourceId : identifier
            if byId[id] == nil { order.append(id) }
            byId[id, default: []].append(identifier)
        }
        let duplicates = order.compactMap { byId[$0]!.count > 1 ? byId[$0]! : nil }.flatMap { $0 }
        guard duplicates.isEmpty else {
            throw KMSError(.configuration, "multi-Region key configured more than once: \(duplicates.joined(separator: ", "))")
        }
    }

    /// The ARN to use in `region` for `identifier`: for an MRK (ARN or bare `mrk-` id) the ARN of
    /// its replica in `region`; a single-Region key ARN or alias ARN is returned unchanged (it only
    /// exists in its own region).
    ///
    /// - Parameters:
    ///   - identifier: an MRK ARN in any region, a bare `mrk-` id, or any other KMS ARN.
    ///   - region: the application's region.
    ///   - account: the account, required only when `identifier` is a bare key id.
    ///   - partition: the partition for a bare key id.
    /// - Throws: `.invalidArn` when the identifier is malformed or a bare id comes without an account.
    public static func regionalARN(for identifier: String, region: String, account: String? = nil,
                                   partition: String = "aws") throws -> KMSARN {
        if identifier.hasPrefix("arn:") {
            let arn = try KMSARN(parsing: identifier)
            return arn.isMultiRegionKey ? arn.inRegion(region) : arn
        }
        guard let account, !account.isEmpty else {
            throw KMSError(.invalidArn, "a bare key id needs an account to form an ARN")
        }
        if identifier.hasPrefix("alias/") {
            return KMSARN(partition: partition, region: region, account: account, resourceType: .alias,
                          resourceId: String(identifier.dropFirst("alias/".count)))
        }
        guard !identifier.isEmpty else { throw KMSError(.invalidArn, "empty key id") }
        return KMSARN(partition: partition, region: region, account: account, resourceType: .key, resourceId: identifier)
    }
}
