//! Key-store files: OpenPGP keyrings and S/MIME certificate files named in the
//! config, read at start and again on reload (SIGHUP).
//!
//! The files are parsed once into an in-memory index by address; a lookup is a
//! hash-map read. A reload that fails (a missing or broken file) keeps the
//! previous index and reports the error, so a typo never empties the key set of
//! a running gateway.
//!
//! Keyrings may be armored or binary OpenPGP, or GnuPG keyboxes (`.kbx`);
//! certificate files may be PEM, DER, PKCS#7 or BouncyCastle BKS stores, whose
//! optional password ([`KeyFiles::bks_passwords`]) turns on the integrity check.

use crate::load::{load_pgp_file, load_x509_file_with_password};
use crate::source::Source;
use crate::{KeyError, RecipientKey};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// Which files to read.
#[derive(Clone, Default)]
pub struct KeyFiles {
    pub pgp_keyrings: Vec<PathBuf>,
    pub smime_certificates: Vec<PathBuf>,
    /// Store password per BKS key store in `smime_certificates` (config
    /// `keys.bks_passwords`), keyed by the same path as listed there. A store
    /// with a password has its integrity MAC checked (a mismatch makes the
    /// load fail); one without is read unchecked, which is enough for public
    /// certificates. Ignored for files that are not BKS.
    pub bks_passwords: BTreeMap<PathBuf, String>,
}

/// Passwords are never printed.
impl std::fmt::Debug for KeyFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFiles")
            .field("pgp_keyrings", &self.pgp_keyrings)
            .field("smime_certificates", &self.smime_certificates)
            .field(
                "bks_passwords",
                &self
                    .bks_passwords
                    .keys()
                    .map(|p| (p, "<redacted>"))
                    .collect::<BTreeMap<_, _>>(),
            )
            .finish()
    }
}

/// Counts after a (re)load, for the log line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadSummary {
    pub pgp_keys: usize,
    pub smime_certificates: usize,
    pub addresses: usize,
}

#[derive(Default)]
struct Index {
    by_address: HashMap<String, Vec<RecipientKey>>,
    summary: LoadSummary,
}

/// The key-store files as a [`Source`].
pub struct FileSource {
    files: KeyFiles,
    index: RwLock<Arc<Index>>,
}

impl FileSource {
    /// Reads every file; any unreadable file is an error naming it.
    pub fn load(files: KeyFiles) -> Result<(FileSource, LoadSummary), KeyError> {
        let index = build(&files)?;
        let summary = index.summary;
        Ok((
            FileSource {
                files,
                index: RwLock::new(Arc::new(index)),
            },
            summary,
        ))
    }

    /// Reads the files again; on error the old keys stay in place.
    pub fn reload(&self) -> Result<LoadSummary, KeyError> {
        let index = build(&self.files)?;
        let summary = index.summary;
        *self.index.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(index);
        Ok(summary)
    }

    fn current(&self) -> Arc<Index> {
        self.index.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn build(files: &KeyFiles) -> Result<Index, KeyError> {
    let mut index = Index::default();
    let add = |keys: Vec<RecipientKey>, index: &mut Index| {
        for key in keys {
            for address in key.addresses() {
                index
                    .by_address
                    .entry(address)
                    .or_default()
                    .push(key.clone());
            }
        }
    };
    for path in &files.pgp_keyrings {
        let keys = load_pgp_file(path)?;
        index.summary.pgp_keys += keys.len();
        add(keys, &mut index);
    }
    for path in &files.smime_certificates {
        let password = files.bks_passwords.get(path).map(String::as_str);
        let keys = load_x509_file_with_password(path, password)?;
        index.summary.smime_certificates += keys.len();
        add(keys, &mut index);
    }
    index.summary.addresses = index.by_address.len();
    Ok(index)
}

#[async_trait::async_trait]
impl Source for FileSource {
    fn name(&self) -> String {
        "files".into()
    }

    async fn lookup(&self, address: &str) -> Result<Vec<RecipientKey>, String> {
        Ok(self
            .current()
            .by_address
            .get(&address.to_lowercase())
            .cloned()
            .unwrap_or_default())
    }
}
