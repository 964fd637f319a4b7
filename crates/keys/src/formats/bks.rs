//! BouncyCastle BKS key store reader: Java-based mail systems (and the
//! S/Notify key-store option this gateway replaces) keep recipients'
//! certificates in BKS files. No Rust crate reads BKS, and the format is a
//! small `DataOutputStream` dump, so this is a hand-written reader of the
//! documented layout (BouncyCastle `BcKeyStoreSpi`, version 1 and 2 stores).
//!
//! ```text
//! i32 version (1 or 2)   i32 salt length   salt   i32 iteration count
//! entries, each:
//!   u8 type (1 certificate, 2 key, 3 secret, 4 sealed; 0 ends the list)
//!   UTF alias (u16 length + modified UTF-8)   i64 date (ms)
//!   i32 chain length, then that many certificates
//!   type 1: a certificate; 2: u8 key type, UTF format, UTF algorithm,
//!           i32 length, key bytes; 3 and 4: i32 length, opaque bytes
//! (a certificate is: UTF type, e.g. "X.509", i32 length, encoding)
//! 20 bytes HMAC-SHA1 over the entries (from the first type byte through the
//! terminating 0), keyed by the PKCS#12 KDF (SHA-1, ID 3 "MAC") of the store
//! password, salt and iteration count; the key is 20 bytes in version 2 and,
//! by a historical BouncyCastle bug, 2 bytes in version 1.
//! ```
//!
//! Only certificates are returned: certificate entries and the certificate
//! chains of key entries. Key material (private, sealed or secret) is walked
//! over, never decoded: sealgate only needs recipients' public certificates.
//! The password only guards integrity (certificates are stored in the clear),
//! so it is optional; given one, a MAC mismatch is an error.

use openssl::pkey::PKey;
use openssl::sign::Signer;
use openssl::x509::X509;

const MAC_LEN: usize = 20;
/// Salt lengths beyond this are not BouncyCastle's (it writes 20).
const MAX_SALT: usize = 1024;
/// The KDF runs this many SHA-1 rounds at most (BouncyCastle writes
/// 1024..2047); a corrupted count must not make a reload hang.
const MAX_ITERATIONS: u32 = 1 << 20;

const ENTRY_END: u8 = 0;
const ENTRY_CERTIFICATE: u8 = 1;
const ENTRY_KEY: u8 = 2;
const ENTRY_SECRET: u8 = 3;
const ENTRY_SEALED: u8 = 4;

/// True if `data` starts like a BKS store: version 1 or 2, a salt length of
/// 1..=1024 that fits the data, a positive iteration count, and a valid first
/// entry type byte.
pub fn is_bks(data: &[u8]) -> bool {
    let mut r = Reader::new(data);
    let ok = (|| -> Result<bool, String> {
        let version = r.i32()?;
        let salt = r.i32()?;
        if !(1..=2).contains(&version) || salt < 1 || salt as usize > MAX_SALT {
            return Ok(false);
        }
        r.take(salt as usize)?;
        let iterations = r.i32()?;
        let first = r.u8()?;
        Ok(iterations > 0 && first <= ENTRY_SEALED)
    })();
    ok.unwrap_or(false)
}

/// The certificates of a BKS (v1 or v2) key store: certificate entries and
/// the certificate chains of key entries, in file order, duplicates removed.
/// Without a password the integrity MAC is not checked (public certificates
/// need none); with one, a wrong MAC is an error ("keystore integrity check
/// failed: wrong password or corrupted file"). Sealed/secret entries are
/// skipped (we never need private keys). An empty password counts as none,
/// as in BouncyCastle.
pub fn parse_bks(data: &[u8], password: Option<&str>) -> Result<Vec<X509>, String> {
    let mut r = Reader::new(data);
    let version = r.i32()?;
    if !(1..=2).contains(&version) {
        return Err(format!(
            "BKS: unsupported key store version {version} (only 1 and 2 are known)"
        ));
    }
    let salt_len = r.i32()?;
    if salt_len < 1 || salt_len as usize > MAX_SALT {
        return Err(format!(
            "BKS: implausible salt length {salt_len} at offset 4"
        ));
    }
    let salt = r.take(salt_len as usize)?;
    let iterations = r.i32()?;

    let entries_start = r.pos;
    let mut ders: Vec<(&[u8], String)> = Vec::new();
    loop {
        let at = r.pos;
        let kind = r.u8()?;
        if kind == ENTRY_END {
            break;
        }
        let alias = r.utf()?;
        let alias = String::from_utf8_lossy(alias).into_owned();
        r.take(8)?; // creation date
        let chain = r.len_i32("certificate chain length", 6)?;
        for i in 0..chain {
            if let Some(der) = r.certificate()? {
                ders.push((der, format!("entry '{alias}', chain certificate {}", i + 1)));
            }
        }
        match kind {
            ENTRY_CERTIFICATE => {
                if let Some(der) = r.certificate()? {
                    ders.push((der, format!("entry '{alias}'")));
                }
            }
            ENTRY_KEY => {
                r.u8()?; // private / public / secret
                r.utf()?; // format
                r.utf()?; // algorithm
                let n = r.len_i32("key length", 1)?;
                r.take(n)?;
            }
            ENTRY_SECRET | ENTRY_SEALED => {
                let n = r.len_i32("key data length", 1)?;
                r.take(n)?;
            }
            other => {
                return Err(format!(
                    "BKS: unknown entry type {other} at offset {at} (not a BKS store, or corrupted)"
                ))
            }
        }
    }
    let entries_end = r.pos;
    let mac = data
        .get(entries_end..entries_end + MAC_LEN)
        .ok_or_else(|| {
            format!("BKS: truncated: the integrity MAC at offset {entries_end} is missing")
        })?;

    if let Some(password) = password.filter(|p| !p.is_empty()) {
        if iterations < 1 || iterations as u32 > MAX_ITERATIONS {
            return Err(format!("BKS: implausible iteration count {iterations}"));
        }
        let key_len = if version == 2 { MAC_LEN } else { MAC_LEN / 8 };
        let key = pkcs12_mac_key(password, salt, iterations as u32, key_len);
        let computed = hmac_sha1(&key, &data[entries_start..entries_end])?;
        if !openssl::memcmp::eq(&computed, mac) {
            return Err(
                "BKS: keystore integrity check failed: wrong password or corrupted file".into(),
            );
        }
    }

    let mut out: Vec<X509> = Vec::new();
    let mut seen: Vec<&[u8]> = Vec::new();
    for (der, what) in ders {
        if seen.contains(&der) {
            continue;
        }
        seen.push(der);
        out.push(X509::from_der(der).map_err(|e| format!("BKS: {what}: bad certificate: {e}"))?);
    }
    Ok(out)
}

/// RFC 7292 appendix B.2 with SHA-1 (u = 20, v = 64) and ID 3 (MAC key);
/// the password is the BMPString (UTF-16BE, two zero bytes at the end), as
/// Java's `char[]` gives it.
fn pkcs12_mac_key(password: &str, salt: &[u8], iterations: u32, n: usize) -> Vec<u8> {
    const U: usize = 20;
    const V: usize = 64;
    let mut pass: Vec<u8> = password.encode_utf16().flat_map(u16::to_be_bytes).collect();
    pass.extend_from_slice(&[0, 0]);
    let fill = |src: &[u8]| -> Vec<u8> {
        if src.is_empty() {
            return Vec::new();
        }
        let len = V * src.len().div_ceil(V);
        src.iter().copied().cycle().take(len).collect()
    };
    let mut i_block = fill(salt);
    i_block.extend(fill(&pass));
    let d = [3u8; V];
    let mut out = Vec::with_capacity(n + U);
    while out.len() < n {
        let mut h = openssl::sha::Sha1::new();
        h.update(&d);
        h.update(&i_block);
        let mut a = h.finish();
        for _ in 1..iterations {
            a = openssl::sha::sha1(&a);
        }
        out.extend_from_slice(&a);
        if out.len() >= n {
            break;
        }
        // I_j = (I_j + B + 1) mod 2^(8v), B = A repeated to v bytes.
        let b: Vec<u8> = a.iter().copied().cycle().take(V).collect();
        for chunk in i_block.chunks_mut(V) {
            let mut carry = 1u16;
            for k in (0..V).rev() {
                let sum = chunk[k] as u16 + b[k] as u16 + carry;
                chunk[k] = sum as u8;
                carry = sum >> 8;
            }
        }
    }
    out.truncate(n);
    out
}

fn hmac_sha1(key: &[u8], data: &[u8]) -> Result<Vec<u8>, String> {
    let key = PKey::hmac(key).map_err(|e| format!("BKS: HMAC key: {e}"))?;
    let mut signer = Signer::new(openssl::hash::MessageDigest::sha1(), &key)
        .map_err(|e| format!("BKS: HMAC: {e}"))?;
    signer
        .update(data)
        .and_then(|_| signer.sign_to_vec())
        .map_err(|e| format!("BKS: HMAC: {e}"))
}

/// A bounds-checked big-endian reader; every error names the offset.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(format!(
                "BKS: truncated: {n} bytes needed at offset {}, {} left",
                self.pos,
                self.data.len() - self.pos
            )),
        }
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn i32(&mut self) -> Result<i32, String> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A Java `writeUTF` string: u16 length, then that many bytes.
    fn utf(&mut self) -> Result<&'a [u8], String> {
        let b = self.take(2)?;
        let n = u16::from_be_bytes([b[0], b[1]]) as usize;
        self.take(n)
    }

    /// A non-negative i32 count or length whose items take at least
    /// `min_item` bytes each, checked against what is left so a corrupted
    /// field fails here rather than in a long loop.
    fn len_i32(&mut self, what: &str, min_item: usize) -> Result<usize, String> {
        let at = self.pos;
        let n = self.i32()?;
        let left = self.data.len() - self.pos;
        if n < 0 || (n as usize).saturating_mul(min_item) > left {
            return Err(format!(
                "BKS: implausible {what} {n} at offset {at} ({left} bytes left)"
            ));
        }
        Ok(n as usize)
    }

    /// One encoded certificate; Some(DER) if it is X.509, None for other
    /// certificate types (which sealgate cannot use).
    fn certificate(&mut self) -> Result<Option<&'a [u8]>, String> {
        let kind = self.utf()?;
        let n = self.len_i32("certificate length", 1)?;
        let der = self.take(n)?;
        Ok((kind == b"X.509" || kind == b"X509").then_some(der))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A BKS body writer for tests (no MAC key needed: tests without a
    /// password do not check it).
    fn store(version: i32, entries: &[(u8, &[u8])]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&version.to_be_bytes());
        v.extend_from_slice(&20i32.to_be_bytes());
        v.extend_from_slice(&[7u8; 20]);
        v.extend_from_slice(&1500i32.to_be_bytes());
        for (kind, body) in entries {
            v.push(*kind);
            v.extend_from_slice(&1u16.to_be_bytes());
            v.push(b'a');
            v.extend_from_slice(&0i64.to_be_bytes());
            v.extend_from_slice(&0i32.to_be_bytes()); // no chain
            v.extend_from_slice(body);
        }
        v.push(ENTRY_END);
        v.extend_from_slice(&[0u8; MAC_LEN]);
        v
    }

    fn cert_body(der: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&5u16.to_be_bytes());
        v.extend_from_slice(b"X.509");
        v.extend_from_slice(&(der.len() as i32).to_be_bytes());
        v.extend_from_slice(der);
        v
    }

    fn self_signed() -> Vec<u8> {
        use openssl::{asn1::Asn1Time, hash::MessageDigest, rsa::Rsa, x509::X509Name};
        let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
        let mut name = X509Name::builder().unwrap();
        name.append_entry_by_text("CN", "t").unwrap();
        let name = name.build();
        let mut b = X509::builder().unwrap();
        b.set_subject_name(&name).unwrap();
        b.set_issuer_name(&name).unwrap();
        b.set_pubkey(&key).unwrap();
        b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
            .unwrap();
        b.set_not_after(&Asn1Time::days_from_now(1).unwrap())
            .unwrap();
        b.sign(&key, MessageDigest::sha256()).unwrap();
        b.build().to_der().unwrap()
    }

    #[test]
    fn reads_certificates_and_skips_keys() {
        let der = self_signed();
        let mut sealed = 3i32.to_be_bytes().to_vec();
        sealed.extend_from_slice(b"xyz");
        let data = store(
            2,
            &[
                (ENTRY_CERTIFICATE, &cert_body(&der)),
                (ENTRY_SEALED, &sealed),
                (ENTRY_CERTIFICATE, &cert_body(&der)),
            ],
        );
        assert!(is_bks(&data));
        let certs = parse_bks(&data, None).unwrap();
        assert_eq!(certs.len(), 1, "duplicates removed");
        assert_eq!(certs[0].to_der().unwrap(), der);
        assert!(parse_bks(&store(1, &[]), None).unwrap().is_empty());
        // With a password, the all-zero MAC is wrong.
        let err = parse_bks(&data, Some("pw")).unwrap_err();
        assert!(err.contains("integrity check failed"), "{err}");
        // An empty password is no password (as in BouncyCastle).
        assert!(parse_bks(&data, Some("")).is_ok());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let data = store(2, &[(ENTRY_CERTIFICATE, &cert_body(&self_signed()))]);
        for cut in 0..data.len() {
            assert!(parse_bks(&data[..cut], None).is_err(), "cut at {cut}");
            assert!(parse_bks(&data[..cut], Some("pw")).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn huge_and_negative_length_fields() {
        let der = self_signed();
        let good = store(2, &[(ENTRY_CERTIFICATE, &cert_body(&der))]);
        // Salt length, iteration count: offsets 4 and 28.
        for salt in [i32::MIN, -1, 0, 1025, i32::MAX] {
            let mut d = good.clone();
            d[4..8].copy_from_slice(&salt.to_be_bytes());
            assert!(!is_bks(&d));
            assert!(parse_bks(&d, None).unwrap_err().contains("salt"));
        }
        for it in [i32::MIN, -1, 0, i32::MAX] {
            let mut d = good.clone();
            d[28..32].copy_from_slice(&it.to_be_bytes());
            assert!(parse_bks(&d, Some("pw")).unwrap_err().contains("iteration"));
        }
        // Entry: type 32, alias len 33..34, alias 35, date 36..44, chain 44..48,
        // cert type len 48..50, "X.509" 50..55, cert len 55..59.
        for (at, value) in [
            (44usize, i32::MAX),
            (44, -5),
            (55, i32::MAX),
            (55, i32::MIN),
        ] {
            let mut d = good.clone();
            d[at..at + 4].copy_from_slice(&value.to_be_bytes());
            let err = parse_bks(&d, None).unwrap_err();
            assert!(err.contains("implausible"), "{err}");
        }
        let mut d = good.clone();
        d[33..35].copy_from_slice(&u16::MAX.to_be_bytes());
        assert!(parse_bks(&d, None).unwrap_err().contains("truncated"));
        let mut d = good.clone();
        d[32] = 9;
        assert!(parse_bks(&d, None)
            .unwrap_err()
            .contains("unknown entry type 9"));
        // Version.
        let mut d = good.clone();
        d[..4].copy_from_slice(&3i32.to_be_bytes());
        assert!(!is_bks(&d));
        assert!(parse_bks(&d, None).unwrap_err().contains("version 3"));
        // A corrupted certificate encoding.
        let mut d = good;
        d[60] ^= 0xFF;
        assert!(parse_bks(&d, None).unwrap_err().contains("bad certificate"));
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..3000 {
            let len = (next() % 200) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 && data.len() > 32 {
                // A plausible header so that the entry walk is exercised.
                data[..4].copy_from_slice(&2i32.to_be_bytes());
                data[4..8].copy_from_slice(&20i32.to_be_bytes());
                data[28..32].copy_from_slice(&1024i32.to_be_bytes());
                data[32] = (next() % 5) as u8;
            }
            let _ = is_bks(&data);
            let _ = parse_bks(&data, None);
            let _ = parse_bks(&data, Some("changeit"));
        }
    }

    #[test]
    fn pkcs12_kdf_known_answers() {
        // Computed independently by OpenSSL 3.0, which takes the password
        // already BMP-encoded (UTF-16BE plus two zero bytes) as hexpass:
        // openssl kdf -keylen N -kdfopt digest:SHA1 -kdfopt hexpass:BMP
        //   -kdfopt hexsalt:S -kdfopt id:3 -kdfopt iter:I PKCS12KDF
        let hex = |s: &str| -> Vec<u8> {
            s.split(':')
                .map(|b| u8::from_str_radix(b.trim(), 16).unwrap())
                .collect()
        };
        let salt: Vec<u8> = (1..=20).collect();
        assert_eq!(
            pkcs12_mac_key("changeit", &salt, 1500, 20),
            hex("C2:63:57:54:5F:26:55:75:5E:69:E4:0D:91:1E:8D:FB:27:4C:F1:EF")
        );
        // Longer than one SHA-1 output: exercises the I_j update.
        let salt = hex("0A:58:CF:64:53:0D:82:3F");
        assert_eq!(
            pkcs12_mac_key("smeg", &salt, 1, 50),
            hex(
                "9B:A6:EF:31:7B:8C:B9:F4:76:0A:B2:FA:2E:51:C0:66:F0:DC:E6:45:FB:EF:FC:7F:D0:\
                 09:EB:4E:97:2A:D2:AE:DE:D2:CA:54:7E:EC:A4:7C:69:7A:20:2A:FB:8E:D7:36:8B:86"
            )
        );
        // Non-ASCII password (a BMP character beyond Latin-1 included).
        assert_eq!(
            pkcs12_mac_key("p\u{e4}ssw\u{f6}rd\u{20ac}", &salt, 3, 50),
            hex(
                "DC:C6:34:E3:B9:16:58:0E:7C:2E:7C:15:A6:2B:1C:AF:D5:E2:77:65:75:5D:9B:B4:F1:\
                 F3:CB:D1:03:2C:81:BA:D7:FC:58:0A:99:25:B7:73:8E:D3:EC:3F:50:E5:6A:07:CB:1C"
            )
        );
    }

    #[test]
    fn pkcs12_kdf_lengths() {
        // The KDF output is a prefix-stable stream: the 2-byte v1 key is the
        // start of the 20-byte v2 key, and longer outputs extend it.
        let k20 = pkcs12_mac_key("changeit", b"salt", 1024, 20);
        let k2 = pkcs12_mac_key("changeit", b"salt", 1024, 2);
        let k50 = pkcs12_mac_key("changeit", b"salt", 1024, 50);
        assert_eq!(&k20[..2], &k2[..]);
        assert_eq!(&k50[..20], &k20[..]);
        assert_ne!(k20, pkcs12_mac_key("changeiT", b"salt", 1024, 20));
    }
}
