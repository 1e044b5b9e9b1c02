import Foundation
import Logging
@testable import MRKCluster
import MRKPostgres
import Testing

/// Throwaway servers take a free port; when another process takes it first, they try another.
@Suite struct ClusterPorts {
    @Test("a server whose port was taken before it could bind starts on another free port")
    func portClashIsRetried() throws {
        let binaries = try PostgresBinaries.locate()
        let runner = CommandRunner(logger: Logger(label: "test"))
        let directory = try PostgresCluster.makeDirectory(parent: NSTemporaryDirectory(), runner: runner)
        defer {
            _ = try? runner.run(binaries.path("pg_ctl"), ["-D", directory + "/data", "-m", "immediate", "stop"])
            try? FileManager.default.removeItem(atPath: directory)
        }
        try runner.run(binaries.path("initdb"), ["-D", directory + "/data", "-U", "postgres", "--auth=trust", "--no-sync"])
        try PostgresCluster.appendSettings([("listen_addresses", "'127.0.0.1'"), ("unix_socket_directories", "''")],
                                           to: directory + "/data/postgresql.conf", runner: runner)
        // Another process holds the first port offered.
        let taken = try ListeningSocket()
        var offered: [Int] = []
        let port = try PostgresCluster.startOnFreePort(directory + "/data", log: directory + "/log", avoiding: [], binaries: binaries,
                                                       runner: runner, timeout: "30") {
            let next = offered.isEmpty ? taken.port : try FreePort.find()
            offered.append(next)
            return next
        }
        // The taken port was tried first and refused; the server listens on the port it was offered
        // last (a later offer may clash too while other tests start servers).
        #expect(offered.count >= 2 && offered[0] == taken.port)
        #expect(port == offered.last && port != taken.port)
        let result = try PostgresConnection("postgresql://postgres@127.0.0.1:\(port)/postgres?sslmode=disable").execute("SELECT 1")
        #expect(result.string(row: 0, column: 0) == "1")
    }
}

/// A loopback TCP socket listening on a free port until released.
final class ListeningSocket {
    let fd: Int32
    let port: Int

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 1) == 0 else {
            close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(fd) }
}
