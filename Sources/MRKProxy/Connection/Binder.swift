import MRKCrypto
import MRKPostgres
import MRKSQL

/// What binding needs from its connection for one statement.
struct BindingSession {
    /// The branch-key version new values are sealed under.
    let version: UInt32
    /// `ColumnKeys.generation` when the statement started.
    let generation: Int
    let ciphers: CipherCache
    let esdk: ESDKColumns?
    let catalog: Catalog
    let context: ColumnCodec.Context
}

/// How to bind a plan's parameters, resolved once per plan and key version: which values are
/// sealed (with which cipher and row identity), which are blind-indexed, which pass through. A
/// batch pays for the lookups once, not per row.
package final class Binder {
    enum Step {
        case passthrough(ValueSource)
        case seal(ValueSource, identity: ValueSource?, Sealer)
        case index(ValueSource, Indexer)
    }

    let plan: StatementPlan
    private var steps: [Step] = []
    private var resolvedFor: (version: UInt32, generation: Int)?

    package init(plan: StatementPlan) { self.plan = plan }

    /// The parameters for `values`, encrypted and indexed as the plan says. With `raw`, a value
    /// that only passes through is sent as `raw[i]` (the wire proxy relays what its client sent).
    func bind(_ values: [SQLValue], raw: [PostgresParameter]? = nil, session: BindingSession) throws(ProxyError) -> [PostgresParameter] {
        if resolvedFor?.version != session.version || resolvedFor?.generation != session.generation {
            try resolve(session)
        }
        func value(_ source: ValueSource) throws(ProxyError) -> SQLValue {
            switch source {
            case .null: return .null
            case .literal(let literal): return literal.value
            case .parameter(let index):
                guard index < values.count else {
                    throw ProxyError(.invalidValue, "the statement uses $\(index + 1) but \(values.count) values were given")
                }
                return values[index]
            }
        }
        var parameters: [PostgresParameter] = []
        parameters.reserveCapacity(steps.count)
        for step in steps {
            switch step {
            case .passthrough(.parameter(let index)) where raw != nil && index < raw!.count:
                parameters.append(raw![index])
            case .passthrough(let source):
                parameters.append(try value(source).parameter)
            case .seal(let source, let identity, let sealer):
                let identityValue: SQLValue? = try identity.map { (source: ValueSource) throws(ProxyError) -> SQLValue in try value(source) }
                parameters.append(try sealer.seal(try value(source), rowIdentity: identityValue, context: session.context))
            case .index(let source, let indexer):
                parameters.append(try indexer.index(try value(source), context: session.context).map(PostgresParameter.bytea) ?? .null)
            }
        }
        return parameters
    }

    private func resolve(_ session: BindingSession) throws(ProxyError) {
        var resolved: [Step] = []
        for planned in plan.parameters {
            switch planned {
            case .passthrough(let source):
                resolved.append(.passthrough(source))
            case .encrypt(let source, let column, let identity):
                resolved.append(.seal(source, identity: identity, try Sealer(column: column, session: session)))
            case .blindIndex(let source, let column):
                resolved.append(.index(source, Indexer(column: column, indexer: try session.ciphers.indexer(for: column))))
            }
        }
        steps = resolved
        resolvedFor = (session.version, session.generation)
    }
}

/// Everything needed to seal values of one column under one key version, computed once.
final class Sealer {
    let column: EncryptedColumn
    /// `schema.table.column`, for errors (never values).
    let name: String
    /// The table and column part of the associated data.
    let context: ColumnContext
    let identityColumn: String?
    let identityKind: RowIdentityEncoding.Kind
    /// nil for `format: esdk` columns.
    let cipher: ColumnCipher?
    let esdk: ESDKColumns?

    init(column: EncryptedColumn, session: BindingSession) throws(ProxyError) {
        self.column = column
        name = "\(column.table).\(column.name)"
        context = ColumnContext(table: column.table.aadName, column: column.name)
        let table = session.catalog.tables[column.table]
        identityColumn = table?.spec.rowIdentity
        identityKind = table?.rowIdentityKind ?? .text
        esdk = session.esdk
        cipher = column.format == .esdk ? nil
            : try session.ciphers.cipher(for: column, keyID: CompactKeyID(keyspace: session.ciphers.keys.keyspaceID, version: session.version))
    }

    /// `value` sealed for the column (NULL stays NULL).
    func seal(_ value: SQLValue, rowIdentity: SQLValue?, context valueContext: ColumnCodec.Context) throws(ProxyError) -> PostgresParameter {
        if value.isNull { return .null }
        let timing = LibraryStatistics.shared.sealStarted()
        defer { LibraryStatistics.shared.sealFinished(timing) }
        var identity: [UInt8]?
        if let identityColumn {
            guard let rowIdentity, let bytes = RowIdentity.bytes(rowIdentity, kind: identityKind) else {
                throw ProxyError(.invalidValue, "\(name) is bound to its row: the row's \(identityColumn) must be given (a non-NULL \(identityKind.rawValue) value)")
            }
            identity = bytes
        }
        var plaintext = try ColumnCodec.encode(value, as: column.type, column: name, context: valueContext)
        defer { secureZero(&plaintext) }
        guard let cipher else {
            guard let esdk else { throw ProxyError(.configuration, "no column is configured with format: esdk") }
            var text = try ColumnCodec.text(of: plaintext, as: column.type)
            defer { secureZero(&text) }
            return .bytea(try esdk.seal(text, column: column))
        }
        let type = column.type.plaintextType
        do {
            let sealed = try plaintext.withUnsafeBytes { plaintext in
                guard let identity else { return try cipher.seal(plaintext, type: type, context: context, rowIdentity: nil) }
                return try identity.withUnsafeBytes { try cipher.seal(plaintext, type: type, context: context, rowIdentity: $0) }
            }
            return .bytea(sealed)
        } catch {
            throw ProxyError(.invalidValue, "a value for \(name) could not be sealed")
        }
    }
}

/// The blind index of one searchable column.
final class Indexer {
    let column: EncryptedColumn
    let name: String
    let indexer: BlindIndexer

    init(column: EncryptedColumn, indexer: BlindIndexer) {
        self.column = column
        name = "\(column.table).\(column.name)"
        self.indexer = indexer
    }

    /// The index of `value`; nil for NULL.
    func index(_ value: SQLValue, context: ColumnCodec.Context) throws(ProxyError) -> [UInt8]? {
        if value.isNull { return nil }
        var key = try ColumnCodec.equalityKey(value, as: column.type, column: name, context: context)
        defer { secureZero(&key) }
        do {
            return try indexer.index(tag: ColumnCodec.indexTag(column.type), value: key, byteCount: column.blindIndexBits / 8)
        } catch {
            throw ProxyError(.invalidValue, "a value for \(name) could not be indexed")
        }
    }
}
