import Foundation
import Testing

@testable import MRKSQL

@Suite("SQL interceptor: rewrites and parameter plans")
struct SQLInterceptorTests {
    typealias F = SQLFixture

    private static func blind(_ source: ValueSource, _ column: EncryptedColumn = F.ssn) -> PlannedParameter {
        .blindIndex(source, column: column)
    }

    private static func pass(_ index: Int) -> PlannedParameter { .passthrough(.parameter(index)) }

    // MARK: - Searchable equality

    @Test("col = $1 becomes <qualifier>.<blind index> = $1")
    func equalityParameter() throws {
        let plan = try F.plan("SELECT * FROM customers WHERE ssn = $1", 1)
        #expect(plan.sql == "SELECT * FROM public.customers WHERE customers.ssn_bidx = $1")
        #expect(plan.parameters == [Self.blind(.parameter(0))])
        #expect(plan.kind == .select)
        #expect(plan.touchesEncryptedColumns)
        #expect(!plan.isWrite)
        #expect(plan.postFilters.isEmpty && plan.hiddenTrailingColumns == 0)
    }

    @Test("a literal compared with a searchable column is lifted into a blind index parameter")
    func equalityLiteral() throws {
        let plan = try F.plan("SELECT id FROM customers c WHERE c.ssn = '123-45-6789'")
        #expect(plan.sql == "SELECT id FROM public.customers c WHERE c.ssn_bidx = $1")
        #expect(plan.parameters == [Self.blind(F.literal("123-45-6789"))])
        #expect(!plan.sql.contains("123-45-6789"))
    }

    @Test("$1 = col, parentheses, casts and NULL on the value side")
    func equalityVariants() throws {
        #expect(try F.plan("SELECT id FROM customers WHERE $1 = ssn", 1).sql == "SELECT id FROM public.customers WHERE $1 = customers.ssn_bidx")
        #expect(try F.plan("SELECT id FROM customers WHERE (ssn = ($1::text))", 1).sql
            == "SELECT id FROM public.customers WHERE (customers.ssn_bidx = $1)")
        let null = try F.plan("SELECT id FROM customers WHERE ssn = NULL::text")
        #expect(null.sql == "SELECT id FROM public.customers WHERE customers.ssn_bidx = NULL")
        #expect(null.parameters.isEmpty)
    }

    @Test("IN lists mixing parameters and literals; other parameters renumbered after them")
    func inList() throws {
        let plan = try F.plan("SELECT id FROM customers WHERE ssn IN ($1, '111-11-1111', $2) AND name = $3", 3)
        #expect(plan.sql == "SELECT id FROM public.customers WHERE customers.ssn_bidx IN ($1, $2, $3) AND name = $4")
        #expect(plan.parameters == [
            Self.blind(.parameter(0)), Self.blind(F.literal("111-11-1111")), Self.blind(.parameter(1)), Self.pass(2),
        ])
        #expect(!plan.sql.contains("111-11-1111"))
    }

    @Test("<>, != and NOT IN use the blind index too; a custom index column name is honoured")
    func inequality() throws {
        let delete = try F.plan("DELETE FROM accounts WHERE iban <> $1", 1)
        #expect(delete.sql == "DELETE FROM public.accounts WHERE accounts.iban_hmac <> $1")
        #expect(delete.parameters == [Self.blind(.parameter(0), F.iban)])
        #expect(delete.kind == .delete && delete.isWrite)
        #expect(try F.plan("SELECT 1 FROM accounts a WHERE a.iban != 'DE00' ").sql == "SELECT 1 FROM public.accounts a WHERE a.iban_hmac != $1 ")
        #expect(try F.plan("SELECT 1 FROM accounts WHERE iban NOT IN ($1)", 1).sql
            == "SELECT 1 FROM public.accounts WHERE accounts.iban_hmac NOT IN ($1)")
    }

    @Test("IS [NOT] NULL on encrypted columns is kept as written")
    func isNull() throws {
        let sql = "SELECT id, ssn IS NULL AS missing FROM customers WHERE ssn IS NULL AND dob IS NOT NULL AND notes NOTNULL"
        let plan = try F.plan(sql)
        // Only the table name changes: it is sent schema-qualified.
        #expect(plan.sql == sql.replacingOccurrences(of: "FROM customers", with: "FROM public.customers"))
        #expect(plan.touchesEncryptedColumns)
    }

    @Test("a caller parameter used in several roles becomes several parameters")
    func parameterReuse() throws {
        let plan = try F.plan("SELECT * FROM customers WHERE ssn = $1 OR name = $1 OR ssn = $1", 1)
        #expect(plan.sql == "SELECT * FROM public.customers WHERE customers.ssn_bidx = $1 OR name = $2 OR customers.ssn_bidx = $1")
        #expect(plan.parameters == [Self.blind(.parameter(0)), Self.pass(0)])
        let reordered = try F.plan("SELECT $2::int, ssn FROM customers WHERE ssn = $1", 2)
        #expect(reordered.sql == "SELECT $1::int, ssn FROM public.customers WHERE customers.ssn_bidx = $2")
        #expect(reordered.parameters == [Self.pass(1), Self.blind(.parameter(0))])
    }

    @Test("a rewrite never glues a parameter to the next word")
    func spacing() throws {
        #expect(try F.plan("SELECT 1 FROM customers WHERE ssn='x'AND id=1").sql
            == "SELECT 1 FROM public.customers WHERE customers.ssn_bidx=$1 AND id=1")
    }

    // MARK: - INSERT

    @Test("INSERT VALUES: encrypted parameters bound to the row identity, blind index column added")
    func insertParameters() throws {
        let plan = try F.plan("INSERT INTO customers (id, ssn, dob, name) VALUES ($1, $2, $3, $4)", 4)
        #expect(plan.sql == "INSERT INTO public.customers (id, ssn, dob, name, ssn_bidx) VALUES ($1, $2, $3, $4, $5)")
        #expect(plan.parameters == [
            Self.pass(0),
            .encrypt(.parameter(1), column: F.ssn, rowIdentity: .parameter(0)),
            .encrypt(.parameter(2), column: F.dob, rowIdentity: .parameter(0)),
            Self.pass(3),
            Self.blind(.parameter(1)),
        ])
        #expect(plan.kind == .insert && plan.isWrite && plan.touchesEncryptedColumns)
    }

    @Test("INSERT literals are lifted: the plaintext never stays in the SQL text")
    func insertLiterals() throws {
        let sql = "INSERT INTO customers (id, ssn, dob, notes) VALUES (7, '123-45-6789', DATE '1990-01-01', E'secret\\nnote')"
        let plan = try F.plan(sql)
        #expect(plan.sql == "INSERT INTO public.customers (id, ssn, dob, notes, ssn_bidx) VALUES (7, $1, $2, $3, $4)")
        let identity = F.literal("7", .number)
        #expect(plan.parameters == [
            .encrypt(F.literal("123-45-6789"), column: F.ssn, rowIdentity: identity),
            .encrypt(F.literal("1990-01-01", .typed("date")), column: F.dob, rowIdentity: identity),
            .encrypt(F.literal("secret\nnote"), column: F.notes, rowIdentity: identity),
            Self.blind(F.literal("123-45-6789")),
        ])
        for secret in ["123-45-6789", "1990-01-01", "secret"] { #expect(!plan.sql.contains(secret)) }
    }

    @Test("multi-row INSERT with NULL, DEFAULT, signed numbers and casts")
    func insertManyRows() throws {
        let plan = try F.plan(
            "INSERT INTO accounts (id, iban, balance) VALUES (1, $1, 10.5), (2, NULL, -5), (3, DEFAULT, $2::numeric)", 2)
        #expect(plan.sql
            == "INSERT INTO public.accounts (id, iban, balance, iban_hmac) VALUES (1, $1, $2, $3), (2, NULL, $4, NULL), (3, DEFAULT, $5, DEFAULT)")
        #expect(plan.parameters == [
            .encrypt(.parameter(0), column: F.iban, rowIdentity: nil),
            .encrypt(F.literal("10.5", .number), column: F.balance, rowIdentity: nil),
            Self.blind(.parameter(0), F.iban),
            .encrypt(F.literal("-5", .number), column: F.balance, rowIdentity: nil),
            .encrypt(.parameter(1), column: F.balance, rowIdentity: nil),
        ])
    }

    @Test(
        "literal forms lifted from encrypted positions",
        arguments: [
            ("42", LiftedLiteral(text: "42", kind: .number)),
            ("-5", LiftedLiteral(text: "-5", kind: .number)),
            ("1.5", LiftedLiteral(text: "1.5", kind: .number)),
            ("0x1F", LiftedLiteral(text: "31", kind: .number)),
            ("TRUE", LiftedLiteral(text: "true", kind: .boolean)),
            ("'12.50'", LiftedLiteral(text: "12.50", kind: .string)),
            ("'1e3'::numeric", LiftedLiteral(text: "1e3", kind: .typed("numeric"))),
            ("CAST('7' AS decimal)", LiftedLiteral(text: "7", kind: .typed("numeric"))),
            ("$$9.99$$", LiftedLiteral(text: "9.99", kind: .string)),
            ("U&'\\0031'", LiftedLiteral(text: "1", kind: .string)),
        ])
    func literalForms(literal: String, expected: LiftedLiteral) throws {
        let plan = try F.plan("UPDATE accounts SET balance = \(literal) WHERE id = 1")
        #expect(plan.sql == "UPDATE public.accounts SET balance = $1 WHERE id = 1")
        #expect(plan.parameters == [.encrypt(.literal(expected), column: F.balance, rowIdentity: nil)])
    }

    @Test("ON CONFLICT on the row identity: EXCLUDED.col allowed, its blind index follows; RETURNING kept")
    func onConflictExcluded() throws {
        let plan = try F.plan(
            "INSERT INTO customers (id, ssn) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET ssn = EXCLUDED.ssn RETURNING id, ssn", 2)
        #expect(plan.sql == "INSERT INTO public.customers (id, ssn, ssn_bidx) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE "
            + "SET ssn = EXCLUDED.ssn, ssn_bidx = excluded.ssn_bidx RETURNING id, ssn")
        #expect(plan.parameters == [
            Self.pass(0), .encrypt(.parameter(1), column: F.ssn, rowIdentity: .parameter(0)), Self.blind(.parameter(1)),
        ])
    }

    @Test("ON CONFLICT DO UPDATE SET col = $n encrypts again; the same blind index parameter is reused")
    func onConflictValue() throws {
        let plan = try F.plan("INSERT INTO accounts (id, iban) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET iban = $2", 2)
        #expect(plan.sql == "INSERT INTO public.accounts (id, iban, iban_hmac) VALUES ($1, $2, $3) ON CONFLICT (id) DO UPDATE "
            + "SET iban = $4, iban_hmac = $3")
        #expect(plan.parameters == [
            Self.pass(0), .encrypt(.parameter(1), column: F.iban, rowIdentity: nil), Self.blind(.parameter(1), F.iban),
            .encrypt(.parameter(1), column: F.iban, rowIdentity: nil),
        ])
        let bound = try F.plan(
            "INSERT INTO customers AS c (id, dob) VALUES (5, $1) ON CONFLICT (id) DO UPDATE SET dob = $1 WHERE c.dob IS NULL", 1)
        #expect(bound.sql == "INSERT INTO public.customers AS c (id, dob) VALUES (5, $1) ON CONFLICT (id) DO UPDATE SET dob = $2 WHERE c.dob IS NULL")
        #expect(bound.parameters == [
            .encrypt(.parameter(0), column: F.dob, rowIdentity: F.literal("5", .number)),
            .encrypt(.parameter(0), column: F.dob, rowIdentity: F.literal("5", .number)),
        ])
    }

    @Test("INSERT … SELECT and DEFAULT VALUES that write no encrypted column pass")
    func insertSelectWithoutEncryptedTargets() throws {
        let sql = "INSERT INTO customers (id, name) SELECT id, name FROM staging WHERE ok"
        #expect(try F.plan(sql).sql == sql)
        #expect(try F.plan("INSERT INTO customers DEFAULT VALUES RETURNING id").sql == "INSERT INTO customers DEFAULT VALUES RETURNING id")
    }

    // MARK: - UPDATE and DELETE

    @Test("UPDATE SET encrypted = $n takes the row identity from WHERE and writes the blind index")
    func updateWithRowIdentity() throws {
        let plan = try F.plan("UPDATE customers SET ssn = $1, name = $2 WHERE id = $3", 3)
        #expect(plan.sql == "UPDATE public.customers SET ssn = $1, ssn_bidx = $2, name = $3 WHERE id = $4")
        #expect(plan.parameters == [
            .encrypt(.parameter(0), column: F.ssn, rowIdentity: .parameter(2)), Self.blind(.parameter(0)), Self.pass(1),
            Self.pass(2),
        ])
        #expect(plan.kind == .update && plan.isWrite)
    }

    @Test("UPDATE with an alias, a literal row identity ANDed with other conditions, and a typed literal")
    func updateAliasLiteral() throws {
        let plan = try F.plan("UPDATE customers c SET dob = '1990-01-01'::date WHERE c.name = $1 AND (c.id = 42)", 1)
        #expect(plan.sql == "UPDATE public.customers c SET dob = $1 WHERE c.name = $2 AND (c.id = 42)")
        #expect(plan.parameters == [
            .encrypt(F.literal("1990-01-01", .typed("date")), column: F.dob, rowIdentity: F.literal("42", .number)),
            Self.pass(0),
        ])
    }

    @Test("UPDATE SET NULL / DEFAULT also resets the blind index; WHERE on a blind index")
    func updateNullAndSearch() throws {
        #expect(try F.plan("UPDATE accounts SET iban = NULL WHERE id = 1").sql
            == "UPDATE public.accounts SET iban = NULL, iban_hmac = NULL WHERE id = 1")
        #expect(try F.plan("UPDATE accounts SET iban = DEFAULT").sql == "UPDATE public.accounts SET iban = DEFAULT, iban_hmac = DEFAULT")
        let plan = try F.plan("UPDATE accounts SET balance = $1 WHERE iban = $2 RETURNING id, balance", 2)
        #expect(plan.sql == "UPDATE public.accounts SET balance = $1 WHERE accounts.iban_hmac = $2 RETURNING id, balance")
        #expect(plan.parameters == [.encrypt(.parameter(0), column: F.balance, rowIdentity: nil), Self.blind(.parameter(1), F.iban)])
    }

    @Test("UPDATE … FROM and DELETE … USING resolve columns across the joined tables")
    func updateFromDeleteUsing() throws {
        #expect(try F.plan("UPDATE accounts a SET balance = $1 FROM customers c WHERE c.id = a.owner AND c.ssn = $2", 2).sql
            == "UPDATE public.accounts a SET balance = $1 FROM public.customers c WHERE c.id = a.owner AND c.ssn_bidx = $2")
        let delete = try F.plan("DELETE FROM accounts a USING customers c WHERE a.owner = c.id AND c.ssn = $1 RETURNING a.iban", 1)
        #expect(delete.sql == "DELETE FROM public.accounts a USING public.customers c WHERE a.owner = c.id AND c.ssn_bidx = $1 RETURNING a.iban")
    }

    // MARK: - Resolution: aliases, schemas, quoting, joins, subqueries, CTEs

    @Test("joins with and without AS, qualified and unqualified columns")
    func joins() throws {
        #expect(try F.plan("SELECT c.id, a.balance FROM customers AS c JOIN accounts a ON a.owner = c.id WHERE a.iban = $1 AND c.ssn = $2", 2).sql
            == "SELECT c.id, a.balance FROM public.customers AS c JOIN public.accounts a ON a.owner = c.id WHERE a.iban_hmac = $1 AND c.ssn_bidx = $2")
        #expect(try F.plan("SELECT id FROM customers c LEFT OUTER JOIN orders o ON o.customer_id = c.id WHERE ssn = $1", 1).sql
            == "SELECT id FROM public.customers c LEFT OUTER JOIN orders o ON o.customer_id = c.id WHERE c.ssn_bidx = $1")
        #expect(try F.plan("SELECT 1 FROM orders o JOIN customers c ON c.id = o.cid AND c.ssn = $1", 1).sql
            == "SELECT 1 FROM orders o JOIN public.customers c ON c.id = o.cid AND c.ssn_bidx = $1")
    }

    @Test("schema-qualified names, three-part column references and search_path")
    func schemas() throws {
        #expect(try F.plan("SELECT * FROM billing.invoices WHERE card = $1", 1).sql
            == "SELECT * FROM billing.invoices WHERE invoices.card_bidx = $1")
        #expect(try F.plan("SELECT public.customers.ssn FROM public.customers WHERE public.customers.ssn = $1", 1).sql
            == "SELECT public.customers.ssn FROM public.customers WHERE public.customers.ssn_bidx = $1")
        // `invoices` alone is not on the configured search_path, but the session's search_path
        // could resolve it to billing.invoices: refused rather than sent with its literal.
        let other = "SELECT * FROM invoices WHERE card = 'x'"
        let refusal = F.refusal(other)
        #expect(refusal?.table == F.invoices)
        #expect(refusal?.construct.contains("outside the configured search path") == true)
        let billingFirst = SQLInterceptor(schema: EncryptedSchema(tables: F.schema.tables, searchPath: ["billing", "public"]))
        #expect(try billingFirst.plan(other, parameterCount: 0).sql == "SELECT * FROM billing.invoices WHERE invoices.card_bidx = $1")
    }

    @Test("identifier folding and quoting as PostgreSQL does")
    func identifiers() throws {
        #expect(try F.plan("SELECT * FROM CUSTOMERS WHERE SSN = $1", 1).sql == "SELECT * FROM public.customers WHERE customers.ssn_bidx = $1")
        #expect(try F.plan(#"SELECT "ssn" FROM "customers" WHERE "ssn" = $1"#, 1).sql
            == #"SELECT "ssn" FROM public.customers WHERE customers.ssn_bidx = $1"#)
        // "Customers" and "SSN" (quoted) are other names.
        let quoted = #"SELECT * FROM "Customers" WHERE "SSN" = 'x'"#
        #expect(try F.plan(quoted).sql == quoted)
        #expect(try F.plan(#"SELECT * FROM customers "Weird Alias" WHERE "Weird Alias".ssn = $1"#, 1).sql
            == #"SELECT * FROM public.customers "Weird Alias" WHERE "Weird Alias".ssn_bidx = $1"#)
    }

    @Test("subqueries in WHERE (IN, EXISTS, scalar), in FROM and LATERAL")
    func subqueries() throws {
        #expect(try F.plan("SELECT * FROM accounts WHERE owner IN (SELECT id FROM customers WHERE ssn = $1)", 1).sql
            == "SELECT * FROM public.accounts WHERE owner IN (SELECT id FROM public.customers WHERE customers.ssn_bidx = $1)")
        #expect(try F.plan("SELECT a.id FROM accounts a WHERE EXISTS (SELECT 1 FROM customers c WHERE c.id = a.owner AND c.ssn = $1)", 1).sql
            == "SELECT a.id FROM public.accounts a WHERE EXISTS (SELECT 1 FROM public.customers c WHERE c.id = a.owner AND c.ssn_bidx = $1)")
        #expect(try F.plan("SELECT (SELECT count(*) FROM customers WHERE ssn = 'a') AS n", 0).sql
            == "SELECT (SELECT count(*) FROM public.customers WHERE customers.ssn_bidx = $1) AS n")
        let derived = "SELECT x.ssn, x.id FROM (SELECT id, ssn FROM customers WHERE dob IS NOT NULL) x"
        let plan = try F.plan(derived)
        #expect(plan.sql == derived.replacingOccurrences(of: "FROM customers", with: "FROM public.customers"))
        #expect(plan.touchesEncryptedColumns)
        #expect(try F.plan("SELECT * FROM customers c, LATERAL (SELECT count(*) FROM accounts a WHERE a.owner = c.id AND a.iban = $1) x", 1).sql
            == "SELECT * FROM public.customers c, LATERAL (SELECT count(*) FROM public.accounts a WHERE a.owner = c.id AND a.iban_hmac = $1) x")
    }

    @Test("CTEs, including data-modifying CTEs, and set operations over plain columns")
    func ctesAndSetOperations() throws {
        #expect(try F.plan("WITH s AS (SELECT id FROM customers WHERE ssn = $1) SELECT * FROM s", 1).sql
            == "WITH s AS (SELECT id FROM public.customers WHERE customers.ssn_bidx = $1) SELECT * FROM s")
        let moved = try F.plan(
            "WITH moved AS (DELETE FROM customers WHERE ssn = $1 RETURNING id) INSERT INTO archive (id) SELECT id FROM moved", 1)
        #expect(moved.sql == "WITH moved AS (DELETE FROM public.customers WHERE customers.ssn_bidx = $1 RETURNING id) INSERT INTO archive (id) SELECT id FROM moved")
        #expect(moved.kind == .insert && moved.isWrite)
        let inserted = try F.plan(
            "WITH i AS (INSERT INTO accounts (id, iban) VALUES ($1, $2) RETURNING id, iban) SELECT i.id, i.iban FROM i", 2)
        #expect(inserted.sql == "WITH i AS (INSERT INTO public.accounts (id, iban, iban_hmac) VALUES ($1, $2, $3) RETURNING id, iban) SELECT i.id, i.iban FROM i")
        #expect(inserted.kind == .select && inserted.isWrite)
        #expect(try F.plan("SELECT id FROM customers WHERE ssn = $1 UNION ALL SELECT id FROM accounts WHERE iban = $2", 2).sql
            == "SELECT id FROM public.customers WHERE customers.ssn_bidx = $1 UNION ALL SELECT id FROM public.accounts WHERE accounts.iban_hmac = $2")
    }

    @Test("star, t.*, count(col), GROUP BY / ORDER BY plain columns, FOR UPDATE")
    func selectShapes() throws {
        let star = try F.plan("SELECT c.* FROM customers c WHERE c.ssn = $1 ORDER BY c.id LIMIT 10", 1)
        #expect(star.sql == "SELECT c.* FROM public.customers c WHERE c.ssn_bidx = $1 ORDER BY c.id LIMIT 10")
        let grouped = "SELECT name, count(ssn), count(*) FROM customers GROUP BY name HAVING count(*) > 1 ORDER BY 2 DESC"
        #expect(try F.plan(grouped).sql == grouped.replacingOccurrences(of: "FROM customers", with: "FROM public.customers"))
        let locked = try F.plan("SELECT * FROM customers WHERE ssn = $1 FOR UPDATE", 1)
        #expect(locked.sql == "SELECT * FROM public.customers WHERE customers.ssn_bidx = $1 FOR UPDATE")
        #expect(locked.kind == .select && locked.isWrite)
    }

    // MARK: - Truncated blind indexes

    @Test("a truncated blind index adds a hidden trailing column and a post-filter")
    func postFilter() throws {
        let plan = try F.plan("SELECT id, name FROM customers WHERE email = $1 ORDER BY id", 1)
        #expect(plan.sql == "SELECT id, name, customers.email FROM public.customers WHERE customers.email_bidx = $1 ORDER BY id")
        #expect(plan.parameters == [Self.blind(.parameter(0), F.email)])
        #expect(plan.hiddenTrailingColumns == 1)
        #expect(plan.postFilters == [PostFilter(column: F.email, hiddenColumn: 0, acceptedValues: [.parameter(0)])])
    }

    @Test("post-filter over SELECT * with IN and a lifted literal")
    func postFilterIn() throws {
        let plan = try F.plan("SELECT * FROM customers c WHERE c.email IN ($1, 'a@b.example') AND c.id > 5", 1)
        #expect(plan.sql == "SELECT *, c.email FROM public.customers c WHERE c.email_bidx IN ($1, $2) AND c.id > 5")
        #expect(plan.postFilters == [
            PostFilter(column: F.email, hiddenColumn: 0, acceptedValues: [.parameter(0), F.literal("a@b.example")])
        ])
        #expect(!plan.sql.contains("a@b.example"))
    }

    // MARK: - Pass-through

    @Test(
        "statements that touch no encrypted column pass byte for byte",
        arguments: [
            "SELECT 1",
            "select  *  from orders where note = 'x' -- comment",
            "SELECT id, name FROM customers WHERE id = $1",
            "BEGIN",
            "SET search_path TO app",
            "CREATE TABLE t (a int DEFAULT 0)",
            "ALTER TABLE customers ADD COLUMN age int DEFAULT 0",
            "CREATE INDEX ON customers (ssn_bidx)",
            "TRUNCATE customers",
            "DROP TABLE accounts",
            "SELECT 1; SELECT 2",
            "INSERT INTO orders (id, total) VALUES ($1, 12.5) RETURNING *",
            "  ",
        ])
    func passThrough(sql: String) throws {
        let plan = try F.plan(sql, 1)
        #expect(plan.sql == sql)
        #expect(plan.parameters == [Self.pass(0)])
        #expect(plan.postFilters.isEmpty)
    }

    @Test("reading an encrypted column is recorded but needs no rewrite")
    func readOnlyTouch() throws {
        let read = try F.plan("SELECT ssn, dob AS birthday FROM customers WHERE id = $1", 1)
        #expect(read.sql == "SELECT ssn, dob AS birthday FROM public.customers WHERE id = $1")
        #expect(read.touchesEncryptedColumns)
        #expect(read.parameters == [Self.pass(0)])
    }

    @Test(
        "statement kind and whether a read-only replica must refuse it",
        arguments: [
            ("SELECT * FROM orders", StatementKind.select, false),
            ("(SELECT 1) UNION (SELECT 2)", .select, false),
            ("VALUES (1)", .select, false),
            ("SELECT * FROM orders FOR UPDATE", .select, true),
            ("SELECT * FROM orders FOR NO KEY UPDATE SKIP LOCKED", .select, true),
            ("SELECT * INTO copy FROM orders", .select, true),
            ("WITH x AS (UPDATE orders SET a = 1 RETURNING *) SELECT * FROM x", .select, true),
            ("WITH x AS (SELECT 1) INSERT INTO orders SELECT * FROM x", .insert, true),
            ("INSERT INTO orders VALUES (1)", .insert, true),
            ("UPDATE orders SET a = 1", .update, true),
            ("DELETE FROM orders", .delete, true),
            ("MERGE INTO orders o USING s ON true WHEN MATCHED THEN DELETE", .merge, true),
            ("EXPLAIN SELECT 1", .other, false),
            ("EXPLAIN ANALYZE DELETE FROM orders", .other, true),
            ("SHOW search_path", .other, false),
            ("BEGIN READ ONLY", .other, false),
            ("COPY orders TO STDOUT", .other, false),
            ("COPY orders FROM STDIN", .other, true),
            ("CREATE TABLE t (a int)", .other, true),
            ("VACUUM orders", .other, true),
        ])
    func classification(sql: String, kind: StatementKind, isWrite: Bool) throws {
        let plan = try F.plan(sql)
        #expect(plan.kind == kind)
        #expect(plan.isWrite == isWrite)
    }

    @Test("EXPLAIN of a statement is analysed and rewritten like the statement")
    func explain() throws {
        let plan = try F.plan("EXPLAIN (COSTS OFF) SELECT * FROM customers WHERE ssn = '123-45-6789'")
        #expect(plan.sql == "EXPLAIN (COSTS OFF) SELECT * FROM public.customers WHERE customers.ssn_bidx = $1")
        #expect(plan.kind == .other && !plan.isWrite)
    }

    @Test("comments and layout around rewritten parts are kept")
    func commentsKept() throws {
        #expect(try F.plan("SELECT /* c */ *\nFROM customers -- x\nWHERE ssn /* y */ = $1 -- t", 1).sql
            == "SELECT /* c */ *\nFROM public.customers -- x\nWHERE customers.ssn_bidx /* y */ = $1 -- t")
    }

    @Test("an empty select list gets the hidden column without a comma; several filters share it")
    func hiddenColumnEdges() throws {
        let empty = try F.plan("SELECT FROM customers WHERE email = $1", 1)
        #expect(empty.sql == "SELECT customers.email FROM public.customers WHERE customers.email_bidx = $1")
        let twice = try F.plan("SELECT id FROM customers WHERE email = $1 AND email = 'x@y.example'", 1)
        #expect(twice.sql == "SELECT id, customers.email FROM public.customers WHERE customers.email_bidx = $1 AND customers.email_bidx = $2")
        #expect(twice.hiddenTrailingColumns == 1)
        #expect(twice.postFilters.map(\.hiddenColumn) == [0, 0])
    }

    @Test("a full-width equality may appear anywhere in an expression")
    func equalityInExpressions() throws {
        #expect(try F.plan("SELECT id, ssn = $1 AS same, CASE WHEN ssn IN ($2) THEN 1 END FROM customers", 2).sql
            == "SELECT id, customers.ssn_bidx = $1 AS same, CASE WHEN customers.ssn_bidx IN ($2) THEN 1 END FROM public.customers")
        #expect(try F.plan("SELECT count(*) FILTER (WHERE ssn = $1) FROM customers", 1).sql
            == "SELECT count(*) FILTER (WHERE customers.ssn_bidx = $1) FROM public.customers")
    }

    @Test("NULL in IN lists stays NULL; escaped string literals are decoded before lifting")
    func nullAndEscapes() throws {
        let plan = try F.plan(#"SELECT 1 FROM customers WHERE ssn IN (NULL, E'12\'3')"#)
        #expect(plan.sql == "SELECT 1 FROM public.customers WHERE customers.ssn_bidx IN (NULL, $1)")
        #expect(plan.parameters == [Self.blind(F.literal("12'3"))])
    }

    @Test("a data-modifying CTE writing an encrypted column is bound to its row")
    func modifyingCTEUpdate() throws {
        let plan = try F.plan("WITH u AS (UPDATE customers SET dob = $1 WHERE id = $2 RETURNING id) SELECT count(*) FROM u", 2)
        #expect(plan.sql == "WITH u AS (UPDATE public.customers SET dob = $1 WHERE id = $2 RETURNING id) SELECT count(*) FROM u")
        #expect(plan.parameters == [.encrypt(.parameter(0), column: F.dob, rowIdentity: .parameter(1)), Self.pass(1)])
        #expect(plan.isWrite)
    }

    @Test("a configured column that needs quoting is rewritten with quotes")
    func quotedConfiguredNames() throws {
        let table = QualifiedName(schema: "Sales", name: "People")
        let column = EncryptedColumn(table: table, name: "Tax ID", type: .text, search: .equality)
        let interceptor = SQLInterceptor(schema: EncryptedSchema(tables: [EncryptedTable(name: table, columns: [column])]))
        let plan = try interceptor.plan(#"SELECT * FROM "Sales"."People" WHERE "Tax ID" = $1"#, parameterCount: 1)
        #expect(plan.sql == #"SELECT * FROM "Sales"."People" WHERE "People"."Tax ID_bidx" = $1"#)
        let insert = try interceptor.plan(#"INSERT INTO "Sales"."People" ("Tax ID") VALUES ('x')"#, parameterCount: 0)
        #expect(insert.sql == #"INSERT INTO "Sales"."People" ("Tax ID", "Tax ID_bidx") VALUES ($1, $2)"#)
    }

    @Test("pass-through does not check parameter numbers; planned statements do")
    func parameterCounts() throws {
        #expect(try F.plan("SELECT $3", 1).parameters == [Self.pass(0)])
        #expect(try F.plan("", 0).sql == "")
        #expect(F.refusal("SELECT * FROM customers WHERE id = $0", 1)?.code == .parameterCount)
    }

    @Test("plans and lifted literals print without plaintext")
    func redactedDescriptions() throws {
        let plan = try F.plan("INSERT INTO accounts (id, iban) VALUES (1, 'DE89370400440532013000')")
        #expect(!String(describing: plan).contains("DE89"))
        #expect(!String(describing: plan.parameters).contains("DE89"))
        #expect(!String(reflecting: plan.parameters).contains("DE89"))
    }
}
