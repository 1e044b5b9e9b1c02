internal import CLibPQ
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One statement of a pipeline: SQL text (or a prepared statement name) and its parameters.
public struct PostgresStatement: Sendable {
    public enum Target: Sendable {
        case sql(String)
        case prepared(String)
    }
    public var target: Target
    public var parameters: [PostgresParameter]

    public init(_ sql: String, _ parameters: [PostgresParameter] = []) {
        self.target = .sql(sql)
        self.parameters = parameters
    }

    public init(prepared name: String, _ parameters: [PostgresParameter] = []) {
        self.target = .prepared(name)
        self.parameters = parameters
    }
}

extension PostgresConnection {
    /// Sends `statements` in libpq pipeline mode — without waiting for each result — and returns the
    /// results in order.
    ///
    /// The statements run as one implicit transaction (unless they open their own), so if one
    /// fails none of them is committed; the error names the failing statement's index. Sending and
    /// receiving are interleaved on a non-blocking socket, so batches of any size cannot deadlock.
    public func pipeline(_ statements: some Sequence<PostgresStatement>) throws -> [PostgresResult] {
        guard PQenterPipelineMode(handle) == 1 else {
            throw PostgresError(.invalidUse, message: "could not enter pipeline mode: \(libpqMessage(handle))")
        }
        guard PQsetnonblocking(handle, 1) == 0 else {
            _ = PQexitPipelineMode(handle)
            throw PostgresError(.client, message: libpqMessage(handle))
        }
        var state = PipelineState()
        defer {
            _ = PQsetnonblocking(handle, 0)
            _ = PQexitPipelineMode(handle)
        }
        do {
            for statement in statements {
                let sent = try ParameterArrays(checking: statement.parameters).withArrays { types, values, lengths, formats -> Int32 in
                    let count = Int32(statement.parameters.count)
                    switch statement.target {
                    case .sql(let sql): return PQsendQueryParams(handle, sql, count, types, values, lengths, formats, 0)
                    case .prepared(let name): return PQsendQueryPrepared(handle, name, count, values, lengths, formats, 0)
                    }
                }
                guard sent == 1 else { throw PostgresError(.client, message: libpqMessage(handle), statementIndex: state.sent) }
                state.sent += 1
                // Flushing and polling after every statement costs a send and a receive system call
                // per row and wakes the server once per row; doing it every few dozen statements lets
                // the server work through a chunk while the next one is being prepared. (libpq also
                // flushes by itself once 64 KiB are queued, and reads while a send would block.)
                if state.sent % Self.pipelinePumpInterval == 0 { try pumpPipeline(&state, waitForAll: false) }
            }
            guard PQpipelineSync(handle) == 1 else { throw PostgresError(.client, message: libpqMessage(handle)) }
            state.syncPending = true
            try pumpPipeline(&state, waitForAll: true)
        } catch {
            abandon(&state)
            throw error
        }
        if let failure = state.failure { throw failure }
        guard state.results.count == state.sent else {
            throw PostgresError(.client, message: "pipeline returned \(state.results.count) results for \(state.sent) statements")
        }
        return state.results
    }

    /// Statements queued between two flushes of a pipeline.
    static let pipelinePumpInterval = 64

    private struct PipelineState {
        var sent = 0
        var results: [PostgresResult] = []
        var syncPending = false
        var failure: PostgresError?
    }

    /// After a failure on our side (a statement libpq refused to queue, say), ends the pipeline
    /// without committing anything already queued: a statement that raises an error aborts the
    /// pipeline's implicit transaction at the sync point, and the results are drained, so the
    /// connection leaves pipeline mode usable. Nothing to do when the connection itself is broken.
    private func abandon(_ state: inout PipelineState) {
        guard PQstatus(handle) == CONNECTION_OK else { return }
        if !state.syncPending {
            let abort = "DO $$BEGIN RAISE EXCEPTION 'pipeline abandoned by the client'; END$$"
            guard PQsendQueryParams(handle, abort, 0, nil, nil, nil, nil, 0) == 1, PQpipelineSync(handle) == 1 else { return }
            state.syncPending = true
        }
        try? pumpPipeline(&state, waitForAll: true)
    }

    /// Flushes what is queued and reads what has arrived; with `waitForAll`, until the sync point.
    private func pumpPipeline(_ state: inout PipelineState, waitForAll: Bool) throws {
        while true {
            let flush = PQflush(handle)
            guard flush >= 0 else { throw PostgresError(.client, message: libpqMessage(handle)) }
            try readPipelineResults(&state)
            if flush == 0 && (!waitForAll || !state.syncPending) { return }
            // Wait until the socket can take more output or has input for us.
            var fd = pollfd(fd: PQsocket(handle), events: Int16(POLLIN) | (flush == 1 ? Int16(POLLOUT) : 0), revents: 0)
            guard poll(&fd, 1, 1000) >= 0 || errno == EINTR else {
                throw PostgresError(.client, message: "poll failed on the database socket")
            }
        }
    }

    /// Takes every result libpq has ready. Each statement yields one result followed by NULL;
    /// two NULLs in a row mean nothing more is ready. The sync point yields PIPELINE_SYNC.
    private func readPipelineResults(_ state: inout PipelineState) throws {
        guard PQconsumeInput(handle) == 1 else { throw PostgresError(.client, message: libpqMessage(handle)) }
        var previousWasNull = false
        while PQisBusy(handle) == 0 {
            guard let raw = PQgetResult(handle) else {
                if previousWasNull { return }
                previousWasNull = true
                continue
            }
            previousWasNull = false
            if PQresultStatus(raw) == PGRES_PIPELINE_SYNC {
                PQclear(raw)
                state.syncPending = false
                return
            }
            let index = state.results.count
            do {
                state.results.append(try checked(raw))
            } catch var error as PostgresError {
                // The first failure is the cause; later statements only report PIPELINE_ABORTED.
                error.statementIndex = index
                if state.failure == nil { state.failure = error }
                state.results.append(PostgresResult(taking: PQmakeEmptyPGresult(handle, PGRES_FATAL_ERROR)))
            }
        }
    }
}
