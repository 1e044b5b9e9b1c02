import MRKSQL
import Foundation
import MRKCrypto
import MRKPostgres

/// Rows returned by a statement, with encrypted columns decrypted.
public struct QueryResult: Sendable {
    /// Column names, in order.
    public let columns: [String]
    /// The rows.
    public let rows: [Row]
    /// The command tag (`SELECT 3`, `INSERT 0 1`…).
    public let commandTag: String
    /// Rows affected, for INSERT/UPDATE/DELETE/SELECT.
    public let affectedRows: Int?
}

/// One row: values by index or column name, with typed accessors.
public struct Row: Sendable {
    /// Column names (shared by every row of a result).
    public let columns: [String]
    /// The values, in column order.
    public let values: [SQLValue]

    /// The value at `index`.
    public subscript(index: Int) -> SQLValue { values[index] }

    /// The value of the first column named `name` (`.null` if there is none).
    public subscript(name: String) -> SQLValue {
        columns.firstIndex(of: name).map { values[$0] } ?? .null
    }

    /// `name` as a string (any non-NULL value in its text form).
    public func string(_ name: String) -> String? { self[name].postgresText }
    /// `name` as an integer.
    public func int(_ name: String) -> Int? {
        switch self[name] {
        case .int(let i): i
        case .text(let s): Int(s)
        default: nil
        }
    }
    /// `name` as a date/instant.
    public func date(_ name: String) -> Date? {
        if case .date(let d) = self[name] { return d }
        return nil
    }
    /// `name` as a floating-point number.
    public func double(_ name: String) -> Double? {
        switch self[name] {
        case .double(let d): d
        case .int(let i): Double(i)
        case .decimal(let d): NSDecimalNumber(decimal: d).doubleValue
        default: nil
        }
    }
    /// `name` as a decimal.
    public func decimal(_ name: String) -> Decimal? {
        switch self[name] {
        case .decimal(let d): d
        case .int(let i): Decimal(i)
        default: nil
        }
    }
    /// `name` as a boolean.
    public func bool(_ name: String) -> Bool? {
        if case .bool(let b) = self[name] { return b }
        return nil
    }
    /// `name` as a UUID.
    public func uuid(_ name: String) -> UUID? {
        if case .uuid(let u) = self[name] { return u }
        return nil
    }
    /// `name` as JSON text.
    public func json(_ name: String) -> String? {
        if case .json(let j) = self[name] { return j }
        return nil
    }
    /// `name` as bytes.
    public func bytes(_ name: String) -> [UInt8]? {
        if case .bytes(let b) = self[name] { return b }
        return nil
    }
}

/// Decodes result rows: encrypted columns (recognised by source table OID and column number) are
/// opened and checked against the row they are in; other columns are typed by their OID.
final class ResultDecoder {
    enum Slot {
        case plain(PostgresOID)
        case encrypted(EncryptedSlot)
    }

    /// An encrypted result column, with everything opening its values needs resolved once.
    final class EncryptedSlot {
        let column: EncryptedColumn
        /// `schema.table`, for errors.
        let table: String
        /// The result column holding the row identity the values are bound to.
        let identityIndex: Int?
        /// The table and column part of the associated data.
        let context: ColumnContext
        /// The cipher of the last key id seen (values of a column rarely change key).
        var lastCipher: (keyID: CompactKeyID, cipher: ColumnCipher)?

        init(column: EncryptedColumn, table: String, identityIndex: Int?) {
            self.column = column
            self.table = table
            self.identityIndex = identityIndex
            context = ColumnContext(table: column.table.aadName, column: column.name)
        }

        /// The error for a value that does not open (built only when one fails).
        var failure: ProxyError {
            ProxyError(.integrity, "a value of \(table).\(column.name) failed to decrypt: it was altered, or copied from another row or column")
        }
    }

    let names: [String]
    let slots: [Slot]
    unowned let connection: EncryptedConnection

    /// Truncated-blind-index checks: result column, its type, and the accepted canonical values.
    private let postFilters: [(column: Int, type: ColumnValueType, accepted: Set<[UInt8]>)]
    /// Trailing columns the rewrite added for `postFilters`, dropped from the rows returned.
    private let hidden: Int

    /// Whether ciphers are made for this decoder alone (it runs on another thread).
    private let ownCiphers: Bool
    private var ciphers: [CompactKeyID: [Int: ColumnCipher]] = [:]
    /// Reused buffers: the sealed bytes of the value being opened, and its plaintext (zeroed after
    /// every value). Grown when a value needs more.
    private var sealedScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 16)
    private var plaintextScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 16)

    deinit {
        sealedScratch.deallocate()
        plaintextScratch.deallocate()
    }

    /// Whether any result column is decrypted.
    var hasEncryptedColumns: Bool {
        slots.contains { if case .encrypted = $0 { return true } else { return false } }
    }

    init(columns: [PostgresColumn], plan: StatementPlan, values: [SQLValue], connection: EncryptedConnection,
         ownCiphers: Bool = false) throws {
        self.connection = connection
        self.ownCiphers = ownCiphers
        hidden = min(plan.hiddenTrailingColumns, columns.count)
        names = Array(columns.map(\.name).dropLast(hidden))
        let visible = columns.count - hidden
        postFilters = try plan.postFilters.map { filter in
            let accepted = try filter.acceptedValues.compactMap { source -> [UInt8]? in
                let value: SQLValue
                switch source {
                case .null: return nil
                case .literal(let literal): value = literal.value
                case .parameter(let index):
                    guard index < values.count else { return nil }
                    value = values[index]
                }
                return value.isNull ? nil : try ColumnCodec.encode(value, as: filter.column.type, column: filter.column.name)
            }
            return (visible + filter.hiddenColumn, filter.column.type, Set(accepted))
        }
        slots = try columns.map { column -> Slot in
            guard let (table, spec) = connection.database.catalog.encryptedColumn(column) else { return .plain(column.type) }
            var identityIndex: Int?
            if let identity = table.rowIdentity {
                let candidates = columns.indices.filter { columns[$0].tableOID == column.tableOID && columns[$0].tableColumn == identity }
                guard let first = candidates.first else {
                    throw ProxyError(.refused, "reading \(table.spec.name).\(spec.name) needs the row identity column \(table.spec.rowIdentity!) in the same result (row_identity is configured)")
                }
                // With the table twice in the result (a self-join) a value could be checked against
                // another row's identity: refuse rather than guess.
                guard candidates.count == 1 else {
                    throw ProxyError(.refused, "reading \(table.spec.name).\(spec.name): the result has \(candidates.count) \(table.spec.rowIdentity!) columns of \(table.spec.name) (a self-join?); select the encrypted column of one table instance only")
                }
                identityIndex = first
            }
            return .encrypted(EncryptedSlot(column: spec, table: "\(table.spec.name)", identityIndex: identityIndex))
        }
    }

    /// Row `index` of `result`, decrypted; nil when a post-filter drops it.
    func decodeRow(_ result: PostgresResult, _ index: Int) throws -> Row? {
        var values: [SQLValue] = []
        values.reserveCapacity(slots.count)
        for (column, slot) in slots.enumerated() {
            switch slot {
            case .plain(let oid):
                values.append(result.string(row: index, column: column).map { SQLValue(postgresText: $0, oid: oid) } ?? .null)
            case .encrypted(let encrypted):
                guard let raw = result.valueBytes(row: index, column: column) else { values.append(.null); continue }
                let sealed: UnsafeRawBufferPointer
                if result.columns[column].format == .binary {
                    sealed = raw
                } else {
                    let count = try ByteaText.decodedByteCount(raw)
                    if sealedScratch.count < count {
                        sealedScratch.deallocate()
                        sealedScratch = .allocate(byteCount: count, alignment: 16)
                    }
                    sealed = UnsafeRawBufferPointer(rebasing: sealedScratch[0..<(try ByteaText.decode(raw, into: sealedScratch))])
                }
                values.append(try open(sealed, slot: column, encrypted, result: result, row: index))
            }
        }
        // Drop rows that matched a truncated blind index only by chance.
        for filter in postFilters {
            let value = values[filter.column]
            guard !value.isNull, filter.accepted.contains(try ColumnCodec.encode(value, as: filter.type, column: "")) else { return nil }
        }
        if hidden > 0 { values.removeLast(hidden) }
        return Row(columns: names, values: values)
    }

    private func open(_ sealed: UnsafeRawBufferPointer, slot: Int, _ encrypted: EncryptedSlot, result: PostgresResult, row: Int) throws -> SQLValue {
        let column = encrypted.column
        if column.format == .esdk {
            let esdk = try connection.database.esdkColumns()
            do {
                let text = try esdk.open(Array(sealed), column: column) { try connection.database.blocking($0) }
                return try ColumnCodec.value(ofText: text, as: column.type)
            } catch let error as ProxyError {
                throw error
            } catch {
                throw encrypted.failure
            }
        }
        guard let header = try? CompactEnvelope.header(raw: sealed) else { throw encrypted.failure }
        let cipher = try cipher(for: encrypted, slot: slot, keyID: header.keyID)
        let count = sealed.count - CompactEnvelope.overheadByteCount
        if plaintextScratch.count < count {
            plaintextScratch.deallocate()
            plaintextScratch = .allocate(byteCount: count, alignment: 16)
        }
        let output = UnsafeMutableRawBufferPointer(rebasing: plaintextScratch[0..<count])
        defer { output.initializeMemory(as: UInt8.self, repeating: 0) }
        // The row identity is read in place from the result (its canonical text form).
        let opened: (type: PlaintextType, count: Int)?
        if let identityIndex = encrypted.identityIndex {
            guard let identity = result.valueBytes(row: row, column: identityIndex) else {
                throw ProxyError(.integrity, "\(encrypted.table).\(column.name) holds a value in a row whose row identity is NULL")
            }
            opened = try? cipher.open(sealed, context: encrypted.context, rowIdentity: identity, into: output)
        } else {
            opened = try? cipher.open(sealed, context: encrypted.context, rowIdentity: nil, into: output)
        }
        guard let opened else { throw encrypted.failure }
        return try ColumnCodec.decode(UnsafeRawBufferPointer(output), as: opened.type)
    }

    private func cipher(for encrypted: EncryptedSlot, slot: Int, keyID: CompactKeyID) throws -> ColumnCipher {
        if let last = encrypted.lastCipher, last.keyID == keyID { return last.cipher }
        let cipher: ColumnCipher
        if ownCiphers {
            if let own = ciphers[keyID]?[slot] {
                cipher = own
            } else {
                cipher = try connection.makeCipher(for: encrypted.column, keyID: keyID)
                ciphers[keyID, default: [:]][slot] = cipher
            }
        } else {
            cipher = try connection.cipher(for: encrypted.column, keyID: keyID)
        }
        encrypted.lastCipher = (keyID, cipher)
        return cipher
    }
}
