//! The certificate trust list: black-listing is inherited by everything a
//! listed CA issued, white-listing is not; a white-listed certificate needs
//! no root and, with "allow expired", may be outside its validity. PKIs made
//! by openssl at test time; the store on SQLite.

mod common;
use common::sqlite;
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::hash::MessageDigest;
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use openssl::x509::extension::{ExtendedKeyUsage, KeyUsage, SubjectAlternativeName};
use openssl::x509::{X509Builder, X509NameBuilder, X509};
use sealgate_testkit::pki::{CertOptions, TestCa};
use sealgate_trust::{Status, TrustStore};

async fn status_of(trust: &TrustStore, sha256: &str) -> Status {
    trust.show_cert(sha256).await.unwrap().verdict.status
}

async fn import(trust: &TrustStore, pem: &[u8]) -> String {
    trust.import_certs(pem, "import").await.unwrap()[0]
        .sha256
        .clone()
}

/// A self-signed end-entity certificate for `email` (RSA 2048,
/// keyEncipherment, emailProtection), as a partner without a CA has one.
fn self_signed(email: &str) -> X509 {
    let key = PKey::from_rsa(Rsa::generate(2048).unwrap()).unwrap();
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", email).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_serial_number(&BigNum::from_u32(7).unwrap().to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(&key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.append_extension(
        KeyUsage::new()
            .critical()
            .key_encipherment()
            .build()
            .unwrap(),
    )
    .unwrap();
    b.append_extension(ExtendedKeyUsage::new().email_protection().build().unwrap())
        .unwrap();
    let san = SubjectAlternativeName::new()
        .email(email)
        .build(&b.x509v3_context(None, None))
        .unwrap();
    b.append_extension(san).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    b.build()
}

#[tokio::test]
async fn black_listing_a_ca_refuses_everything_below_it() {
    let (_dir, trust) = sqlite().await;
    let root = TestCa::new("CTL Root");
    let inter = root.intermediate("CTL Intermediate");
    trust.import_roots(&root.cert_pem, "import").await.unwrap();
    let inter_sha = import(&trust, &inter.cert_pem).await;
    let a = import(
        &trust,
        &inter
            .issue(CertOptions {
                email: Some("a@example.org".into()),
                ..Default::default()
            })
            .cert_pem,
    )
    .await;
    let b = import(
        &trust,
        &inter
            .issue(CertOptions {
                email: Some("b@example.org".into()),
                ..Default::default()
            })
            .cert_pem,
    )
    .await;
    assert_eq!(status_of(&trust, &a).await, Status::Valid);

    let sha512 = trust.ctl_add(&inter_sha[..12], false, false).await.unwrap();
    assert_eq!(sha512.len(), 128);
    for ee in [&a, &b] {
        assert_eq!(
            status_of(&trust, ee).await,
            Status::BlackListed("its issuing CA CN=CTL Intermediate".into())
        );
    }
    assert_eq!(
        status_of(&trust, &inter_sha).await,
        Status::BlackListed("this certificate".into())
    );
    let list = trust.ctl_list().await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].status, "black");
    assert_eq!(list[0].subject.as_deref(), Some("CN=CTL Intermediate"));

    // Off the list again: valid again.
    trust.ctl_remove(&sha512[..20]).await.unwrap();
    assert_eq!(status_of(&trust, &a).await, Status::Valid);
    // Allow-expired is for white-listing only.
    let e = trust.ctl_add(&a, false, true).await.unwrap_err();
    assert!(e.to_string().contains("white-listing only"), "{e}");
}

#[tokio::test]
async fn white_listing_makes_a_self_signed_certificate_usable() {
    let (_dir, trust) = sqlite().await;
    let x = self_signed("partner@example.net");
    let pem = x.to_pem().unwrap();
    let sha = import(&trust, &pem).await;
    match status_of(&trust, &sha).await {
        Status::NotTrusted(why) => assert!(why.contains("root store is empty"), "{why}"),
        other => panic!("{other:?}"),
    }
    // Listed by its SHA-512, as an admin would after checking it by phone.
    let sha512 = sealgate_trust::cert::to_hex(&x.digest(MessageDigest::sha512()).unwrap());
    assert_eq!(
        trust
            .ctl_add(&sha512.to_lowercase(), true, false)
            .await
            .unwrap(),
        sha512
    );
    assert_eq!(status_of(&trust, &sha).await, Status::WhiteListed);
    // The resolver's view.
    let v = trust.verifier().await.unwrap();
    use sealgate_keys::trust::{CertificateTrust, TrustContext};
    assert_eq!(v.check(&x, &TrustContext::STRICT), Ok(()));
}

#[tokio::test]
async fn a_certificate_not_in_the_store_can_be_listed_first() {
    let (_dir, trust) = sqlite().await;
    let x = self_signed("later@example.net");
    let sha512 = sealgate_trust::cert::to_hex(&x.digest(MessageDigest::sha512()).unwrap());
    trust.ctl_add(&sha512, true, false).await.unwrap();
    let list = trust.ctl_list().await.unwrap();
    assert_eq!(list[0].subject, None, "not in the certificate store yet");
    let sha = import(&trust, &x.to_pem().unwrap()).await;
    assert_eq!(status_of(&trust, &sha).await, Status::WhiteListed);
    // A SHA-256 prefix that names no stored certificate is an error.
    let e = trust.ctl_add("DEADBEEF", true, false).await.unwrap_err();
    assert!(
        e.to_string().contains("no certificate with the thumbprint"),
        "{e}"
    );
}

#[tokio::test]
async fn allow_expired_and_no_inheritance_of_white_listing() {
    let (_dir, trust) = sqlite().await;
    // No root in the store: the intermediate's certificates have no path.
    let root = TestCa::new("Unknown Root");
    let inter = root.intermediate("Unknown Intermediate");
    let inter_sha = import(&trust, &inter.cert_pem).await;
    let old = import(
        &trust,
        &inter
            .issue(CertOptions {
                email: Some("old@example.org".into()),
                days: -1,
                ..Default::default()
            })
            .cert_pem,
    )
    .await;
    let fresh = import(
        &trust,
        &inter
            .issue(CertOptions {
                email: Some("fresh@example.org".into()),
                ..Default::default()
            })
            .cert_pem,
    )
    .await;

    trust.ctl_add(&old, true, false).await.unwrap();
    assert_eq!(status_of(&trust, &old).await, Status::Expired);
    trust.ctl_add(&old, true, true).await.unwrap();
    assert_eq!(status_of(&trust, &old).await, Status::WhiteListed);
    assert_eq!(
        trust.ctl_list().await.unwrap().len(),
        1,
        "replaced, not added"
    );

    // White-listing the intermediate does nothing for what it issued.
    trust.ctl_add(&inter_sha, true, false).await.unwrap();
    assert!(matches!(
        status_of(&trust, &fresh).await,
        Status::NotTrusted(_)
    ));
    // But black-listing it wins over the white-listed certificate below.
    trust.ctl_add(&inter_sha, false, false).await.unwrap();
    assert_eq!(
        status_of(&trust, &old).await,
        Status::BlackListed("its issuing CA CN=Unknown Intermediate".into())
    );
}

/// Selection targets are an address or @domain; deselecting what was not
/// selected says so; a domain selection shows under each of its addresses.
#[tokio::test]
async fn selections_name_their_targets() {
    let (_dir, trust) = sqlite().await;
    let x = self_signed("partner@example.net");
    let sha = import(&trust, &x.to_pem().unwrap()).await;
    for bad in ["nobody", "@", "a@b@c", "two words@x.test"] {
        let e = trust.select(bad, &sha).await.unwrap_err();
        assert!(
            e.to_string().contains("neither a mail address nor @domain"),
            "{bad}: {e}"
        );
    }
    let (_, added) = trust.select("@Example.ORG", &sha).await.unwrap();
    assert!(added);
    assert!(
        !trust.select("@example.org", &sha).await.unwrap().1,
        "once only"
    );
    let s = trust.selected("alice@example.org").await.unwrap();
    assert_eq!(s.manual.len(), 1);
    assert_eq!(s.manual[0].0, "@example.org");
    assert!(s.automatic.is_empty());
    let e = trust.deselect("alice@example.org", &sha).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("is not selected for alice@example.org"),
        "{e}"
    );
    let e = trust
        .deselect("partner@example.net", &sha)
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("automatic selections cannot be deselected"),
        "{e}"
    );
    trust.deselect("@example.org", &sha).await.unwrap();
    assert!(trust
        .selected("alice@example.org")
        .await
        .unwrap()
        .manual
        .is_empty());
    // Removing a certificate removes its selections.
    trust.select("bob@example.org", &sha).await.unwrap();
    trust.remove_cert(&sha).await.unwrap();
    assert!(trust.manual_selections().await.unwrap().is_empty());
}
