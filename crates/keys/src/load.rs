//! Parsing key material: OpenPGP keyrings (armored or binary, any number of
//! certificates, concatenated armor blocks) and X.509 certificates (PEM, DER,
//! PKCS#7 `.p7b` bundles in DER or PEM). Secret key material is dropped on the
//! spot: sealgate only ever needs public keys.
//!
//! Two key-store formats are recognised by their headers and read by
//! [`crate::formats`]: GnuPG keyboxes (`.kbx`, OpenPGP side) and BouncyCastle
//! BKS key stores (X.509 side; their optional password only checks integrity,
//! see [`load_x509_file_with_password`]).

use crate::formats::{bks, keybox};
use crate::{KeyError, RecipientKey};
use openssl::pkcs7::Pkcs7;
use openssl::x509::X509;
use sequoia_openpgp::cert::CertParser;
use sequoia_openpgp::parse::Parse;
use std::path::Path;
use std::sync::Arc;

/// Reads a file and parses it as OpenPGP or X.509, whichever it is.
pub fn load_file(path: &Path) -> Result<Vec<RecipientKey>, KeyError> {
    let data = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_any(&data).map_err(|reason| KeyError::Parse {
        path: path.display().to_string(),
        reason,
    })
}

/// Reads a file that must hold OpenPGP certificates.
pub fn load_pgp_file(path: &Path) -> Result<Vec<RecipientKey>, KeyError> {
    read_with(path, parse_pgp)
}

/// Reads a file that must hold X.509 certificates.
pub fn load_x509_file(path: &Path) -> Result<Vec<RecipientKey>, KeyError> {
    read_with(path, parse_x509)
}

/// Like [`load_x509_file`], with the password of a BKS key store: given one,
/// the store's integrity MAC is checked (a mismatch is an error). The
/// password is ignored for the other formats.
pub fn load_x509_file_with_password(
    path: &Path,
    password: Option<&str>,
) -> Result<Vec<RecipientKey>, KeyError> {
    read_with(path, |data| parse_x509_with_password(data, password))
}

fn read_with(
    path: &Path,
    parse: impl Fn(&[u8]) -> Result<Vec<RecipientKey>, String>,
) -> Result<Vec<RecipientKey>, KeyError> {
    let data = std::fs::read(path).map_err(|source| KeyError::Read {
        path: path.display().to_string(),
        source,
    })?;
    // An empty key-store file is a valid, empty key store (e.g. a keyring
    // the admin fills later and reloads with SIGHUP).
    if data.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    parse(&data).map_err(|reason| KeyError::Parse {
        path: path.display().to_string(),
        reason,
    })
}

/// Guesses the format: a GnuPG keybox or a BKS store by its header, PGP armor
/// or X.509 PEM by their armor lines; other binary data is tried as X.509 DER /
/// PKCS#7 first, then as an OpenPGP keyring.
pub fn parse_any(data: &[u8]) -> Result<Vec<RecipientKey>, String> {
    if keybox::is_keybox(data) {
        return parse_pgp(data);
    }
    if bks::is_bks(data) {
        return parse_x509(data);
    }
    let text = String::from_utf8_lossy(&data[..data.len().min(64 * 1024)]);
    if text.contains("-----BEGIN PGP") {
        return parse_pgp(data);
    }
    if text.contains("-----BEGIN ") {
        return parse_x509(data);
    }
    parse_x509(data).or_else(|x509_err| {
        parse_pgp(data).map_err(|pgp_err| {
            format!("neither X.509 ({x509_err}) nor OpenPGP ({pgp_err}) key material")
        })
    })
}

/// OpenPGP certificates from an armored or binary keyring, or a GnuPG keybox
/// (a keybox without OpenPGP keys is a valid, empty key store).
pub fn parse_pgp(data: &[u8]) -> Result<Vec<RecipientKey>, String> {
    if keybox::is_keybox(data) {
        return Ok(keybox::parse_keybox(data)?
            .into_iter()
            .map(|cert| RecipientKey::Pgp(Arc::new(cert.strip_secret_key_material())))
            .collect());
    }
    let mut out = Vec::new();
    let text = std::str::from_utf8(data).ok();
    let blocks: Vec<&[u8]> = match text {
        Some(t) if t.contains("-----BEGIN PGP") => split_armor_blocks(t),
        _ => vec![data],
    };
    for block in blocks {
        let parser = CertParser::from_bytes(block).map_err(|e| format!("OpenPGP: {e}"))?;
        for cert in parser {
            let cert = cert.map_err(|e| format!("OpenPGP: {e}"))?;
            let cert = cert.strip_secret_key_material();
            out.push(RecipientKey::Pgp(Arc::new(cert)));
        }
    }
    if out.is_empty() {
        return Err("no OpenPGP certificate found".into());
    }
    Ok(out)
}

/// Each `-----BEGIN PGP ... -----END PGP ...-----` block of a text.
fn split_armor_blocks(text: &str) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN PGP") {
        let from = &rest[start..];
        let end = from
            .find("-----END PGP")
            .and_then(|e| from[e + 5..].find("-----").map(|f| e + 5 + f + 5))
            .unwrap_or(from.len());
        out.push(&from.as_bytes()[..end]);
        rest = &from[end..];
    }
    out
}

/// X.509 certificates from PEM (certificates and PKCS#7 blocks), DER, a
/// DER PKCS#7 bundle, or a BKS key store (read without a password: its
/// integrity MAC is not checked; a store without certificates is empty, not
/// an error).
pub fn parse_x509(data: &[u8]) -> Result<Vec<RecipientKey>, String> {
    parse_x509_with_password(data, None)
}

/// [`parse_x509`] with the password of a BKS key store (checks its integrity
/// MAC; ignored for the other formats).
pub fn parse_x509_with_password(
    data: &[u8],
    bks_password: Option<&str>,
) -> Result<Vec<RecipientKey>, String> {
    let wrap = |v: Vec<X509>| {
        v.into_iter()
            .map(|x| RecipientKey::Smime(Arc::new(x)))
            .collect()
    };
    if bks::is_bks(data) {
        return Ok(wrap(bks::parse_bks(data, bks_password)?));
    }
    let text = std::str::from_utf8(data).ok();
    if let Some(text) = text.filter(|t| t.contains("-----BEGIN ")) {
        let mut certs = Vec::new();
        if text.contains("-----BEGIN CERTIFICATE-----")
            || text.contains("-----BEGIN X509 CERTIFICATE-----")
        {
            certs.extend(X509::stack_from_pem(data).map_err(|e| format!("PEM certificate: {e}"))?);
        }
        if text.contains("-----BEGIN PKCS7-----") {
            let p7 = Pkcs7::from_pem(data).map_err(|e| format!("PEM PKCS#7: {e}"))?;
            certs.extend(pkcs7_certs(&p7));
        }
        if certs.is_empty() {
            return Err("no certificate found in PEM data".into());
        }
        return Ok(wrap(certs));
    }
    if let Ok(x) = X509::from_der(data) {
        return Ok(wrap(vec![x]));
    }
    match Pkcs7::from_der(data) {
        Ok(p7) => {
            let certs = pkcs7_certs(&p7);
            if certs.is_empty() {
                Err("PKCS#7 bundle holds no certificate".into())
            } else {
                Ok(wrap(certs))
            }
        }
        Err(_) => Err("not a DER certificate or PKCS#7 bundle".into()),
    }
}

fn pkcs7_certs(p7: &Pkcs7) -> Vec<X509> {
    p7.signed()
        .and_then(|s| s.certificates())
        .map(|stack| stack.iter().map(|c| c.to_owned()).collect())
        .unwrap_or_default()
}
