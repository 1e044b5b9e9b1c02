import Testing

@testable import MRKSQL

/// One statement that must be refused.
struct SQLMisuse: Sendable, CustomTestStringConvertible {
    var sql: String
    var parameterCount = 0
    var code: InterceptionError.Code
    /// The table the error must name (nil for refusals that concern no configured table).
    var table: QualifiedName? = SQLFixture.customers
    /// The encrypted column the error must name (nil when the refusal concerns the table).
    var column: String?
    /// Text the construct must mention.
    var construct: String

    var testDescription: String { sql }
}

@Suite("SQL interceptor: fail closed")
struct SQLRefusalTests {
    typealias F = SQLFixture

    static let misuses: [SQLMisuse] = [
        // Pattern matching, ordering and range comparisons.
        .init(sql: "SELECT * FROM customers WHERE ssn LIKE '123-45-%'", code: .unsupportedConstruct, column: "ssn", construct: "LIKE"),
        .init(sql: "SELECT * FROM customers WHERE ssn ILIKE $1", parameterCount: 1, code: .unsupportedConstruct, column: "ssn", construct: "ILIKE"),
        .init(sql: "SELECT * FROM customers WHERE ssn NOT SIMILAR TO '1%'", code: .unsupportedConstruct, column: "ssn", construct: "SIMILAR TO"),
        .init(sql: "SELECT * FROM customers WHERE ssn ~ '^123'", code: .unsupportedConstruct, column: "ssn", construct: "regular expression"),
        .init(sql: "SELECT * FROM customers WHERE ssn > '123-45-6789'", code: .unsupportedConstruct, column: "ssn", construct: "range comparison (>)"),
        .init(sql: "SELECT * FROM customers WHERE $1 <= ssn", parameterCount: 1, code: .unsupportedConstruct, column: "ssn", construct: "range comparison (<=)"),
        .init(sql: "SELECT * FROM customers WHERE dob BETWEEN '1990-01-01' AND '2000-01-01'", code: .unsupportedConstruct, column: "dob", construct: "BETWEEN"),
        .init(sql: "SELECT * FROM customers ORDER BY ssn", code: .unsupportedConstruct, column: "ssn", construct: "ORDER BY"),
        .init(sql: "SELECT ssn AS s FROM customers ORDER BY s DESC", code: .unsupportedConstruct, column: "ssn", construct: "ORDER BY"),
        .init(sql: "SELECT id, dob FROM customers ORDER BY 2", code: .unsupportedConstruct, column: "dob", construct: "ORDER BY"),
        .init(sql: "SELECT dob, count(*) FROM customers GROUP BY dob", code: .unsupportedConstruct, column: "dob", construct: "GROUP BY"),
        .init(sql: "SELECT DISTINCT ON (ssn) id FROM customers", code: .unsupportedConstruct, column: "ssn", construct: "DISTINCT ON"),
        .init(sql: "SELECT DISTINCT ssn FROM customers", code: .unsupportedConstruct, column: "ssn", construct: "DISTINCT"),
        .init(sql: "SELECT rank() OVER (PARTITION BY dob ORDER BY id) FROM customers", code: .unsupportedConstruct, column: "dob", construct: "PARTITION BY"),
        // Functions, operators and casts over an encrypted column.
        .init(sql: "SELECT lower(ssn) FROM customers", code: .unsupportedConstruct, column: "ssn", construct: "function lower()"),
        .init(sql: "SELECT * FROM customers WHERE lower(ssn) = 'abc'", code: .unsupportedConstruct, column: "ssn", construct: "function lower()"),
        .init(sql: "SELECT ssn || 'x' FROM customers", code: .unsupportedConstruct, column: "ssn", construct: "concatenation (||)"),
        .init(sql: "SELECT ssn::text FROM customers", code: .unsupportedConstruct, column: "ssn", construct: "cast to text"),
        .init(sql: "SELECT coalesce(notes, 'none') FROM customers", code: .unsupportedConstruct, column: "notes", construct: "function coalesce()"),
        .init(sql: "SELECT substring(ssn FROM 1 FOR 3) FROM customers", code: .unsupportedConstruct, column: "ssn", construct: "function substring()"),
        .init(sql: "SELECT max(dob) FROM customers", code: .unsupportedConstruct, column: "dob", construct: "function max()"),
        .init(sql: "SELECT count(DISTINCT ssn) FROM customers", code: .unsupportedConstruct, column: "ssn", construct: "count(DISTINCT"),
        .init(sql: "SELECT CASE ssn WHEN '123-45-6789' THEN 1 END FROM customers", code: .unsupportedConstruct, column: "ssn", construct: "CASE"),
        .init(sql: "SELECT * FROM customers WHERE ssn = ANY($1)", parameterCount: 1, code: .unsupportedConstruct, column: "ssn", construct: "= ANY"),
        .init(sql: "SELECT * FROM customers WHERE ssn IN (SELECT ssn FROM customers)", code: .unsupportedConstruct, column: "ssn", construct: "IN (subquery)"),
        // Comparisons that cannot use a blind index.
        .init(sql: "SELECT * FROM customers WHERE dob = $1", parameterCount: 1, code: .notSearchable, column: "dob", construct: "= comparison"),
        .init(sql: "SELECT * FROM customers WHERE notes IN ('a', 'b')", code: .notSearchable, column: "notes", construct: "IN"),
        .init(sql: "SELECT * FROM customers c JOIN accounts a ON a.iban = c.ssn", code: .unsupportedConstruct, table: F.accounts, column: "iban", construct: "with encrypted column"),
        .init(sql: "SELECT * FROM customers WHERE ssn = name", code: .unsupportedConstruct, column: "ssn", construct: "another column"),
        .init(sql: "SELECT * FROM customers WHERE ssn = lower($1)", parameterCount: 1, code: .unsupportedConstruct, column: "ssn", construct: "an expression"),
        .init(sql: "SELECT * FROM customers NATURAL JOIN accounts", code: .unsupportedConstruct, column: "dob", construct: "NATURAL JOIN"),
        .init(sql: "SELECT * FROM customers c JOIN customers d USING (ssn)", code: .unsupportedConstruct, column: "ssn", construct: "USING"),
        .init(sql: "SELECT * FROM (SELECT ssn AS s FROM customers) x WHERE x.s = $1", parameterCount: 1, code: .unsupportedConstruct, column: "ssn", construct: "subquery or CTE"),
        .init(sql: "SELECT ssn FROM customers UNION SELECT card FROM billing.invoices", code: .unsupportedConstruct, column: "ssn", construct: "UNION"),
        // Truncated blind index (false positives).
        .init(sql: "DELETE FROM customers WHERE email = $1", parameterCount: 1, code: .truncatedIndexWrite, column: "email", construct: "truncated blind index"),
        .init(sql: "SELECT * FROM customers WHERE email = $1 LIMIT 1", parameterCount: 1, code: .unsupportedConstruct, column: "email", construct: "truncated blind index"),
        .init(sql: "SELECT * FROM customers WHERE email <> 'a@b.example'", code: .unsupportedConstruct, column: "email", construct: "truncated blind index"),
        .init(sql: "SELECT count(*) FROM customers WHERE email = $1", parameterCount: 1, code: .unsupportedConstruct, column: "email", construct: "truncated blind index"),
        .init(sql: "SELECT * FROM customers WHERE email = $1 OR id = 2", parameterCount: 1, code: .unsupportedConstruct, column: "email", construct: "truncated blind index"),
        // Writes.
        .init(sql: "INSERT INTO customers (id, ssn) SELECT id, ssn FROM staging", code: .insertSelect, column: "ssn", construct: "INSERT … SELECT"),
        .init(sql: "INSERT INTO archive (id, ssn) SELECT id, ssn FROM customers", code: .insertSelect, column: "ssn", construct: "INSERT … SELECT"),
        .init(sql: "INSERT INTO customers (id, ssn) VALUES (1, upper($1))", parameterCount: 1, code: .unsupportedConstruct, column: "ssn", construct: "expression"),
        .init(sql: "UPDATE accounts SET iban = other_iban WHERE id = 1", code: .insertSelect, table: F.accounts, column: "iban", construct: "another column"),
        .init(sql: "UPDATE accounts SET iban = (SELECT iban FROM old WHERE id = 1)", code: .insertSelect, table: F.accounts, column: "iban", construct: "subquery"),
        .init(sql: "INSERT INTO customers (id, ssn, ssn_bidx) VALUES ($1, $2, $3)", parameterCount: 3, code: .blindIndexWrite, column: "ssn", construct: "blind index"),
        .init(sql: "UPDATE accounts SET iban_hmac = $1", parameterCount: 1, code: .blindIndexWrite, table: F.accounts, column: "iban", construct: "blind index"),
        .init(sql: "INSERT INTO customers VALUES (1, '123-45-6789')", code: .unsupportedConstruct, construct: "without a column list"),
        .init(sql: "UPDATE customers SET ssn = $1 WHERE name = $2", parameterCount: 2, code: .rowIdentityUnknown, construct: "WHERE id"),
        .init(sql: "UPDATE customers SET ssn = $1 WHERE id = $2 OR id = $3", parameterCount: 3, code: .rowIdentityUnknown, construct: "WHERE id"),
        .init(sql: "UPDATE customers SET id = $1 WHERE id = $2", parameterCount: 2, code: .rowIdentityChange, column: "id", construct: "row_identity"),
        .init(sql: "INSERT INTO customers (ssn) VALUES ($1)", parameterCount: 1, code: .rowIdentityUnknown, column: "ssn", construct: "id"),
        .init(sql: "INSERT INTO customers (id, dob) VALUES (DEFAULT, '1990-01-01')", code: .rowIdentityUnknown, column: "dob", construct: "id"),
        .init(sql: "INSERT INTO customers (id, ssn) VALUES ($1, $2) ON CONFLICT (ssn) DO NOTHING", parameterCount: 2, code: .unsupportedConstruct, column: "ssn", construct: "ON CONFLICT target"),
        .init(sql: "INSERT INTO customers (id, ssn) VALUES ($1, $2) ON CONFLICT (ssn_bidx) DO UPDATE SET ssn = EXCLUDED.ssn", parameterCount: 2, code: .rowIdentityUnknown, column: "ssn", construct: "EXCLUDED"),
        .init(sql: "INSERT INTO customers (id, ssn) VALUES (1, $1), (2, $2) ON CONFLICT (id) DO UPDATE SET ssn = $1", parameterCount: 2, code: .rowIdentityUnknown, construct: "ON CONFLICT"),
        // Statements MRKProxy does not analyze.
        .init(sql: "COPY customers FROM STDIN", code: .copy, construct: "COPY"),
        .init(sql: "COPY (SELECT ssn FROM customers) TO STDOUT", code: .copy, construct: "COPY"),
        .init(sql: "SELECT 1; SELECT * FROM customers WHERE ssn = '123-45-6789'", code: .multipleStatements, construct: "2 statements"),
        .init(sql: "SELECT * FROM customers WHERE ssn = '123-45-6789' GARBAGE (", code: .unparseable, construct: "not understood"),
        .init(sql: "SELECT * FROM customers WHERE ssn = '123-45-6789", code: .unparseable, construct: "tokenized"),
        .init(sql: "MERGE INTO customers c USING s ON c.id = s.id WHEN MATCHED THEN UPDATE SET ssn = s.ssn", code: .unsupportedConstruct, construct: "MERGE"),
        .init(sql: "PREPARE p AS SELECT * FROM customers WHERE ssn = '123-45-6789'", code: .unsupportedConstruct, construct: "PREPARE"),
        .init(sql: "ALTER TABLE customers ALTER COLUMN ssn SET DEFAULT '123-45-6789'", code: .unsupportedConstruct, column: "ssn", construct: "ALTER"),
        .init(sql: "CREATE VIEW v AS SELECT * FROM customers WHERE name = 'Alice'", code: .unsupportedConstruct, construct: "CREATE VIEW"),
        .init(sql: "UPDATE customers SET ssn = $1 WHERE CURRENT OF cur", parameterCount: 1, code: .rowIdentityUnknown, construct: "WHERE id"),
        .init(sql: "UPDATE accounts SET balance = $1 WHERE id = 1 RETURNING balance + 1", parameterCount: 1, code: .unsupportedConstruct, table: F.accounts, column: "balance", construct: "operator +"),
        .init(sql: "SELECT ssn, count(*) FROM customers GROUP BY 1", code: .unsupportedConstruct, column: "ssn", construct: "GROUP BY"),
        .init(sql: "DECLARE cur CURSOR FOR SELECT * FROM customers WHERE ssn = '123-45-6789'", code: .unsupportedConstruct, construct: "DECLARE"),
        .init(sql: "SELECT * FROM customers WHERE email = $1 FOR UPDATE", parameterCount: 1, code: .truncatedIndexWrite, column: "email", construct: "truncated blind index"),
        .init(sql: "SELECT array_agg(ssn) FROM customers", code: .unsupportedConstruct, column: "ssn", construct: "function array_agg()"),
        .init(sql: "SELECT * INTO TEMP copy FROM customers", code: .insertSelect, column: "dob", construct: "INTO"),
        // Resolution.
        .init(sql: "SELECT * FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.cid = c.id AND ssn = $1)", parameterCount: 1, code: .ambiguousColumn, column: "ssn", construct: "unqualified"),
        .init(sql: "SELECT * FROM customers c WHERE c = ROW(1, '123-45-6789')", code: .unsupportedConstruct, construct: "whole-row"),
        .init(sql: "SELECT * FROM customers AS c(a, b) WHERE b = '123-45-6789'", code: .unsupportedConstruct, construct: "column alias list"),
        .init(sql: "SELECT * FROM customers WHERE ssn = $2", parameterCount: 1, code: .parameterCount, construct: "$2"),
        .init(sql: "SELECT * FROM customers c WHERE customers.ssn = '123-45-6789'", code: .unsupportedConstruct, column: "ssn", construct: "not in FROM"),
        .init(sql: "UPDATE orders SET tags[(SELECT 1 FROM customers WHERE ssn > '123-45')] = 1", code: .unsupportedConstruct, column: "ssn", construct: "range comparison"),
        .init(sql: "SELECT '1'::varchar((SELECT 1 FROM customers WHERE ssn = '123-45'))", code: .unparseable, construct: "type modifier"),
        // Found by an adversarial review: each of these sent plaintext, or would have.
        .init(sql: "SELECT id FROM customers c WHERE EXISTS (SELECT 1 FROM orders WHERE (c).ssn = '123-45-6789')",
              code: .unsupportedConstruct, column: "dob", construct: "whole-row reference"),
        .init(sql: "SELECT id FROM customers c WHERE EXISTS (SELECT 1 FROM orders WHERE ssn(c) = $1)", parameterCount: 1,
              code: .unsupportedConstruct, column: "dob", construct: "whole-row reference"),
        .init(sql: "SELECT id FROM customers TABLESAMPLE BERNOULLI ((SELECT count(*) * 100 FROM customers WHERE ssn = '123-45-6789'))",
              code: .unparseable, construct: "statement not understood"),
        .init(sql: "SELECT id FROM customers TABLESAMPLE SYSTEM (100) REPEATABLE ((SELECT count(*) FROM customers WHERE ssn = $1))",
              parameterCount: 1, code: .unparseable, construct: "statement not understood"),
        .init(sql: "EXPLAIN (ANALYZE) MERGE INTO customers c USING (SELECT $1::int AS id) s ON c.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id, NULL, $2)",
              parameterCount: 2, code: .unsupportedConstruct, construct: "MERGE"),
        .init(sql: "EXPLAIN ANALYZE COPY customers FROM STDIN", code: .copy, construct: "COPY"),
        .init(sql: "DO $$BEGIN INSERT INTO customers (id, ssn) VALUES (1, '123-45-6789'); END$$",
              code: .unsupportedConstruct, construct: "DO block"),
        .init(sql: "SELECT query_to_xml('SELECT * FROM public.Customers WHERE ssn = ''123-45-6789''', true, false, '')",
              code: .unsupportedConstruct, construct: "query_to_xml()"),
        // A second review: more of the same, and the row-identity pairing.
        .init(sql: "SELECT a.ssn, b.id FROM customers a JOIN customers b ON b.id = a.id + 1",
              code: .unsupportedConstruct, construct: "2 instances of the table"),
        .init(sql: "SELECT c.id, s.ssn FROM customers c, LATERAL (SELECT ssn FROM customers WHERE id = c.id + 1) s",
              code: .unsupportedConstruct, construct: "2 instances of the table"),
        .init(sql: "WITH x AS (SELECT id, ssn FROM customers) SELECT a.ssn, b.id FROM x a JOIN x b ON b.id = a.id + 1",
              code: .unsupportedConstruct, construct: "instances of the table"),
        .init(sql: "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$UPDATE customers SET ssn = '123-45-6789' WHERE id = 1$$",
              code: .unsupportedConstruct, construct: "CREATE FUNCTION body"),
        .init(sql: #"SELECT "query_to_xml"('SELECT id FROM customers WHERE ssn = ''123-45-6789''', true, false, '')"#,
              code: .unsupportedConstruct, construct: "query_to_xml()"),
        .init(sql: "SELECT * FROM ts_stat('SELECT to_tsvector(name) FROM customers WHERE ssn = ''123-45-6789''')",
              code: .unsupportedConstruct, construct: "ts_stat()"),
        .init(sql: "SELECT my_runner('SELECT id FROM customers WHERE ssn = ''123-45-6789''')",
              code: .unsupportedConstruct, construct: "SQL in a string"),
        .init(sql: "UPDATE customers c SET c.ssn = '123-45-6789' WHERE c.id = 1",
              code: .unsupportedConstruct, column: "ssn", construct: "qualified column name in SET"),
        .init(sql: "INSERT INTO customers (id, customers.ssn) VALUES (3, '123-45-6789')",
              code: .unsupportedConstruct, column: "ssn", construct: "qualified column name in an INSERT column list"),
        .init(sql: "SELECT id FROM customers, json_to_record('{}') AS x(a varchar((SELECT 1 FROM customers WHERE ssn = '123-45-6789')))",
              code: .unparseable, construct: "statement not understood"),
        .init(sql: "CREATE TABLE t AS SELECT * FROM customers", code: .unsupportedConstruct, construct: "CREATE TABLE AS"),
        .init(sql: "CREATE MATERIALIZED VIEW v AS TABLE customers", code: .unsupportedConstruct, construct: "CREATE VIEW"),
        // A third review: around the fixes.
        .init(sql: "WITH RECURSIVE y AS (SELECT id, ssn FROM x), x AS (SELECT * FROM public.customers) SELECT * FROM y WHERE ssn = '078-05-1120'",
              code: .unsupportedConstruct, table: nil, construct: "later WITH RECURSIVE item"),
        .init(sql: "WITH x AS (SELECT id, ssn FROM public.customers) SELECT a.id, b.ssn FROM x a JOIN x b ON a.id <> b.id, (WITH x AS (SELECT 1 AS q) SELECT * FROM x) z",
              code: .unsupportedConstruct, construct: "instances of the table"),
        .init(sql: "DO $$BEGIN EXECUTE 'EXECUTE mrkproxy_1(9, ''123-45-6789'')'; END$$",
              code: .unsupportedConstruct, table: nil, construct: "statement prepared by MRKProxy"),
    ]

    @Test("misuse is refused with the right code, naming table, column and construct", arguments: misuses)
    func refused(misuse: SQLMisuse) throws {
        let error = try #require(F.refusal(misuse.sql, misuse.parameterCount))
        #expect(error.code == misuse.code)
        #expect(error.table == misuse.table)
        if let column = misuse.column, let table = misuse.table {
            #expect(error.column == column)
            #expect(error.description.contains("\(table).\(column)"))
        }
        #expect(error.construct.contains(misuse.construct))
        #expect(error.description.hasPrefix("refused: "))
        #expect(!error.description.contains("\n"))
    }

    @Test("refusals never carry literal values or SQL text", arguments: misuses)
    func noPlaintextInErrors(misuse: SQLMisuse) throws {
        let error = try #require(F.refusal(misuse.sql, misuse.parameterCount))
        for secret in ["123-45", "1990-01-01", "a@b.example", "Alice"] {
            #expect(!error.description.contains(secret))
            #expect(!String(reflecting: error).contains(secret))
        }
    }

    @Test("mutated statements never trap, and every plan numbers its parameters $1…$N exactly")
    func mutationFuzz() throws {
        var generator = SQLFuzzGenerator(seed: 0xC0FFEE)
        let corpus = Self.misuses.map(\.sql) + [
            "INSERT INTO customers (id, ssn, dob, name) VALUES ($1, $2, $3, $4)",
            "UPDATE customers c SET dob = '1990-01-01'::date WHERE c.name = $1 AND (c.id = 42)",
            "SELECT * FROM customers c WHERE c.email IN ($1, 'a@b.example') AND c.id > 5",
            "WITH s AS (SELECT id FROM customers WHERE ssn = $1) SELECT * FROM s",
            "INSERT INTO customers (id, ssn) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET ssn = EXCLUDED.ssn RETURNING id, ssn",
            "SELECT a.id FROM accounts a WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = a.owner AND c.ssn = $1)",
        ]
        for round in 0..<4000 {
            let source = corpus[round % corpus.count]
            guard var tokens = try? SQLTokenizer.tokenize(source), !tokens.isEmpty else { continue }
            let bytes = Array(source.utf8)
            var pieces = tokens.map { String(decoding: bytes[$0.range], as: UTF8.self) }
            for _ in 0..<(1 + Int(generator.next() % 3)) {
                let index = Int(generator.next() % UInt64(pieces.count))
                switch generator.next() % 4 {
                case 0: pieces.remove(at: index)
                case 1: pieces.insert(pieces[index], at: index)
                case 2: pieces.swapAt(index, Int(generator.next() % UInt64(pieces.count)))
                default: pieces.insert(["(", ")", ",", "ssn", "$1", "'x'", "AND", "SELECT", ";"][Int(generator.next() % 9)], at: index)
                }
                if pieces.isEmpty { break }
            }
            let sql = pieces.joined(separator: " ")
            guard let plan = try? F.interceptor.plan(sql, parameterCount: 4) else { continue }
            if plan.sql != sql {
                tokens = try SQLTokenizer.tokenize(plan.sql)
                let numbers = Set(tokens.compactMap { token -> Int? in
                    if case .parameter(let number) = token.kind { return number }
                    return nil
                })
                #expect(numbers == Set(plan.parameters.indices.map { $0 + 1 }))
            }
        }
    }

    @Test("EXECUTE of a statement MRKProxy prepared is refused, also under EXPLAIN; other EXECUTEs and strings pass")
    func executeOfLibraryStatements() throws {
        for sql in ["EXECUTE mrkproxy_1(2, '987-65-4321', NULL)", "explain analyze execute MRKPROXY_7 ($1)", "EXECUTE \"mrkproxy_3\""] {
            let error = try #require(F.refusal(sql, sql.contains("$1") ? 1 : 0), "\(sql)")
            #expect(error.code == .unsupportedConstruct)
            #expect(error.construct.contains("EXECUTE"))
            #expect(!error.description.contains("987-65"))
        }
        #expect(F.refusal("EXECUTE my_report(3)") == nil)
        for sql in ["SET standard_conforming_strings = off", "SELECT set_config('standard_conforming_strings', 'off', false)",
                    "ALTER DATABASE app SET standard_conforming_strings TO off"] {
            #expect(F.refusal(sql)?.construct.contains("standard_conforming_strings") == true, "\(sql)")
        }
        #expect(F.refusal("SHOW standard_conforming_strings") == nil)
        // Not refused: a WITH query used only in WHERE, prose mentioning a table, reading a setting.
        #expect(F.refusal("WITH ids AS (SELECT id FROM customers WHERE name = $1) SELECT id, ssn FROM customers WHERE id IN (SELECT id FROM ids)", 1) == nil)
        #expect(F.refusal("INSERT INTO notes (body) VALUES ('Customers cannot update their email')") == nil)
        #expect(F.refusal("SELECT current_setting('standard_conforming_strings')") == nil)
        #expect(F.refusal("SELECT 'see mrkproxy_keystore'") == nil)
        // The table twice is fine while no encrypted column of it is read, and a WHERE subquery is not an instance of the result.
        #expect(F.refusal("SELECT a.id FROM customers a JOIN customers b ON b.id = a.id + 1 WHERE b.ssn = $1", 1) == nil)
        #expect(F.refusal("SELECT id, ssn FROM customers WHERE id IN (SELECT id FROM customers WHERE ssn = $1)", 1) == nil)
        #expect(F.refusal("WITH x AS (SELECT id, ssn FROM customers) SELECT id, ssn FROM x") == nil)
        // A string that merely mentions a table name is data, not SQL.
        #expect(F.refusal("INSERT INTO accounts (id, owner_note) VALUES (1, 'customers are great')") == nil)
        #expect(F.refusal("DO $$BEGIN RAISE NOTICE 'hello'; END$$") == nil)
        #expect(F.refusal("DO $$BEGIN PERFORM 1 FROM customers_archive; END$$") == nil, "customers_archive is another table")
    }

    @Test("a WITH query named like a configured table does not hide the real write target")
    func cteNamedLikeTheWriteTarget() throws {
        let insert = try F.plan("WITH customers AS (SELECT 1) INSERT INTO customers (id, ssn) VALUES (1, '123-45-6789')")
        #expect(!insert.sql.contains("123-45-6789"))
        #expect(insert.parameters.contains { if case .encrypt(_, let column, _) = $0 { column == F.ssn } else { false } })
        let update = try F.plan("WITH customers AS (SELECT 1) UPDATE customers SET dob = '1990-01-01' WHERE id = 1")
        #expect(!update.sql.contains("1990-01-01"))
        #expect(update.parameters.contains { if case .encrypt(_, let column, _) = $0 { column == F.dob } else { false } })
        let delete = try F.plan("WITH customers AS (SELECT 1) DELETE FROM customers WHERE ssn = '123-45-6789'")
        #expect(!delete.sql.contains("123-45-6789"))
        #expect(delete.sql.contains("ssn_bidx"))
    }

    @Test("hostile nesting fails fast instead of overflowing the stack or backtracking exponentially", .timeLimit(.minutes(1)))
    func hostileNesting() throws {
        // 100,000 parentheses: refused at the nesting limit.
        let deep = "SELECT 1 FROM customers WHERE " + String(repeating: "(", count: 100_000) + "1" + String(repeating: ")", count: 100_000)
        #expect(F.refusal(deep)?.code == .unparseable)
        // ((SELECT ((SELECT … ) + 1)) + 1): each level used to be parsed twice, 2^40 times in all.
        var expression = "1"
        for _ in 0..<40 { expression = "((SELECT \(expression)) + 1)" }
        // (Exponential work would not finish: the test's time limit catches it.)
        #expect(F.refusal("SELECT \(expression) FROM customers")?.code == .unparseable)
        // Ordinary nesting still parses.
        var moderate = "ssn = $1"
        for _ in 0..<20 { moderate = "(\(moderate))" }
        #expect(F.refusal("SELECT id FROM customers WHERE \(moderate)", 1) == nil)
        var subqueries = "SELECT id FROM customers WHERE ssn = $1"
        for _ in 0..<10 { subqueries = "SELECT id FROM customers WHERE id IN (\(subqueries))" }
        #expect(F.refusal(subqueries, 1) == nil)
    }

    @Test("long OR and + chains are analyzed without deep recursion; runs of set operations and joins are bounded")
    func longChains() throws {
        // An ORM-style batch: 5,000 ORs, the first on the encrypted column.
        let ors = "SELECT id, ssn FROM customers WHERE ssn = $1 OR " + (2...5_000).map { "id = $\($0)" }.joined(separator: " OR ")
        let plan = try F.plan(ors, 5_000)
        #expect(plan.sql.hasPrefix("SELECT id, ssn FROM public.customers WHERE customers.ssn_bidx = $1 OR id = $2 OR "))
        #expect(plan.parameters.count == 5_000)
        let sum = "SELECT id FROM customers WHERE id = " + Array(repeating: "1", count: 20_000).joined(separator: " + ")
        #expect(F.refusal(sum) == nil)
        // Runs of set operations and joins build trees as deep as the run: bounded, refused past it.
        let unions = Array(repeating: "SELECT id FROM customers", count: 150).joined(separator: " UNION ALL ")
        #expect(F.refusal(unions) == nil)
        #expect(F.refusal(Array(repeating: "SELECT id FROM customers", count: 3_000).joined(separator: " UNION ALL "))?.code == .unparseable)
        let joins = "SELECT c.id FROM customers c " + (1...3_000).map { "JOIN orders o\($0) ON o\($0).id = c.id" }.joined(separator: " ")
        #expect(F.refusal(joins)?.code == .unparseable)
    }

    @Test("there are at least 30 distinct refused statements")
    func count() {
        #expect(Set(Self.misuses.map(\.sql)).count >= 30)
    }

    @Test("descriptions name the table alone when no column is concerned")
    func tableOnlyDescription() throws {
        let error = try #require(F.refusal("COPY customers TO STDOUT"))
        #expect(error.description
            == "refused: COPY mentioning configured table public.customers (COPY would move values without encryption; use the library's bulk insert)")
        #expect(InterceptionError(.unparseable, construct: "x", reason: "y").description == "refused: x (y)")
    }

    @Test("the description reads as one clear line")
    func descriptionFormat() throws {
        let error = try #require(F.refusal("SELECT * FROM customers WHERE ssn LIKE $1", 1))
        #expect(error.description
            == "refused: LIKE on encrypted column public.customers.ssn (encrypted columns can only be selected, written "
            + "with a value, counted, tested with IS [NOT] NULL or compared with = / <> / IN against a parameter or literal)")
    }
}
