import Foundation
import MRKCrypto

/// The server side of one SCRAM-SHA-256 exchange (RFC 5802, RFC 7677) as PostgreSQL runs it:
/// the user is the startup message's (the SCRAM `n=` is ignored), no channel binding.
///
/// For an unknown user it runs a mock exchange with a made-up salt and fails at the end, so a
/// client cannot tell unknown users from wrong passwords.
package struct SCRAMServer {
    package struct Failure: Error, Equatable, CustomStringConvertible {
        package let message: String
        package var description: String { message }
    }

    private let verifier: SCRAMVerifier?
    private let mockSalt: [UInt8]
    private let serverNonce: String
    private var clientFirstBare = ""
    private var serverFirst = ""
    private var nonce = ""
    private var gs2Header = ""

    /// - Parameters:
    ///   - verifier: the user's verifier; nil for an unknown user.
    ///   - serverNonce: for tests; default 18 random bytes, base64.
    package init(verifier: SCRAMVerifier?, serverNonce: String? = nil) {
        self.verifier = verifier
        mockSalt = SecureRandom.bytes(count: 16)
        self.serverNonce = serverNonce ?? Data(SecureRandom.bytes(count: 18)).base64EncodedString()
    }

    /// The SASLInitialResponse payload's mechanism and data.
    package static func initialResponse(_ payload: [UInt8]) throws(Failure) -> (mechanism: String, data: [UInt8]) {
        guard let end = payload.firstIndex(of: 0), let mechanism = String(validating: payload[..<end], as: UTF8.self),
              payload.count >= end + 5 else {
            throw Failure(message: "malformed SASL message")
        }
        let lengthBytes = payload[(end + 1)..<(end + 5)]
        let length = lengthBytes.reduce(Int32(0)) { $0 << 8 | Int32($1) }
        let data = Array(payload[(end + 5)...])
        guard length == -1 ? data.isEmpty : Int(length) == data.count else { throw Failure(message: "malformed SASL message") }
        return (mechanism, data)
    }

    /// Reads client-first-message; returns server-first-message.
    package mutating func receiveClientFirst(_ data: [UInt8]) throws(Failure) -> [UInt8] {
        guard let message = String(validating: data, as: UTF8.self) else { throw Failure(message: "malformed SCRAM message") }
        // gs2-header: "n,," or "y,," (a client that could bind but was not offered it); "p=…" is refused.
        let parts = message.split(separator: ",", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw Failure(message: "malformed SCRAM message") }
        switch parts[0] {
        case "n", "y": break
        case let flag where flag.hasPrefix("p="):
            throw Failure(message: "channel binding is not supported by this server (offer: SCRAM-SHA-256)")
        default: throw Failure(message: "malformed SCRAM message (unexpected channel-binding flag)")
        }
        guard parts[1].isEmpty else { throw Failure(message: "client uses authorization identity, but it is not supported") }
        gs2Header = "\(parts[0]),,"
        clientFirstBare = String(parts[2])
        let attributes = Self.attributes(clientFirstBare)
        guard attributes.first?.key == "n", let clientNonce = attributes.first(where: { $0.key == "r" })?.value,
              !clientNonce.isEmpty, clientNonce.allSatisfy({ $0.isASCII && $0 != "," && !$0.isWhitespace }),
              !attributes.contains(where: { $0.key == "m" }) else {
            throw Failure(message: "malformed SCRAM message")
        }
        nonce = clientNonce + serverNonce
        let salt = verifier?.salt ?? mockSalt
        let iterations = verifier?.iterations ?? 4096
        serverFirst = "r=\(nonce),s=\(Data(salt).base64EncodedString()),i=\(iterations)"
        return Array(serverFirst.utf8)
    }

    /// Reads client-final-message; returns server-final-message when the proof is right.
    package mutating func receiveClientFinal(_ data: [UInt8]) throws(Failure) -> [UInt8] {
        guard !serverFirst.isEmpty, let message = String(validating: data, as: UTF8.self),
              let proofRange = message.range(of: ",p=", options: .backwards) else {
            throw Failure(message: "malformed SCRAM message")
        }
        let withoutProof = String(message[..<proofRange.lowerBound])
        let attributes = Self.attributes(withoutProof)
        guard attributes.count >= 2, attributes[0].key == "c", attributes[1].key == "r",
              attributes[0].value == Data(gs2Header.utf8).base64EncodedString() else {
            throw Failure(message: "SCRAM channel binding check failed")
        }
        guard attributes[1].value == nonce else { throw Failure(message: "SCRAM nonce mismatch") }
        guard let proof = Data(base64Encoded: String(message[proofRange.upperBound...])), proof.count == 32 else {
            throw Failure(message: "malformed SCRAM message")
        }
        guard let verifier else { throw Failure(message: "password authentication failed") }
        let authMessage = Array("\(clientFirstBare),\(serverFirst),\(withoutProof)".utf8)
        let clientSignature = HMAC.sha256(key: verifier.storedKey, data: authMessage)
        let clientKey = zip(proof, clientSignature).map { $0 ^ $1 }
        guard constantTimeEquals(Digest.sha256(clientKey), verifier.storedKey) else {
            throw Failure(message: "password authentication failed")
        }
        let serverSignature = HMAC.sha256(key: verifier.serverKey, data: authMessage)
        return Array("v=\(Data(serverSignature).base64EncodedString())".utf8)
    }

    /// `k=v,k=v` attributes, in order.
    static func attributes(_ text: String) -> [(key: Character, value: String)] {
        text.split(separator: ",", omittingEmptySubsequences: false).compactMap { part in
            guard part.count >= 2, part.dropFirst().first == "=" , let key = part.first else { return nil }
            return (key, String(part.dropFirst(2)))
        }
    }
}
