//! Key-store file formats beyond PEM/DER/PKCS#7 and OpenPGP keyrings: GnuPG's
//! keybox (`.kbx`) and BouncyCastle's BKS key store.

pub mod bks;
pub mod keybox;
