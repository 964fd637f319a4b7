//! The cast of an end-to-end run: recipients with keys made at test time by
//! GnuPG and a test CA, the sink, the gateway and the sending Postfix.

use crate::gateway::Gateway;
use sealgate_testkit::gnupg::GnupgHome;
use sealgate_testkit::pki::{CertOptions, IssuedCert, TestCa};
use sealgate_testkit::postfix::Postfix;
use sealgate_testkit::sink::Sink;
use std::path::PathBuf;

/// Keys of the test recipients.
///
/// * alice@example.org, frank@example.org: OpenPGP (ed25519/cv25519), keyring files
/// * dave@example.org: OpenPGP rsa3072, imported into the store with `keys import`
/// * bob@example.org: S/MIME RSA certificate (PEM file)
/// * erin@gcm.test: S/MIME EC P-256 certificate in a .p7b bundle; gcm.test uses AES-256-GCM
/// * gina@gcm.test: S/MIME Ed25519 certificate (PEM file), which CMS cannot
///   encrypt to: not usable, so she is refused like a recipient without a key
/// * nokey@example.org: no key; example.org is mandatory
/// * carol@open.test: no key; global policy is opportunistic
pub struct Keys {
    pub gpg: GnupgHome,
    pub alice_fpr: String,
    pub frank_fpr: String,
    pub dave_fpr: String,
    /// Keeps the CA's directory, where the issued keys live, for the test's life.
    #[allow(dead_code)]
    pub ca: TestCa,
    pub bob: IssuedCert,
    pub erin: IssuedCert,
    pub files: tempfile::TempDir,
    pub pgp_armored: PathBuf,
    pub pgp_binary: PathBuf,
    pub dave_key: PathBuf,
    pub bob_pem: PathBuf,
    pub erin_p7b: PathBuf,
    pub gina_pem: PathBuf,
    pub gateway_cert: IssuedCert,
}

impl Keys {
    pub fn make() -> Keys {
        let gpg = GnupgHome::new();
        let alice_fpr = gpg.gen_key("Alice <alice@example.org>", "future-default");
        let frank_fpr = gpg.gen_key("Frank <frank@example.org>", "future-default");
        let dave_fpr = gpg.gen_key("Dave <dave@example.org>", "rsa3072");
        let files = tempfile::tempdir().unwrap();
        let pgp_armored = files.path().join("alice.asc");
        std::fs::write(&pgp_armored, gpg.export_armored("alice@example.org")).unwrap();
        // Frank's key as a binary keyring, exported by gpg itself.
        let pgp_binary = files.path().join("frank.gpg");
        let out = gpg
            .gpg()
            .args(["--export", "frank@example.org"])
            .output()
            .unwrap();
        assert!(out.status.success() && !out.stdout.is_empty());
        std::fs::write(&pgp_binary, out.stdout).unwrap();
        let dave_key = files.path().join("dave.asc");
        std::fs::write(&dave_key, gpg.export_armored("dave@example.org")).unwrap();

        let ca = TestCa::new("sealgate e2e CA");
        let bob = ca.issue(CertOptions {
            email: Some("bob@example.org".into()),
            ..Default::default()
        });
        let erin = ca.issue(CertOptions {
            email: Some("erin@gcm.test".into()),
            key: "ec-p256".into(),
            // ECDH: an EC key is used with keyAgreement (docs/trust.md).
            key_usage: Some("digitalSignature,keyAgreement".into()),
            ..Default::default()
        });
        let bob_pem = files.path().join("bob.pem");
        std::fs::write(&bob_pem, &bob.cert_pem).unwrap();
        let erin_p7b = files.path().join("erin.p7b");
        std::fs::write(&erin_p7b, TestCa::p7b(&[&erin])).unwrap();
        let gina = ca.issue(CertOptions {
            email: Some("gina@gcm.test".into()),
            key: "ed25519".into(),
            key_usage: Some("digitalSignature".into()),
            ..Default::default()
        });
        let gina_pem = files.path().join("gina.pem");
        std::fs::write(&gina_pem, &gina.cert_pem).unwrap();
        let gateway_cert = ca.issue(CertOptions {
            common_name: Some("sealgate.test".into()),
            key_usage: Some("digitalSignature,keyEncipherment".into()),
            ext_key_usage: Some("serverAuth".into()),
            ..Default::default()
        });
        Keys {
            gpg,
            alice_fpr,
            frank_fpr,
            dave_fpr,
            ca,
            bob,
            erin,
            files,
            pgp_armored,
            pgp_binary,
            dave_key,
            bob_pem,
            erin_p7b,
            gina_pem,
            gateway_cert,
        }
    }

    /// The gateway config for these keys, relaying to `sink_port`.
    pub fn config(&self, sink_port: u16, store_url: &str) -> String {
        format!(
            r#"
[smtp]
listen = "127.0.0.1:{{port}}"
hostname = "sealgate.test"
tls_cert_file = "{cert}"
tls_key_file = "{key}"

[relay]
upstream = "127.0.0.1:{sink_port}"
tls = "none"

[store]
url = "{store_url}"

[keys]
pgp_keyrings = ["{armored}", "{binary}"]
smime_certificates = ["{bob}", "{erin}", "{gina}"]
# The test CA is not in the root store: these files are the admin's own
# (authoritative; tests/e2e/trust.rs covers the chain-required default).
files_require_chain = false

[policy]
mode = "opportunistic"
methods = ["pgp", "smime"]

[policy.domains."example.org"]
mode = "mandatory"

[policy.domains."gcm.test"]
mode = "mandatory"
methods = ["smime"]
smime_cipher = "aes-256-gcm"
"#,
            cert = self.gateway_cert.cert_pem_path.display(),
            key = self.gateway_cert.key_path.display(),
            armored = self.pgp_armored.display(),
            binary = self.pgp_binary.display(),
            bob = self.bob_pem.display(),
            erin = self.erin_p7b.display(),
            gina = self.gina_pem.display(),
        )
    }
}

/// Everything running: sink <- sealgate <- Postfix.
pub struct World {
    pub keys: Keys,
    pub sink: Sink,
    pub gateway: Gateway,
    pub postfix: Postfix,
}

impl World {
    pub fn start(store_url: Option<String>) -> World {
        let keys = Keys::make();
        let sink = Sink::start();
        let url = store_url.unwrap_or_else(|| "sqlite://data/sealgate.db".into());
        let gateway = Gateway::start(&keys.config(sink.port(), &url));
        let postfix = Postfix::start(gateway.port);
        World {
            keys,
            sink,
            gateway,
            postfix,
        }
    }
}
