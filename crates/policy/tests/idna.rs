//! Policy is decided on the domain as every MTA sees it (issue 6, found while
//! fixing item 5): `bücher.example`, `BÜCHER.example.` and its A-label
//! `xn--bcher-kva.example` are one domain. Before, a mandatory entry written
//! in one form did not match an SMTPUTF8 recipient written in the other, so
//! mail for it went out in plaintext under the global opportunistic policy.

use sealgate_policy::{canonical_domain, DomainPolicy, Mode, Policy, PolicyConfig};

fn policy(domains: &[&str]) -> Policy {
    let mut c = PolicyConfig::default();
    for d in domains {
        c.domains.insert(
            d.to_string(),
            DomainPolicy {
                mode: Some(Mode::Mandatory),
                ..Default::default()
            },
        );
    }
    Policy::new(c).unwrap()
}

#[test]
fn u_labels_and_a_labels_are_one_domain() {
    let a_label = policy(&["xn--bcher-kva.example"]);
    let u_label = policy(&["Bücher.Example"]);
    for p in [&a_label, &u_label] {
        for rcpt in [
            "jörg@bücher.example",
            "jörg@BÜCHER.example.",
            "joerg@xn--bcher-kva.example",
            "joerg@XN--BCHER-KVA.EXAMPLE",
        ] {
            let s = p.settings_for(rcpt);
            assert_eq!(s.mode, Mode::Mandatory, "{rcpt}");
            assert_eq!(s.matched, "xn--bcher-kva.example", "{rcpt}");
        }
        assert_eq!(
            p.settings_for("a@buecher.example").mode,
            Mode::Opportunistic
        );
    }
    let wild = policy(&["*.bücher.example"]);
    assert_eq!(
        wild.settings_for("a@mail.xn--bcher-kva.example").mode,
        Mode::Mandatory
    );
    assert_eq!(canonical_domain("Example.ORG."), "example.org");
}

#[test]
fn two_entries_for_one_domain_are_a_config_error() {
    let mut c = PolicyConfig::default();
    for d in ["bücher.example", "xn--bcher-kva.example"] {
        c.domains.insert(d.to_string(), DomainPolicy::default());
    }
    let e = Policy::new(c).expect_err("must be refused");
    assert!(e.contains("the same domain"), "{e}");
}
