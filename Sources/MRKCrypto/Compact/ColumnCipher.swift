import Foundation
internal import COpenSSL
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A decrypted compact value: its recorded type and plaintext bytes.
public struct OpenedValue: Sendable, Hashable {
    /// The type recorded when the value was sealed (authenticated).
    public let type: PlaintextType
    /// The plaintext.
    public let bytes: [UInt8]
}

/// Seals and opens column values in the compact format (`CompactEnvelope`) under one column data
/// key. Every value gets its own AES-256-GCM key, derived from the data key and a random 16-byte
/// salt, so random-nonce collision limits do not apply.
///
/// Thread safety: a `ColumnCipher` owns reusable libcrypto contexts and scratch buffers and must be
/// used by one thread/task at a time (it is deliberately not `Sendable`). Create one per worker;
/// creation costs one HMAC key schedule.
public final class ColumnCipher {
    /// The key id recorded in every value this cipher seals; `open` accepts only values with it.
    public let keyID: CompactKeyID
    private let hmac: HMACContext
    private let gcm = AESGCM.Context()
    /// `[1]₃₂ ‖ label ‖ 0x00 ‖ header(26) ‖ [256]₃₂`, prefilled except the header.
    private let kdfInput: UnsafeMutableRawBufferPointer
    private let kdfHeaderOffset = 4 + CompactEnvelope.kdfLabel.count + 1
    /// The derived per-value key; zeroed after every use.
    private let derivedKey: UnsafeMutableRawBufferPointer
    private let zeroNonce: UnsafeMutableRawBufferPointer
    /// The associated data of the value being sealed or opened, assembled per value.
    private var aadScratch: UnsafeMutableRawBufferPointer
    /// Salts drawn from the CSPRNG in bulk (one `RAND_bytes` call per 256 values: a 16-byte
    /// `RAND_bytes` call costs more than the rest of a seal). Salts are public, so pooling them
    /// reveals nothing; the pool is discarded in a forked child so two processes never share salts.
    private let saltPool: SaltPool

    /// - Parameters:
    ///   - dataKey: the column data key, 32 bytes.
    ///   - keyID: the key id recorded in sealed values.
    /// - Throws: `CryptoError` `.invalidLength` when the key is not 32 bytes.
    public init(dataKey: SecretBytes, keyID: CompactKeyID) throws {
        guard dataKey.count == 32 else { throw CryptoError(.invalidLength, "column data key must be 32 bytes") }
        self.keyID = keyID
        hmac = try dataKey.withUnsafeBytes { try HMACContext(hash: .sha256, key: $0) }
        var input = [UInt8]()
        input.appendBigEndian(UInt32(1))
        input.append(contentsOf: CompactEnvelope.kdfLabel)
        input.append(0)
        input.append(contentsOf: [UInt8](repeating: 0, count: CompactEnvelope.headerByteCount))
        input.appendBigEndian(UInt32(256))
        kdfInput = .allocate(byteCount: input.count, alignment: 16)
        kdfInput.copyBytes(from: input)
        derivedKey = .allocate(byteCount: 32, alignment: 16)
        derivedKey.initializeMemory(as: UInt8.self, repeating: 0)
        zeroNonce = .allocate(byteCount: AESGCM.nonceByteCount, alignment: 16)
        zeroNonce.initializeMemory(as: UInt8.self, repeating: 0)
        aadScratch = .allocate(byteCount: 256, alignment: 16)
        saltPool = SaltPool()
    }

    deinit {
        OPENSSL_cleanse(derivedKey.baseAddress, derivedKey.count)
        OPENSSL_cleanse(kdfInput.baseAddress, kdfInput.count)
        derivedKey.deallocate()
        kdfInput.deallocate()
        zeroNonce.deallocate()
        OPENSSL_cleanse(aadScratch.baseAddress, aadScratch.count)
        aadScratch.deallocate()
    }

    /// Seals `plaintext` as a compact value.
    /// - Parameters:
    ///   - plaintext: the value bytes (any encoding the caller chooses).
    ///   - type: the PostgreSQL type to record.
    ///   - context: table, column and optional row identity, authenticated as associated data.
    /// - Returns: the sealed bytes (`plaintext.count + 42`).
    /// - Throws: `CryptoError` `.libcrypto` if libcrypto fails.
    public func seal(_ plaintext: some ContiguousBytes, type: PlaintextType, context: ColumnContext) throws -> [UInt8] {
        try plaintext.withUnsafeBytes { p in
            try [UInt8](unsafeUninitializedCapacity: CompactEnvelope.sealedByteCount(plaintextByteCount: p.count)) { buffer, count in
                count = try seal(p, type: type, context: context, into: UnsafeMutableRawBufferPointer(buffer))
            }
        }
    }

    /// Seals into caller-provided memory (no allocation).
    /// - Parameter output: at least `CompactEnvelope.sealedByteCount(plaintextByteCount:)` bytes.
    /// - Returns: the number of bytes written.
    /// - Throws: `CryptoError` `.invalidLength` when `output` is too small.
    @discardableResult
    public func seal(_ plaintext: UnsafeRawBufferPointer, type: PlaintextType, context: ColumnContext,
                     into output: UnsafeMutableRawBufferPointer) throws -> Int {
        try seal(plaintext, type: type, context: context, .inContext, into: output)
    }

    /// Seals `plaintext` bound to the table and column of `context` and to `rowIdentity` — the same
    /// value as `seal(_:type:context: context.withRowIdentity(rowIdentity))`, without building a
    /// context per row.
    public func seal(_ plaintext: UnsafeRawBufferPointer, type: PlaintextType, context: ColumnContext,
                     rowIdentity: UnsafeRawBufferPointer?) throws -> [UInt8] {
        precondition(context.rowIdentity == nil, "pass a context without a row identity; the row identity goes separately")
        return try [UInt8](unsafeUninitializedCapacity: CompactEnvelope.sealedByteCount(plaintextByteCount: plaintext.count)) { buffer, count in
            count = try seal(plaintext, type: type, context: context, .append(rowIdentity), into: UnsafeMutableRawBufferPointer(buffer))
        }
    }

    /// Opens a value sealed for the table and column of `context` and `rowIdentity` (see
    /// `seal(_:type:context:rowIdentity:)`). On failure `output` is zeroed.
    /// - Parameter output: at least `sealed.count - 42` bytes.
    /// - Returns: the recorded type and the number of plaintext bytes written.
    public func open(_ sealed: UnsafeRawBufferPointer, context: ColumnContext, rowIdentity: UnsafeRawBufferPointer?,
                     into output: UnsafeMutableRawBufferPointer) throws -> (type: PlaintextType, count: Int) {
        precondition(context.rowIdentity == nil, "pass a context without a row identity; the row identity goes separately")
        return try open(sealed, context: context, .append(rowIdentity), into: output)
    }

    /// The seal both public forms share: header, per-value key, AES-GCM over the associated data.
    private func seal(_ plaintext: UnsafeRawBufferPointer, type: PlaintextType, context: ColumnContext, _ rowPart: RowPart,
                      into output: UnsafeMutableRawBufferPointer) throws -> Int {
        let total = CompactEnvelope.sealedByteCount(plaintextByteCount: plaintext.count)
        guard output.count >= total else { throw CryptoError(.invalidLength, "output buffer too small for the sealed value") }
        writeHeader(type: type, into: output)
        let header = UnsafeRawBufferPointer(rebasing: output[0..<CompactEnvelope.headerByteCount])
        try deriveKey(header: header)
        defer { OPENSSL_cleanse(derivedKey.baseAddress, derivedKey.count) }
        try withAssociatedData(header: header, context, rowPart) { aad in
            try gcm.sealParts(keySize: .aes256, key: UnsafeRawBufferPointer(derivedKey), nonce: UnsafeRawBufferPointer(zeroNonce),
                              plaintext: plaintext, aad: aad,
                              output: UnsafeMutableRawBufferPointer(rebasing: output[CompactEnvelope.headerByteCount..<total]))
        }
        return total
    }

    /// The open both public forms share; `output` is zeroed on failure.
    private func open(_ sealed: UnsafeRawBufferPointer, context: ColumnContext, _ rowPart: RowPart,
                      into output: UnsafeMutableRawBufferPointer) throws -> (type: PlaintextType, count: Int) {
        let header = try CompactEnvelope.header(raw: sealed)
        guard header.keyID == keyID else {
            throw CryptoError(.keyMismatch, "value sealed under key \(header.keyID), cipher holds key \(keyID)")
        }
        let plaintextCount = sealed.count - CompactEnvelope.overheadByteCount
        guard output.count >= plaintextCount else { throw CryptoError(.invalidLength, "output buffer too small for the plaintext") }
        let out = UnsafeMutableRawBufferPointer(rebasing: output[0..<plaintextCount])
        let headerBytes = UnsafeRawBufferPointer(rebasing: sealed[0..<CompactEnvelope.headerByteCount])
        try deriveKey(header: headerBytes)
        defer { OPENSSL_cleanse(derivedKey.baseAddress, derivedKey.count) }
        do {
            try withAssociatedData(header: headerBytes, context, rowPart) { aad in
                try gcm.openParts(keySize: .aes256, key: UnsafeRawBufferPointer(derivedKey), nonce: UnsafeRawBufferPointer(zeroNonce),
                                  ciphertextAndTag: UnsafeRawBufferPointer(rebasing: sealed[CompactEnvelope.headerByteCount...]),
                                  aad: aad, output: out)
            }
        } catch {
            if out.count > 0 { OPENSSL_cleanse(out.baseAddress, out.count) }
            throw error
        }
        return (header.type, plaintextCount)
    }

    /// How the associated data ends after the context bytes given.
    private enum RowPart {
        /// The context bytes are complete (`ColumnContext.encoded`).
        case inContext
        /// Append `0x00` (not bound to a row) or `0x01 ‖ u32 len ‖ identity`.
        case append(UnsafeRawBufferPointer?)
    }

    /// Calls `body` with the whole associated data, `header ‖ context ‖ row part`, assembled in
    /// scratch memory: one AAD update instead of several, as each EVP call has a cost of its own.
    private func withAssociatedData<R>(header: UnsafeRawBufferPointer, _ context: ColumnContext, _ rowPart: RowPart,
                                       _ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
        let contextCount: Int, rowCount: Int
        switch rowPart {
        case .inContext: (contextCount, rowCount) = (context.encoded.count, 0)
        case .append(let identity): (contextCount, rowCount) = (context.columnPartByteCount, identity.map { 5 + $0.count } ?? 1)
        }
        let total = header.count + contextCount + rowCount
        if aadScratch.count < total {
            OPENSSL_cleanse(aadScratch.baseAddress, aadScratch.count)
            aadScratch.deallocate()
            aadScratch = .allocate(byteCount: max(total, 2 * aadScratch.count), alignment: 16)
        }
        UnsafeMutableRawBufferPointer(rebasing: aadScratch[0..<header.count]).copyMemory(from: header)
        var offset = header.count
        context.encoded.withUnsafeBytes { encoded in
            UnsafeMutableRawBufferPointer(rebasing: aadScratch[offset..<(offset + contextCount)])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: encoded[0..<contextCount]))
        }
        offset += contextCount
        switch rowPart {
        case .inContext:
            break
        case .append(nil):
            aadScratch[offset] = 0
        case .append(let identity?):
            aadScratch[offset] = 1
            aadScratch.storeBytes(of: UInt32(truncatingIfNeeded: identity.count).bigEndian, toByteOffset: offset + 1, as: UInt32.self)
            offset += 5
            if identity.count > 0 {
                UnsafeMutableRawBufferPointer(rebasing: aadScratch[offset..<(offset + identity.count)]).copyMemory(from: identity)
            }
        }
        return try body(UnsafeRawBufferPointer(rebasing: aadScratch[0..<total]))
    }

    private func writeHeader(type: PlaintextType, into output: UnsafeMutableRawBufferPointer) {
        output[0] = CompactEnvelope.version
        output[1] = type.rawValue
        output.storeBytes(of: keyID.keyspace.bigEndian, toByteOffset: 2, as: UInt32.self)
        output.storeBytes(of: keyID.version.bigEndian, toByteOffset: 6, as: UInt32.self)
        saltPool.next(into: UnsafeMutableRawBufferPointer(rebasing: output[CompactEnvelope.fixedHeaderByteCount..<CompactEnvelope.headerByteCount]))
    }

    /// Opens a compact value. Nothing is released unless the value authenticates.
    /// - Parameters:
    ///   - sealed: the stored bytes.
    ///   - context: the same table/column/row identity the value was sealed with.
    /// - Returns: the recorded type and the plaintext.
    /// - Throws: `CryptoError` `.malformed`/`.unsupported` (not a compact value of a known version),
    ///   `.keyMismatch` (sealed under another key id), `.authenticationFailed` (tampered, wrong
    ///   context or wrong key).
    public func open(_ sealed: some ContiguousBytes, context: ColumnContext) throws -> OpenedValue {
        try sealed.withUnsafeBytes { s in
            let header = try CompactEnvelope.header(raw: s)
            var type = header.type
            let bytes = try [UInt8](unsafeUninitializedCapacity: s.count - CompactEnvelope.overheadByteCount) { buffer, count in
                let result = try open(s, context: context, into: UnsafeMutableRawBufferPointer(buffer))
                type = result.type
                count = result.count
            }
            return OpenedValue(type: type, bytes: bytes)
        }
    }

    /// Opens into caller-provided memory (no allocation). On failure `output` is zeroed.
    /// - Parameter output: at least `sealed.count - 42` bytes.
    /// - Returns: the recorded type and the number of plaintext bytes written.
    public func open(_ sealed: UnsafeRawBufferPointer, context: ColumnContext,
                     into output: UnsafeMutableRawBufferPointer) throws -> (type: PlaintextType, count: Int) {
        try open(sealed, context: context, .inContext, into: output)
    }

    /// Writes the per-value key for `header` (26 bytes) into `derivedKey`.
    private func deriveKey(header: UnsafeRawBufferPointer) throws {
        UnsafeMutableRawBufferPointer(rebasing: kdfInput[kdfHeaderOffset..<(kdfHeaderOffset + CompactEnvelope.headerByteCount)])
            .copyMemory(from: header)
        try hmac.mac(UnsafeRawBufferPointer(kdfInput), into: derivedKey.baseAddress!.assumingMemoryBound(to: UInt8.self))
    }
}

/// A buffer of random salts, refilled from `RAND_bytes` and invalidated after `fork()`.
final class SaltPool {
    private static let capacity = 4096
    private let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SaltPool.capacity, alignment: 16)
    private var offset = SaltPool.capacity
    private var generation = ForkGeneration.current

    init() { ForkGeneration.install() }

    deinit {
        OPENSSL_cleanse(buffer.baseAddress, buffer.count)
        buffer.deallocate()
    }

    /// Fills `salt` (at most 4096 bytes) with fresh random bytes.
    func next(into salt: UnsafeMutableRawBufferPointer) {
        if offset + salt.count > SaltPool.capacity || generation != ForkGeneration.current {
            SecureRandom.fill(buffer)
            offset = 0
            generation = ForkGeneration.current
        }
        salt.copyMemory(from: UnsafeRawBufferPointer(rebasing: buffer[offset..<(offset + salt.count)]))
        OPENSSL_cleanse(buffer.baseAddress! + offset, salt.count)
        offset += salt.count
    }
}

/// Counts forks of this process (`pthread_atfork` child handler), so per-process random pools
/// can tell that they were copied into a child.
enum ForkGeneration {
    // Written only by the atfork child handler, which runs in the single thread of a freshly
    // forked child before any other code of that process; every later read happens after it.
    nonisolated(unsafe) private(set) static var current: UInt64 = 0
    private static let installed: Bool = {
        pthread_atfork(nil, nil) { ForkGeneration.current &+= 1 }
        return true
    }()

    static func install() { _ = installed }
}
