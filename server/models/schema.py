"""The schema, one migration per step; db.py applies those the database lacks
(its version is the dialect's: SQLite's PRAGMA user_version) in one write
transaction at start-up. DDL is the one part of the SQL that is an engine's
own, so each dialect (server/dialect.py) names its list; these are SQLite's.
Append, never edit: a database in use has run the earlier ones.
"""
from __future__ import annotations

SQLITE_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE users (
        id            INTEGER PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        seq           INTEGER NOT NULL DEFAULT 0,
        created_at    REAL NOT NULL
    );
    CREATE TABLE sessions (
        id           INTEGER PRIMARY KEY,
        user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        key_hash     BLOB NOT NULL UNIQUE,
        device_name  TEXT NOT NULL,
        created_at   REAL NOT NULL,
        last_seen_at REAL NOT NULL
    );
    CREATE INDEX sessions_user ON sessions(user_id);
    CREATE TABLE api_tokens (
        id           INTEGER PRIMARY KEY,
        user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        name         TEXT NOT NULL,
        token_hash   BLOB NOT NULL UNIQUE,
        created_at   REAL NOT NULL,
        last_used_at REAL
    );
    CREATE INDEX api_tokens_user ON api_tokens(user_id);
    CREATE TABLE files (
        id          INTEGER PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        stored_name TEXT NOT NULL UNIQUE,
        filename    TEXT NOT NULL,
        mime        TEXT NOT NULL,
        size        INTEGER NOT NULL,
        created_at  REAL NOT NULL,
        expires_at  REAL NOT NULL
    );
    CREATE INDEX files_user ON files(user_id, created_at);
    CREATE INDEX files_expiry ON files(expires_at);
    CREATE TABLE items (
        id          INTEGER PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        seq         INTEGER NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('text', 'file')),
        text        TEXT,
        file_id     INTEGER REFERENCES files(id) ON DELETE CASCADE,
        size        INTEGER NOT NULL,
        device_name TEXT NOT NULL,
        created_at  REAL NOT NULL,
        expires_at  REAL NOT NULL,
        UNIQUE (user_id, seq),
        CHECK ((kind = 'text') = (text IS NOT NULL)),
        CHECK ((kind = 'file') = (file_id IS NOT NULL))
    );
    CREATE INDEX items_expiry ON items(expires_at);
    CREATE INDEX items_file ON items(file_id);
    CREATE TABLE shares (
        id         INTEGER PRIMARY KEY,
        user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        file_id    INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        token_hash BLOB NOT NULL UNIQUE,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX shares_user ON shares(user_id);
    CREATE INDEX shares_file ON shares(file_id);
    CREATE INDEX shares_expiry ON shares(expires_at);
    """,
    # 2: a share link's token is derived from this random nonce and the
    # server's secret key (share_links.derive_token), so sharing the same file
    # again can hand back the same link while the database still holds no
    # usable token. Older rows have none and are simply not reused.
    """
    ALTER TABLE shares ADD COLUMN nonce BLOB;
    """,
    # 3: "Add a device" (server/pairing.py). Only digests of the code and of
    # the waiting device's claim are kept; the opaque payloads (a public key,
    # a wrapped key) live only until the new device has taken the approval.
    """
    CREATE TABLE pairings (
        id               INTEGER PRIMARY KEY,
        user_id          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        session_id       INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
        code_digest      BLOB NOT NULL UNIQUE,
        claim_digest     BLOB UNIQUE,
        status           TEXT NOT NULL CHECK (status IN ('open', 'claimed', 'approved', 'refused')),
        device_name      TEXT,
        request_payload  TEXT,
        approval_payload TEXT,
        created_at       REAL NOT NULL,
        expires_at       REAL NOT NULL
    );
    CREATE INDEX pairings_user ON pairings(user_id);
    CREATE INDEX pairings_expiry ON pairings(expires_at);
    """,
    # 4: end-to-end encryption (issue 19, docs/e2e.md; server/e2e.py). The
    # server keeps only public keys, wrapped keys and opaque blobs. A wrap or
    # a device key belongs to a session or an API token: deleting the device
    # deletes its wraps (CASCADE) in the same statement, and leaves its
    # e2e_devices row with neither id (SET NULL), a mark that a rotation is
    # needed which no crash between two commits can lose.
    """
    CREATE TABLE e2e_accounts (
        id                  INTEGER PRIMARY KEY,
        user_id             INTEGER NOT NULL UNIQUE REFERENCES users(id) ON DELETE CASCADE,
        epoch               INTEGER NOT NULL,
        rotation_needed     INTEGER NOT NULL DEFAULT 0,
        recovery_public_key TEXT NOT NULL,
        recovery_sealed_key TEXT NOT NULL,
        enabled_at          REAL NOT NULL
    );
    CREATE TABLE e2e_devices (
        id          INTEGER PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        session_id  INTEGER UNIQUE REFERENCES sessions(id) ON DELETE SET NULL,
        token_id    INTEGER UNIQUE REFERENCES api_tokens(id) ON DELETE SET NULL,
        public_key  TEXT NOT NULL,
        attest      TEXT NOT NULL,
        created_at  REAL NOT NULL,
        CHECK (session_id IS NULL OR token_id IS NULL)
    );
    CREATE INDEX e2e_devices_user ON e2e_devices(user_id);
    CREATE TABLE e2e_wraps (
        id          INTEGER PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        epoch       INTEGER NOT NULL,
        recipient   TEXT NOT NULL,
        session_id  INTEGER REFERENCES sessions(id) ON DELETE CASCADE,
        token_id    INTEGER REFERENCES api_tokens(id) ON DELETE CASCADE,
        blob        TEXT NOT NULL,
        created_at  REAL NOT NULL,
        UNIQUE (user_id, recipient, epoch),
        CHECK (recipient = CASE WHEN session_id IS NOT NULL THEN 'session:' || session_id
                                WHEN token_id IS NOT NULL THEN 'token:' || token_id
                                ELSE 'recovery' END)
    );
    CREATE TABLE e2e_epochs (
        id          INTEGER PRIMARY KEY,
        user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        epoch       INTEGER NOT NULL,
        proof       TEXT NOT NULL,
        created_at  REAL NOT NULL,
        UNIQUE (user_id, epoch)
    );
    CREATE INDEX e2e_wraps_session ON e2e_wraps(session_id);
    CREATE INDEX e2e_wraps_token ON e2e_wraps(token_id);
    ALTER TABLE items ADD COLUMN encrypted_key TEXT;
    ALTER TABLE items ADD COLUMN encrypted_meta TEXT;
    ALTER TABLE items ADD COLUMN ciphertext BLOB;
    ALTER TABLE files ADD COLUMN encrypted_meta TEXT
    """,
    # 5: pairing with keys (docs/e2e.md). A pairing may now be opened by the
    # new device (direction 'request', flow B: no account until a logged-in
    # device takes it), and carries the enrolled device's ephemeral key
    # (offer_payload) beside the new device's (request_payload). The table
    # is made again rather than altered (SQLite cannot drop NOT NULL): its
    # rows live two minutes, so an upgrade costs at most a code typed again.
    """
    DROP TABLE pairings;
    CREATE TABLE pairings (
        id               INTEGER PRIMARY KEY,
        user_id          INTEGER REFERENCES users(id) ON DELETE CASCADE,
        session_id       INTEGER REFERENCES sessions(id) ON DELETE CASCADE,
        token_id         INTEGER REFERENCES api_tokens(id) ON DELETE CASCADE,
        direction        TEXT NOT NULL DEFAULT 'offer' CHECK (direction IN ('offer', 'request')),
        code_digest      BLOB NOT NULL UNIQUE,
        claim_digest     BLOB UNIQUE,
        status           TEXT NOT NULL CHECK (status IN ('open', 'claimed', 'approved', 'refused')),
        device_name      TEXT,
        request_payload  TEXT,
        offer_payload    TEXT,
        approval_payload TEXT,
        created_at       REAL NOT NULL,
        expires_at       REAL NOT NULL,
        CHECK (session_id IS NULL OR token_id IS NULL),
        CHECK (direction = 'request' OR (user_id IS NOT NULL AND session_id IS NOT NULL)),
        CHECK (status = 'open' OR direction = 'offer' OR session_id IS NOT NULL OR token_id IS NOT NULL),
        CHECK (status = 'open' OR user_id IS NOT NULL)
    );
    CREATE INDEX pairings_user ON pairings(user_id);
    CREATE INDEX pairings_expiry ON pairings(expires_at)
    """,
    # 6: resumable uploads (tus, server/resumable.py). The row is the upload's
    # state: its committed offset (HEAD answers it after a restart), the
    # length it reserves of the quota until it is finished, and what it
    # becomes. A finished row stays until its expiry so a client whose last
    # answer was lost can still ask what its upload became.
    """
    CREATE TABLE uploads (
        id             INTEGER PRIMARY KEY,
        user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        public_id      TEXT NOT NULL UNIQUE,
        length         INTEGER NOT NULL,
        upload_offset  INTEGER NOT NULL DEFAULT 0,
        filename       TEXT NOT NULL,
        mime           TEXT NOT NULL,
        target         TEXT NOT NULL CHECK (target IN ('buffer', 'share')),
        share_seconds  INTEGER,
        share_max_downloads INTEGER,
        share_password_hash TEXT,
        metadata       TEXT NOT NULL,
        encrypted_key  TEXT,
        encrypted_meta TEXT,
        created_at     REAL NOT NULL,
        expires_at     REAL NOT NULL,
        finished_at    REAL,
        item_id        INTEGER REFERENCES items(id) ON DELETE SET NULL,
        share_id       INTEGER REFERENCES shares(id) ON DELETE SET NULL
    );
    CREATE INDEX uploads_user ON uploads(user_id);
    CREATE INDEX uploads_expiry ON uploads(expires_at);
    """,
    # 7: share links with a download limit (1 is "burn after reading"):
    # downloads counts those taken, each in one UPDATE that cannot pass the
    # limit (models/files.take_download), NULL meaning no limit; and an
    # optional password, kept as its argon2id hash.
    """
    ALTER TABLE shares ADD COLUMN max_downloads INTEGER;
    ALTER TABLE shares ADD COLUMN downloads INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE shares ADD COLUMN password_hash TEXT;
    """,
    # 8: unfinished resumable uploads on object storage (server/s3_partials.py):
    # the S3 multipart upload and the stored name it completes into, chosen
    # at creation, and its counted parts (JSON [[number, etag], …]); and the lease that keeps PATCHes one at a time across
    # hosts (flock cannot), free when NULL or past lease_until.
    """
    ALTER TABLE uploads ADD COLUMN multipart_id TEXT;
    ALTER TABLE uploads ADD COLUMN stored_name TEXT;
    ALTER TABLE uploads ADD COLUMN parts TEXT;
    ALTER TABLE uploads ADD COLUMN lease_token TEXT;
    ALTER TABLE uploads ADD COLUMN lease_until REAL;
    """,
)
