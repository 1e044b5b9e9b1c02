import Foundation
import MRKCrypto
@testable import MRKKMS
import Testing

/// The AWS SigV4 test suite (botocore's copy, in Vectors/sigv4): every vector is signed
/// from its `.req` and compared with the expected canonical request, string to sign and
/// Authorization header.
@Suite("SigV4 test suite")
struct SigV4Tests {
    static let credentials = AWSCredentials(accessKeyId: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    static let sessionToken = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267"

    /// Every directory holding a `<name>.req` (nested groups included).
    static func vectors() -> [String] {
        let root = TestSupport.sigv4Vectors
        guard let e = FileManager.default.enumerator(atPath: root.path) else { return [] }
        var out: [String] = []
        while let item = e.nextObject() as? String {
            if item.hasSuffix(".req") { out.append(String(item.dropLast(4))) }
        }
        return out.sorted()
    }

    static func read(_ vector: String, _ ext: String) throws -> String {
        try String(contentsOf: TestSupport.sigv4Vectors.appendingPathComponent(vector + "." + ext), encoding: .utf8)
    }

    /// Parses a `.req`: request line, headers (lines starting with whitespace continue the previous
    /// value), blank line, body.
    static func parseRequest(_ text: String) -> SigV4.Request {
        let lines = text.components(separatedBy: "\n")
        let requestLine = lines[0]
        let method = String(requestLine.prefix { $0 != " " })
        var target = String(requestLine.dropFirst(method.count + 1))
        if target.hasSuffix(" HTTP/1.1") { target = String(target.dropLast(" HTTP/1.1".count)) }
        let pathAndQuery = target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        var headers: [(name: String, value: String)] = []
        var index = 1
        while index < lines.count, !lines[index].isEmpty {
            let line = lines[index]
            if line.first == " " || line.first == "\t", !headers.isEmpty {
                headers[headers.count - 1].value += "\n" + line
            } else if let colon = line.firstIndex(of: ":") {
                headers.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
            }
            index += 1
        }
        let body = index + 1 < lines.count ? lines[(index + 1)...].joined(separator: "\n") : ""
        return SigV4.Request(method: method, path: String(pathAndQuery[0]),
                             query: pathAndQuery.count > 1 ? String(pathAndQuery[1]) : "", headers: headers, body: Array(body.utf8))
    }

    @Test func suiteIsPresent() {
        #expect(Self.vectors().count >= 25, "SigV4 vectors missing at \(TestSupport.sigv4Vectors.path)")
    }

    @Test(arguments: vectors())
    func vector(_ vector: String) throws {
        var request = Self.parseRequest(try Self.read(vector, "req"))
        var credentials = Self.credentials
        var signToken = true
        let name = (vector as NSString).lastPathComponent
        if name == "get-vanilla-with-session-token" { credentials.sessionToken = Self.sessionToken }
        if name == "post-sts-header-after" {
            credentials.sessionToken = "AQoDYXdzEPT//////////wEXAMPLE"
            signToken = false  // the token header is added after signing
        }
        let signed = SigV4.sign(&request, credentials: credentials, region: "us-east-1", service: "service",
                                date: Date(timeIntervalSince1970: 0), signSessionToken: signToken)
        #expect(signed.canonicalRequest == (try Self.read(vector, "creq")), "canonical request of \(vector)")
        #expect(signed.stringToSign == (try Self.read(vector, "sts")), "string to sign of \(vector)")
        #expect(signed.authorization == (try Self.read(vector, "authz")), "authorization of \(vector)")
        // The server-side verifier recomputes the same signature from the signed request.
        let auth = try #require(SigV4.Authorization(header: signed.authorization))
        #expect(SigV4.expectedSignature(request, authorization: auth, amzDate: request.header("x-amz-date")!,
                                        secret: credentials.secretAccessKey) == signed.signature)
    }

    @Test func tamperingChangesTheSignature() throws {
        var request = Self.parseRequest(try Self.read("post-vanilla/post-vanilla", "req"))
        let signed = SigV4.sign(&request, credentials: Self.credentials, region: "us-east-1", service: "service",
                                date: Date(timeIntervalSince1970: 0))
        let auth = try #require(SigV4.Authorization(header: signed.authorization))
        var tampered = request
        tampered.payloadSHA256 = SigV4.hex(Digest.sha256(Array("x".utf8)))
        #expect(SigV4.expectedSignature(tampered, authorization: auth, amzDate: "20150830T123600Z",
                                        secret: Self.credentials.secretAccessKey) != signed.signature)
        let wrongSecret = SecretBytes(Array("wrong".utf8))
        #expect(SigV4.expectedSignature(request, authorization: auth, amzDate: "20150830T123600Z", secret: wrongSecret) != signed.signature)
    }

    @Test func credentialsNeverPrintSecrets() {
        let c = AWSCredentials(accessKeyId: "AKID", secretAccessKey: "very-secret", sessionToken: "token-secret")
        #expect(!c.description.contains("very-secret") && !c.description.contains("token-secret"))
        #expect(c.description.contains("AKID"))
    }

    @Test func amzDateRoundTrips() throws {
        let date = try #require(SigV4.parseAmzDate("20150830T123600Z"))
        #expect(SigV4.amzDate(date) == "20150830T123600Z")
        #expect(SigV4.parseAmzDate("2015-08-30") == nil)
    }
}
