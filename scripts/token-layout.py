#!/usr/bin/env python3
"""How many bytes a batch of refresh-token rotations writes to SQLite's WAL, for four layouts
of the token table (BENCHMARKS.md, "Token keys in issue order").

    python3 scripts/token-layout.py LAYOUT [EXISTING_SESSIONS]

LAYOUT is one of
  hash      keyed by SHA-256 of the token (WITHOUT ROWID): authd until the fourth session
  prefixed  keyed by issue time + hash (WITHOUT ROWID): authd since
  rowid     a rowid table with the hash as a unique secondary index
  seq       a rowid table whose rowid the token names (the hash not indexed)

64 chains rotate in batches of 64 (one transaction each, synchronous=FULL, no checkpoints) on
top of EXISTING_SESSIONS (default 200,000) sessions of one token each. Python's own overhead is
in the time per rotation, so compare layouts with each other, not with authd's figures.
"""
import os, random, sqlite3, sys, tempfile, time, uuid

CHAINS, BATCHES = 64, 300
layout = sys.argv[1]
existing = int(sys.argv[2]) if len(sys.argv) > 2 else 200_000
path = os.path.join(tempfile.mkdtemp(), "tokens.db")
db = sqlite3.connect(path, isolation_level=None)
db.execute("PRAGMA journal_mode=WAL")
db.execute("PRAGMA synchronous=FULL")
db.execute("PRAGMA wal_autocheckpoint=0")
db.execute("PRAGMA cache_size=-16384")
db.execute("CREATE TABLE fam (id TEXT PRIMARY KEY, user_id TEXT, expires_at INT, revoked_at INT)")
if layout in ("hash", "prefixed"):
    db.execute("""CREATE TABLE tok (hash BLOB PRIMARY KEY,
        family_id TEXT NOT NULL REFERENCES fam(id) ON DELETE CASCADE, issued_at INT,
        expires_at INT, used_at INT, successor_hash BLOB, sealed BLOB) WITHOUT ROWID""")
elif layout in ("rowid", "seq"):
    unique = "UNIQUE" if layout == "rowid" else ""
    db.execute(f"""CREATE TABLE tok (id INTEGER PRIMARY KEY, hash BLOB NOT NULL {unique},
        family_id TEXT NOT NULL REFERENCES fam(id) ON DELETE CASCADE, issued_at INT,
        expires_at INT, used_at INT, successor_hash BLOB, sealed BLOB)""")
else:
    sys.exit(f"unknown layout {layout}")
db.execute("CREATE INDEX tok_fam ON tok(family_id)")
db.execute("CREATE INDEX tok_exp ON tok(expires_at)")

clock = [1_700_000_000_000]


def key():
    """A new token's stored key."""
    if layout != "prefixed":
        return random.randbytes(32)
    clock[0] += 1
    return clock[0].to_bytes(8, "big") + random.randbytes(24)


def insert(family, k, now):
    """Inserts a token; returns what names it (its rowid for `seq`, else its key)."""
    cur = db.execute(
        "INSERT INTO tok (hash, family_id, issued_at, expires_at, sealed) VALUES (?,?,?,?,?)",
        (k, family, now, now + 86_400_000, random.randbytes(80)))
    return cur.lastrowid if layout == "seq" else k


def new_family(now):
    family = str(uuid.uuid4())
    db.execute("INSERT INTO fam VALUES (?,?,?,NULL)", (family, "u", 10**13))
    return family, insert(family, key(), now)


db.execute("BEGIN")
for i in range(existing):
    new_family(i)
db.execute("COMMIT")
db.execute("BEGIN")
chains = [list(new_family(existing)) for _ in range(CHAINS)]
db.execute("COMMIT")
db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

where = "t.id" if layout == "seq" else "t.hash"
started, now = time.perf_counter(), existing + 1
for _ in range(BATCHES):
    db.execute("BEGIN IMMEDIATE")
    for chain in chains:
        family, current = chain
        now += 1
        found = db.execute(
            f"SELECT t.used_at, f.revoked_at FROM tok t JOIN fam f ON f.id = t.family_id WHERE {where} = ?",
            (current,)).fetchone()
        assert found is not None
        successor = key()
        chain[1] = insert(family, successor, now)
        db.execute(f"UPDATE tok AS t SET used_at = ?, successor_hash = ?, sealed = NULL WHERE {where} = ?",
                   (now, successor, current))
    db.execute("COMMIT")
elapsed = time.perf_counter() - started
rotations = BATCHES * CHAINS
wal = os.path.getsize(path + "-wal")
print(f"{layout:8} existing={existing} rotations={rotations} "
      f"wal_bytes_per_rotation={wal / rotations:,.0f} "
      f"frames_per_commit={wal / BATCHES / (db.execute('PRAGMA page_size').fetchone()[0] + 24):.1f} "
      f"us_per_rotation={elapsed / rotations * 1e6:.1f}")
