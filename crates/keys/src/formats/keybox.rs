//! GnuPG keybox (`.kbx`) reader: GnuPG 2.1+ keeps its public keys in
//! `pubring.kbx`, so admins point sealgate at that file directly. No Rust
//! crate reads the format without pulling in half of GnuPG's IPC stack, and
//! the format is small, so this is a hand-written reader of the documented
//! layout (GnuPG `kbx/keybox-blob.c`).
//!
//! A keybox is a sequence of blobs, each starting with its own length:
//!
//! ```text
//! u32 blob length (including these 4 bytes)   u8 blob type   u8 version   u16 flags
//! type 1 (first blob only): magic "KBXf" at offset 8
//! type 2 (OpenPGP) / 3 (X.509): u32 offset and u32 length of the keyblock
//!        (or DER certificate) at offsets 8 and 12, measured from the blob start;
//!        the last 20 bytes are a SHA-1 checksum of the rest of the blob
//! type 0: an empty (deleted) blob
//! ```
//!
//! Only OpenPGP blobs are read; X.509 blobs (gpgsm shares the file), empty
//! blobs, ephemeral blobs (keys GnuPG fetched for a one-off lookup and does
//! not show in its own key listings) and unknown future blob types are
//! skipped. Every length and offset is checked against the data, so a
//! truncated or corrupted file is an error naming the offset, never a panic.

use sequoia_openpgp::cert::CertParser;
use sequoia_openpgp::parse::Parse;
use sequoia_openpgp::Cert;

/// Magic of the header blob, at offset 8.
const MAGIC: &[u8; 4] = b"KBXf";
const BLOB_EMPTY: u8 = 0;
const BLOB_HEADER: u8 = 1;
const BLOB_OPENPGP: u8 = 2;
/// Blob flag: ephemeral (not part of the user's key ring proper).
const FLAG_EPHEMERAL: u16 = 0x0002;
/// Fixed part of an OpenPGP/X.509 blob: length, type, version, flags,
/// keyblock offset and keyblock length.
const BLOB_FIXED: usize = 16;
/// Trailing SHA-1 checksum of OpenPGP/X.509 blobs.
const CHECKSUM_LEN: usize = 20;

/// True if `data` starts with a keybox header blob (type 1, magic `KBXf`).
pub fn is_keybox(data: &[u8]) -> bool {
    data.len() >= 12
        && data[4] == BLOB_HEADER
        && &data[8..12] == MAGIC
        && be32(data, 0).is_some_and(|len| len >= 12)
}

/// Every OpenPGP certificate in a GnuPG keybox (blob type 2; X.509 blobs
/// (type 3) are skipped; the first blob is the header blob type 1 with magic
/// "KBXf"). Checks blob lengths, never panics on garbage; errors say what is
/// wrong (and at which offset). Secret key material, should a blob hold any,
/// is kept as parsed: callers strip it.
pub fn parse_keybox(data: &[u8]) -> Result<Vec<Cert>, String> {
    if data.len() < 12 {
        return Err(format!(
            "keybox: file too short for a header blob ({} bytes)",
            data.len()
        ));
    }
    if !is_keybox(data) {
        return Err("keybox: no header blob (type 1, magic \"KBXf\") at offset 0".into());
    }
    let mut certs = Vec::new();
    let mut offset = 0usize;
    let mut first = true;
    while offset < data.len() {
        let rest = &data[offset..];
        let len = be32(rest, 0).ok_or_else(|| {
            format!(
                "keybox: truncated blob header at offset {offset} ({} bytes left)",
                rest.len()
            )
        })? as usize;
        if len < 8 {
            return Err(format!(
                "keybox: blob at offset {offset} has an impossible length {len}"
            ));
        }
        if len > rest.len() {
            return Err(format!(
                "keybox: blob at offset {offset} claims {len} bytes but only {} remain (truncated file?)",
                rest.len()
            ));
        }
        let blob = &rest[..len];
        let kind = blob[4];
        if first {
            // Checked by is_keybox above.
            first = false;
        } else if kind == BLOB_OPENPGP {
            if let Some(block) = openpgp_keyblock(blob, offset)? {
                read_keyblock(block, offset, &mut certs)?;
            }
        } else if kind == BLOB_EMPTY || kind == BLOB_HEADER {
            // Deleted entry, or a stray header: nothing to read.
        } else {
            // X.509 (3) or a blob type from a future GnuPG: not OpenPGP keys.
        }
        offset += len;
    }
    Ok(certs)
}

/// The keyblock of an OpenPGP blob, or None if the blob is ephemeral.
fn openpgp_keyblock(blob: &[u8], at: usize) -> Result<Option<&[u8]>, String> {
    if blob.len() < BLOB_FIXED + CHECKSUM_LEN {
        return Err(format!(
            "keybox: OpenPGP blob at offset {at} is too short ({} bytes)",
            blob.len()
        ));
    }
    // The version byte (blob[5]) is not checked: 1 (20-byte fingerprints)
    // and 2 (GnuPG 2.3+, 32-byte fingerprints) share the fixed part we read.
    verify_checksum(blob, at)?;
    let flags = u16::from_be_bytes([blob[6], blob[7]]);
    if flags & FLAG_EPHEMERAL != 0 {
        return Ok(None);
    }
    let start = be32(blob, 8).unwrap_or(0) as usize;
    let len = be32(blob, 12).unwrap_or(0) as usize;
    let end = start
        .checked_add(len)
        .filter(|&end| start >= BLOB_FIXED && end <= blob.len() - CHECKSUM_LEN && len > 0)
        .ok_or_else(|| {
            format!(
                "keybox: OpenPGP blob at offset {at} ({} bytes) has its keyblock out of bounds (offset {start}, length {len})",
                blob.len()
            )
        })?;
    Ok(Some(&blob[start..end]))
}

/// The last 20 bytes are SHA-1 over the rest of the blob. Keyboxes written
/// before GnuPG 2.1 carried a never-checked MD5 there, with the first four
/// bytes zero; GnuPG accepts those, and so do we.
fn verify_checksum(blob: &[u8], at: usize) -> Result<(), String> {
    let (body, sum) = blob.split_at(blob.len() - CHECKSUM_LEN);
    if openssl::sha::sha1(body) == sum || sum[..4] == [0, 0, 0, 0] {
        Ok(())
    } else {
        Err(format!(
            "keybox: checksum mismatch in the blob at offset {at} (corrupted file)"
        ))
    }
}

fn read_keyblock(block: &[u8], at: usize, out: &mut Vec<Cert>) -> Result<(), String> {
    let parser = CertParser::from_bytes(block)
        .map_err(|e| format!("keybox: OpenPGP blob at offset {at}: {e}"))?;
    let before = out.len();
    for cert in parser {
        out.push(cert.map_err(|e| format!("keybox: OpenPGP blob at offset {at}: {e}"))?);
    }
    if out.len() == before {
        return Err(format!(
            "keybox: OpenPGP blob at offset {at} holds no certificate"
        ));
    }
    Ok(())
}

fn be32(data: &[u8], at: usize) -> Option<u32> {
    let b = data.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GnuPG 2.2 style header blob (32 bytes).
    fn header() -> Vec<u8> {
        let mut h = vec![0, 0, 0, 32, BLOB_HEADER, 1, 0, 2];
        h.extend_from_slice(MAGIC);
        h.resize(32, 0);
        h
    }

    /// An OpenPGP blob around `keyblock`, with a correct checksum.
    fn pgp_blob(keyblock: &[u8], flags: u16) -> Vec<u8> {
        let start = BLOB_FIXED as u32 + 8; // some filler, as GnuPG has
        let mut b = vec![0, 0, 0, 0, BLOB_OPENPGP, 1];
        b.extend_from_slice(&flags.to_be_bytes());
        b.extend_from_slice(&start.to_be_bytes());
        b.extend_from_slice(&(keyblock.len() as u32).to_be_bytes());
        b.resize(start as usize, 0xAA);
        b.extend_from_slice(keyblock);
        let total = (b.len() + CHECKSUM_LEN) as u32;
        b[..4].copy_from_slice(&total.to_be_bytes());
        let sum = openssl::sha::sha1(&b);
        b.extend_from_slice(&sum);
        b
    }

    fn sample_cert() -> Vec<u8> {
        use sequoia_openpgp::serialize::Serialize;
        let (cert, _) =
            sequoia_openpgp::cert::CertBuilder::general_purpose(Some("<a@example.org>"))
                .generate()
                .unwrap();
        let mut v = Vec::new();
        cert.serialize(&mut v).unwrap();
        v
    }

    #[test]
    fn header_only_is_an_empty_keybox() {
        assert!(is_keybox(&header()));
        assert!(parse_keybox(&header()).unwrap().is_empty());
    }

    #[test]
    fn reads_openpgp_blobs_and_skips_others() {
        let cert = sample_cert();
        let mut kbx = header();
        kbx.extend(pgp_blob(&cert, 0));
        let mut x509 = pgp_blob(b"not a cert", 0);
        x509[4] = 3;
        kbx.extend(x509);
        let mut empty = pgp_blob(b"deleted", 0);
        empty[4] = BLOB_EMPTY;
        kbx.extend(empty);
        kbx.extend(pgp_blob(&cert, FLAG_EPHEMERAL));
        kbx.extend(pgp_blob(&cert, 0));
        assert_eq!(parse_keybox(&kbx).unwrap().len(), 2);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let mut kbx = header();
        kbx.extend(pgp_blob(&sample_cert(), 0));
        for cut in 0..kbx.len() {
            let r = parse_keybox(&kbx[..cut]);
            if cut == 32 {
                assert!(r.unwrap().is_empty(), "a header alone is a valid keybox");
            } else {
                assert!(r.is_err(), "cut at {cut} must fail");
            }
        }
    }

    #[test]
    fn corrupted_bytes_are_errors() {
        let mut kbx = header();
        kbx.extend(pgp_blob(&sample_cert(), 0));
        for i in 32..kbx.len() {
            let mut bad = kbx.clone();
            bad[i] ^= 0x5A;
            // Flipping a byte breaks the checksum, a length or the keyblock;
            // whatever it breaks, it must not panic, and most must fail.
            let _ = parse_keybox(&bad);
        }
        let mut bad = kbx.clone();
        bad[60] ^= 1;
        let err = parse_keybox(&bad).unwrap_err();
        assert!(
            err.contains("checksum") && err.contains("offset 32"),
            "{err}"
        );
    }

    #[test]
    fn huge_and_tiny_lengths() {
        let mut kbx = header();
        kbx.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, BLOB_OPENPGP, 1, 0, 0]);
        let err = parse_keybox(&kbx).unwrap_err();
        assert!(err.contains("offset 32") && err.contains("claims"), "{err}");

        let mut kbx = header();
        kbx.extend_from_slice(&[0, 0, 0, 0, BLOB_OPENPGP, 1, 0, 0]);
        assert!(parse_keybox(&kbx)
            .unwrap_err()
            .contains("impossible length"));

        // Keyblock offset/length pointing outside the blob.
        for (start, len) in [(0u32, 10u32), (16, u32::MAX), (u32::MAX, 1), (16, 0)] {
            let mut blob = pgp_blob(b"xxxxxxxx", 0);
            blob[8..12].copy_from_slice(&start.to_be_bytes());
            blob[12..16].copy_from_slice(&len.to_be_bytes());
            let n = blob.len() - CHECKSUM_LEN;
            let sum = openssl::sha::sha1(&blob[..n]);
            blob[n..].copy_from_slice(&sum);
            let mut kbx = header();
            kbx.extend(blob);
            let err = parse_keybox(&kbx).unwrap_err();
            assert!(err.contains("out of bounds"), "{err}");
        }

        // A huge header length.
        let mut h = header();
        h[..4].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(parse_keybox(&h).is_err());
    }

    #[test]
    fn random_garbage_never_panics() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..2000 {
            let len = (next() % 300) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 {
                // Give half of them a valid header so the blob walk is exercised.
                let mut kbx = header();
                kbx.append(&mut data);
                data = kbx;
            }
            let _ = is_keybox(&data);
            let _ = parse_keybox(&data);
        }
        assert!(!is_keybox(b""));
        assert!(parse_keybox(b"KBXf").is_err());
        assert!(parse_keybox(&[0u8; 64]).is_err());
    }
}
