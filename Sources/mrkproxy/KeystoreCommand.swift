import ArgumentParser
import Foundation
import MRKOperations
import MRKProxy

struct KeystoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keystore",
        abstract: "Manage the branch-key keystore (in the primary region's database).",
        subcommands: [Init.self, Rotate.self, List.self, Status.self, Retire.self])

    struct Options: ParsableArguments {
        @Option(help: "The MRKProxy configuration file.")
        var config: String

        @Option(help: "The keyspace (default: the configuration's keyspace).")
        var keyspace: String?
    }

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Create the keyspace's beacon key and first branch key (idempotent).")
        @OptionGroup var options: Options

        func run() async throws {
            let (store, keyspace) = try KeystoreAdmin.open(options, region: nil)
            let versions = try await store.create(keyspace: keyspace)
            KeystoreAdmin.printVersions(versions)
        }
    }

    struct Rotate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a new active branch-key version; old versions keep decrypting.")
        @OptionGroup var options: Options

        func run() async throws {
            let (store, keyspace) = try KeystoreAdmin.open(options, region: nil)
            let version = try await store.rotate(keyspace: keyspace)
            print("keyspace \(keyspace): version \(version) is now active")
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List key versions (never key material).")
        @OptionGroup var options: Options
        @Option(help: "Read the keystore in this region (default: the configuration's region).")
        var region: String?

        func run() async throws {
            let (store, keyspace) = try KeystoreAdmin.open(options, region: region)
            KeystoreAdmin.printVersions(try store.list(keyspace: options.keyspace == nil ? nil : keyspace))
        }
    }
}

extension KeystoreCommand {
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Branch-key versions and, per configured column, how many stored values each version seals.",
            discussion: "Counting scans every configured table; --region reads a replica region's copy instead of the primary.")
        @Option(help: "The MRKProxy configuration file.") var config: String
        @Option(help: "Read in this region (default: the configuration's region).") var region: String?
        @Flag(help: "Print the report as JSON.") var json = false

        func run() async throws {
            let database = try await KeystoreAdmin.database(config: config, region: region)
            let report = try KeystoreStatus.report(database)
            if json {
                try JSONOutput.print(report)
                return
            }
            KeystoreAdmin.printStatus(report)
        }
    }

    struct Retire: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Retire a branch-key version no stored value uses: it is never unwrapped again.",
            discussion: "Refused while a configured column holds values under it (run `mrkproxy reencrypt` first), for the highest version, and for v1 while the beacon key is derived from it (`keystore init` gives it its own entry).")
        @Option(help: "The MRKProxy configuration file.") var config: String
        @Option(help: "The version to retire.") var version: UInt32

        func run() async throws {
            let database = try await KeystoreAdmin.database(config: config, region: nil)
            let report = try KeystoreStatus.retire(database, version: version)
            print("keyspace \(report.keyspace): v\(version) is retired")
            KeystoreAdmin.printStatus(report)
        }
    }
}

enum KeystoreAdmin {
    static func database(config: String, region: String?) async throws -> EncryptedDatabase {
        let configuration = try ProxyConfiguration.load(path: config)
        let region = region ?? configuration.region
        return try await EncryptedDatabase.open(configuration: configuration, region: region, kms: configuration.kmsClient(region: region))
    }

    static func printStatus(_ report: KeystoreStatus.Report) {
        print("keyspace \(report.keyspace) (id \(report.keyspaceID)), read in \(report.region); beacon key: "
              + (report.beaconEntry ? "its own entry" : "derived from v1 (run keystore init to give it its own entry)"))
        print("version  state         values   created")
        for version in report.versions {
            print(String("v\(version.version)").padding(toLength: 9, withPad: " ", startingAt: 0) + version.state.padding(toLength: 14, withPad: " ", startingAt: 0)
                  + String(version.values).padding(toLength: 9, withPad: " ", startingAt: 0) + version.createdAt)
        }
        print("\ncolumn                              values by version")
        for column in report.columns {
            let counts = column.format == "esdk" ? "\(column.esdkValues) ESDK messages (KMS data keys)"
                : column.valuesByVersion.isEmpty ? "none" : column.valuesByVersion.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value)" }.joined(separator: ", ")
            print("\(column.table).\(column.column)".padding(toLength: 36, withPad: " ", startingAt: 0) + counts + (column.nulls > 0 ? " (\(column.nulls) NULL)" : ""))
        }
    }

    static func open(_ options: KeystoreCommand.Options, region: String?) throws -> (BranchKeyStore, String) {
        let configuration = try ProxyConfiguration.load(path: options.config)
        let region = region ?? configuration.primaryRegion
        guard let database = configuration.regions[region]?.database else {
            throw ValidationError("region \(region) is not configured in \(options.config)")
        }
        let store = BranchKeyStore(databaseURL: database, kms: configuration.kmsClient(region: region),
                                   kmsKeyARN: try configuration.keyARN(in: region))
        return (store, options.keyspace ?? configuration.keyspace)
    }

    static func printVersions(_ versions: [BranchKeyStore.KeyVersion]) {
        print("keyspace".padding(toLength: 16, withPad: " ", startingAt: 0) + "version  state         kms key                                 created")
        for v in versions {
            print(v.keyspace.padding(toLength: 16, withPad: " ", startingAt: 0) + String(v.version).padding(toLength: 9, withPad: " ", startingAt: 0)
                  + v.state.padding(toLength: 14, withPad: " ", startingAt: 0) + v.kmsKeyID.padding(toLength: 40, withPad: " ", startingAt: 0) + v.createdAt)
        }
    }
}
