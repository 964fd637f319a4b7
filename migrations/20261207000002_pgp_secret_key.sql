-- OpenPGP secret keys sealgate holds for internal users (incoming.decrypt;
-- crates/trust/src/held_pgp.rs): the transferable secret key, binary, sealed
-- with AES-256-GCM under the key-encryption key (bound to the fingerprint),
-- never stored in the clear; its public certificate (armored) in the clear,
-- and the addresses its User IDs name, to find it for a recipient.
CREATE TABLE pgp_secret_key (
    fingerprint TEXT PRIMARY KEY,
    public      TEXT NOT NULL,
    sealed      BYTEA NOT NULL,
    added_at    BIGINT NOT NULL
);
CREATE TABLE pgp_secret_address (
    address     TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    PRIMARY KEY (address, fingerprint)
);
CREATE INDEX pgp_secret_address_fingerprint ON pgp_secret_address (fingerprint);
