internal import CLibPQ

extension PostgresConnection {
    /// Runs a query and hands its rows to `body` one at a time (libpq single-row mode), so that a
    /// result of any size is processed in constant memory.
    ///
    /// Each `PostgresRow` is valid only during its call. If `body` throws, the query is cancelled,
    /// the connection is drained and the error is rethrown.
    ///
    /// - Returns: the number of rows delivered.
    @discardableResult
    public func stream(_ sql: String, _ parameters: [PostgresParameter] = [], resultFormat: PostgresFormat = .text,
                       _ body: (PostgresRow) throws -> Void) throws -> Int {
        let sent = try ParameterArrays(checking: parameters).withArrays { types, values, lengths, formats in
            PQsendQueryParams(handle, sql, Int32(parameters.count), types, values, lengths, formats, resultFormat.rawValue)
        }
        guard sent == 1 else { throw PostgresError(.client, message: libpqMessage(handle)) }
        guard PQsetSingleRowMode(handle) == 1 else {
            drainResults()
            throw PostgresError(.client, message: "could not enter single-row mode")
        }
        var delivered = 0
        var failure: Error?
        while let raw = PQgetResult(handle) {
            if failure != nil { PQclear(raw); continue }
            switch PQresultStatus(raw) {
            case PGRES_SINGLE_TUPLE:
                let result = PostgresResult(taking: raw)
                do {
                    try body(result[0])
                    delivered += 1
                } catch {
                    failure = error
                    cancel()
                }
            case PGRES_TUPLES_OK, PGRES_COMMAND_OK:
                PQclear(raw)
            default:
                failure = PostgresError(result: raw, connection: handle)
                PQclear(raw)
            }
        }
        if let failure { throw failure }
        return delivered
    }

    /// Reads and discards results until libpq has none left (after an error or cancel).
    func drainResults() {
        while let raw = PQgetResult(handle) { PQclear(raw) }
    }
}
