/// PostgreSQL's `json` and `jsonb` input, as total functions over bytes.
///
/// - `json` keeps the text exactly as given once it parses (PostgreSQL 15's `json_in`).
/// - `jsonb` is normalised as PostgreSQL stores and prints it: object keys ordered by length, then
///   bytes, the last of duplicate keys kept, `", "` and `": "` separators, numbers as `numeric`
///   prints them, strings unescaped and re-escaped (`\u0000` refused).
///
/// Parsing is iterative (no recursion on hostile nesting), and nesting deeper than
/// `maximumDepth` is refused.
package enum PostgresJSON {
    /// Deeper documents are refused (PostgreSQL's own limit depends on `max_stack_depth`).
    package static let maximumDepth = 1_000

    /// Whether `bytes` is valid `json`.
    package static func isValidJSON(_ bytes: [UInt8]) -> Bool {
        var parser = Parser(bytes: bytes, buildTree: false)
        return parser.run()
    }

    /// `bytes` as PostgreSQL prints the `jsonb` value, or nil when `jsonb_in` refuses it.
    package static func normalizedJSONB(_ bytes: [UInt8]) -> [UInt8]? {
        var parser = Parser(bytes: bytes, buildTree: true)
        guard parser.run(), let root = parser.root else { return nil }
        return parser.arena.serialize(root)
    }

    // MARK: Tree (an arena of nodes, so that nothing is freed recursively)

    enum Node {
        case null
        case bool(Bool)
        case number(String)
        case string([UInt8])
        case array([Int])
        case object([(key: [UInt8], value: Int)])
    }

    struct Arena {
        var nodes: [Node] = []

        mutating func add(_ node: Node) -> Int {
            nodes.append(node)
            return nodes.count - 1
        }

        /// PostgreSQL's jsonb output, without recursion.
        func serialize(_ root: Int) -> [UInt8] {
            enum Step { case node(Int), text([UInt8]), key([UInt8]) }
            var out: [UInt8] = []
            var stack: [Step] = [.node(root)]
            while let step = stack.popLast() {
                switch step {
                case .text(let text): out += text
                case .key(let key): PostgresJSON.escape(key, into: &out); out += Array(": ".utf8)
                case .node(let index):
                    switch nodes[index] {
                    case .null: out += Array("null".utf8)
                    case .bool(let value): out += Array((value ? "true" : "false").utf8)
                    case .number(let text): out += Array(text.utf8)
                    case .string(let value): PostgresJSON.escape(value, into: &out)
                    case .array(let elements):
                        out.append(UInt8(ascii: "["))
                        stack.append(.text([UInt8(ascii: "]")]))
                        for (position, element) in elements.enumerated().reversed() {
                            stack.append(.node(element))
                            if position > 0 { stack.append(.text(Array(", ".utf8))) }
                        }
                    case .object(let pairs):
                        out.append(UInt8(ascii: "{"))
                        stack.append(.text([UInt8(ascii: "}")]))
                        for (position, pair) in pairs.enumerated().reversed() {
                            stack.append(.node(pair.value))
                            stack.append(.key(pair.key))
                            if position > 0 { stack.append(.text(Array(", ".utf8))) }
                        }
                    }
                }
            }
            return out
        }
    }

    /// `escape_json`.
    static func escape(_ string: [UInt8], into out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in string {
            switch byte {
            case 0x08: out += Array("\\b".utf8)
            case 0x0C: out += Array("\\f".utf8)
            case 0x0A: out += Array("\\n".utf8)
            case 0x0D: out += Array("\\r".utf8)
            case 0x09: out += Array("\\t".utf8)
            case UInt8(ascii: "\""): out += Array("\\\"".utf8)
            case UInt8(ascii: "\\"): out += Array("\\\\".utf8)
            case ..<0x20:
                let digits = Array("0123456789abcdef".utf8)
                out += Array("\\u00".utf8)
                out.append(digits[Int(byte >> 4)])
                out.append(digits[Int(byte & 0x0F)])
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// jsonb's key order: shorter first, then bytewise.
    static func keyPrecedes(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        a.count != b.count ? a.count < b.count : a.lexicographicallyPrecedes(b)
    }

    // MARK: Parser

    struct Parser {
        let bytes: [UInt8]
        let buildTree: Bool
        var index = 0
        var arena = Arena()
        var root: Int?

        init(bytes: [UInt8], buildTree: Bool) {
            self.bytes = bytes
            self.buildTree = buildTree
        }

        /// A container being filled.
        struct Frame {
            var isObject: Bool
            var elements: [Int] = []
            var pairs: [(key: [UInt8], value: Int)] = []
            var pendingKey: [UInt8]?
            var count = 0
        }

        private static func isSpace(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D }

        mutating func skipSpace() {
            while index < bytes.count && Self.isSpace(bytes[index]) { index += 1 }
        }

        /// Parses the whole input; false on any error.
        mutating func run() -> Bool {
            var stack: [Frame] = []
            skipSpace()
            // Expecting a value (at the start, after `[`, `,` or `:`).
            var expectValue = true
            while true {
                skipSpace()
                if expectValue {
                    guard index < bytes.count else { return false }
                    let byte = bytes[index]
                    if byte == UInt8(ascii: "{") || byte == UInt8(ascii: "[") {
                        guard stack.count < PostgresJSON.maximumDepth else { return false }
                        index += 1
                        stack.append(Frame(isObject: byte == UInt8(ascii: "{")))
                        skipSpace()
                        // Empty container, or (object) the first key.
                        if index < bytes.count && bytes[index] == (byte == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                            index += 1
                            guard closeContainer(&stack) else { return false }
                            expectValue = false
                            if stack.isEmpty { break }
                            continue
                        }
                        if stack[stack.count - 1].isObject {
                            guard readKey(into: &stack[stack.count - 1]) else { return false }
                        }
                        continue
                    }
                    guard let node = scalar() else { return false }
                    guard attach(node, to: &stack) else { return false }
                    expectValue = false
                    if stack.isEmpty { break }
                    continue
                }
                // After a value inside a container: `,` or the closing bracket.
                guard index < bytes.count, !stack.isEmpty else { return false }
                let byte = bytes[index]
                let isObject = stack[stack.count - 1].isObject
                if byte == UInt8(ascii: ",") {
                    index += 1
                    if isObject {
                        skipSpace()
                        guard readKey(into: &stack[stack.count - 1]) else { return false }
                    }
                    expectValue = true
                } else if byte == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                    index += 1
                    guard closeContainer(&stack) else { return false }
                    if stack.isEmpty { break }
                } else {
                    return false
                }
            }
            skipSpace()
            return index == bytes.count
        }

        /// `"key"` then `:`.
        mutating func readKey(into frame: inout Frame) -> Bool {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\""), let key = string() else { return false }
            skipSpace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { return false }
            index += 1
            frame.pendingKey = key
            return true
        }

        mutating func attach(_ node: Int?, to stack: inout [Frame]) -> Bool {
            guard !stack.isEmpty else {
                root = node
                return true
            }
            stack[stack.count - 1].count += 1
            guard buildTree, let node else { return true }
            if stack[stack.count - 1].isObject {
                guard let key = stack[stack.count - 1].pendingKey else { return false }
                stack[stack.count - 1].pairs.append((key, node))
                stack[stack.count - 1].pendingKey = nil
            } else {
                stack[stack.count - 1].elements.append(node)
            }
            return true
        }

        mutating func closeContainer(_ stack: inout [Frame]) -> Bool {
            let frame = stack.removeLast()
            var node: Int?
            if buildTree {
                if frame.isObject {
                    // Stable sort by key, later duplicates first; keep the first of each key (the last given).
                    let ordered = frame.pairs.enumerated().sorted { a, b in
                        if a.element.key == b.element.key { return a.offset > b.offset }
                        return PostgresJSON.keyPrecedes(a.element.key, b.element.key)
                    }
                    var unique: [(key: [UInt8], value: Int)] = []
                    for pair in ordered.map(\.element) where unique.last?.key != pair.key { unique.append(pair) }
                    node = arena.add(.object(unique))
                } else {
                    node = arena.add(.array(frame.elements))
                }
            }
            return attach(node, to: &stack)
        }

        /// A string, number or literal at `index`; `.some(nil)` when not building a tree.
        mutating func scalar() -> Int?? {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                guard let value = string() else { return nil }
                return buildTree ? arena.add(.string(value)) : .some(nil)
            }
            if byte == UInt8(ascii: "-") || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")) {
                guard let text = number() else { return nil }
                guard buildTree else { return .some(nil) }
                guard let numeric = SQLNumeric.parse(text) else { return nil }
                return arena.add(.number(numeric))
            }
            // A word: letters, digits, `_` (json_lex reads the whole run before comparing).
            let start = index
            while index < bytes.count {
                let b = bytes[index]
                let isWord = (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x5F || b >= 0x80
                guard isWord else { break }
                index += 1
            }
            let word = Array(bytes[start..<index])
            let node: Node
            switch word {
            case Array("true".utf8): node = .bool(true)
            case Array("false".utf8): node = .bool(false)
            case Array("null".utf8): node = .null
            default: return nil
            }
            return buildTree ? arena.add(node) : .some(nil)
        }

        /// JSON number syntax; the bytes of the number.
        mutating func number() -> [UInt8]? {
            let start = index
            func digit() -> Bool { index < bytes.count && bytes[index] >= 0x30 && bytes[index] <= 0x39 }
            if bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digit() else { return nil }
            if bytes[index] == UInt8(ascii: "0") {
                index += 1
            } else {
                while digit() { index += 1 }
            }
            if index < bytes.count && bytes[index] == UInt8(ascii: ".") {
                index += 1
                guard digit() else { return nil }
                while digit() { index += 1 }
            }
            if index < bytes.count && (bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E")) {
                index += 1
                if index < bytes.count && (bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-")) { index += 1 }
                guard digit() else { return nil }
                while digit() { index += 1 }
            }
            // Trailing identifier characters make the token invalid (`1x`, `01`).
            if index < bytes.count {
                let b = bytes[index]
                if (b >= 0x61 && b <= 0x7A) || (b >= 0x41 && b <= 0x5A) || (b >= 0x30 && b <= 0x39) || b == 0x5F || b >= 0x80 {
                    return nil
                }
            }
            return Array(bytes[start..<index])
        }

        /// A string at `index` (the opening quote); its decoded UTF-8 (empty when not building).
        mutating func string() -> [UInt8]? {
            index += 1
            var out: [UInt8] = []
            var highSurrogate: UInt32?
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    index += 1
                    return highSurrogate == nil ? out : nil
                }
                guard byte >= 0x20 else { return nil }
                if byte != UInt8(ascii: "\\") {
                    guard highSurrogate == nil else { return nil }
                    if buildTree { out.append(byte) }
                    index += 1
                    continue
                }
                guard index + 1 < bytes.count else { return nil }
                let escaped = bytes[index + 1]
                index += 2
                if escaped == UInt8(ascii: "u") {
                    guard index + 4 <= bytes.count else { return nil }
                    var code: UInt32 = 0
                    for offset in 0..<4 {
                        guard let digit = PostgresText.hexValue(bytes[index + offset]) else { return nil }
                        code = code << 4 | UInt32(digit)
                    }
                    index += 4
                    if (0xD800...0xDBFF).contains(code) {
                        guard highSurrogate == nil else { return nil }
                        highSurrogate = code
                        continue
                    }
                    if (0xDC00...0xDFFF).contains(code) {
                        guard let high = highSurrogate else { return nil }
                        code = 0x10000 + ((high - 0xD800) << 10) + (code - 0xDC00)
                        highSurrogate = nil
                    }
                    guard highSurrogate == nil else { return nil }
                    if buildTree {
                        // jsonb cannot hold U+0000 (text cannot).
                        guard code != 0, let scalar = Unicode.Scalar(code) else { return nil }
                        out += Array(String(Character(scalar)).utf8)
                    }
                    continue
                }
                guard highSurrogate == nil else { return nil }
                let decoded: UInt8
                switch escaped {
                case UInt8(ascii: "\""): decoded = UInt8(ascii: "\"")
                case UInt8(ascii: "\\"): decoded = UInt8(ascii: "\\")
                case UInt8(ascii: "/"): decoded = UInt8(ascii: "/")
                case UInt8(ascii: "b"): decoded = 0x08
                case UInt8(ascii: "f"): decoded = 0x0C
                case UInt8(ascii: "n"): decoded = 0x0A
                case UInt8(ascii: "r"): decoded = 0x0D
                case UInt8(ascii: "t"): decoded = 0x09
                default: return nil
                }
                if buildTree { out.append(decoded) }
            }
            return nil
        }
    }
}
