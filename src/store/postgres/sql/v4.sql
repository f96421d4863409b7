-- Version 4: the DPoP replay cache (store::postgres::PostgresReplayCache), so a proof used on
-- one instance is refused on every other. `{p}` is the table prefix; times are milliseconds
-- since the epoch.
--
-- One row per proof seen within its window, named by a fixed-size hash of its key thumbprint
-- and `jti` (whatever the `jti`'s length, a row is the same size). UNLOGGED, as the rate
-- limiter's tables: a row is written on every request that carries a proof, and a transaction
-- that writes only unlogged tables commits without waiting for a WAL flush. The price: after a
-- crash of PostgreSQL (not a clean restart), or on a standby that takes over, the table is
-- empty, so a proof seen within the last window (two minutes by default) could be replayed
-- once more, as with a Redis without persistence.
CREATE UNLOGGED TABLE IF NOT EXISTS {p}_dpop_replay (
    -- The first 16 bytes of SHA-256 over the thumbprint's length, the thumbprint and the jti.
    key        bytea  PRIMARY KEY,
    -- Until when the proof is refused; a row past it may be taken by the same proof again.
    expires_at bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS {p}_dpop_replay_expires ON {p}_dpop_replay (expires_at);
