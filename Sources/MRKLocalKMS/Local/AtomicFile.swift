import Foundation
#if canImport(Glibc)
import Glibc
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
import Darwin
private let systemWrite = Darwin.write
#endif

/// Writes a file so that readers see the old contents or the new, never a mix, and nobody but
/// the owner can read it at any moment: a new file is created with `mode` next to the target
/// (never following a symlink), written in full (retrying interrupted writes), flushed to disk,
/// then renamed over the target. Used for the local KMS state (key material) and the SQL shell's
/// history (which may hold plaintext literals).
package enum AtomicFile {
    package struct Failure: Error, CustomStringConvertible {
        package let description: String
    }

    package static func write(_ bytes: some ContiguousBytes, to path: String, mode: mode_t = 0o600) throws(Failure) {
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode)
        guard fd >= 0 else { throw Failure(description: "cannot create \(temporary): \(String(cString: strerror(errno)))") }
        _ = fchmod(fd, mode)
        var failure: String?
        bytes.withUnsafeBytes { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = systemWrite(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = "cannot write \(temporary): \(String(cString: strerror(errno)))"
                    return
                }
                offset += written
            }
        }
        if failure == nil && fsync(fd) != 0 { failure = "cannot flush \(temporary): \(String(cString: strerror(errno)))" }
        close(fd)
        if failure == nil && rename(temporary, path) != 0 { failure = "cannot replace \(path): \(String(cString: strerror(errno)))" }
        if let failure {
            unlink(temporary)
            throw Failure(description: failure)
        }
    }
}

/// An exclusive lock on `<path>.lock`, held while the value lives (the kernel releases it when the
/// process ends): two processes must not both rewrite the same state file.
package final class FileLock: Sendable {
    private let fd: Int32

    /// - Throws: when another process holds the lock, or the lock file cannot be opened.
    package init(for path: String) throws(AtomicFile.Failure) {
        let lockPath = path + ".lock"
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw AtomicFile.Failure(description: "cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw AtomicFile.Failure(description: "the KMS state file \(path) is in use by another mrkproxy process (kms serve?); "
                                     + "stop it, use another --state, or send key commands to the running server with --endpoint URL")
        }
        self.fd = fd
    }

    deinit { close(fd) }
}
