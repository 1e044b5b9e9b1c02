import MRKCrypto
import MRKKMS
import Foundation

/// A parsed key policy: the subset of IAM policy grammar the embedded KMS evaluates.
///
/// Statements have `Effect` (`Allow`/`Deny`), `Principal` (`"*"` or `{"AWS": arn | [arn]}`, where an
/// account root ARN or a bare account id stands for every principal of that account), `Action`
/// (`kms:…`, `*` and `?` wildcards, case-insensitive) and optionally `Condition` with
/// `StringEquals`, `StringLike`, `StringNotEquals`, `StringNotLike` over `kms:EncryptionContext:<key>`,
/// `kms:CallerAccount` and `aws:PrincipalArn`. An explicit deny overrides any allow; with no
/// matching allow the request is denied.
struct KeyPolicy {
    struct Statement {
        var allow: Bool
        var principals: [String]
        var actions: [String]
        /// operator → (condition key → values)
        var conditions: [String: [String: [String]]]
    }

    var statements: [Statement]

    enum Decision: Equatable { case allow, explicitDeny, implicitDeny }

    struct Request {
        var principal: String
        var action: String
        var encryptionContext: EncryptionContext
    }

    /// The policy AWS attaches when CreateKey gets none: the account may do everything.
    static func defaultPolicy(account: String, partition: String) -> String {
        """
        {"Version":"2012-10-17","Id":"key-default-1","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow",\
        "Principal":{"AWS":"arn:\(partition):iam::\(account):root"},"Action":"kms:*","Resource":"*"}]}
        """
    }

    /// Parses a policy document. Throws `MalformedPolicyDocumentException`.
    init(parsing text: String) throws {
        func malformed(_ why: String) -> KMSError { KMSError(.malformedPolicyDocument, "the key policy is malformed: \(why)") }
        guard let data = text.data(using: .utf8),
              let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw malformed("not a JSON object") }
        let raw: [[String: Any]]
        if let list = root["Statement"] as? [[String: Any]] { raw = list } else if let one = root["Statement"] as? [String: Any] {
            raw = [one]
        } else { throw malformed("no Statement") }
        func strings(_ value: Any?) -> [String]? {
            if let s = value as? String { return [s] }
            if let a = value as? [Any] { let s = a.compactMap { $0 as? String }; return s.count == a.count ? s : nil }
            return nil
        }
        statements = try raw.map { s in
            guard let effect = s["Effect"] as? String, effect == "Allow" || effect == "Deny" else { throw malformed("Effect must be Allow or Deny") }
            let principals: [String]
            if let p = s["Principal"] as? String { principals = [p] } else if let p = s["Principal"] as? [String: Any],
                let aws = strings(p["AWS"]) { principals = aws } else { throw malformed("Principal must be \"*\" or {\"AWS\": …}") }
            guard let actions = strings(s["Action"]) else { throw malformed("Action must be a string or a list of strings") }
            var conditions: [String: [String: [String]]] = [:]
            if let c = s["Condition"] {
                guard let ops = c as? [String: Any] else { throw malformed("Condition must be an object") }
                for (op, body) in ops {
                    // Refused rather than ignored: an operator or key this KMS does not evaluate would
                    // make a Deny silently never apply.
                    guard Self.supportedOperators.contains(op) else {
                        throw malformed("condition operator \(op) is not supported by the embedded KMS (supported: \(Self.supportedOperators.sorted().joined(separator: ", ")))")
                    }
                    guard let kv = body as? [String: Any] else { throw malformed("Condition \(op) must be an object") }
                    var parsed: [String: [String]] = [:]
                    for (k, v) in kv {
                        let lower = k.lowercased()
                        guard lower.hasPrefix("kms:encryptioncontext:") || lower == "kms:calleraccount" || lower == "aws:principalarn" else {
                            throw malformed("condition key \(k) is not supported by the embedded KMS")
                        }
                        guard let values = strings(v) else { throw malformed("Condition values must be strings") }
                        parsed[k] = values
                    }
                    conditions[op] = parsed
                }
            }
            return Statement(allow: effect == "Allow", principals: principals, actions: actions, conditions: conditions)
        }
    }

    func evaluate(_ request: Request) -> Decision {
        var allowed = false
        for statement in statements where matches(statement, request) {
            if !statement.allow { return .explicitDeny }
            allowed = true
        }
        return allowed ? .allow : .implicitDeny
    }

    private func matches(_ s: Statement, _ r: Request) -> Bool {
        guard s.principals.contains(where: { Self.principal($0, matches: r.principal) }) else { return false }
        guard s.actions.contains(where: { Self.glob($0.lowercased(), r.action.lowercased()) }) else { return false }
        for (op, pairs) in s.conditions {
            for (key, values) in pairs where !condition(op: op, key: key, values: values, r) { return false }
        }
        return true
    }

    private func condition(op: String, key: String, values: [String], _ r: Request) -> Bool {
        let actual: String?
        let lower = key.lowercased()
        if lower.hasPrefix("kms:encryptioncontext:") {
            actual = r.encryptionContext[String(key.dropFirst("kms:EncryptionContext:".count))]
        } else if lower == "kms:calleraccount" {
            actual = Self.account(of: r.principal)
        } else if lower == "aws:principalarn" {
            actual = r.principal
        } else {
            actual = nil
        }
        switch op {
        case "StringEquals": return actual.map { values.contains($0) } ?? false
        case "StringLike": return actual.map { a in values.contains { Self.glob($0, a) } } ?? false
        case "StringNotEquals": return actual.map { !values.contains($0) } ?? true
        case "StringNotLike": return actual.map { a in !values.contains { Self.glob($0, a) } } ?? true
        default: return false  // unknown operators never match: an Allow does not grant, a Deny does not fire
        }
    }

    static let supportedOperators: Set<String> = ["StringEquals", "StringLike", "StringNotEquals", "StringNotLike"]

    static func account(of principal: String) -> String? {
        let parts = principal.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count >= 5 ? String(parts[4]) : nil
    }

    static func principal(_ pattern: String, matches principal: String) -> Bool {
        if pattern == "*" || pattern == principal { return true }
        // An account root ARN or a bare 12-digit account id covers every principal of that account.
        if pattern.hasSuffix(":root"), let a = account(of: pattern) { return account(of: principal) == a }
        if pattern.count == 12, pattern.allSatisfy(\.isNumber) { return account(of: principal) == pattern }
        return false
    }

    /// `*` matches any run of characters, `?` one character.
    static func glob(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern), t = Array(text)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count, p[pi] == "?" || p[pi] == t[ti] {
                pi += 1; ti += 1
            } else if pi < p.count, p[pi] == "*" {
                star = pi; mark = ti; pi += 1
            } else if star >= 0 {
                pi = star + 1; mark += 1; ti = mark
            } else {
                return false
            }
        }
        while pi < p.count, p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
