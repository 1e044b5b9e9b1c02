import Foundation
import MRKCrypto

/// AWS Signature Version 4 (header-based), as the AWS KMS client signs and `KMSHTTPServer` verifies.
///
/// Validated against the AWS SigV4 test suite (botocore's copy). Paths are normalized (dot segments,
/// repeated slashes) and URI-encoded once, as for every service but S3.
package enum SigV4 {
    static let algorithm = "AWS4-HMAC-SHA256"

    /// A request as signed: raw (not yet encoded) path, raw query, headers in order, payload hash.
    package struct Request {
        package var method: String
        package var path: String
        package var query: String
        package var headers: [(name: String, value: String)]
        package var payloadSHA256: String

        package init(method: String, path: String, query: String = "", headers: [(name: String, value: String)], body: [UInt8]) {
            self.method = method
            self.path = path
            self.query = query
            self.headers = headers
            self.payloadSHA256 = hex(Digest.sha256(body))
        }

        func header(_ name: String) -> String? {
            let lower = name.lowercased()
            return headers.first { $0.name.lowercased() == lower }?.value
        }
    }

    /// The parsed `Authorization` header.
    package struct Authorization {
        package var accessKeyId: String
        package var dateStamp: String
        package var region: String
        package var service: String
        package var signedHeaders: [String]
        package var signature: String

        var scope: String { "\(dateStamp)/\(region)/\(service)/aws4_request" }

        /// Parses `AWS4-HMAC-SHA256 Credential=AK/date/region/service/aws4_request, SignedHeaders=…, Signature=…`.
        package init?(header: String) {
            guard header.hasPrefix(SigV4.algorithm + " ") else { return nil }
            var fields: [String: String] = [:]
            for part in header.dropFirst(SigV4.algorithm.count + 1).split(separator: ",") {
                let trimmed = part.trimmingCharacters(in: .whitespaces)
                guard let eq = trimmed.firstIndex(of: "=") else { return nil }
                fields[String(trimmed[..<eq])] = String(trimmed[trimmed.index(after: eq)...])
            }
            guard let credential = fields["Credential"], let signed = fields["SignedHeaders"], let signature = fields["Signature"]
            else { return nil }
            let c = credential.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            guard c.count == 5, c[4] == "aws4_request", !c[0].isEmpty else { return nil }
            accessKeyId = c[0]
            dateStamp = c[1]
            region = c[2]
            service = c[3]
            signedHeaders = signed.split(separator: ";").map(String.init)
            self.signature = signature
        }
    }

    // MARK: Canonical request

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0x0f)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// RFC 3986 encoding of everything but unreserved characters (and `/` when `keepSlash`).
    static func uriEncode(_ string: String, keepSlash: Bool) -> String {
        var out = ""
        for byte in string.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            case UInt8(ascii: "/") where keepSlash:
                out.append("/")
            default:
                out += String(format: "%%%02X", byte)
            }
        }
        return out
    }

    /// Removes `.`/`..` segments and empty segments, keeping a trailing slash.
    static func normalizePath(_ path: String) -> String {
        var segments: [Substring] = []
        for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
            if segment == "." { continue }
            if segment == ".." { _ = segments.popLast(); continue }
            segments.append(segment)
        }
        var result = "/" + segments.joined(separator: "/")
        if path.hasSuffix("/") && result != "/" { result += "/" }
        return result
    }

    static func canonicalPath(_ rawPath: String) -> String {
        let decoded = rawPath.removingPercentEncoding ?? rawPath
        return uriEncode(normalizePath(decoded.isEmpty ? "/" : decoded), keepSlash: true)
    }

    static func canonicalQuery(_ rawQuery: String) -> String {
        guard !rawQuery.isEmpty else { return "" }
        let pairs = rawQuery.split(separator: "&").map { item -> (String, String) in
            let parts = item.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0]).removingPercentEncoding ?? String(parts[0])
            let value = parts.count > 1 ? (String(parts[1]).removingPercentEncoding ?? String(parts[1])) : ""
            return (uriEncode(key, keepSlash: false), uriEncode(value, keepSlash: false))
        }
        return pairs.sorted { $0.0 == $1.0 ? $0.1 < $1.1 : $0.0 < $1.0 }.map { "\($0.0)=\($0.1)" }.joined(separator: "&")
    }

    /// Trims and collapses runs of whitespace (including folded lines) to one space.
    static func canonicalHeaderValue(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }).joined(separator: " ")
    }

    /// Returns the canonical request and the signed-headers list. `signedHeaders` (lower-case) picks
    /// the headers to sign; `nil` signs every header given.
    static func canonicalRequest(_ request: Request, signedHeaders: [String]? = nil) -> (canonical: String, signedHeaders: String) {
        var grouped: [String: [String]] = [:]
        for (name, value) in request.headers {
            grouped[name.lowercased(), default: []].append(canonicalHeaderValue(value))
        }
        let names = (signedHeaders?.map { $0.lowercased() } ?? Array(grouped.keys)).sorted()
        let headerBlock = names.map { "\($0):\((grouped[$0] ?? []).joined(separator: ","))\n" }.joined()
        let signed = names.joined(separator: ";")
        let canonical = [request.method.uppercased(), canonicalPath(request.path), canonicalQuery(request.query),
                         headerBlock, signed, request.payloadSHA256].joined(separator: "\n")
        return (canonical, signed)
    }

    static func stringToSign(amzDate: String, scope: String, canonicalRequest: String) -> String {
        [algorithm, amzDate, scope, hex(Digest.sha256(Array(canonicalRequest.utf8)))].joined(separator: "\n")
    }

    /// kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request").
    static func signingKey(secret: SecretBytes, dateStamp: String, region: String, service: String) -> [UInt8] {
        var seed = Array("AWS4".utf8)
        secret.withUnsafeBytes { seed.append(contentsOf: $0) }
        let prefixed = SecretBytes(seed)
        for i in seed.indices { seed[i] = 0 }
        let kDate = HMAC.sha256(key: prefixed, data: Array(dateStamp.utf8))
        let kRegion = HMAC.sha256(key: kDate, data: Array(region.utf8))
        let kService = HMAC.sha256(key: kRegion, data: Array(service.utf8))
        return HMAC.sha256(key: kService, data: Array("aws4_request".utf8))
    }

    static func signature(stringToSign: String, signingKey: [UInt8]) -> String {
        hex(HMAC.sha256(key: signingKey, data: Array(stringToSign.utf8)))
    }

    package static func amzDate(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        return String(format: "%04d%02d%02dT%02d%02d%02dZ", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
    }

    package static func parseAmzDate(_ string: String) -> Date? {
        guard string.count == 16 else { return nil }
        let s = Array(string.utf8)
        func num(_ r: Range<Int>) -> Int? { Int(String(decoding: s[r], as: UTF8.self)) }
        guard s[8] == UInt8(ascii: "T"), s[15] == UInt8(ascii: "Z"), let y = num(0..<4), let mo = num(4..<6), let d = num(6..<8),
              let h = num(9..<11), let mi = num(11..<13), let se = num(13..<15) else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        return calendar.date(from: DateComponents(year: y, month: mo, day: d, hour: h, minute: mi, second: se))
    }

    /// The intermediate values of one signature, for tests and verification.
    package struct Signed {
        var canonicalRequest: String
        var stringToSign: String
        var authorization: String
        var signature: String
    }

    /// Signs `request` in place: adds `X-Amz-Date` (unless present), `X-Amz-Security-Token` when the
    /// credentials carry a session token and `signSessionToken` is set, and `Authorization`.
    @discardableResult
    package static func sign(_ request: inout Request, credentials: AWSCredentials, region: String, service: String,
                     date: Date, signSessionToken: Bool = true) -> Signed {
        let amz: String
        if let existing = request.header("x-amz-date") { amz = existing } else {
            amz = amzDate(date)
            request.headers.append(("X-Amz-Date", amz))
        }
        if signSessionToken, let token = credentials.sessionToken, request.header("x-amz-security-token") == nil {
            request.headers.append(("X-Amz-Security-Token", token))
        }
        let dateStamp = String(amz.prefix(8))
        let scope = "\(dateStamp)/\(region)/\(service)/aws4_request"
        let (canonical, signed) = canonicalRequest(request)
        let sts = stringToSign(amzDate: amz, scope: scope, canonicalRequest: canonical)
        let key = signingKey(secret: credentials.secretAccessKey, dateStamp: dateStamp, region: region, service: service)
        let sig = signature(stringToSign: sts, signingKey: key)
        let authorization = "\(algorithm) Credential=\(credentials.accessKeyId)/\(scope), SignedHeaders=\(signed), Signature=\(sig)"
        request.headers.append(("Authorization", authorization))
        if !signSessionToken, let token = credentials.sessionToken, request.header("x-amz-security-token") == nil {
            request.headers.append(("X-Amz-Security-Token", token))
        }
        return Signed(canonicalRequest: canonical, stringToSign: sts, authorization: authorization, signature: sig)
    }

    /// Recomputes the signature of a received request from its `Authorization` header.
    package static func expectedSignature(_ request: Request, authorization: Authorization, amzDate: String, secret: SecretBytes) -> String {
        let (canonical, _) = canonicalRequest(request, signedHeaders: authorization.signedHeaders)
        let sts = stringToSign(amzDate: amzDate, scope: authorization.scope, canonicalRequest: canonical)
        let key = signingKey(secret: secret, dateStamp: authorization.dateStamp, region: authorization.region,
                             service: authorization.service)
        return signature(stringToSign: sts, signingKey: key)
    }
}
