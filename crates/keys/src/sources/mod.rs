//! Remote and directory key sources: LDAP directories (S/MIME), LDAP key
//! servers (PGP Universal layout), HKP/HKPS key servers and WKD (OpenPGP).
//! Each is a [`crate::source::Source`]; the resolver puts them in precedence
//! order and [`crate::cache`] keeps their answers.

pub mod hkp;
pub mod http;
pub mod ldap_common;
pub mod ldap_directory;
pub mod ldap_keyserver;
pub mod wkd;
