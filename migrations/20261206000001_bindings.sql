-- Keys and bindings on the Bitmask model (issue 9): `keys` is the key
-- document (fingerprint, kind, key data, the addresses its User IDs or
-- certificate name, length, expiry, refreshed_at, source), `key_binding` the
-- active document (address, fingerprint, validation level, last_audited_at,
-- encr_used, sign_used, first and last seen). `key_addresses` is folded into
-- `key_binding` and dropped. Portable SQL (SQLite and PostgreSQL).

ALTER TABLE keys ADD COLUMN uids TEXT NOT NULL DEFAULT '';  -- the emails the key names, one per line
ALTER TABLE keys ADD COLUMN length BIGINT;                  -- key size in bits, when known
UPDATE keys SET kind = 'x509' WHERE kind = 'smime';

-- The one binding per address and kind that is in use (OpenPGP: the key the
-- can-upgrade rules settled on; see crates/keys/src/validation.rs).
ALTER TABLE key_binding ADD COLUMN active BIGINT NOT NULL DEFAULT 0;

INSERT INTO key_binding (address, fingerprint, kind, level, source, first_seen, last_seen, encr_used, sign_used, active)
SELECT a.address, a.fingerprint, k.kind,
       CASE WHEN k.source = 'upload' THEN 'provider_endorsement' ELSE a.validation END,
       k.source, k.created_at, k.refreshed_at, 0, 0, 0
FROM key_addresses a JOIN keys k ON k.fingerprint = a.fingerprint
WHERE NOT EXISTS (SELECT 1 FROM key_binding x WHERE x.address = a.address AND x.fingerprint = a.fingerprint);

DROP TABLE key_addresses;

CREATE INDEX key_binding_active ON key_binding (address, kind, active);
