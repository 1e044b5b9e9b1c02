#!/bin/bash
# Replica start-up: on first start, clone the primary with pg_basebackup -R (which writes
# primary_conninfo and standby.signal), then run PostgreSQL as a read-only hot standby.
set -euo pipefail
mkdir -p "$PGDATA"
chown postgres:postgres "$PGDATA"
chmod 0700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  until pg_isready -h primary -p 5432 -U "$POSTGRES_USER"; do sleep 1; done
  export PGPASSWORD="$REPLICATION_PASSWORD"
  gosu postgres pg_basebackup -h primary -p 5432 -U replicator -D "$PGDATA" -R -X stream -c fast -P
fi
exec gosu postgres postgres -c hot_standby=on
