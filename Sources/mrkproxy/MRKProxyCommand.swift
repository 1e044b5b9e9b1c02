import ArgumentParser

@main
struct MRKProxyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mrkproxy",
        abstract: "Client-side column encryption for PostgreSQL with AWS KMS multi-Region keys.",
        subcommands: [
            // Each subcommand lives in its own file: <Name>Command.swift.
            DemoCommand.self, SQLCommand.self, ServeCommand.self, KeystoreCommand.self, MigrateCommand.self, ReencryptCommand.self,
            BenchCommand.self, KMSCommand.self,
            ESDKCommand.self, CryptoBenchCommand.self,
        ]
    )
}
