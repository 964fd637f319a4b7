//! A throw-away X.509 PKI for tests: the independent S/MIME peer.
//!
//! [`TestCa`] is a certificate authority made with the real `openssl` CLI in
//! its own temporary directory (`openssl ca` with an index, so that it can
//! issue expired or not-yet-valid certificates, revoke and publish CRLs). It
//! issues end-entity certificates ([`IssuedCert`]) with the key type,
//! addresses and extensions a test asks for ([`CertOptions`]). The free
//! functions let `openssl cms` judge what sealgate produced: decrypt it
//! ([`cms_decrypt`], CBC EnvelopedData and GCM AuthEnvelopedData alike) and
//! list whom it is encrypted to ([`cms_recipients`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::process::{run_ok, run_with_timeout};

/// Time limit for one openssl call.
const OPENSSL_TIMEOUT: Duration = Duration::from_secs(60);

/// What to put into an end-entity certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertOptions {
    /// subjectAltName `email:` entry (none if `None`).
    pub email: Option<String>,
    /// `emailAddress` attribute in the subject DN (none if `None`).
    pub subject_email: Option<String>,
    /// Subject common name; defaults to the email address, else `Test User N`.
    pub common_name: Option<String>,
    /// keyUsage (critical), e.g. `digitalSignature,keyEncipherment`
    /// (RSA) or `digitalSignature,keyAgreement` (EC); none if `None`.
    pub key_usage: Option<String>,
    /// extendedKeyUsage, e.g. `emailProtection`; none if `None`.
    pub ext_key_usage: Option<String>,
    /// notAfter, in days from now. Zero or negative: already expired
    /// (notAfter = now + days days, minus one minute).
    pub days: i64,
    /// notBefore, in days from now (default -1). Positive: not yet valid.
    /// Moved to 30 days before notAfter if it would not precede it.
    pub not_before_days: i64,
    /// Key type: `rsa2048`, `rsa3072`, `rsa4096`, `ec-p256`, `ec-p384`,
    /// `ec-p521`; and, to test that they are refused, `rsa1024`,
    /// `rsa-pss`, `ec-secp256k1`, `ed25519`, `dsa2048`.
    pub key: String,
    /// crlDistributionPoints `URI:` entry (none if `None`).
    pub crl_url: Option<String>,
}

impl Default for CertOptions {
    /// `alice@example.org` in subjectAltName, keyUsage
    /// `digitalSignature,keyEncipherment`, extendedKeyUsage
    /// `emailProtection`, valid from yesterday for 365 days, RSA 2048.
    fn default() -> Self {
        CertOptions {
            email: Some("alice@example.org".to_string()),
            subject_email: None,
            common_name: None,
            key_usage: Some("digitalSignature,keyEncipherment".to_string()),
            ext_key_usage: Some("emailProtection".to_string()),
            days: 365,
            not_before_days: -1,
            key: "rsa2048".to_string(),
            crl_url: None,
        }
    }
}

/// A certificate issued by a [`TestCa`], with its private key on disk.
#[derive(Debug, Clone)]
pub struct IssuedCert {
    /// The certificate, PEM, on disk (inside the CA's directory).
    pub cert_pem_path: PathBuf,
    /// The unencrypted private key, PEM (PKCS#8), on disk.
    pub key_path: PathBuf,
    /// The certificate, PEM.
    pub cert_pem: Vec<u8>,
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// Serial number, uppercase hex without leading zeros.
    pub serial: String,
    /// Issuer DN as `openssl` prints it one-line, e.g. `CN=Test CA`.
    pub issuer: String,
}

impl IssuedCert {
    /// This certificate's issuer and serial in the form [`cms_recipients`]
    /// reports them: `issuer=CN=Test CA;serial=1000`.
    pub fn recipient_id(&self) -> String {
        format!("issuer={};serial={}", self.issuer, self.serial)
    }

    /// The certificate and its key as a PKCS#12 file with an empty password,
    /// in the legacy encryption (`openssl pkcs12 -export -legacy`) that
    /// gpgsm 2.2 and older mail clients read.
    ///
    /// # Panics
    /// If openssl fails.
    pub fn pkcs12_legacy(&self) -> Vec<u8> {
        self.pkcs12_export(&["-legacy", "-passout", "pass:"])
    }

    /// The certificate and its key as a PKCS#12 file protected by
    /// `password`, in OpenSSL 3's default encryption (AES-256, PBKDF2).
    ///
    /// # Panics
    /// If openssl fails.
    pub fn pkcs12(&self, password: &str) -> Vec<u8> {
        self.pkcs12_export(&["-passout", &format!("pass:{password}")])
    }

    fn pkcs12_export(&self, opts: &[&str]) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("cert.p12");
        openssl(|c| {
            c.args(["pkcs12", "-export"])
                .args(opts)
                .arg("-in")
                .arg(&self.cert_pem_path)
                .arg("-inkey")
                .arg(&self.key_path)
                .arg("-out")
                .arg(&out);
        });
        std::fs::read(&out).expect("read p12")
    }
}

/// A test certificate authority in a temporary directory.
pub struct TestCa {
    dir: tempfile::TempDir,
    name: String,
    /// The CA certificate, PEM, on disk.
    pub cert_pem_path: PathBuf,
    /// The CA's private key, PEM, on disk.
    pub key_path: PathBuf,
    /// The CA certificate, PEM.
    pub cert_pem: Vec<u8>,
    /// The CA certificate, DER.
    pub cert_der: Vec<u8>,
    issued: AtomicU32,
}

impl TestCa {
    /// Creates a CA with subject `CN=<name>` (no `/` in `name`), an RSA 2048
    /// key, basicConstraints CA:TRUE, keyUsage keyCertSign+cRLSign, valid from
    /// ten years ago to ten years from now (so that expired end-entity
    /// certificates still lie inside its validity).
    ///
    /// # Panics
    /// If openssl fails.
    pub fn new(name: &str) -> TestCa {
        TestCa::create(name, None)
    }

    /// An intermediate CA under this one: subject `CN=<name>`, RSA 2048,
    /// basicConstraints CA:TRUE, keyUsage keyCertSign+cRLSign, signed by
    /// this CA, valid from nine years ago to nine years from now.
    ///
    /// # Panics
    /// If openssl fails.
    pub fn intermediate(&self, name: &str) -> TestCa {
        TestCa::create(name, Some(self))
    }

    fn create(name: &str, parent: Option<&TestCa>) -> TestCa {
        assert!(!name.contains('/'), "CA name must not contain '/'");
        let dir = tempfile::Builder::new()
            .prefix("sg-ca-")
            .tempdir()
            .expect("create CA dir");
        let d = dir.path();
        std::fs::create_dir(d.join("newcerts")).expect("mkdir newcerts");
        std::fs::write(d.join("index.txt"), b"").expect("write index.txt");
        std::fs::write(d.join("serial"), b"1000\n").expect("write serial");
        std::fs::write(d.join("crlnumber"), b"1000\n").expect("write crlnumber");
        std::fs::write(d.join("index.txt.attr"), b"unique_subject = no\n")
            .expect("write index attr");
        std::fs::write(d.join("ca.cnf"), ca_config(d)).expect("write ca.cnf");

        let key_path = d.join("ca.key");
        gen_key(&key_path, "rsa2048");
        let csr = d.join("ca.csr");
        openssl(|c| {
            c.args(["req", "-new", "-key"])
                .arg(&key_path)
                .args(["-subj", &format!("/CN={name}"), "-out"])
                .arg(&csr);
        });
        let cert_pem_path = d.join("ca.crt");
        let now = now_secs();
        let years = if parent.is_some() { 3285 } else { 3650 };
        openssl(|c| {
            c.args(["ca", "-batch", "-notext"]);
            match parent {
                None => c
                    .args(["-selfsign", "-config"])
                    .arg(d.join("ca.cnf"))
                    .arg("-keyfile")
                    .arg(&key_path),
                Some(p) => c.arg("-config").arg(p.dir.path().join("ca.cnf")),
            };
            c.args([
                "-extensions",
                "v3_ca",
                "-startdate",
                &asn1_time(now - years * 86400),
            ])
            .args(["-enddate", &asn1_time(now + years * 86400), "-in"])
            .arg(&csr)
            .arg("-out")
            .arg(&cert_pem_path);
        });
        let cert_pem = std::fs::read(&cert_pem_path).expect("read CA cert");
        let cert_der = pem_to_der(&cert_pem_path);
        TestCa {
            dir,
            name: name.to_string(),
            cert_pem_path,
            key_path,
            cert_pem,
            cert_der,
            issued: AtomicU32::new(0),
        }
    }

    /// The CA's name (its subject CN).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The CA's directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Issues an end-entity certificate (basicConstraints CA:FALSE, subject
    /// and authority key identifiers, plus what `opts` asks for) with a new
    /// key, via `openssl ca` with explicit `-startdate`/`-enddate`.
    ///
    /// # Panics
    /// If openssl fails or `opts.key` is unknown.
    pub fn issue(&self, opts: CertOptions) -> IssuedCert {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let d = self.dir.path();
        let key_path = d.join(format!("ee{n}.key"));
        gen_key(&key_path, &opts.key);

        let cn = opts
            .common_name
            .clone()
            .or_else(|| opts.email.clone())
            .or_else(|| opts.subject_email.clone())
            .unwrap_or_else(|| format!("Test User {n}"));
        let mut subj = format!("/CN={}", cn.replace('/', "\\/"));
        if let Some(e) = &opts.subject_email {
            subj.push_str(&format!("/emailAddress={e}"));
        }
        let csr = d.join(format!("ee{n}.csr"));
        openssl(|c| {
            c.args(["req", "-new", "-key"])
                .arg(&key_path)
                .args(["-subj", &subj, "-out"])
                .arg(&csr);
        });

        let mut ext = String::from(
            "[ext]\nbasicConstraints = critical,CA:FALSE\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid,issuer\n",
        );
        if let Some(ku) = &opts.key_usage {
            ext.push_str(&format!("keyUsage = critical,{ku}\n"));
        }
        if let Some(eku) = &opts.ext_key_usage {
            ext.push_str(&format!("extendedKeyUsage = {eku}\n"));
        }
        if let Some(email) = &opts.email {
            ext.push_str(&format!("subjectAltName = email:{email}\n"));
        }
        if let Some(url) = &opts.crl_url {
            ext.push_str(&format!("crlDistributionPoints = URI:{url}\n"));
        }
        let ext_path = d.join(format!("ee{n}.ext"));
        std::fs::write(&ext_path, ext).expect("write extension file");

        let now = now_secs();
        let not_after = now + opts.days * 86400 - if opts.days <= 0 { 60 } else { 0 };
        let mut not_before = now + opts.not_before_days * 86400;
        if not_before >= not_after {
            not_before = not_after - 30 * 86400;
        }
        let cert_pem_path = d.join(format!("ee{n}.crt"));
        openssl(|c| {
            c.args(["ca", "-batch", "-notext", "-preserveDN", "-config"])
                .arg(d.join("ca.cnf"))
                .args([
                    "-startdate",
                    &asn1_time(not_before),
                    "-enddate",
                    &asn1_time(not_after),
                ])
                .arg("-extfile")
                .arg(&ext_path)
                .args(["-extensions", "ext", "-in"])
                .arg(&csr)
                .arg("-out")
                .arg(&cert_pem_path);
        });
        let cert_pem = std::fs::read(&cert_pem_path).expect("read issued cert");
        let cert_der = pem_to_der(&cert_pem_path);
        let info = openssl(|c| {
            c.args([
                "x509", "-noout", "-serial", "-issuer", "-nameopt", "oneline", "-in",
            ])
            .arg(&cert_pem_path);
        });
        let field = |prefix: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(prefix))
                .unwrap_or_else(|| panic!("openssl x509 printed no {prefix}: {info}"))
                .trim()
                .to_string()
        };
        IssuedCert {
            cert_pem_path,
            key_path,
            cert_pem,
            cert_der,
            // `x509 -serial` prints hex without a prefix.
            serial: normalize_serial(&format!("0x{}", field("serial="))),
            issuer: normalize_name(&field("issuer=")),
        }
    }

    /// Revokes `cert` in the CA's index (it shows up in the next [`TestCa::crl_der`]).
    ///
    /// # Panics
    /// If openssl fails.
    pub fn revoke(&self, cert: &IssuedCert) {
        openssl(|c| {
            c.args(["ca", "-batch", "-config"])
                .arg(self.dir.path().join("ca.cnf"))
                .arg("-revoke")
                .arg(&cert.cert_pem_path);
        });
    }

    /// A fresh CRL (DER) listing every certificate revoked so far, valid
    /// for 30 days.
    ///
    /// # Panics
    /// If openssl fails.
    pub fn crl_der(&self) -> Vec<u8> {
        self.crl_der_for(None)
    }

    /// A CRL whose nextUpdate is `secs` seconds from now (wait past it for
    /// an expired CRL); otherwise as [`TestCa::crl_der`].
    ///
    /// # Panics
    /// If openssl fails.
    pub fn crl_der_expiring_in(&self, secs: u32) -> Vec<u8> {
        self.crl_der_for(Some(secs))
    }

    fn crl_der_for(&self, secs: Option<u32>) -> Vec<u8> {
        let d = self.dir.path();
        let pem = d.join("crl.pem");
        let der = d.join("crl.der");
        openssl(|c| {
            c.args(["ca", "-batch", "-gencrl", "-config"])
                .arg(d.join("ca.cnf"))
                .arg("-out")
                .arg(&pem);
            if let Some(s) = secs {
                c.args(["-crlsec", &s.to_string()]);
            }
        });
        openssl(|c| {
            c.args(["crl", "-in"])
                .arg(&pem)
                .args(["-outform", "DER", "-out"])
                .arg(&der);
        });
        std::fs::read(&der).expect("read CRL")
    }

    /// A DER PKCS#7 certificate bundle (`.p7b`) of `certs`, as
    /// `openssl crl2pkcs7 -nocrl` makes it.
    ///
    /// # Panics
    /// If openssl fails.
    pub fn p7b(certs: &[&IssuedCert]) -> Vec<u8> {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("bundle.p7b");
        openssl(|c| {
            c.args(["crl2pkcs7", "-nocrl"]);
            for cert in certs {
                c.arg("-certfile").arg(&cert.cert_pem_path);
            }
            c.args(["-outform", "DER", "-out"]).arg(&out);
        });
        std::fs::read(&out).expect("read p7b")
    }
}

/// Decrypts an S/MIME message (a whole mail, as sealgate relays it; or a
/// bare DER CMS structure) with `openssl cms -decrypt -binary -recip CERT
/// -inkey KEY` and returns the decrypted content, byte for byte. Handles
/// EnvelopedData (CBC) and AuthEnvelopedData (GCM), RSA and EC recipients.
/// Err carries openssl's error output.
pub fn cms_decrypt(message: &[u8], cert: &IssuedCert) -> Result<Vec<u8>, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let input = dir.path().join("in");
    let output = dir.path().join("out");
    std::fs::write(&input, message).map_err(|e| e.to_string())?;
    let mut cmd = Command::new("openssl");
    cmd.args([
        "cms",
        "-decrypt",
        "-binary",
        "-inform",
        input_form(message),
        "-in",
    ])
    .arg(&input)
    .arg("-recip")
    .arg(&cert.cert_pem_path)
    .arg("-inkey")
    .arg(&cert.key_path)
    .arg("-out")
    .arg(&output);
    run_ok(cmd, OPENSSL_TIMEOUT)?;
    std::fs::read(&output).map_err(|e| format!("read openssl output: {e}"))
}

/// Verifies an S/MIME `multipart/signed` message (a whole mail, as sealgate
/// relays it) with `openssl cms -verify -CAfile ROOT`, the chain from the
/// signature; returns the verified content and the signer's certificate
/// (PEM). Err carries openssl's error output. (Text mode, not `-binary`:
/// OpenSSL 3.0 in binary mode keeps the CR of the boundary's CRLF in the
/// content it hashes; what sealgate signs has CRLF lines, which text mode
/// keeps.)
pub fn cms_verify(message: &[u8], root_pem: &Path) -> Result<(Vec<u8>, Vec<u8>), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let input = dir.path().join("signed.eml");
    let out = dir.path().join("content");
    let signer = dir.path().join("signer.pem");
    std::fs::write(&input, message).map_err(|e| e.to_string())?;
    let mut cmd = Command::new("openssl");
    cmd.args(["cms", "-verify", "-in"])
        .arg(&input)
        .arg("-CAfile")
        .arg(root_pem)
        .arg("-out")
        .arg(&out)
        .arg("-signer")
        .arg(&signer);
    run_ok(cmd, OPENSSL_TIMEOUT)?;
    Ok((
        std::fs::read(&out).map_err(|e| e.to_string())?,
        std::fs::read(&signer).map_err(|e| e.to_string())?,
    ))
}

/// A signed mail as a client sends it (CRLF lines): `headers` (`From: ...\r\n` lines)
/// in front of what `openssl cms -sign -binary -crlfeol -md sha256` makes
/// of `entity` (a MIME entity with CRLF lines) with `signer`'s certificate
/// and key; `extra` adds options (`-nodetach` for opaque signed-data,
/// `-certfile F`, `-nosmimecap`, `-nocerts`).
///
/// # Panics
/// If openssl fails.
pub fn cms_sign_mail(headers: &str, entity: &[u8], signer: &IssuedCert, extra: &[&str]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("entity");
    let out = dir.path().join("signed.eml");
    std::fs::write(&input, entity).expect("write entity");
    openssl(|c| {
        c.args([
            "cms", "-sign", "-binary", "-crlfeol", "-md", "sha256", "-in",
        ])
        .arg(&input)
        .arg("-signer")
        .arg(&signer.cert_pem_path)
        .arg("-inkey")
        .arg(&signer.key_path)
        .args(extra)
        .arg("-out")
        .arg(&out);
    });
    let signed = std::fs::read(&out).expect("read signed mail");
    [headers.as_bytes(), &crlf_lines(&signed)].concat()
}

/// OpenSSL ends base64 lines with bare LF even with -crlfeol; a mail client
/// sends CRLF (the content it signed has CRLF lines already).
fn crlf_lines(data: &[u8]) -> Vec<u8> {
    let mut crlf = Vec::with_capacity(data.len() + data.len() / 64);
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' && (i == 0 || data[i - 1] != b'\r') {
            crlf.push(b'\r');
        }
        crlf.push(b);
    }
    crlf
}

/// An encrypted mail as a client sends it: `headers` in front of what
/// `openssl cms -encrypt -binary -aes256` makes of `entity` for
/// `recipients` (S/MIME, CRLF lines).
///
/// # Panics
/// If openssl fails.
pub fn cms_encrypt_mail(headers: &str, entity: &[u8], recipients: &[&IssuedCert]) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("entity");
    let out = dir.path().join("encrypted.eml");
    std::fs::write(&input, entity).expect("write entity");
    openssl(|c| {
        c.args(["cms", "-encrypt", "-binary", "-aes256", "-in"])
            .arg(&input)
            .arg("-out")
            .arg(&out);
        for r in recipients {
            c.arg("-recip").arg(&r.cert_pem_path);
        }
    });
    let encrypted = std::fs::read(&out).expect("read encrypted mail");
    [headers.as_bytes(), &crlf_lines(&encrypted)].concat()
}

/// Like [`cms_sign_mail`] (detached), but the signature's
/// SMIMECapabilities list exactly `capabilities` (dotted OIDs, e.g.
/// `2.16.840.1.101.3.4.1.46` for AES-256-GCM), which `openssl cms -sign`
/// cannot do: the SignedData is made by `sign_with_capabilities.py`
/// (Python's `cryptography`) and checked with `openssl cms -verify` before
/// it is returned.
///
/// # Panics
/// If python3, cryptography or openssl fail, or the signature does not
/// verify.
pub fn sign_mail_with_capabilities(
    headers: &str,
    entity: &[u8],
    signer: &IssuedCert,
    capabilities: &[&str],
) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let content = dir.path().join("entity");
    let der = dir.path().join("sig.der");
    std::fs::write(&content, entity).expect("write entity");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("sign_with_capabilities.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script)
        .arg(&signer.cert_pem_path)
        .arg(&signer.key_path)
        .arg(&content)
        .arg(&der)
        .arg(capabilities.join(","));
    run_ok(cmd, OPENSSL_TIMEOUT).unwrap_or_else(|e| panic!("sign_with_capabilities.py: {e}"));
    openssl(|c| {
        c.args([
            "cms",
            "-verify",
            "-binary",
            "-noverify",
            "-inform",
            "DER",
            "-in",
        ])
        .arg(&der)
        .arg("-content")
        .arg(&content)
        .args(["-out", "/dev/null"]);
    });
    let b64 = openssl(|c| {
        c.args(["base64", "-e", "-in"]).arg(&der);
    });
    let boundary = "sealgate-test-boundary-7f3a";
    let mut out = format!(
        "{headers}MIME-Version: 1.0\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"{boundary}\"\r\n\r\n--{boundary}\r\n"
    )
    .into_bytes();
    out.extend_from_slice(entity);
    out.extend_from_slice(
        format!(
            "\r\n--{boundary}\r\nContent-Type: application/pkcs7-signature; name=\"smime.p7s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--{boundary}--\r\n",
            b64.trim_end().replace('\n', "\r\n")
        )
        .as_bytes(),
    );
    out
}

/// The two parts of a `multipart/signed` message: the signed content (the
/// first part's bytes, exactly what a verifier hashes) and the detached
/// signature (DER, from `openssl cms -cmsout`), for verifiers that take
/// them apart, such as `gpgsm --verify SIG CONTENT`. None when the message
/// is not one.
pub fn split_signed(message: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let text = String::from_utf8_lossy(message);
    let head_end = text.find("\r\n\r\n")?;
    let head = text[..head_end]
        .replace("\r\n\t", " ")
        .replace("\r\n ", " ");
    let ct = head.lines().find(|l| {
        l.to_ascii_lowercase()
            .starts_with("content-type: multipart/signed")
    })?;
    let boundary = ct
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))?
        .trim_matches('"');
    let open = format!("--{boundary}\r\n");
    let start = find(message, open.as_bytes(), head_end)? + open.len();
    let close = format!("\r\n--{boundary}\r\n");
    let end = find(message, close.as_bytes(), start)?;
    let content = message[start..end].to_vec();
    let dir = tempfile::tempdir().ok()?;
    let input = dir.path().join("signed.eml");
    let der = dir.path().join("sig.der");
    std::fs::write(&input, message).ok()?;
    openssl(|c| {
        c.args([
            "cms", "-cmsout", "-inform", "SMIME", "-outform", "DER", "-in",
        ])
        .arg(&input)
        .arg("-out")
        .arg(&der);
    });
    Some((content, std::fs::read(&der).ok()?))
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// `openssl cms -cmsout -print` of a whole message or a DER structure.
pub fn cms_print(message: &[u8]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in");
    std::fs::write(&input, message).expect("write message");
    openssl(|c| {
        c.args([
            "cms",
            "-cmsout",
            "-print",
            "-noout",
            "-inform",
            input_form(message),
            "-in",
        ])
        .arg(&input);
    })
}

/// The recipients an S/MIME message (whole mail or DER CMS) is encrypted
/// to, one entry per RecipientInfo (per recipient encrypted key for key
/// agreement), in order, from `openssl cms -cmsout -print`: issuer and
/// serial as `issuer=CN=Test CA;serial=1000` (see
/// [`IssuedCert::recipient_id`]), or `skid=<hex>` for a subject key
/// identifier.
///
/// # Panics
/// If openssl cannot parse the message.
pub fn cms_recipients(message: &[u8]) -> Vec<String> {
    let printed = cms_print(message);
    let mut out = Vec::new();
    let mut lines = printed.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line.starts_with("d.issuerAndSerialNumber:") {
            let mut issuer = None;
            let mut serial = None;
            for l in lines.by_ref() {
                if let Some(v) = l.strip_prefix("issuer:") {
                    issuer = Some(normalize_name(v));
                } else if let Some(v) = l.strip_prefix("serialNumber:") {
                    serial = Some(normalize_serial(v));
                }
                if issuer.is_some() && serial.is_some() {
                    break;
                }
            }
            out.push(format!(
                "issuer={};serial={}",
                issuer.unwrap_or_default(),
                serial.unwrap_or_default()
            ));
        } else if line.starts_with("d.subjectKeyIdentifier:") || line.starts_with("d.rKeyId:") {
            // The identifier's hex dump follows; keep it whole.
            let mut hex = String::new();
            for l in lines.by_ref() {
                let Some((_, rest)) = l.split_once(" - ") else {
                    break;
                };
                let bytes: String = rest
                    .chars()
                    .take(48)
                    .filter(|c| c.is_ascii_hexdigit())
                    .collect();
                hex.push_str(&bytes);
            }
            out.push(format!("skid={}", hex.to_ascii_uppercase()));
        }
    }
    out
}

/// The CMS content type of an S/MIME message (whole mail or DER CMS) as
/// `openssl cms -cmsout -print` names it, e.g. `pkcs7-envelopedData` or
/// `id-smime-ct-authEnvelopedData`.
///
/// # Panics
/// If openssl cannot parse the message.
pub fn cms_content_type(message: &[u8]) -> String {
    let printed = cms_print(message);
    printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("contentType:"))
        .and_then(|v| v.split_whitespace().next())
        .unwrap_or_default()
        .to_string()
}

/// `DER` if `message` looks like a bare DER SEQUENCE, else `SMIME`.
fn input_form(message: &[u8]) -> &'static str {
    if message.first() == Some(&0x30) {
        "DER"
    } else {
        "SMIME"
    }
}

/// Runs `openssl` with the arguments `f` adds; returns stdout.
fn openssl(f: impl FnOnce(&mut Command)) -> String {
    let mut cmd = Command::new("openssl");
    f(&mut cmd);
    run_ok(cmd, OPENSSL_TIMEOUT).unwrap_or_else(|e| panic!("{e}"))
}

/// Generates a private key of `kind` into `path` (PEM, unencrypted).
fn gen_key(path: &Path, kind: &str) {
    let opts: &[&str] = match kind {
        "rsa2048" => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        "rsa3072" => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:3072"],
        "rsa4096" => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:4096"],
        "ec-p256" => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "ec-p384" => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"],
        "ec-p521" => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-521"],
        "rsa1024" => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
        "rsa-pss" => &["-algorithm", "RSA-PSS", "-pkeyopt", "rsa_keygen_bits:2048"],
        "ec-secp256k1" => &[
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:secp256k1",
        ],
        "ed25519" => &["-algorithm", "ED25519"],
        "dsa2048" => {
            // genpkey makes DSA keys from a parameter file only.
            let params = path.with_extension("dsaparam");
            openssl(|c| {
                c.args(["genpkey", "-genparam", "-algorithm", "DSA"])
                    .args(["-pkeyopt", "dsa_paramgen_bits:2048", "-out"])
                    .arg(&params);
            });
            openssl(|c| {
                c.arg("genpkey")
                    .arg("-paramfile")
                    .arg(&params)
                    .arg("-out")
                    .arg(path);
            });
            return;
        }
        other => panic!("unknown key type {other:?}"),
    };
    openssl(|c| {
        c.arg("genpkey").args(opts).arg("-out").arg(path);
    });
}

fn pem_to_der(pem: &Path) -> Vec<u8> {
    let mut cmd = Command::new("openssl");
    cmd.args(["x509", "-outform", "DER", "-in"]).arg(pem);
    let out = run_with_timeout(cmd, OPENSSL_TIMEOUT).unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "openssl x509 -outform DER failed");
    out.stdout
}

/// `CN = Test CA, O = x` -> `CN=Test CA, O=x`.
fn normalize_name(s: &str) -> String {
    s.trim().replace(" = ", "=")
}

/// `0x01A0` (hex) / `416` (decimal) -> `1A0` (uppercase hex, no leading zeros).
fn normalize_serial(s: &str) -> String {
    let s = s.trim();
    let hex = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        h.to_ascii_uppercase()
    } else if s.bytes().all(|b| b.is_ascii_digit()) && !s.is_empty() {
        // Bare digits, as `cms -print` shows small serials: decimal.
        match s.parse::<u128>() {
            Ok(v) => format!("{v:X}"),
            Err(_) => s.to_string(),
        }
    } else {
        s.to_ascii_uppercase()
    };
    let trimmed = hex.trim_start_matches('0');
    if trimmed.is_empty() {
        "0".to_string()
    } else {
        trimmed.to_string()
    }
}

/// Seconds since the Unix epoch.
fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `YYYYMMDDHHMMSSZ` (GeneralizedTime, as `openssl ca -startdate` takes it).
fn asn1_time(secs: i64) -> String {
    let days = secs.div_euclid(86400);
    let rem = secs.rem_euclid(86400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The `openssl ca` configuration for the CA in `dir`.
fn ca_config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "[ca]\n\
         default_ca = test_ca\n\
         [test_ca]\n\
         database = {d}/index.txt\n\
         new_certs_dir = {d}/newcerts\n\
         serial = {d}/serial\n\
         crlnumber = {d}/crlnumber\n\
         certificate = {d}/ca.crt\n\
         private_key = {d}/ca.key\n\
         default_md = sha256\n\
         default_days = 365\n\
         default_crl_days = 30\n\
         policy = policy_any\n\
         unique_subject = no\n\
         copy_extensions = none\n\
         email_in_dn = yes\n\
         [policy_any]\n\
         commonName = supplied\n\
         emailAddress = optional\n\
         organizationName = optional\n\
         organizationalUnitName = optional\n\
         countryName = optional\n\
         [v3_ca]\n\
         basicConstraints = critical,CA:TRUE\n\
         keyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\n"
    )
}

/// A TLS server certificate with its key, in a temporary directory.
pub struct ServerCert {
    _dir: tempfile::TempDir,
    /// Certificate, PEM.
    pub cert_path: PathBuf,
    /// Unencrypted private key, PEM.
    pub key_path: PathBuf,
}

impl ServerCert {
    /// `(cert, key)`, e.g. for `keyserver::KeyServerOptions::tls`.
    pub fn pair(&self) -> (PathBuf, PathBuf) {
        (self.cert_path.clone(), self.key_path.clone())
    }
}

/// Issues a server certificate signed by `ca` (serverAuth, valid 30 days)
/// whose subjectAltName lists `names`: IP addresses as `IP:`, anything else
/// as `DNS:`.
///
/// # Panics
/// If openssl fails or `names` is empty.
pub fn server_cert(ca: &TestCa, names: &[&str]) -> ServerCert {
    assert!(!names.is_empty(), "server_cert: no names");
    let dir = tempfile::Builder::new()
        .prefix("sg-https-")
        .tempdir()
        .expect("tempdir");
    let d = dir.path();
    let key_path = d.join("server.key");
    let csr = d.join("server.csr");
    let cert_path = d.join("server.crt");
    let ext = d.join("server.ext");
    let san: Vec<String> = names
        .iter()
        .map(|n| {
            if n.parse::<std::net::IpAddr>().is_ok() {
                format!("IP:{n}")
            } else {
                format!("DNS:{n}")
            }
        })
        .collect();
    std::fs::write(
        &ext,
        format!(
            "basicConstraints = critical,CA:FALSE\nkeyUsage = critical,digitalSignature,keyEncipherment\n\
             extendedKeyUsage = serverAuth\nsubjectAltName = {}\n",
            san.join(",")
        ),
    )
    .expect("write ext");
    let mut cmd = Command::new("openssl");
    cmd.args(["req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout"])
        .arg(&key_path)
        .args(["-subj", &format!("/CN={}", names[0]), "-out"])
        .arg(&csr);
    run_ok(cmd, OPENSSL_TIMEOUT).unwrap_or_else(|e| panic!("openssl req: {e}"));
    let mut cmd = Command::new("openssl");
    cmd.args(["x509", "-req", "-in"])
        .arg(&csr)
        .arg("-CA")
        .arg(&ca.cert_pem_path)
        .arg("-CAkey")
        .arg(&ca.key_path)
        .args([
            "-set_serial",
            &(crate::ports::random_u64() >> 2).to_string(),
        ])
        .args(["-days", "30", "-extfile"])
        .arg(&ext)
        .arg("-out")
        .arg(&cert_path);
    run_ok(cmd, OPENSSL_TIMEOUT).unwrap_or_else(|e| panic!("openssl x509 -req: {e}"));
    ServerCert {
        _dir: dir,
        cert_path,
        key_path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_serials() {
        assert_eq!(asn1_time(0), "19700101000000Z");
        assert_eq!(asn1_time(951_782_400), "20000229000000Z");
        assert_eq!(asn1_time(-86400), "19691231000000Z");
        assert_eq!(normalize_serial("0x01A0"), "1A0");
        assert_eq!(normalize_serial("4096"), "1000");
        assert_eq!(normalize_name("CN = Test CA"), "CN=Test CA");
    }

    fn checkend(cert: &IssuedCert, secs: i64) -> bool {
        let mut cmd = Command::new("openssl");
        cmd.args(["x509", "-noout", "-checkend", &secs.to_string(), "-in"])
            .arg(&cert.cert_pem_path);
        run_with_timeout(cmd, OPENSSL_TIMEOUT)
            .unwrap()
            .status
            .success()
    }

    fn verifies(ca: &TestCa, cert: &IssuedCert) -> bool {
        let mut cmd = Command::new("openssl");
        cmd.args(["verify", "-purpose", "smimeencrypt", "-CAfile"])
            .arg(&ca.cert_pem_path)
            .arg(&cert.cert_pem_path);
        run_with_timeout(cmd, OPENSSL_TIMEOUT)
            .unwrap()
            .status
            .success()
    }

    #[test]
    fn issues_valid_expired_and_future_certificates() {
        let ca = TestCa::new("Testkit CA");
        let valid = ca.issue(CertOptions {
            subject_email: Some("alice@example.org".to_string()),
            ..CertOptions::default()
        });
        assert!(checkend(&valid, 86400), "valid for more than a day");
        assert!(verifies(&ca, &valid));
        let text = openssl(|c| {
            c.args(["x509", "-noout", "-text", "-in"])
                .arg(&valid.cert_pem_path);
        });
        assert!(text.contains("email:alice@example.org"), "{text}");
        assert!(
            text.contains("emailAddress = alice@example.org")
                || text.contains("emailAddress=alice@example.org")
        );
        assert!(text.contains("E-mail Protection"));
        assert!(text.contains("Key Encipherment"));
        assert_eq!(valid.issuer, "CN=Testkit CA");
        assert_eq!(valid.serial, "1001");

        let expired = ca.issue(CertOptions {
            days: -2,
            ..CertOptions::default()
        });
        assert!(!checkend(&expired, 0), "expired");
        assert!(!verifies(&ca, &expired));

        let future = ca.issue(CertOptions {
            not_before_days: 5,
            days: 30,
            key: "ec-p256".to_string(),
            key_usage: Some("keyAgreement".to_string()),
            ..CertOptions::default()
        });
        assert!(checkend(&future, 86400));
        assert!(!verifies(&ca, &future), "not yet valid");

        ca.revoke(&valid);
        let crl = ca.crl_der();
        assert_eq!(crl.first(), Some(&0x30));
        let p7b = TestCa::p7b(&[&valid, &future]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.p7b");
        std::fs::write(&p, &p7b).unwrap();
        let listed = openssl(|c| {
            c.args(["pkcs7", "-inform", "DER", "-print_certs", "-noout", "-in"])
                .arg(&p);
        });
        assert_eq!(listed.matches("subject=").count(), 2, "{listed}");
    }
}
