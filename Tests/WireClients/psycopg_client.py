"""psycopg 3 through `mrkproxy serve`: the extended protocol with server-side binding, binary
results and parameters, prepared statements, COPY, pipelines, refusals and cancel. Writes go
through the primary region's proxy, reads through the replica region's.

Environment: EAST_DSN, SOUTH_DSN (libpq connection strings of the two proxies), TABLE, SECRETS
(comma-separated plaintexts to write). Prints one line per check; exits non-zero on the first
failure."""
import datetime, decimal, os, sys, threading, time
import psycopg

east_dsn, south_dsn, table = os.environ["EAST_DSN"], os.environ["SOUTH_DSN"], os.environ["TABLE"]
secrets = os.environ["SECRETS"].split(",")

def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}", flush=True)
        sys.exit(1)
    print(f"ok {name}", flush=True)

def wait_for(cur, sql, params, expected, timeout=20):
    deadline = time.time() + timeout
    while True:
        cur.execute(sql, params)
        rows = cur.fetchall()
        if rows == expected or time.time() > deadline:
            return rows
        time.sleep(0.05)

east = psycopg.connect(east_dsn, autocommit=True)
south = psycopg.connect(south_dsn, autocommit=True)

with east.cursor() as cur:
    # Server-side binding, text format.
    cur.execute(f"INSERT INTO {table} (id, name, ssn, dob, balance) VALUES (%s, %s, %s, %s, %s)",
                (1, "Ada", secrets[0], datetime.date(1815, 12, 10), decimal.Decimal("1234567890.123456789012345678901234567890")))
    # Binary parameters (%b) and a binary cursor.
    with east.cursor(binary=True) as bcur:
        bcur.execute(f"INSERT INTO {table} (id, name, ssn, dob, balance) VALUES (%b, %b, %b, %b, %b)",
                     (2, "Grace", secrets[1], datetime.date(1906, 12, 9), decimal.Decimal("-0.5")))
        bcur.execute(f"SELECT id, name, ssn, dob, balance FROM {table} WHERE ssn = %b", (secrets[1],))
        rows = bcur.fetchall()
        check("binary results and parameters", rows == [(2, "Grace", secrets[1], datetime.date(1906, 12, 9), decimal.Decimal("-0.5"))], rows)
        check("binary result types are the plaintext types", [d.type_code for d in bcur.description] == [20, 25, 25, 1082, 1700],
              [d.type_code for d in bcur.description])
    # Prepared (server-side named statements after prepare=True).
    for _ in range(3):
        cur.execute(f"SELECT id, ssn FROM {table} WHERE id = %s", (1,), prepare=True)
    check("prepared statement", cur.fetchall() == [(1, secrets[0])])
    # A pipeline of inserts (Bind/Execute ... Sync), executemany.
    cur.executemany(f"INSERT INTO {table} (id, name, ssn) VALUES (%s, %s, %s)", [(10 + i, f"n{i}", f"{secrets[2]}-{i}") for i in range(20)])
    cur.execute(f"SELECT count(*) FROM {table} WHERE id >= 10")
    check("executemany", cur.fetchone() == (20,))
    # COPY FROM STDIN into the encrypted table, rows encrypted as they stream.
    with cur.copy(f"COPY {table} (id, name, ssn, dob) FROM STDIN") as copy:
        for i in range(100):
            copy.write_row((1000 + i, f"copy{i}", f"{secrets[3]}-{i}", datetime.date(2000, 1, 1) + datetime.timedelta(days=i)))
    cur.execute(f"SELECT id, ssn, dob FROM {table} WHERE id = 1042")
    check("COPY FROM STDIN", cur.fetchone() == (1042, f"{secrets[3]}-42", datetime.date(2000, 2, 12)))
    # A refusal: MRKProxy's SQLSTATE, nothing sent.
    try:
        cur.execute(f"SELECT id FROM {table} WHERE ssn LIKE %s", ("REFUSED-MARKER-%",))
        check("refusal", False, "LIKE was not refused")
    except psycopg.Error as error:
        check("refusal", error.sqlstate == "MK001" and "LIKE" in str(error), f"{error.sqlstate} {error}")
    # The session is usable after the error.
    cur.execute("SELECT 1")
    check("usable after an error", cur.fetchone() == (1,))
    # Transactions: rollback leaves nothing.
    with east.transaction():
        cur.execute(f"INSERT INTO {table} (id, name, ssn) VALUES (%s, %s, %s)", (5000, "tx", secrets[4]))
        cur.execute(f"SELECT id, ssn FROM {table} WHERE id = 5000")
        check("read your write in a transaction", cur.fetchone() == (5000, secrets[4]))
        try:
            with east.transaction():
                cur.execute(f"INSERT INTO {table} (id, name) VALUES (%s, %s)", (5001, "rolled back"))
                raise RuntimeError("roll back the savepoint")
        except RuntimeError:
            pass
    cur.execute(f"SELECT count(*) FROM {table} WHERE id IN (5000, 5001)")
    check("savepoint rollback", cur.fetchone() == (1,))
    # Cancel a long statement from another thread: 57014, and the session goes on.
    timer = threading.Timer(0.5, east.cancel)
    timer.start()
    started = time.time()
    try:
        cur.execute("SELECT pg_sleep(20)")
        check("cancel", False, "not cancelled")
    except psycopg.errors.QueryCanceled:
        check("cancel", time.time() - started < 10)
    cur.execute("SELECT 2")
    check("usable after a cancel", cur.fetchone() == (2,))

# The replica region: reads through its own proxy, decrypting with its own replica key.
with south.cursor() as cur:
    rows = wait_for(cur, f"SELECT id, ssn, dob, balance FROM {table} WHERE id IN (1, 2) ORDER BY id", None,
                    [(1, secrets[0], datetime.date(1815, 12, 10), decimal.Decimal("1234567890.123456789012345678901234567890")),
                     (2, secrets[1], datetime.date(1906, 12, 9), decimal.Decimal("-0.5"))])
    check("replica region reads", len(rows) == 2 and rows[0][1] == secrets[0], rows)
    rows = wait_for(cur, f"SELECT id FROM {table} WHERE ssn = %s", (f"{secrets[3]}-7",), [(1007,)])
    check("replica region searches", rows == [(1007,)], rows)
    try:
        cur.execute(f"INSERT INTO {table} (id, name, ssn) VALUES (%s, %s, %s)", (9000, "replica", "REPLICA-WRITE-MARKER"))
        check("replica refuses writes", False, "write accepted")
    except psycopg.Error as error:
        check("replica refuses writes", error.sqlstate == "25006", f"{error.sqlstate} {error}")
print("done", flush=True)
