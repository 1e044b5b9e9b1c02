import Foundation
import MRKCrypto
import MRKPostgres
import MRKSQL

/// Decodes the rows of one result laid out by `ResultLayout`: encrypted columns opened and
/// checked against their row, the others typed by their OID; rows that matched a truncated blind
/// index only by chance dropped; hidden trailing columns removed. The one decode path for
/// `query`, `stream`, prepared statements and the parallel decode of large results.
package final class ResultDecoder {
    let layout: ResultLayout
    let schema: RowSchema
    /// Truncated-blind-index checks: result column, its type, and the accepted equality keys.
    private let postFilters: [(column: Int, type: ColumnValueType, accepted: Set<[UInt8]>)]
    /// Trailing columns the rewrite added for `postFilters`, dropped from the rows returned.
    private let hidden: Int
    private let ciphers: CipherCache
    private let esdk: ESDKColumns?
    private let context: ColumnCodec.Context
    /// Reused buffers: the sealed bytes of the value being opened, and its plaintext (zeroed after
    /// every value). Grown when a value needs more.
    private var sealedScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 16)
    private var plaintextScratch = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 16)

    deinit {
        sealedScratch.deallocate()
        secureZero(plaintextScratch)
        plaintextScratch.deallocate()
    }

    init(layout: ResultLayout, plan: StatementPlan, values: [SQLValue], ciphers: CipherCache, esdk: ESDKColumns?,
         context: ColumnCodec.Context) throws(ProxyError) {
        self.layout = layout
        self.ciphers = ciphers
        self.esdk = esdk
        self.context = context
        let count = layout.names.count
        hidden = min(plan.hiddenTrailingColumns, count)
        let visible = count - hidden
        var encrypted: Set<Int> = []
        for (index, slot) in layout.slots.enumerated() where index < visible {
            if case .encrypted = slot { encrypted.insert(index) }
        }
        schema = RowSchema(names: Array(layout.names.prefix(visible)), encrypted: encrypted)
        var filters: [(column: Int, type: ColumnValueType, accepted: Set<[UInt8]>)] = []
        for filter in plan.postFilters {
            var accepted: Set<[UInt8]> = []
            for source in filter.acceptedValues {
                let value: SQLValue
                switch source {
                case .null: continue
                case .literal(let literal): value = literal.value
                case .parameter(let index):
                    guard index < values.count else { continue }
                    value = values[index]
                }
                if value.isNull { continue }
                accepted.insert(try ColumnCodec.equalityKey(value, as: filter.column.type, column: filter.column.qualifiedDescription, context: context))
            }
            filters.append((visible + filter.hiddenColumn, filter.column.type, accepted))
        }
        postFilters = filters
    }

    /// Row `index` of `result`, decrypted; nil when a post-filter drops it.
    func decodeRow(_ result: PostgresResult, _ index: Int) throws(ProxyError) -> Row? {
        var values: [SQLValue] = []
        values.reserveCapacity(layout.slots.count)
        for (column, slot) in layout.slots.enumerated() {
            switch slot {
            case .plain(let oid):
                values.append(result.string(row: index, column: column).map { SQLValue(postgresText: $0, oid: oid) } ?? .null)
            case .encrypted(let encrypted):
                values.append(try openSlot(encrypted, result, row: index, column: column))
            }
        }
        guard try passesPostFilters({ values[$0] }) else { return nil }
        if hidden > 0 { values.removeLast(hidden) }
        return Row(schema: schema, values: values)
    }

    /// A result cell as the wire proxy relays it.
    package enum WireCell {
        /// A plain column: relay the server's bytes of this result column as they are.
        case passthrough(column: Int)
        /// An encrypted column, opened and decoded.
        case decrypted(SQLValue)
    }

    /// Row `index` of `result` for the wire proxy: plain columns by reference, encrypted columns
    /// decrypted (checked against their row, as for `decodeRow`). False when a post-filter drops
    /// the row; `cells` then holds nothing useful.
    package func decodeWireRow(_ result: PostgresResult, _ index: Int, into cells: inout [WireCell]) throws(ProxyError) -> Bool {
        cells.removeAll(keepingCapacity: true)
        for (column, slot) in layout.slots.enumerated() {
            switch slot {
            case .plain: cells.append(.passthrough(column: column))
            case .encrypted(let encrypted): cells.append(.decrypted(try openSlot(encrypted, result, row: index, column: column)))
            }
        }
        let passes = try passesPostFilters { column in
            if case .decrypted(let value) = cells[column] { return value }
            return .null
        }
        guard passes else { return false }
        if hidden > 0 { cells.removeLast(hidden) }
        return true
    }

    /// Whether a row survives the truncated-blind-index checks (`value(column)` reads a cell).
    private func passesPostFilters(_ value: (Int) -> SQLValue) throws(ProxyError) -> Bool {
        for filter in postFilters {
            let cell = value(filter.column)
            guard !cell.isNull, filter.accepted.contains(try ColumnCodec.equalityKey(cell, as: filter.type, column: "", context: context)) else {
                return false
            }
        }
        return true
    }

    /// The value of an encrypted column in row `row`: its ciphertext read in the result's format,
    /// opened against the row and decoded.
    private func openSlot(_ encrypted: ResultLayout.EncryptedSlot, _ result: PostgresResult, row index: Int, column: Int) throws(ProxyError) -> SQLValue {
        guard let raw = result.valueBytes(row: index, column: column) else { return .null }
        let sealed: UnsafeRawBufferPointer
        if result.columns[column].format == .binary {
            sealed = raw
        } else if let count = try? ByteaText.decodedByteCount(raw) {
            if sealedScratch.count < count {
                sealedScratch.deallocate()
                sealedScratch = .allocate(byteCount: count, alignment: 16)
            }
            guard let written = try? ByteaText.decode(raw, into: sealedScratch) else { throw encrypted.failure }
            sealed = UnsafeRawBufferPointer(rebasing: sealedScratch[0..<written])
        } else {
            // `bytea_output = escape`: a rare path, copied.
            guard let bytes = PostgresText.decodeByteaOutput(raw) else { throw encrypted.failure }
            var opened: Result<SQLValue, ProxyError> = .failure(encrypted.failure)
            bytes.withUnsafeBytes { buffer in
                opened = Result { () throws(ProxyError) in try open(buffer, encrypted, result: result, row: index) }
            }
            return try opened.get()
        }
        return try open(sealed, encrypted, result: result, row: index)
    }

    private func open(_ sealed: UnsafeRawBufferPointer, _ encrypted: ResultLayout.EncryptedSlot, result: PostgresResult, row: Int) throws(ProxyError) -> SQLValue {
        let column = encrypted.column
        let timing = LibraryStatistics.shared.openStarted()
        defer { LibraryStatistics.shared.openFinished(timing) }
        var identity: [UInt8]?
        if let identityIndex = encrypted.identityIndex {
            guard let bytes = result.valueBytes(row: row, column: identityIndex) else {
                throw ProxyError(.integrity, "\(column.table).\(column.name) holds a value in a row whose row identity is NULL")
            }
            if result.columns[identityIndex].format == .binary {
                // A binary result (the wire proxy asks for one when its client does): the
                // identity is bound in its text form.
                guard let text = Self.identityText(binary: bytes, kind: encrypted.identityKind ?? .text) else { throw encrypted.failure }
                identity = text
            } else {
                identity = Array(bytes)
            }
        }
        if column.format == .esdk {
            guard let esdk else { throw ProxyError(.configuration, "no column is configured with format: esdk") }
            var text = try esdk.open(Array(sealed), column: column, failure: encrypted.failure)
            defer { secureZero(&text) }
            return try ColumnCodec.value(ofText: text, as: column.type)
        }
        guard let header = try? CompactEnvelope.header(raw: sealed) else { throw encrypted.failure }
        let cipher = try ciphers.cipher(for: column, keyID: header.keyID)
        let count = sealed.count - CompactEnvelope.overheadByteCount
        if plaintextScratch.count < count {
            secureZero(plaintextScratch)
            plaintextScratch.deallocate()
            plaintextScratch = .allocate(byteCount: count, alignment: 16)
        }
        let output = UnsafeMutableRawBufferPointer(rebasing: plaintextScratch[0..<max(count, 0)])
        defer { secureZero(output) }
        let opened: (type: PlaintextType, count: Int)?
        if let identity {
            opened = identity.withUnsafeBytes { try? cipher.open(sealed, context: encrypted.context, rowIdentity: $0, into: output) }
        } else {
            opened = try? cipher.open(sealed, context: encrypted.context, rowIdentity: nil, into: output)
        }
        guard let opened, Self.plaintextType(opened.type, fits: column.type) else { throw encrypted.failure }
        return try ColumnCodec.decode(UnsafeRawBufferPointer(rebasing: output[0..<opened.count]), as: opened.type)
    }

    /// The text form (`RowIdentityEncoding`) of a row identity the server sent in binary.
    static func identityText(binary bytes: UnsafeRawBufferPointer, kind: RowIdentityEncoding.Kind) -> [UInt8]? {
        switch kind {
        case .integer:
            guard [2, 4, 8].contains(bytes.count) else { return nil }
            var value: Int64 = bytes[0] >= 0x80 ? -1 : 0
            for byte in bytes { value = value << 8 | Int64(byte) }
            return RowIdentityEncoding.bytes(integer: value)
        case .uuid:
            guard bytes.count == 16 else { return nil }
            let u = Array(bytes)
            return RowIdentityEncoding.bytes(uuid: (u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]))
        case .text:
            return Array(bytes)
        }
    }

    /// Whether a value recorded as `recorded` may be read from a column configured as `type`.
    static func plaintextType(_ recorded: PlaintextType, fits type: ColumnValueType) -> Bool {
        switch (recorded, type) {
        case (.timestampSince1970, .timestamp), (.timestamptzSince1970, .timestamptz): true
        default: recorded == type.plaintextType
        }
    }

    // MARK: Whole results

    /// Results at least this large are decrypted on several threads.
    static let parallelDecodeThreshold = 4096
    /// Threads that decrypt a large result. Read once: Foundation reads cgroup files from /proc
    /// for every `activeProcessorCount`, which cost ~30 µs per query.
    static let decodeWorkers = min(ProcessInfo.processInfo.activeProcessorCount, 4)

    /// Every row of `result`: on this thread, or for a large result with encrypted columns in
    /// contiguous chunks on several threads, each with ciphers of its own (a `PGresult` is
    /// read-only, so threads may read it together).
    static func decodeAll(_ result: PostgresResult, layout: ResultLayout, plan: StatementPlan, values: [SQLValue],
                          ciphers: CipherCache, esdk: ESDKColumns?, context: ColumnCodec.Context) throws(ProxyError) -> (RowSchema, [Row]) {
        let count = result.rowCount
        let workers = decodeWorkers
        guard layout.hasEncryptedColumns, count >= parallelDecodeThreshold, workers > 1 else {
            let decoder = try ResultDecoder(layout: layout, plan: plan, values: values, ciphers: ciphers, esdk: esdk, context: context)
            var rows: [Row] = []
            rows.reserveCapacity(count)
            for index in 0..<count {
                if let row = try decoder.decodeRow(result, index) { rows.append(row) }
            }
            return (decoder.schema, rows)
        }
        let chunk = (count + workers - 1) / workers
        var parts = [[Row]](repeating: [], count: workers)
        var failures = [ProxyError?](repeating: nil, count: workers)
        var schemas = [RowSchema?](repeating: nil, count: workers)
        let keys = ciphers.keys
        // Shared with the workers: the PGresult is only read, the layout and plan are values and
        // the keys are Sendable; each worker writes only its own slot of the output arrays.
        let shared = UncheckedBox((result: result, layout: layout))
        parts.withUnsafeMutableBufferPointer { partsBuffer in
            failures.withUnsafeMutableBufferPointer { failureBuffer in
                schemas.withUnsafeMutableBufferPointer { schemaBuffer in
                    let output = UncheckedBox((parts: partsBuffer, failures: failureBuffer, schemas: schemaBuffer))
                    DispatchQueue.concurrentPerform(iterations: workers) { worker in
                        let (result, layout) = shared.value
                        let (partsBuffer, failureBuffer, schemaBuffer) = output.value
                        do throws(ProxyError) {
                            let decoder = try ResultDecoder(layout: layout, plan: plan, values: values, ciphers: CipherCache(keys: keys),
                                                            esdk: esdk, context: context)
                            var rows: [Row] = []
                            let range = (worker * chunk)..<min(count, (worker + 1) * chunk)
                            rows.reserveCapacity(range.count)
                            for index in range {
                                if let row = try decoder.decodeRow(result, index) { rows.append(row) }
                            }
                            partsBuffer[worker] = rows
                            schemaBuffer[worker] = decoder.schema
                        } catch {
                            failureBuffer[worker] = error
                        }
                    }
                }
            }
        }
        if let failure = failures.compactMap({ $0 }).first { throw failure }
        // Rows of all chunks share the first chunk's schema object (the same names and lookup).
        let schema = schemas.compactMap { $0 }.first ?? RowSchema(names: [], encrypted: [])
        return (schema, parts.flatMap { $0 })
    }
}

/// Moves a non-Sendable value into work that runs on other threads. `@unchecked Sendable`: every
/// use says why the value is safe to share there.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
