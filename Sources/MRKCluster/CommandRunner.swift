import Foundation
import Logging

/// Runs PostgreSQL's server binaries, as the `postgres` user when this process is root
/// (PostgreSQL refuses to run as root).
package struct CommandRunner {
    let logger: Logger

    package init(logger: Logger) { self.logger = logger }
    private let runAsPostgres = geteuid() == 0

    /// Runs `executable` with `arguments`; throws with its output when it exits non-zero.
    ///
    /// Uses `posix_spawn` + `waitpid` rather than Foundation's `Process`: `pg_ctl start` leaves a
    /// daemon behind, which `Process` on Linux may wait for forever.
    @discardableResult
    package func run(_ executable: String, _ arguments: [String]) throws -> String {
        // As the postgres user, start in `/`: PostgreSQL's tools change back to the working
        // directory after finding themselves, which fails in one postgres cannot enter (say /root/…).
        let argv = runAsPostgres ? [Self.runuser, "-u", "postgres", "--", "/usr/bin/env", "-C", "/", executable] + arguments
            : [executable] + arguments
        logger.debug("running \(argv.joined(separator: " "))")
        let outputPath = NSTemporaryDirectory() + "mrkproxy-cmd-\(UUID().uuidString).out"
        defer { unlink(outputPath) }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)

        var cArgs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
        defer { cArgs.forEach { free($0) } }
        // The caller's PG* settings (PGSSLMODE, PGHOST, …) are not meant for the throwaway cluster.
        var cEnv: [UnsafeMutablePointer<CChar>?] = ProcessInfo.processInfo.environment
            .filter { !$0.key.hasPrefix("PG") }
            .map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { cEnv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned = posix_spawn(&pid, argv[0], &actions, nil, &cArgs, &cEnv)
        guard spawned == 0 else {
            throw ClusterError(.commandFailed, "cannot start \(argv[0]): \(String(cString: strerror(spawned)))")
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 {
            guard errno == EINTR else { throw ClusterError(.commandFailed, "waitpid failed: errno \(errno)") }
        }
        let text = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        // WIFEXITED / WEXITSTATUS are macros: exited normally when the low 7 bits are zero.
        let exited = status & 0x7f == 0
        let code = (status >> 8) & 0xff
        guard exited && code == 0 else {
            let tool = (executable as NSString).lastPathComponent
            let how = exited ? "exited with status \(code)" : "was killed by signal \(status & 0x7f)"
            throw ClusterError(.commandFailed, "\(tool) \(how): \(text.suffix(1500))")
        }
        return text
    }

    /// Gives `path` to the `postgres` user when running as root, so the servers can write there.
    func handOver(_ path: String) throws {
        guard runAsPostgres else { return }
        guard let entry = getpwnam("postgres") else {
            throw ClusterError(.configuration, "running as root but there is no 'postgres' user to run the servers as")
        }
        guard chown(path, entry.pointee.pw_uid, entry.pointee.pw_gid) == 0 else {
            throw ClusterError(.commandFailed, "cannot chown \(path) to postgres: errno \(errno)")
        }
    }

    private static let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/sbin/runuser"
}

/// Finds a free TCP port on 127.0.0.1 by binding port 0.
package enum FreePort {
    package static func find() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw ClusterError(.commandFailed, "socket() failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else { throw ClusterError(.commandFailed, "bind() failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}
