/// Where a compact value lives: the schema-qualified table, the column and, when the table config
/// names a row-identity column, that column's value bytes. It is authenticated as associated data,
/// so a value copied to another table, column or row fails to open.
///
/// Build one per column and reuse it: the associated-data encoding is computed once, in `init`.
public struct ColumnContext: Sendable, Hashable {
    /// Schema-qualified table name, e.g. `public.users`.
    public let table: String
    /// Column name.
    public let column: String
    /// The row-identity column's value bytes, if the table binds values to rows.
    public let rowIdentity: [UInt8]?
    /// `u32 len ‖ table ‖ u32 len ‖ column ‖ 0x00` or `… ‖ 0x01 ‖ u32 len ‖ rowIdentity` (big endian).
    let encoded: [UInt8]
    /// Length of `u32 len ‖ table ‖ u32 len ‖ column`, the part that does not depend on the row.
    let columnPartByteCount: Int

    /// - Parameters:
    ///   - table: schema-qualified table name (`schema.table`).
    ///   - column: column name.
    ///   - rowIdentity: bytes of the row-identity value, or nil when values are not bound to rows.
    public init(table: String, column: String, rowIdentity: [UInt8]? = nil) {
        self.table = table
        self.column = column
        self.rowIdentity = rowIdentity
        var out = [UInt8]()
        out.reserveCapacity(table.utf8.count + column.utf8.count + 13 + (rowIdentity?.count ?? 0))
        out.appendBigEndian(UInt32(truncatingIfNeeded: table.utf8.count))
        out.append(contentsOf: table.utf8)
        out.appendBigEndian(UInt32(truncatingIfNeeded: column.utf8.count))
        out.append(contentsOf: column.utf8)
        columnPartByteCount = out.count
        if let rowIdentity {
            out.append(1)
            out.appendBigEndian(UInt32(truncatingIfNeeded: rowIdentity.count))
            out.append(contentsOf: rowIdentity)
        } else {
            out.append(0)
        }
        encoded = out
    }

    /// The same table and column bound to another row.
    public func withRowIdentity(_ rowIdentity: [UInt8]?) -> ColumnContext {
        ColumnContext(table: table, column: column, rowIdentity: rowIdentity)
    }

    public static func == (lhs: ColumnContext, rhs: ColumnContext) -> Bool { lhs.encoded == rhs.encoded }
    public func hash(into hasher: inout Hasher) { hasher.combine(encoded) }
}
