import MRKPostgres

extension EncryptedConnection {
    /// Runs `body` in a transaction: committed if it returns, rolled back if it throws.
    ///
    /// Inside an open transaction it runs in a savepoint instead: released if `body` returns, rolled
    /// back to (and released) if it throws, leaving the outer transaction to its owner. To roll
    /// back on a condition of your own, throw `ProxyError.rollback(_:)`.
    ///
    /// - Throws: what `body` throws; `.database` when the server rolled the transaction back
    ///   instead of committing it (a statement in it failed and the error was caught).
    public func transaction<R>(_ body: (EncryptedConnection) throws(ProxyError) -> R) throws(ProxyError) -> R {
        if connection.transactionStatus != .idle {
            savepointDepth += 1
            defer { savepointDepth -= 1 }
            return try withSavepoint("mrkproxy_savepoint_\(savepointDepth)") { () throws(ProxyError) -> R in try body(self) }
        }
        return try withOwnTransaction { () throws(ProxyError) -> R in try body(self) }
    }

    /// `body` between BEGIN and COMMIT; ROLLBACK if it throws.
    func withOwnTransaction<R>(_ body: () throws(ProxyError) -> R) throws(ProxyError) -> R {
        try run { try connection.execute("BEGIN") }
        let value: R
        do {
            value = try body()
        } catch {
            if connection.transactionStatus != .idle { _ = try? connection.execute("ROLLBACK") }
            throw error
        }
        // COMMIT of a transaction an earlier error aborted is a ROLLBACK (tag ROLLBACK, no error).
        let commit = try run { try connection.execute("COMMIT") }
        guard commit.commandTag == "COMMIT" else {
            throw ProxyError(.database, "the transaction was rolled back, not committed: a statement in it failed")
        }
        return value
    }

    /// `body` in a savepoint of the open transaction: released if it returns, rolled back to (and
    /// released) if it throws, so the caller's earlier work stays either way.
    func withSavepoint<R>(_ name: String, _ body: () throws(ProxyError) -> R) throws(ProxyError) -> R {
        try run { try connection.execute("SAVEPOINT \(name)") }
        do {
            let value = try body()
            try run { try connection.execute("RELEASE SAVEPOINT \(name)") }
            return value
        } catch {
            _ = try? connection.execute("ROLLBACK TO SAVEPOINT \(name)")
            _ = try? connection.execute("RELEASE SAVEPOINT \(name)")
            throw error
        }
    }

    /// `body` all or nothing: in a transaction of its own, or a savepoint in the caller's.
    func atomically<R>(_ savepoint: String, _ body: () throws(ProxyError) -> R) throws(ProxyError) -> R {
        connection.transactionStatus == .idle ? try withOwnTransaction(body) : try withSavepoint(savepoint, body)
    }
}

extension ProxyError {
    /// An error to throw from a `transaction` body to roll it back for a reason of your own
    /// (code `.cancelled`).
    public static func rollback(_ reason: String) -> ProxyError { ProxyError(.cancelled, reason) }
}
