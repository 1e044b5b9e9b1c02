import ArgumentParser
import Foundation
import MRKLocalKMS
import Logging
import MRKKMS

/// `mrkproxy kms …`: the embedded AWS-KMS-compatible KMS.
struct KMSCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kms",
        abstract: "The embedded AWS-KMS-compatible KMS with multi-Region keys (for development, tests and the demo).",
        discussion: """
        The key commands work on a state file (no server may be using it), or with --endpoint on a running \
        KMS through the AWS KMS API (`mrkproxy kms serve`, or AWS itself; credentials from the standard \
        AWS chain, e.g. AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test for the local KMS).
        """,
        subcommands: [Serve.self, CreateKey.self, ReplicateKey.self, DescribeKey.self, UpdatePrimaryRegion.self]
    )

    /// Where a key command sends its call.
    struct TargetOptions: ParsableArguments {
        @Option(help: "Send the call to a running KMS at this URL (AWS KMS API) instead of editing --state.")
        var endpoint: String?

        @OptionGroup var state: StateOptions

        func validate() throws {
            if let endpoint {
                guard let url = URL(string: endpoint), url.scheme != nil, url.host != nil else {
                    throw ValidationError("--endpoint \(endpoint) is not a URL (e.g. http://127.0.0.1:4599)")
                }
                guard AWSKMSClient.isPermittedEndpoint(url) else {
                    throw ValidationError("--endpoint \(endpoint): plain http is allowed to a loopback address only")
                }
            }
        }

        /// The AWS KMS client for `region`, when --endpoint is given.
        func client(region: String) -> AWSKMSClient? {
            endpoint.flatMap(URL.init(string:)).map { AWSKMSClient(configuration: .init(region: region, endpoint: $0)) }
        }

        func local(region: String) throws -> LocalKMS {
            try LocalKMS(configuration: .init(stateFile: state.state, auditLogFile: state.auditLog, region: region))
        }
    }

    struct StateOptions: ParsableArguments {
        @Option(help: "The KMS state file (JSON, mode 0600; created when missing).")
        var state: String = "mrkproxy-kms.json"

        @Option(help: "Append a JSON line per call to this audit log.")
        var auditLog: String?
    }

    static func readPolicy(_ path: String?) throws -> String? {
        guard let path else { return nil }
        do { return try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw ValidationError("cannot read policy file \(path)")
        }
    }

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve the AWS KMS JSON 1.1 API (SigV4-verified) over HTTP.",
            discussion: """
            Point AWS SDKs at it with AWS_ENDPOINT_URL_KMS=http://HOST:PORT. Out of the box it accepts access key \
            id 'test' / secret 'test' as arn:aws:iam::111122223333:root; more identities come from the state file. \
            The region is taken from each request's SigV4 credential scope unless --region pins one.
            """)

        @Option(help: "Address to bind.") var host: String = "127.0.0.1"
        @Option(help: "Port to bind (0 picks a free one).") var port: Int = 4599
        @Option(help: "Serve only this region (default: every region, from the SigV4 scope).") var region: String?
        @OptionGroup var options: StateOptions
        @Flag(help: "Log every request.") var verbose = false
        @Flag(help: "Allow binding a non-loopback address (the built-in test/test identity can decrypt every key: give the state file your own identities first).")
        var allowRemote = false
        @Option(help: "Make sure this multi-Region key (mrk- and 32 hex digits) exists, primary in --region (default us-east-1), before serving.")
        var ensureMrk: String?
        @Option(help: "With --ensure-mrk: a region that must hold a replica of it (repeatable).")
        var replicaRegion: [String] = []

        func validate() throws {
            if !replicaRegion.isEmpty && ensureMrk == nil { throw ValidationError("--replica-region needs --ensure-mrk") }
            guard AWSKMSClient.isLoopbackHost(host) || allowRemote else {
                throw ValidationError("--host \(host) is not a loopback address; anyone who can reach it could use the built-in test/test identity. Pass --allow-remote to do it anyway")
            }
        }

        func run() async throws {
            var logger = Logger(label: "mrkproxy.kms")
            logger.logLevel = verbose ? .debug : .info
            let kms = try LocalKMS(configuration: .init(stateFile: options.state, auditLogFile: options.auditLog,
                                                        region: region ?? "us-east-1", logger: logger))
            if let ensureMrk {
                for (region, arn) in try kms.ensureMultiRegionKey(ensureMrk, replicaRegions: replicaRegion).sorted(by: { $0.key < $1.key }) {
                    FileHandle.standardOutput.write(Data("key \(arn) (\(region))\n".utf8))
                }
            }
            let server = KMSHTTPServer(kms: kms, configuration: .init(region: region, logger: logger))
            let bound = try await server.start(host: host, port: port)
            let banner = "mrkproxy kms listening on http://\(host):\(bound) (regions: \(region ?? "all"), state: \(options.state))\n"
            FileHandle.standardOutput.write(Data(banner.utf8))
            await Self.waitForTermination()
            await server.shutdown()
        }

        /// Returns on SIGINT or SIGTERM.
        static func waitForTermination() async {
            let (stream, continuation) = AsyncStream<Int32>.makeStream()
            let sources = [SIGINT, SIGTERM].map { sig in
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
                source.setEventHandler { continuation.yield(sig) }
                source.resume()
                return source
            }
            for await _ in stream { break }
            sources.forEach { $0.cancel() }
        }
    }

    struct CreateKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create a key in the state file; prints its KeyMetadata.")

        @Flag(help: "Create a multi-Region (mrk-) key.") var multiRegion = false
        @Option(help: "The key's (primary) region.") var region: String = "us-east-1"
        @Option(help: "Description.") var description: String = ""
        @Option(help: "A key policy JSON file (default: the account may do everything).") var policyFile: String?
        @Option(help: "Also create this alias (alias/NAME) in the region (not with --endpoint).") var alias: String?
        @OptionGroup var target: TargetOptions

        func validate() throws {
            if alias != nil && target.endpoint != nil { throw ValidationError("--alias works on a state file only") }
        }

        func run() async throws {
            let policy = try KMSCommand.readPolicy(policyFile)
            if let client = target.client(region: region) {
                try JSONOutput.print(DescribeKeyResponse(keyMetadata: try await client.createKey(
                    description: description, multiRegion: multiRegion, policy: policy)))
                return
            }
            let kms = try target.local(region: region)
            let metadata = try kms.createKey(description: description, multiRegion: multiRegion, policy: policy)
            if let alias { try kms.createAlias(aliasName: alias, targetKeyId: metadata.keyId) }
            try JSONOutput.print(DescribeKeyResponse(keyMetadata: metadata))
        }
    }

    struct ReplicateKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Replicate a multi-Region key to another region.")

        @Option(help: "The mrk- key id or ARN of the primary key.") var keyId: String
        @Option(help: "The primary key's region.") var region: String = "us-east-1"
        @Option(help: "The region to create the replica in.") var replicaRegion: String
        @Option(help: "Description of the replica.") var description: String?
        @Option(help: "A key policy JSON file for the replica (default: the account may do everything).") var policyFile: String?
        @Option(help: "Also create this alias (alias/NAME) in the replica region (not with --endpoint).") var alias: String?
        @OptionGroup var target: TargetOptions

        func validate() throws {
            if alias != nil && target.endpoint != nil { throw ValidationError("--alias works on a state file only") }
        }

        func run() async throws {
            let policy = try KMSCommand.readPolicy(policyFile)
            if let client = target.client(region: region) {
                try JSONOutput.print(DescribeKeyResponse(keyMetadata: try await client.replicateKey(
                    keyId: keyId, replicaRegion: replicaRegion, description: description, policy: policy)))
                return
            }
            let kms = try target.local(region: region)
            let metadata = try kms.replicateKey(keyId: keyId, replicaRegion: replicaRegion, description: description, policy: policy)
            if let alias { try kms.inRegion(replicaRegion).createAlias(aliasName: alias, targetKeyId: metadata.keyId) }
            try JSONOutput.print(DescribeKeyResponse(keyMetadata: metadata))
        }
    }

    struct DescribeKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a key's KeyMetadata in a region.")

        @Option(help: "Key id, key ARN, alias or alias ARN.") var keyId: String
        @Option(help: "The region.") var region: String = "us-east-1"
        @OptionGroup var target: TargetOptions

        func run() async throws {
            let request = DescribeKeyRequest(keyId: keyId)
            if let client = target.client(region: region) {
                try JSONOutput.print(try await client.describeKey(request))
            } else {
                try JSONOutput.print(try await target.local(region: region).describeKey(request))
            }
        }
    }

    struct UpdatePrimaryRegion: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "update-primary-region",
            abstract: "Make a replica of a multi-Region key its primary key (the old primary becomes a replica).",
            discussion: """
            MRKProxy does not need this to encrypt or decrypt: every replica encrypts and decrypts on its own. \
            It moves where the key is managed from: only the primary key can be replicated to new regions or have \
            its automatic rotation changed, so run it when the primary region is lost or moves for good.
            """)

        @Option(help: "The mrk- key id or ARN.") var keyId: String
        @Option(help: "The current primary region (the call is sent there).") var region: String = "us-east-1"
        @Option(help: "The region whose replica becomes the primary.") var primaryRegion: String
        @OptionGroup var target: TargetOptions

        func run() async throws {
            if let client = target.client(region: region) {
                try await client.updatePrimaryRegion(keyId: keyId, primaryRegion: primaryRegion)
            } else {
                try target.local(region: region).updatePrimaryRegion(keyId: keyId, primaryRegion: primaryRegion)
            }
            print("\(keyId): the primary key is now in \(primaryRegion)")
        }
    }
}
