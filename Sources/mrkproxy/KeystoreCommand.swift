import ArgumentParser
import Foundation
import MRKProxy

struct KeystoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keystore",
        abstract: "Manage the branch-key keystore (in the primary region's database).",
        subcommands: [Init.self, Rotate.self, List.self])

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

enum KeystoreAdmin {
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
