import Testing

@testable import MRKSQL

/// The schema the SQL tests run against.
///
/// - `public.customers` (row_identity `id`): `ssn` text, searchable (full 256-bit index);
///   `dob` date; `notes` text in ESDK format; `email` text, searchable with a 16-bit index.
/// - `public.accounts` (no row identity): `iban` searchable with index column `iban_hmac`;
///   `balance` numeric.
/// - `billing.invoices`: `card` searchable.
enum SQLFixture {
    static let customers = QualifiedName(schema: "public", name: "customers")
    static let accounts = QualifiedName(schema: "public", name: "accounts")
    static let invoices = QualifiedName(schema: "billing", name: "invoices")

    static let ssn = EncryptedColumn(table: customers, name: "ssn", type: .text, search: .equality)
    static let dob = EncryptedColumn(table: customers, name: "dob", type: .date)
    static let notes = EncryptedColumn(table: customers, name: "notes", type: .text, format: .esdk)
    static let email = EncryptedColumn(table: customers, name: "email", type: .text, search: .equality, blindIndexBits: 16)
    static let iban = EncryptedColumn(
        table: accounts, name: "iban", type: .text, search: .equality, blindIndexColumn: "iban_hmac")
    static let balance = EncryptedColumn(table: accounts, name: "balance", type: .numeric)
    static let card = EncryptedColumn(table: invoices, name: "card", type: .text, search: .equality)

    static let schema = EncryptedSchema(tables: [
        EncryptedTable(name: customers, rowIdentity: "id", columns: [ssn, dob, notes, email]),
        EncryptedTable(name: accounts, columns: [iban, balance]),
        EncryptedTable(name: invoices, columns: [card]),
    ])

    static let interceptor = SQLInterceptor(schema: schema)

    static func plan(_ sql: String, _ parameterCount: Int = 0) throws -> StatementPlan {
        try interceptor.plan(sql, parameterCount: parameterCount)
    }

    /// The refusal for `sql`, or nil when it was accepted.
    static func refusal(_ sql: String, _ parameterCount: Int = 0) -> InterceptionError? {
        do {
            _ = try interceptor.plan(sql, parameterCount: parameterCount)
            return nil
        } catch {
            return error
        }
    }

    static func literal(_ text: String, _ kind: LiftedLiteral.Kind = .string) -> ValueSource {
        .literal(LiftedLiteral(text: text, kind: kind))
    }
}
