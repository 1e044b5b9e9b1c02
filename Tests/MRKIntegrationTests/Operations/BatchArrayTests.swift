import Foundation
@testable import MRKOperations
import MRKPostgres
import Testing

extension ProxyIntegration {
    /// The array literals the operations tools send their batches in are read by PostgreSQL as
    /// exactly the items given: quotes, backslashes, braces, commas, `NULL` as text, multi-byte
    /// UTF-8, empty strings, and NULLs.
    @Suite struct BatchArrays {
        @Test func textArraysRoundTripThroughPostgreSQL() throws {
            let stack = try currentStack()
            let connection = try PostgresConnection(stack.databaseURL(replica: false))
            var generator = SystemRandomNumberGenerator()
            let alphabet: [String] = ["a", "Z", "0", "\"", "\\", "{", "}", ",", " ", "NULL", "é", "ぁ", "🙂", "\\x", "'", "\t", "\n"]
            for round in 0..<50 {
                let items: [String?] = (0..<Int.random(in: 0...40, using: &generator)).map { _ in
                    if Int.random(in: 0..<8, using: &generator) == 0 { return nil }
                    return (0..<Int.random(in: 0...6, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }.joined()
                }
                let result = try connection.execute("SELECT item, item IS NULL FROM unnest($1::text[]) WITH ORDINALITY AS u(item, n) ORDER BY n",
                                                    [.text(ColumnMigrator.textArray(items))])
                let read: [String?] = result.rows.map { $0.string(1) == "t" ? nil : ($0.string(0) ?? "") }
                #expect(read == items, "round \(round): \(items)")
            }
        }
    }
}
