//! A throw-away GnuPG home for tests: the independent OpenPGP peer.
//!
//! Tests make keys with the real `gpg`, hand the public keys to sealgate, and
//! let `gpg --decrypt` judge what sealgate produced. Every [`GnupgHome`] is
//! its own temporary directory (mode 700); dropping it stops the gpg-agent
//! (and any other daemon) that gpg started for it, by `gpgconf --kill all`.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::{run_ok, run_with_timeout};

/// Time limit for one gpg call (RSA key generation included).
const GPG_TIMEOUT: Duration = Duration::from_secs(120);

/// A temporary `GNUPGHOME` with helpers that run `gpg --homedir` on it.
pub struct GnupgHome {
    dir: tempfile::TempDir,
}

impl GnupgHome {
    /// Creates an empty GnuPG home (a fresh temporary directory, mode 700).
    ///
    /// # Panics
    /// If the directory cannot be created.
    pub fn new() -> GnupgHome {
        let dir = tempfile::Builder::new()
            .prefix("sg-gpg-")
            .tempdir()
            .expect("create GnuPG home");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod 700 GnuPG home");
        GnupgHome { dir }
    }

    /// The home directory (pass it as `--homedir` or `GNUPGHOME`).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A `gpg --homedir H --batch` command with the loopback pinentry and an
    /// empty passphrase.
    pub fn gpg(&self) -> Command {
        let mut cmd = self.tool("gpg");
        cmd.arg("--no-tty");
        cmd
    }

    /// `program --homedir H --batch --yes` with the loopback pinentry and an
    /// empty passphrase: what gpg and gpgsm share.
    fn tool(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.arg("--homedir").arg(self.path()).args([
            "--batch",
            "--yes",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ]);
        cmd
    }

    /// Generates a key without passphrase and expiry for `uid` (e.g.
    /// `Alice <alice@example.org>`) and returns the primary key's fingerprint
    /// (40 or 64 uppercase hex digits).
    ///
    /// `algo` is `future-default` (ed25519 primary + cv25519 encryption
    /// subkey) or `default` (rsa3072 + rsa3072), made by one
    /// `--quick-gen-key`; any other algorithm (`rsa3072`, `rsa2048`,
    /// `ed25519`, `nistp256`, ...) makes a signing primary key of that
    /// algorithm plus an encryption subkey by `--quick-add-key` (cv25519 for
    /// ed25519, the same algorithm otherwise).
    ///
    /// # Panics
    /// If gpg fails.
    pub fn gen_key(&self, uid: &str, algo: &str) -> String {
        let combined = matches!(algo, "default" | "future-default");
        let mut cmd = self.gpg();
        cmd.args(["--status-fd", "1", "--quick-gen-key", uid, algo])
            .arg(if combined { "default" } else { "sign" })
            .arg("never");
        let status =
            run_ok(cmd, GPG_TIMEOUT).unwrap_or_else(|e| panic!("gpg --quick-gen-key: {e}"));
        let fpr = status
            .lines()
            .find_map(|l| {
                let rest = l.strip_prefix("[GNUPG:] KEY_CREATED ")?;
                rest.split_whitespace().nth(1).map(str::to_string)
            })
            .unwrap_or_else(|| panic!("gpg --quick-gen-key printed no KEY_CREATED:\n{status}"));
        if !combined {
            let sub = match algo {
                a if a.starts_with("ed25519") => "cv25519",
                a if a.starts_with("ed448") => "cv448",
                a => a,
            };
            let mut cmd = self.gpg();
            cmd.args(["--quick-add-key", &fpr, sub, "encr", "never"]);
            run_ok(cmd, GPG_TIMEOUT).unwrap_or_else(|e| panic!("gpg --quick-add-key: {e}"));
        }
        fpr.to_ascii_uppercase()
    }

    /// `gpg --armor --export WHO` (fingerprint, key id or address).
    ///
    /// # Panics
    /// If gpg fails or exports nothing.
    pub fn export_armored(&self, who: &str) -> Vec<u8> {
        let mut cmd = self.gpg();
        cmd.args(["--armor", "--export", who]);
        let out =
            run_with_timeout(cmd, GPG_TIMEOUT).unwrap_or_else(|e| panic!("gpg --export: {e}"));
        assert!(
            out.status.success() && !out.stdout.is_empty(),
            "gpg --export {who} gave nothing: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Sets the expiry of the key `fpr` and of all its subkeys
    /// (`--quick-set-expire`; `spec` such as `seconds=40`, `1y`, `never`).
    ///
    /// # Panics
    /// If gpg fails.
    pub fn set_expire(&self, fpr: &str, spec: &str) {
        for subkeys in [None, Some("*")] {
            let mut cmd = self.gpg();
            cmd.args(["--quick-set-expire", fpr, spec]);
            cmd.args(subkeys);
            run_ok(cmd, GPG_TIMEOUT).unwrap_or_else(|e| panic!("gpg --quick-set-expire: {e}"));
        }
    }

    /// Revokes the key `fpr` (its primary key) with the revocation
    /// certificate gpg made when it generated the key
    /// (`openpgp-revocs.d/FPR.rev`, whose armor line gpg prefixes with `:`
    /// against accidental import).
    ///
    /// # Panics
    /// If there is no such certificate or gpg fails.
    pub fn revoke(&self, fpr: &str) {
        let path = self
            .path()
            .join("openpgp-revocs.d")
            .join(format!("{fpr}.rev"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("revoke: {}: {e}", path.display()));
        self.import(text.replace(":-----BEGIN", "-----BEGIN").as_bytes());
    }

    /// Imports keys (armored or binary) into this home.
    ///
    /// # Panics
    /// If gpg fails.
    pub fn import(&self, data: &[u8]) {
        let file = self.temp_file("import", data);
        let mut cmd = self.gpg();
        cmd.arg("--import").arg(file.path());
        run_ok(cmd, GPG_TIMEOUT).unwrap_or_else(|e| panic!("gpg --import: {e}"));
    }

    /// The key ids (16 uppercase hex digits) of the encryption-capable
    /// subkeys of `who`, from `--list-keys --with-colons` (`sub` records with
    /// `e` in their capabilities, not revoked or expired).
    ///
    /// # Panics
    /// If gpg fails.
    pub fn encryption_keyids(&self, who: &str) -> Vec<String> {
        let mut cmd = self.gpg();
        cmd.args(["--with-colons", "--list-keys", who]);
        let out = run_ok(cmd, GPG_TIMEOUT).unwrap_or_else(|e| panic!("gpg --list-keys: {e}"));
        out.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                let usable = f.len() > 11
                    && (f[0] == "sub" || f[0] == "pub")
                    && f[11].contains('e')
                    && !matches!(f[1], "r" | "e");
                usable.then(|| f[4].to_ascii_uppercase())
            })
            .collect()
    }

    /// Decrypts `data` with `gpg --decrypt` and returns the plaintext. The
    /// data may be a binary or armored OpenPGP message, or a whole mail that
    /// contains one armored `PGP MESSAGE` block (e.g. PGP/MIME), which is
    /// then cut out first.
    ///
    /// Ok only if gpg exits 0 and reports `[GNUPG:] DECRYPTION_OKAY` on its
    /// status fd; Err carries gpg's status and error output.
    pub fn decrypt(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        self.decrypt_with(self.gpg(), "gpg", armored_block(data).unwrap_or(data))
    }

    /// Runs `tool --status-fd 2 --output F --decrypt INPUT` (gpg or gpgsm:
    /// same options, same status lines) and returns F's bytes, or Err unless
    /// the tool exits 0 and reports `[GNUPG:] DECRYPTION_OKAY`.
    fn decrypt_with(&self, mut cmd: Command, tool: &str, data: &[u8]) -> Result<Vec<u8>, String> {
        let input = self.temp_file("in", data);
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out_path = dir.path().join("plain");
        cmd.args(["--status-fd", "2", "--output"])
            .arg(&out_path)
            .arg("--decrypt")
            .arg(input.path());
        let out = run_with_timeout(cmd, GPG_TIMEOUT)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success()
            || !stderr
                .lines()
                .any(|l| l.starts_with("[GNUPG:] DECRYPTION_OKAY"))
        {
            return Err(format!(
                "{tool} --decrypt failed ({}):\n{stderr}",
                out.status
            ));
        }
        std::fs::read(&out_path).map_err(|e| format!("read {tool} output: {e}"))
    }

    /// The key ids (16 uppercase hex digits, in packet order) the OpenPGP
    /// message in `data` is encrypted to, from its public-key encrypted
    /// session key packets as `gpg --list-packets` shows them. Works without
    /// the secret keys. `data` may be a whole mail, as for
    /// [`GnupgHome::decrypt`].
    ///
    /// # Panics
    /// If gpg cannot be run.
    pub fn recipient_keyids(&self, data: &[u8]) -> Vec<String> {
        let input = self.temp_file("in", armored_block(data).unwrap_or(data));
        let mut cmd = self.gpg();
        cmd.args(["--status-fd", "2", "--list-packets"])
            .arg(input.path());
        // Exit status is non-zero without the secret key; the packets are
        // listed all the same.
        let out = run_with_timeout(cmd, GPG_TIMEOUT)
            .unwrap_or_else(|e| panic!("gpg --list-packets: {e}"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let mut ids: Vec<String> = stdout
            .lines()
            .filter(|l| l.starts_with(":pubkey enc packet:"))
            .filter_map(|l| l.split("keyid ").nth(1))
            .map(|id| id.trim().trim_end_matches(',').to_ascii_uppercase())
            .collect();
        if ids.is_empty() {
            // Fall back to the status lines.
            let stderr = String::from_utf8_lossy(&out.stderr);
            ids = stderr
                .lines()
                .filter_map(|l| l.strip_prefix("[GNUPG:] ENC_TO "))
                .filter_map(|r| r.split_whitespace().next())
                .map(str::to_ascii_uppercase)
                .collect();
        }
        ids
    }

    /// A `gpgsm --homedir H --batch` command with the loopback pinentry and
    /// an empty passphrase (the S/MIME side of GnuPG, same home).
    pub fn gpgsm(&self) -> Command {
        self.tool("gpgsm")
    }

    /// Imports a PKCS#12 file with an empty password into gpgsm. gpgsm 2.2
    /// reads only the legacy (3DES/RC2) PKCS#12 encryption: make it with
    /// `openssl pkcs12 -export -legacy` (see `pki::IssuedCert::pkcs12_legacy`).
    ///
    /// # Panics
    /// If gpgsm fails.
    pub fn gpgsm_import_p12(&self, p12: &[u8]) {
        let file = self.temp_file("p12", p12);
        let mut cmd = self.gpgsm();
        cmd.arg("--import").arg(file.path());
        run_ok(cmd, GPG_TIMEOUT).unwrap_or_else(|e| panic!("gpgsm --import: {e}"));
    }

    /// Decrypts a DER CMS EnvelopedData with `gpgsm --decrypt`. Ok only if
    /// gpgsm exits 0 and reports `[GNUPG:] DECRYPTION_OKAY`. (gpgsm 2.2
    /// cannot read AES-GCM AuthEnvelopedData.)
    pub fn gpgsm_decrypt(&self, der: &[u8]) -> Result<Vec<u8>, String> {
        self.decrypt_with(self.gpgsm(), "gpgsm", der)
    }

    /// Verifies a detached CMS signature (DER) over `content` with `gpgsm
    /// --verify`, trusting `root_pem` (imported and put in trustlist.txt;
    /// CRL checks off, as there is no dirmngr here). Ok with gpgsm's status
    /// lines only if it exits 0 and reports `GOODSIG`, `VALIDSIG` and
    /// `TRUST_FULLY` (a path to the root).
    pub fn gpgsm_verify(
        &self,
        root_pem: &Path,
        signature: &[u8],
        content: &[u8],
    ) -> Result<String, String> {
        std::fs::write(self.path().join("gpgsm.conf"), "disable-crl-checks\n")
            .map_err(|e| e.to_string())?;
        let mut cmd = self.gpgsm();
        cmd.arg("--import").arg(root_pem);
        run_ok(cmd, GPG_TIMEOUT)?;
        let mut cmd = Command::new("openssl");
        cmd.args(["x509", "-noout", "-fingerprint", "-sha1", "-in"])
            .arg(root_pem);
        let fpr = run_ok(cmd, GPG_TIMEOUT)?;
        let fpr = fpr.trim().rsplit('=').next().unwrap_or("").to_string();
        std::fs::write(self.path().join("trustlist.txt"), format!("{fpr} S\n"))
            .map_err(|e| e.to_string())?;
        let sig = self.temp_file("sig", signature);
        let data = self.temp_file("content", content);
        let mut cmd = self.gpgsm();
        cmd.args(["--status-fd", "1", "--verify"])
            .arg(sig.path())
            .arg(data.path());
        let out = run_with_timeout(cmd, GPG_TIMEOUT)?;
        let status = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let has = |s: &str| {
            status
                .lines()
                .any(|l| l.starts_with(&format!("[GNUPG:] {s} ")))
        };
        if out.status.success() && has("GOODSIG") && has("VALIDSIG") && has("TRUST_FULLY") {
            Ok(status)
        } else {
            Err(format!("gpgsm --verify failed ({}):\n{status}", out.status))
        }
    }

    /// A PGP/MIME signed mail (RFC 3156): `headers` (each line ending in
    /// CRLF), then `multipart/signed` over `entity` (a MIME entity, CRLF
    /// line endings) with a detached armored signature made by `gpg
    /// --detach-sign --local-user SIGNER` over exactly those bytes.
    ///
    /// # Panics
    /// If gpg fails.
    pub fn pgp_mime_signed(&self, signer: &str, headers: &str, entity: &[u8]) -> Vec<u8> {
        let input = self.temp_file("entity", entity);
        let mut cmd = self.gpg();
        cmd.args([
            "--armor",
            "--digest-algo",
            "SHA256",
            "--local-user",
            signer,
            "--output",
            "-",
            "--detach-sign",
        ])
        .arg(input.path());
        let sig = run_ok(cmd, GPG_TIMEOUT).unwrap_or_else(|e| panic!("gpg --detach-sign: {e}"));
        let sig = crlf(sig.as_bytes());
        let mut out = headers.as_bytes().to_vec();
        out.extend_from_slice(
            b"MIME-Version: 1.0\r\nContent-Type: multipart/signed; micalg=pgp-sha256;\r\n \
              protocol=\"application/pgp-signature\"; boundary=\"=-sig-b\"\r\n\r\n\
              This is an OpenPGP/MIME signed message (RFC 3156).\r\n--=-sig-b\r\n",
        );
        out.extend_from_slice(entity);
        out.extend_from_slice(
            b"\r\n--=-sig-b\r\nContent-Type: application/pgp-signature; name=\"signature.asc\"\r\n\
              Content-Disposition: attachment; filename=\"signature.asc\"\r\n\r\n",
        );
        out.extend_from_slice(&sig);
        out.extend_from_slice(b"\r\n--=-sig-b--\r\n");
        out
    }

    /// A PGP/MIME encrypted mail (RFC 3156 §4): `headers` (each line ending
    /// in CRLF), then `multipart/encrypted` whose payload is `entity` (a MIME
    /// entity) encrypted by `gpg --encrypt` to `recipients`, and signed in the
    /// same OpenPGP message by `signer` if given (§6.2), armored.
    ///
    /// # Panics
    /// If gpg fails.
    pub fn pgp_mime_encrypted(
        &self,
        recipients: &[&str],
        signer: Option<&str>,
        headers: &str,
        entity: &[u8],
    ) -> Vec<u8> {
        let input = self.temp_file("entity", entity);
        let mut cmd = self.gpg();
        cmd.args(["--armor", "--trust-model", "always", "--output", "-"]);
        for r in recipients {
            cmd.args(["--recipient", r]);
        }
        if let Some(s) = signer {
            cmd.args(["--local-user", s, "--sign"]);
        }
        cmd.arg("--encrypt").arg(input.path());
        let armored = run_ok(cmd, GPG_TIMEOUT).unwrap_or_else(|e| panic!("gpg --encrypt: {e}"));
        let mut out = headers.as_bytes().to_vec();
        out.extend_from_slice(
            b"MIME-Version: 1.0\r\nContent-Type: multipart/encrypted;\r\n \
              protocol=\"application/pgp-encrypted\"; boundary=\"=-enc-b\"\r\n\r\n\
              This is an OpenPGP/MIME encrypted message (RFC 3156).\r\n--=-enc-b\r\n\
              Content-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n--=-enc-b\r\n\
              Content-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\r\n",
        );
        out.extend_from_slice(&crlf(armored.as_bytes()));
        out.extend_from_slice(b"\r\n--=-enc-b--\r\n");
        out
    }

    /// `gpg --armor --export-secret-keys WHO` (unprotected: keys made here
    /// have no passphrase).
    ///
    /// # Panics
    /// If gpg fails or exports nothing.
    pub fn export_secret(&self, who: &str) -> Vec<u8> {
        let mut cmd = self.gpg();
        cmd.args(["--armor", "--export-secret-keys", who]);
        let out = run_with_timeout(cmd, GPG_TIMEOUT)
            .unwrap_or_else(|e| panic!("gpg --export-secret-keys: {e}"));
        assert!(
            out.status.success() && !out.stdout.is_empty(),
            "gpg --export-secret-keys {who} gave nothing: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A `multipart/mixed` entity: a text part and the armored key of `who`
    /// as an `application/pgp-keys` attachment (as Thunderbird and Enigmail
    /// attach a key), CRLF line endings.
    pub fn entity_with_key(&self, text: &str, who: &str) -> Vec<u8> {
        let key = crlf(&self.export_armored(who));
        let mut out = format!(
            "Content-Type: multipart/mixed; boundary=\"=-mix-b\"\r\n\r\n--=-mix-b\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n--=-mix-b\r\n\
             Content-Type: application/pgp-keys; name=\"key.asc\"\r\n\
             Content-Disposition: attachment; filename=\"key.asc\"\r\n\r\n"
        )
        .into_bytes();
        out.extend_from_slice(&key);
        out.extend_from_slice(b"\r\n--=-mix-b--");
        out
    }

    fn temp_file(&self, prefix: &str, data: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::Builder::new()
            .prefix(prefix)
            .tempfile()
            .expect("create temporary file");
        std::io::Write::write_all(&mut f, data).expect("write temporary file");
        f
    }
}

impl Default for GnupgHome {
    fn default() -> Self {
        GnupgHome::new()
    }
}

impl Drop for GnupgHome {
    fn drop(&mut self) {
        let mut cmd = Command::new("gpgconf");
        cmd.arg("--homedir")
            .arg(self.path())
            .args(["--kill", "all"]);
        let _ = run_with_timeout(cmd, Duration::from_secs(10));
    }
}

/// `data` with every line ending CRLF, without a trailing line ending.
fn crlf(data: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(data);
    text.trim_end()
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .collect::<Vec<_>>()
        .join("\r\n")
        .into_bytes()
}

/// The first `-----BEGIN PGP MESSAGE-----` ... `-----END PGP MESSAGE-----`
/// block in `data` (inclusive), if any.
fn armored_block(data: &[u8]) -> Option<&[u8]> {
    const BEGIN: &[u8] = b"-----BEGIN PGP MESSAGE-----";
    const END: &[u8] = b"-----END PGP MESSAGE-----";
    let start = find(data, BEGIN)?;
    let end = start + find(&data[start..], END)? + END.len();
    Some(&data[start..end])
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
