//! A recipient key of either kind, with the few facts every stage needs about it.

use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::x509::X509;
use sequoia_openpgp::Cert;
use std::fmt;
use std::sync::Arc;

/// An encryption method, in the order the policy may prefer them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    Pgp,
    Smime,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Pgp => "pgp",
            Method::Smime => "smime",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OpenPGP certificate or an X.509 certificate (public parts only).
#[derive(Clone)]
pub enum RecipientKey {
    Pgp(Arc<Cert>),
    Smime(Arc<X509>),
}

impl fmt::Debug for RecipientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.method(), self.fingerprint())
    }
}

impl RecipientKey {
    pub fn method(&self) -> Method {
        match self {
            RecipientKey::Pgp(_) => Method::Pgp,
            RecipientKey::Smime(_) => Method::Smime,
        }
    }

    /// OpenPGP: the primary key fingerprint in hex; X.509: `SHA256:` and the hex
    /// digest of the DER encoding. This is the id used in logs, audit and the CLI.
    pub fn fingerprint(&self) -> String {
        match self {
            RecipientKey::Pgp(c) => c.fingerprint().to_hex(),
            RecipientKey::Smime(x) => x509_fingerprint(x),
        }
    }

    /// Addresses the key names (User ID emails; SAN rfc822Name and subject
    /// emailAddress), lower-cased, deduplicated.
    pub fn addresses(&self) -> Vec<String> {
        let mut out: Vec<String> = match self {
            RecipientKey::Pgp(c) => c
                .userids()
                .filter_map(|u| u.userid().email().ok().flatten().map(str::to_lowercase))
                .collect(),
            RecipientKey::Smime(x) => x509_addresses(x),
        };
        out.sort();
        out.dedup();
        out
    }

    /// Whether the key names `address` (case-insensitive): the one check
    /// every source uses to drop keys for other addresses. Whether a key
    /// that names it may be used is [`crate::usable`]'s business (it looks
    /// only at valid, non-revoked User IDs).
    pub fn names(&self, address: &str) -> bool {
        let wanted = address.to_lowercase();
        self.addresses().contains(&wanted)
    }

    /// A one-line human description: User IDs, or subject and issuer/serial.
    pub fn describe(&self) -> String {
        match self {
            RecipientKey::Pgp(c) => {
                let uids: Vec<String> = c
                    .userids()
                    .map(|u| String::from_utf8_lossy(u.userid().value()).into_owned())
                    .collect();
                format!("User IDs: {}", uids.join(", "))
            }
            RecipientKey::Smime(x) => format!(
                "subject: {}; issuer: {}; serial: {}",
                name_to_string(x.subject_name()),
                name_to_string(x.issuer_name()),
                x.serial_number()
                    .to_bn()
                    .and_then(|b| b.to_hex_str().map(|s| s.to_string()))
                    .unwrap_or_default()
            ),
        }
    }

    /// Size of the (primary) public key in bits, when the algorithm has one.
    pub fn bits(&self) -> Option<u32> {
        match self {
            RecipientKey::Pgp(c) => c.primary_key().key().mpis().bits().map(|b| b as u32),
            RecipientKey::Smime(x) => x.public_key().ok().map(|k| k.bits()),
        }
    }

    /// Expiry as Unix seconds, when the key has one.
    pub fn expires_at(&self) -> Option<i64> {
        match self {
            RecipientKey::Pgp(c) => {
                let p = sequoia_openpgp::policy::StandardPolicy::new();
                let vc = c.with_policy(&p, None).ok()?;
                let t = vc.primary_key().key_expiration_time()?;
                t.duration_since(std::time::UNIX_EPOCH)
                    .ok()
                    .map(|d| d.as_secs() as i64)
            }
            RecipientKey::Smime(x) => asn1_to_unix(x.not_after()),
        }
    }
}

pub(crate) fn x509_fingerprint(x: &X509) -> String {
    let digest = x
        .digest(MessageDigest::sha256())
        .map(|d| d.iter().map(|b| format!("{b:02X}")).collect::<String>())
        .unwrap_or_default();
    format!("SHA256:{digest}")
}

/// Email addresses an X.509 certificate names: SAN rfc822Name entries and
/// emailAddress attributes of the subject.
pub fn x509_addresses(x: &X509) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(sans) = x.subject_alt_names() {
        for san in sans.iter() {
            if let Some(e) = san.email() {
                out.push(e.to_lowercase());
            }
        }
    }
    for entry in x.subject_name().entries_by_nid(Nid::PKCS9_EMAILADDRESS) {
        if let Ok(s) = entry.data().to_string() {
            out.push(s.to_lowercase());
        }
    }
    out.sort();
    out.dedup();
    out
}

fn name_to_string(name: &openssl::x509::X509NameRef) -> String {
    name.entries()
        .map(|e| {
            let key = e.object().nid().short_name().unwrap_or("?");
            let val = e.data().to_string().unwrap_or_default();
            format!("{key}={val}")
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Converts an ASN.1 time to Unix seconds.
pub(crate) fn asn1_to_unix(t: &openssl::asn1::Asn1TimeRef) -> Option<i64> {
    let epoch = openssl::asn1::Asn1Time::from_unix(0).ok()?;
    let diff = epoch.diff(t).ok()?;
    Some(diff.days as i64 * 86_400 + diff.secs as i64)
}
