import Testing

@testable import MRKSQL

@Suite("SQL tokenizer")
struct SQLTokenizerTests {
    private func tokens(_ sql: String) throws -> [SQLToken] { try SQLTokenizer.tokenize(sql) }

    private func texts(_ sql: String) throws -> [String] { try tokens(sql).map(\.text) }

    @Test("unquoted identifiers fold to lower case, quoted ones keep case")
    func identifierFolding() throws {
        let result = try tokens(#"SELECT Foo, "Bar", "with ""quote""", ÄbC FROM T"#)
        #expect(result.map(\.text) == ["select", "foo", ",", "Bar", ",", #"with "quote""#, ",", "Äbc", "from", "t"])
        #expect(result[3].kind == .quotedIdentifier)
        #expect(result[1].kind == .identifier)
    }

    @Test("identifiers longer than 63 bytes are truncated like PostgreSQL does")
    func identifierTruncation() throws {
        let long = String(repeating: "a", count: 70)
        #expect(try texts(long) == [String(repeating: "a", count: 63)])
    }

    @Test("U&\"…\" identifiers and U&'…' strings decode escapes, with UESCAPE")
    func unicodeEscapes() throws {
        #expect(try texts(#"U&"d\0061t\+000061""#) == ["data"])
        let result = try tokens(#"U&'d!0061t!+000061' UESCAPE '!' x"#)
        #expect(result.count == 2)
        #expect(result[0].text == "data")
        #expect(result[0].kind == .string(.unicode))
        #expect(result[1].text == "x")
    }

    @Test(
        "string constants decode",
        arguments: [
            ("'it''s'", "it's"),
            (#"E'a\nb\t\'c\\'"#, "a\nb\t'c\\"),
            (#"E'\x41\101\u00e9'"#, "AAé"),
            (#"e'\U0001F600'"#, "😀"),
            ("$$dollar 'quoted'$$", "dollar 'quoted'"),
            ("$tag$ has $$ inside $tag$", " has $$ inside "),
            ("'foo'\n  'bar'", "foobar"),
            ("N'national'", "national"),
            (#"'back\slash'"#, #"back\slash"#),
        ])
    func strings(sql: String, value: String) throws {
        let result = try tokens(sql)
        #expect(result.count == 1)
        #expect(result.first?.text == value)
        #expect(result.first?.isString == true)
    }

    @Test("two string constants on one line are not joined")
    func noContinuationWithoutNewline() throws {
        #expect(try texts("'foo' 'bar'") == ["foo", "bar"])
    }

    @Test("numbers, parameters, casts and punctuation")
    func numbersAndParameters() throws {
        let result = try tokens("SELECT 42, 1.5e-3, .5, 1_000, 0x1F, $1::int8, a[1:2], t.c")
        #expect(result.map(\.text) == [
            "select", "42", ",", "1.5e-3", ",", ".5", ",", "1000", ",", "0x1F", ",", "$1", "::", "int8", ",", "a", "[",
            "1", ":", "2", "]", ",", "t", ".", "c",
        ])
        #expect(result[11].kind == .parameter(1))
    }

    @Test(
        "operators follow PostgreSQL's rules for a trailing + or -",
        arguments: [
            ("a=-1", ["a", "=", "-", "1"]),
            ("a<>b", ["a", "<>", "b"]),
            ("a!=b", ["a", "!=", "b"]),
            ("j->>'k'", ["j", "->>", "k"]),
            ("a @- b", ["a", "@-", "b"]),
            ("a||b", ["a", "||", "b"]),
            ("x:=1", ["x", ":=", "1"]),
            ("a=--comment\n1", ["a", "=", "1"]),
        ])
    func operators(sql: String, expected: [String]) throws {
        #expect(try texts(sql) == expected)
    }

    @Test("comments are skipped, block comments nest")
    func comments() throws {
        #expect(try texts("SELECT /* a /* nested */ still comment */ 1 -- trailing\n, 2") == ["select", "1", ",", "2"])
    }

    @Test("token ranges cover the source bytes exactly")
    func ranges() throws {
        let sql = "SELECT E'x', \"Q\"  FROM t"
        let result = try tokens(sql)
        let bytes = Array(sql.utf8)
        #expect(result.map { String(decoding: bytes[$0.range], as: UTF8.self) } == ["SELECT", "E'x'", ",", "\"Q\"", "FROM", "t"])
    }

    @Test(
        "malformed input fails without trapping",
        arguments: ["'unterminated", "\"unterminated", "/* open", "$tag$ no end", #"E'\0'"#, #"U&'\zzzz'"#, "$99999999999999999999999"])
    func malformed(sql: String) {
        #expect(throws: SQLTokenizer.Failure.self) { try SQLTokenizer.tokenize(sql) }
    }

    @Test("a lone $ is not a dollar quote; $ inside identifiers belongs to them")
    func dollarEdges() throws {
        let result = try tokens("SELECT a$b, $x + 1")
        #expect(result.map(\.text) == ["select", "a$b", ",", "$", "x", "+", "1"])
        #expect(result[3].kind == .other)
    }

    @Test("surrogate pairs in E'…' combine; lone surrogates are rejected")
    func surrogates() throws {
        #expect(try texts(#"E'\uD83D\uDE00'"#) == ["😀"])
        #expect(throws: SQLTokenizer.Failure.self) { try SQLTokenizer.tokenize(#"E'\uD83D'"#) }
    }

    @Test("bit-string constants keep their digits and radix")
    func bitStrings() throws {
        let result = try tokens("B'1010' X'1F'")
        #expect(result.map(\.text) == ["b1010", "x1F"])
        #expect(result.allSatisfy { $0.kind == .string(.bit) })
    }

    @Test("UESCAPE may be separated by comments and whitespace; an invalid escape character fails")
    func uescapeTrivia() throws {
        #expect(try texts("U&'a#0062c' /* c */ UESCAPE\n '#'") == ["abc"])
        #expect(throws: SQLTokenizer.Failure.self) { try SQLTokenizer.tokenize("U&'x' UESCAPE '+'") }
    }

    @Test("keywords are unquoted identifiers; a quoted keyword is a name")
    func keywords() throws {
        let result = try tokens(#"SELECT "select" FROM t"#)
        #expect(result[0].isKeyword("select"))
        #expect(!result[1].isKeyword("select"))
        #expect(result[1].isName)
    }

    @Test("identifier quoting for generated SQL")
    func quoting() {
        #expect(SQLIdentifier.quoted("ssn_bidx") == "ssn_bidx")
        #expect(SQLIdentifier.quoted("SSN") == #""SSN""#)
        #expect(SQLIdentifier.quoted("user") == #""user""#)
        #expect(SQLIdentifier.quoted("1st") == #""1st""#)
        #expect(SQLIdentifier.quoted(#"a"b"#) == #""a""b""#)
        #expect(QualifiedName(schema: "Sales", name: "orders").description == #""Sales".orders"#)
    }

    @Test("random bytes and random SQL fragments never trap the tokenizer or the interceptor")
    func fuzz() {
        var generator = SQLFuzzGenerator(seed: 0x5EED_1234)
        let fragments = [
            "SELECT", "INSERT", "INTO", "customers", "ssn", "=", "'", "\"", "$1", "$$", "$a$", "E'", "U&'", "/*", "*/",
            "--", "\n", "(", ")", ",", ";", "::", "..", "\\", "'x'", "IN", "LIKE", "WHERE", "FROM", "VALUES", "SET",
            "UPDATE", "public.", "AS", "c", "JOIN", "ON", "1e", "0x", "-", "+", "ü", "\u{0}", " ",
        ]
        for round in 0..<3000 {
            var text = ""
            if round % 2 == 0 {
                let bytes = (0..<Int(generator.next() % 64)).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
                text = String(decoding: bytes, as: UTF8.self)
            } else {
                for _ in 0..<Int(generator.next() % 24) {
                    text += fragments[Int(generator.next() % UInt64(fragments.count))]
                    if generator.next() % 3 == 0 { text += " " }
                }
            }
            _ = try? SQLTokenizer.tokenize(text)
            _ = try? SQLFixture.interceptor.plan(text, parameterCount: Int(generator.next() % 3))
        }
    }
}

/// A small deterministic generator for fuzzing.
struct SQLFuzzGenerator: RandomNumberGenerator {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var value = state
        value = (value ^ (value >> 30)) &* 0xBF58_476D_1CE4_E5B9
        value = (value ^ (value >> 27)) &* 0x94D0_49BB_1331_11EB
        return value ^ (value >> 31)
    }
}

@Suite struct SQLScriptTests {
    @Test("scripts split on top-level semicolons only, as psql does")
    func splitting() throws {
        let script = """
            SELECT 'a;b', $$c;d$$, "e;f" -- g;h
            ;
            CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO u VALUES (1); INSERT INTO v VALUES (2));
            CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN true THEN 1 ELSE 2 END; SELECT 3; END;
            /* i;j */ SELECT 4
            """
        let statements = try SQLScript.statements(script)
        #expect(statements.count == 4, "\(statements)")
        #expect(statements[1].hasSuffix("INSERT INTO v VALUES (2))"))
        #expect(statements[2].hasSuffix("SELECT 3; END"))
        #expect(statements[3] == "SELECT 4", "comments are not part of a statement")
        #expect(SQLScript.isComplete("SELECT 1;"))
        #expect(!SQLScript.isComplete("CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO u VALUES (1);"))
        #expect(!SQLScript.isComplete("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1;"))
        #expect(SQLScript.isComplete("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;"))
        #expect(throws: SQLScript.SyntaxError.self) { try SQLScript.statements("SELECT 'unterminated") }
    }
}
