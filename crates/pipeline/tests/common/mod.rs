//! What the pipeline tests share: an in-memory key source and the client of
//! a session.

use sealgate_keys::source::Source;
use sealgate_keys::RecipientKey;
use sealgate_pipeline::RecipientDecision;
use sealgate_queue::{Queue, QueueConfig};
use sealgate_relay::{RelayConfig, SmtpRelay, TlsMode};
use sealgate_smtp_server::{ClientInfo, Envelope, Recipient};
use sealgate_store::Store;
use std::sync::Arc;

/// A source holding fixed keys (an in-memory key store): the keys are the
/// test's input, the pipeline is what it checks.
pub struct Fixed(pub Vec<RecipientKey>);

#[async_trait::async_trait]
impl Source for Fixed {
    fn name(&self) -> String {
        "fixed".into()
    }
    async fn lookup(&self, address: &str) -> Result<Vec<RecipientKey>, String> {
        Ok(self
            .0
            .iter()
            .filter(|k| k.names(address))
            .cloned()
            .collect())
    }
}

/// A client on loopback that greeted with EHLO, without TLS or AUTH.
pub fn client() -> ClientInfo {
    ClientInfo {
        peer: "127.0.0.1:40000".parse().unwrap(),
        helo: "client.test".into(),
        esmtp: true,
        tls: false,
        authenticated_as: None,
    }
}

/// A one-recipient transaction from `s@apps.test` by [`client`].
pub fn envelope(address: &str, token: RecipientDecision) -> Envelope<RecipientDecision> {
    Envelope {
        client: client(),
        sender: "s@apps.test".into(),
        recipients: vec![Recipient {
            address: address.into(),
            token,
            notify: None,
            orcpt: None,
        }],
        body_8bitmime: false,
        smtputf8: false,
        ret: None,
        envid: None,
    }
}

/// The real relay to a plain SMTP peer on loopback `port`.
pub fn relay_to(port: u16) -> Arc<SmtpRelay> {
    Arc::new(
        SmtpRelay::new(RelayConfig {
            upstream: format!("127.0.0.1:{port}"),
            tls: TlsMode::None,
            ..Default::default()
        })
        .unwrap(),
    )
}

/// The real queue on `store`, delivering to the plain SMTP peer on loopback
/// `port` (retries every second). Dropping the workers leaves them running.
pub async fn queue_to(store: &Store, port: u16) -> Queue {
    let schedule = QueueConfig {
        retry_schedule: vec!["1s".into()],
        ..Default::default()
    }
    .schedule()
    .unwrap();
    let metrics = sealgate_metrics::Metrics::new();
    let queue = Queue::open(store.clone(), schedule, "gw.test", metrics)
        .await
        .unwrap();
    let _workers = queue.start(relay_to(port), &format!("127.0.0.1:{port}"));
    queue
}
