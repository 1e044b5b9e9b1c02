"""SQLAlchemy ORM (2.x, psycopg 3 driver) through `mrkproxy serve`: create, read, update, filter
by equality on a searchable encrypted column; then read through the replica region's proxy.

Environment: EAST_URL, SOUTH_URL (SQLAlchemy URLs of the two proxies), TABLE, SECRETS."""
import datetime, decimal, os, sys, time
from sqlalchemy import BigInteger, Date, Numeric, String, create_engine, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

table = os.environ["TABLE"]
secrets = os.environ["SECRETS"].split(",")

def check(name, condition, detail=""):
    if not condition:
        print(f"FAIL {name}: {detail}", flush=True)
        sys.exit(1)
    print(f"ok {name}", flush=True)

class Base(DeclarativeBase):
    pass

class Customer(Base):
    __tablename__ = table
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    name: Mapped[str] = mapped_column(String)
    ssn: Mapped[str | None] = mapped_column(String)
    dob: Mapped[datetime.date | None] = mapped_column(Date)
    balance: Mapped[decimal.Decimal | None] = mapped_column(Numeric)

east = create_engine(os.environ["EAST_URL"])
south = create_engine(os.environ["SOUTH_URL"])

with Session(east) as session:
    session.add_all([
        Customer(id=1, name="Ada", ssn=secrets[0], dob=datetime.date(1815, 12, 10), balance=decimal.Decimal("10.50")),
        Customer(id=2, name="Grace", ssn=secrets[1], dob=datetime.date(1906, 12, 9), balance=None),
        Customer(id=3, name="Alan", ssn=None, dob=None, balance=decimal.Decimal("0")),
    ])
    session.commit()
check("create", True)

with Session(east) as session:
    ada = session.scalars(select(Customer).where(Customer.ssn == secrets[0])).one()
    check("filter by equality", (ada.id, ada.name, ada.dob, ada.balance) == (1, "Ada", datetime.date(1815, 12, 10), decimal.Decimal("10.50")),
          (ada.id, ada.name, ada.dob, ada.balance))
    ada.ssn = secrets[2]
    ada.balance = decimal.Decimal("11.75")
    session.commit()
check("update", True)

with Session(east) as session:
    ada = session.get(Customer, 1)
    check("read after update", (ada.ssn, ada.balance) == (secrets[2], decimal.Decimal("11.75")), (ada.ssn, ada.balance))
    found = session.scalars(select(Customer).where(Customer.ssn.in_([secrets[1], secrets[2]])).order_by(Customer.id)).all()
    check("filter with IN", [c.id for c in found] == [1, 2], [c.id for c in found])
    check("no match for the old value", session.scalars(select(Customer).where(Customer.ssn == secrets[0])).first() is None)
    nulls = session.scalars(select(Customer).where(Customer.ssn.is_(None))).all()
    check("IS NULL", [c.id for c in nulls] == [3])
    session.delete(session.get(Customer, 3))
    session.commit()
check("delete", True)

deadline = time.time() + 20
with Session(south) as session:
    while True:
        rows = session.scalars(select(Customer).order_by(Customer.id)).all()
        if [(c.id, c.ssn) for c in rows] == [(1, secrets[2]), (2, secrets[1])] or time.time() > deadline:
            break
        session.expire_all()
        session.rollback()
        time.sleep(0.05)
    check("replica region reads through its proxy", [(c.id, c.ssn) for c in rows] == [(1, secrets[2]), (2, secrets[1])],
          [(c.id, c.ssn) for c in rows])
print("done", flush=True)
