//! The gateway's metrics: one [`Metrics`] value, built once at start and
//! cloned into every stage of the flow. The listener counts open SMTP
//! sessions and the bytes it holds in flight, the pipeline counts messages
//! received by outcome and copies built by method, the key resolver counts
//! lookups per source, cache hits per layer and each source's circuit
//! breaker, the delivery workers count deliveries and DSNs and time the way
//! from arrival to delivery, and a periodic sampler sets the queue lengths
//! and the age of the oldest queued message. The admin listener
//! (`sealgate-admin`) renders it all on `/metrics` with [`Metrics::encode`].
//!
//! Everything lives in one explicit prometheus-client [`Registry`] (no global
//! state), so a test builds its own `Metrics` and reads its own numbers.
//! Every metric name starts with `sealgate_`; docs/operations.md ("Metrics
//! and health") lists them. Series with a fixed label set (outcome, method,
//! result, kind, state, layer) exist from the start with the value 0; series
//! labelled by key source appear when a source is first counted, or at once
//! with [`Metrics::init_key_source`].

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::fmt::Write;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// `Content-Type` of [`Metrics::encode`] (OpenMetrics 1.0 text).
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// `Content-Type` of [`Metrics::encode_prometheus`] (Prometheus text 0.0.4).
pub const PROMETHEUS_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Upper bounds (seconds) of the delivery latency buckets: 10 ms to 1 day,
/// with the steps of the default retry schedule (1m, 5m, 15m, 30m, 1h, 2h,
/// 4h) among them, so a bucket tells how many retries a delivery needed.
pub const LATENCY_BUCKETS: [f64; 20] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0,
    3600.0, 7200.0, 14400.0, 43200.0, 86400.0,
];

/// Defines a label value enum: its variants, their text, and the list of all
/// of them (to create every series at 0).
macro_rules! label_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The label value as it appears on `/metrics`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl EncodeLabelValue for $name {
            fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
                encoder.write_str(self.as_str())
            }
        }
    };
}

label_enum! {
    /// What happened to a message at the end of DATA.
    MessageOutcome {
        /// Every copy committed to the queue: the client got 250.
        Queued => "queued",
        /// Nothing queued, try again: the client got a 4xx.
        Deferred => "deferred",
        /// Refused for good: the client got a 5xx.
        Rejected => "rejected",
    }
}

label_enum! {
    /// How a copy was built.
    CopyMethod {
        /// Encrypted as PGP/MIME.
        Pgp => "pgp",
        /// Encrypted as S/MIME.
        Smime => "smime",
        /// The original bytes, for plain recipients.
        Plain => "plain",
        /// Already encrypted by the sender; the original bytes.
        PassThrough => "pass-through",
    }
}

label_enum! {
    /// What the signing stage did with a message whose sender's policy
    /// turns signing on (`policy.sign`).
    SignResult {
        /// S/MIME-signed by sealgate.
        Signed => "signed",
        /// Sent unsigned: opportunistic, and no usable signing certificate.
        Unsigned => "unsigned",
        /// Left as it is: the client had signed or encrypted it already.
        AlreadySigned => "already-signed",
        /// Not taken (mandatory, no usable certificate): 451 or 554.
        Refused => "refused",
    }
}

label_enum! {
    /// What a harvest decision was about.
    HarvestKind {
        /// An S/MIME signer's (encryption) certificate.
        Smime => "smime",
        /// An OpenPGP key attached to signed mail.
        Pgp => "pgp",
        /// An Autocrypt header.
        Autocrypt => "autocrypt",
        /// An `OpenPGP: url=` header.
        OpenPgpHeader => "openpgp-header",
    }
}

label_enum! {
    /// How a harvest decision ended.
    HarvestOutcome {
        /// The key or certificate was stored.
        Kept => "kept",
        /// A gate refused it (the log and `sealgate harvest log` say why).
        Refused => "refused",
        /// Harvesting failed (store, timeout); the mail went on.
        Error => "error",
        /// Not looked at: too many messages waiting for harvesting.
        Skipped => "skipped",
    }
}

label_enum! {
    /// How refreshing a stored remote OpenPGP key ended.
    RefreshResult {
        /// Fetched again, not revoked.
        Refreshed => "refreshed",
        /// Fetched again and found revoked: no longer used.
        Revoked => "revoked",
        /// The source no longer serves it, or is no longer configured.
        Gone => "gone",
        /// The source could not be asked; tried again next round.
        Failed => "failed",
    }
}

label_enum! {
    /// The result of one delivery attempt for one recipient.
    DeliveryResult {
        /// Accepted by the upstream.
        Delivered => "delivered",
        /// Failed for now; will be retried.
        Deferred => "deferred",
        /// Failed for good (upstream 5xx or `queue.max_age`).
        Failed => "failed",
    }
}

label_enum! {
    /// The kind of a DSN (RFC 3464 `Action`).
    DsnKind {
        /// Failure report.
        Failed => "failed",
        /// Delay warning (`queue.delay_warning_after`).
        Delayed => "delayed",
        /// Relayed to an upstream that does not offer DSN.
        Relayed => "relayed",
    }
}

label_enum! {
    /// A recipient's state in the queue.
    QueueState {
        /// Waiting for its first attempt.
        Queued => "queued",
        /// Waiting for a retry.
        Deferred => "deferred",
        /// Held by an operator (`sealgate queue hold`).
        Held => "held",
    }
}

label_enum! {
    /// The answer of one key source to one lookup.
    LookupResult {
        /// At least one key.
        Found => "found",
        /// No key (a definite answer).
        None => "none",
        /// Could not find out (failure, timeout, open circuit breaker).
        Error => "error",
    }
}

label_enum! {
    /// Where a cached key lookup answer came from.
    CacheLayer {
        /// The in-process memory cache (`keys.memory_cache_entries`).
        Memory => "memory",
        /// The store's lookup cache table.
        Store => "store",
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: MessageOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MethodLabels {
    method: CopyMethod,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct HarvestLabels {
    kind: HarvestKind,
    outcome: HarvestOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct RefreshLabels {
    result: RefreshResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SignLabels {
    result: SignResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct ResultLabels {
    result: DeliveryResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct KindLabels {
    kind: DsnKind,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct StateLabels {
    state: QueueState,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LookupLabels {
    source: String,
    result: LookupResult,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct LayerLabels {
    layer: CacheLayer,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    messages: Family<OutcomeLabels, Counter>,
    copies: Family<MethodLabels, Counter>,
    signing: Family<SignLabels, Counter>,
    harvest: Family<HarvestLabels, Counter>,
    refreshes: Family<RefreshLabels, Counter>,
    deliveries: Family<ResultLabels, Counter>,
    dsns: Family<KindLabels, Counter>,
    queue_length: Family<StateLabels, Gauge>,
    oldest_age: Gauge<f64, AtomicU64>,
    latency: Histogram,
    lookups: Family<LookupLabels, Counter>,
    cache_hits: Family<LayerLabels, Counter>,
    circuit: Family<SourceLabels, Gauge>,
    sessions: Gauge,
    inflight: Gauge,
}

/// The gateway's metrics. Cloning is cheap (one `Arc`); every clone counts
/// into the same registry. All methods take `&self` and never block for
/// long (atomics; a short lock the first time a label set is seen).
#[derive(Debug, Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric family registered, at 0.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sealgate");

        let messages = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "messages_received",
            "Messages at the end of DATA, by the reply the client got (queued: 250, deferred: 4xx, rejected: 5xx)",
            messages.clone(),
        );
        let copies = Family::<MethodLabels, Counter>::default();
        registry.register(
            "copies_built",
            "Copies built for queueing, by method (pgp, smime, plain, pass-through)",
            copies.clone(),
        );
        let signing = Family::<SignLabels, Counter>::default();
        registry.register(
            "messages_signing",
            "Messages whose sender's policy signs, by what happened (signed, unsigned, already-signed, refused)",
            signing.clone(),
        );
        let harvest = Family::<HarvestLabels, Counter>::default();
        registry.register(
            "harvest_decisions",
            "Keys and certificates harvested from incoming mail, by kind and outcome (kept, refused, error, skipped)",
            harvest.clone(),
        );
        let refreshes = Family::<RefreshLabels, Counter>::default();
        registry.register(
            "key_refreshes",
            "Stored key-server and WKD keys fetched again, by result (refreshed, revoked, gone, failed)",
            refreshes.clone(),
        );
        let deliveries = Family::<ResultLabels, Counter>::default();
        registry.register(
            "deliveries",
            "Delivery attempts per recipient, by result (delivered, deferred, failed)",
            deliveries.clone(),
        );
        let dsns = Family::<KindLabels, Counter>::default();
        registry.register(
            "dsns",
            "Delivery status notifications queued, by kind (failed, delayed, relayed)",
            dsns.clone(),
        );
        let queue_length = Family::<StateLabels, Gauge>::default();
        registry.register(
            "queue_length",
            "Recipients in the queue, by state (queued, deferred, held), as last sampled",
            queue_length.clone(),
        );
        let oldest_age = Gauge::<f64, AtomicU64>::default();
        registry.register_with_unit(
            "queue_oldest_age",
            "Age of the oldest message still in the queue (0 when the queue is empty), as last sampled",
            Unit::Seconds,
            oldest_age.clone(),
        );
        let latency = Histogram::new(LATENCY_BUCKETS);
        registry.register_with_unit(
            "delivery_latency",
            "Time from the message's arrival (end of DATA) to its delivery upstream, per delivered recipient",
            Unit::Seconds,
            latency.clone(),
        );
        let lookups = Family::<LookupLabels, Counter>::default();
        registry.register(
            "key_lookups",
            "Key lookups answered by a key source, by source and result (found, none, error)",
            lookups.clone(),
        );
        let cache_hits = Family::<LayerLabels, Counter>::default();
        registry.register(
            "key_cache_hits",
            "Key lookups answered from a cache, by layer (memory, store)",
            cache_hits.clone(),
        );
        let circuit = Family::<SourceLabels, Gauge>::default();
        registry.register(
            "key_source_circuit_open",
            "Circuit breaker of a key source: 0 closed (asked normally), 1 open or half-open (backed off)",
            circuit.clone(),
        );
        let sessions = Gauge::default();
        registry.register(
            "smtp_sessions_open",
            "Inbound SMTP sessions open now",
            sessions.clone(),
        );
        let inflight = Gauge::default();
        registry.register_with_unit(
            "inflight",
            "Message bytes held by inbound sessions now (budget: smtp.max_inflight_bytes)",
            Unit::Bytes,
            inflight.clone(),
        );

        for &outcome in MessageOutcome::ALL {
            let _ = messages.get_or_create(&OutcomeLabels { outcome });
        }
        for &method in CopyMethod::ALL {
            let _ = copies.get_or_create(&MethodLabels { method });
        }
        for &kind in HarvestKind::ALL {
            for &outcome in HarvestOutcome::ALL {
                let _ = harvest.get_or_create(&HarvestLabels { kind, outcome });
            }
        }
        for &result in SignResult::ALL {
            let _ = signing.get_or_create(&SignLabels { result });
        }
        for &result in RefreshResult::ALL {
            let _ = refreshes.get_or_create(&RefreshLabels { result });
        }
        for &result in DeliveryResult::ALL {
            let _ = deliveries.get_or_create(&ResultLabels { result });
        }
        for &kind in DsnKind::ALL {
            let _ = dsns.get_or_create(&KindLabels { kind });
        }
        for &state in QueueState::ALL {
            let _ = queue_length.get_or_create(&StateLabels { state });
        }
        for &layer in CacheLayer::ALL {
            let _ = cache_hits.get_or_create(&LayerLabels { layer });
        }

        Metrics {
            inner: Arc::new(Inner {
                registry,
                messages,
                copies,
                signing,
                harvest,
                refreshes,
                deliveries,
                dsns,
                queue_length,
                oldest_age,
                latency,
                lookups,
                cache_hits,
                circuit,
                sessions,
                inflight,
            }),
        }
    }

    /// One message reached the end of DATA and got `outcome`.
    pub fn message_received(&self, outcome: MessageOutcome) {
        self.inner
            .messages
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    /// One copy was built with `method`.
    pub fn copy_built(&self, method: CopyMethod) {
        self.inner
            .copies
            .get_or_create(&MethodLabels { method })
            .inc();
    }

    /// The signing stage handled one message with `result`.
    pub fn message_signing(&self, result: SignResult) {
        self.inner
            .signing
            .get_or_create(&SignLabels { result })
            .inc();
    }

    /// Refreshing one stored remote key ended with `result`.
    pub fn key_refresh(&self, result: RefreshResult) {
        self.inner
            .refreshes
            .get_or_create(&RefreshLabels { result })
            .inc();
    }

    /// One harvest decision about a `kind` of key ended with `outcome`.
    pub fn harvest(&self, kind: HarvestKind, outcome: HarvestOutcome) {
        self.inner
            .harvest
            .get_or_create(&HarvestLabels { kind, outcome })
            .inc();
    }

    /// One recipient's delivery attempt ended with `result`.
    pub fn delivery(&self, result: DeliveryResult) {
        self.inner
            .deliveries
            .get_or_create(&ResultLabels { result })
            .inc();
    }

    /// One recipient was delivered `latency` after its message arrived:
    /// counts a `delivered` delivery and observes the latency.
    pub fn delivered(&self, latency: Duration) {
        self.delivery(DeliveryResult::Delivered);
        self.observe_delivery_latency(latency);
    }

    /// Observes a delivery latency alone (without counting a delivery).
    pub fn observe_delivery_latency(&self, latency: Duration) {
        self.inner.latency.observe(latency.as_secs_f64());
    }

    /// One DSN of `kind` was queued.
    pub fn dsn_sent(&self, kind: DsnKind) {
        self.inner.dsns.get_or_create(&KindLabels { kind }).inc();
    }

    /// The sampler counted `n` recipients in `state`.
    pub fn set_queue_length(&self, state: QueueState, n: u64) {
        self.inner
            .queue_length
            .get_or_create(&StateLabels { state })
            .set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// The sampler found the oldest queued message `age` old (`Duration::ZERO`
    /// for an empty queue).
    pub fn set_oldest_queued_age(&self, age: Duration) {
        self.inner.oldest_age.set(age.as_secs_f64());
    }

    /// Key source `source` (its name, e.g. `upload`, `wkd`, `ldap:corp`)
    /// answered one lookup with `result`.
    pub fn key_lookup(&self, source: &str, result: LookupResult) {
        self.inner
            .lookups
            .get_or_create(&LookupLabels {
                source: source.to_owned(),
                result,
            })
            .inc();
    }

    /// One lookup was answered from the cache `layer`.
    pub fn cache_hit(&self, layer: CacheLayer) {
        self.inner
            .cache_hits
            .get_or_create(&LayerLabels { layer })
            .inc();
    }

    /// Key source `source`'s circuit breaker is open (`true`: backed off,
    /// also while half-open) or closed (`false`).
    pub fn set_circuit_open(&self, source: &str, open: bool) {
        self.inner
            .circuit
            .get_or_create(&SourceLabels {
                source: source.to_owned(),
            })
            .set(i64::from(open));
    }

    /// Creates the series of key source `source` at 0 (every lookup result,
    /// circuit closed), so they show before the first lookup.
    pub fn init_key_source(&self, source: &str) {
        for &result in LookupResult::ALL {
            let _ = self.inner.lookups.get_or_create(&LookupLabels {
                source: source.to_owned(),
                result,
            });
        }
        let _ = self.inner.circuit.get_or_create(&SourceLabels {
            source: source.to_owned(),
        });
    }

    /// An SMTP session opened. Pair with [`Metrics::session_closed`], or use
    /// [`Metrics::session`].
    pub fn session_opened(&self) {
        self.inner.sessions.inc();
    }

    /// An SMTP session closed.
    pub fn session_closed(&self) {
        self.inner.sessions.dec();
    }

    /// Counts an open SMTP session until the guard is dropped (whatever way
    /// the session ends).
    pub fn session(&self) -> SessionGuard {
        self.session_opened();
        SessionGuard {
            metrics: self.clone(),
        }
    }

    /// The inbound sessions hold `bytes` now (e.g. the in-flight budget's
    /// current use).
    pub fn set_inflight_bytes(&self, bytes: u64) {
        self.inner
            .inflight
            .set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// A session took `bytes` more.
    pub fn add_inflight_bytes(&self, bytes: u64) {
        self.inner
            .inflight
            .inc_by(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// A session gave `bytes` back.
    pub fn sub_inflight_bytes(&self, bytes: u64) {
        self.inner
            .inflight
            .dec_by(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Everything in the OpenMetrics 1.0 text format (ends with `# EOF`);
    /// serve it as [`OPENMETRICS_CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.inner.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Everything in the Prometheus text format 0.0.4, for scrapers that do
    /// not ask for OpenMetrics; serve it as [`PROMETHEUS_CONTENT_TYPE`].
    pub fn encode_prometheus(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut out, &self.inner.registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Counts one open SMTP session while it lives; see [`Metrics::session`].
#[derive(Debug)]
pub struct SessionGuard {
    metrics: Metrics,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.metrics.session_closed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample line `series` (name plus labels, as
    /// rendered), or `None` if absent.
    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(series)?;
            let rest = rest.strip_prefix(' ')?;
            rest.split(' ').next()?.parse().ok()
        })
    }

    const FAMILIES: &[(&str, &str)] = &[
        ("sealgate_messages_received", "counter"),
        ("sealgate_copies_built", "counter"),
        ("sealgate_messages_signing", "counter"),
        ("sealgate_harvest_decisions", "counter"),
        ("sealgate_key_refreshes", "counter"),
        ("sealgate_deliveries", "counter"),
        ("sealgate_dsns", "counter"),
        ("sealgate_queue_length", "gauge"),
        ("sealgate_queue_oldest_age_seconds", "gauge"),
        ("sealgate_delivery_latency_seconds", "histogram"),
        ("sealgate_key_lookups", "counter"),
        ("sealgate_key_cache_hits", "counter"),
        ("sealgate_key_source_circuit_open", "gauge"),
        ("sealgate_smtp_sessions_open", "gauge"),
        ("sealgate_inflight_bytes", "gauge"),
    ];

    /// Families labelled by key source; a family without series is not
    /// rendered at all, so these show once a source is known.
    const BY_SOURCE: &[&str] = &["sealgate_key_lookups", "sealgate_key_source_circuit_open"];

    #[test]
    fn every_family_is_there_from_the_start() {
        let metrics = Metrics::new();
        let text = metrics.encode();
        for name in BY_SOURCE {
            assert!(!text.contains(&format!("# TYPE {name} ")), "{name}");
        }
        metrics.init_key_source("upload");
        let text = metrics.encode();
        for (name, kind) in FAMILIES {
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name} ({kind}) missing in:\n{text}"
            );
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no help"
            );
        }
        assert!(text.ends_with("# EOF\n"));
        for outcome in ["queued", "deferred", "rejected"] {
            let series = format!("sealgate_messages_received_total{{outcome=\"{outcome}\"}}");
            assert_eq!(value(&text, &series), Some(0.0), "{series}");
        }
        for method in ["pgp", "smime", "plain", "pass-through"] {
            let series = format!("sealgate_copies_built_total{{method=\"{method}\"}}");
            assert_eq!(value(&text, &series), Some(0.0), "{series}");
        }
        for state in ["queued", "deferred", "held"] {
            let series = format!("sealgate_queue_length{{state=\"{state}\"}}");
            assert_eq!(value(&text, &series), Some(0.0), "{series}");
        }
        assert_eq!(
            value(
                &text,
                "sealgate_delivery_latency_seconds_bucket{le=\"0.01\"}"
            ),
            Some(0.0)
        );
        assert_eq!(
            value(
                &text,
                "sealgate_delivery_latency_seconds_bucket{le=\"86400.0\"}"
            ),
            Some(0.0)
        );
    }

    #[test]
    fn values_move() {
        let metrics = Metrics::new();
        let other_clone = metrics.clone();
        metrics.message_received(MessageOutcome::Queued);
        other_clone.message_received(MessageOutcome::Queued);
        metrics.message_received(MessageOutcome::Rejected);
        metrics.copy_built(CopyMethod::PassThrough);
        metrics.copy_built(CopyMethod::Pgp);
        metrics.delivered(Duration::from_millis(40));
        metrics.delivered(Duration::from_secs(400));
        metrics.delivery(DeliveryResult::Deferred);
        metrics.dsn_sent(DsnKind::Delayed);
        metrics.set_queue_length(QueueState::Deferred, 17);
        metrics.set_queue_length(QueueState::Held, 2);
        metrics.set_oldest_queued_age(Duration::from_millis(90_500));
        metrics.key_lookup("wkd", LookupResult::Found);
        metrics.key_lookup("ldap:corp \"east\"", LookupResult::Error);
        metrics.cache_hit(CacheLayer::Memory);
        metrics.cache_hit(CacheLayer::Memory);
        metrics.cache_hit(CacheLayer::Store);
        metrics.set_circuit_open("ldap:corp \"east\"", true);
        metrics.set_circuit_open("wkd", false);
        let session = metrics.session();
        metrics.session_opened();
        metrics.set_inflight_bytes(1000);
        metrics.add_inflight_bytes(500);
        metrics.sub_inflight_bytes(200);

        let text = metrics.encode();
        let check = |series: &str, want: f64| {
            assert_eq!(value(&text, series), Some(want), "{series} in:\n{text}");
        };
        check("sealgate_messages_received_total{outcome=\"queued\"}", 2.0);
        check(
            "sealgate_messages_received_total{outcome=\"rejected\"}",
            1.0,
        );
        check(
            "sealgate_messages_received_total{outcome=\"deferred\"}",
            0.0,
        );
        check("sealgate_copies_built_total{method=\"pass-through\"}", 1.0);
        check("sealgate_copies_built_total{method=\"pgp\"}", 1.0);
        check("sealgate_deliveries_total{result=\"delivered\"}", 2.0);
        check("sealgate_deliveries_total{result=\"deferred\"}", 1.0);
        check("sealgate_dsns_total{kind=\"delayed\"}", 1.0);
        check("sealgate_queue_length{state=\"deferred\"}", 17.0);
        check("sealgate_queue_length{state=\"held\"}", 2.0);
        check("sealgate_queue_length{state=\"queued\"}", 0.0);
        check("sealgate_queue_oldest_age_seconds", 90.5);
        check("sealgate_delivery_latency_seconds_count", 2.0);
        check(
            "sealgate_delivery_latency_seconds_bucket{le=\"0.025\"}",
            0.0,
        );
        check("sealgate_delivery_latency_seconds_bucket{le=\"0.05\"}", 1.0);
        check(
            "sealgate_delivery_latency_seconds_bucket{le=\"300.0\"}",
            1.0,
        );
        check(
            "sealgate_delivery_latency_seconds_bucket{le=\"900.0\"}",
            2.0,
        );
        check("sealgate_delivery_latency_seconds_bucket{le=\"+Inf\"}", 2.0);
        check(
            "sealgate_key_lookups_total{source=\"wkd\",result=\"found\"}",
            1.0,
        );
        // A label value is escaped, so a source name cannot break the format.
        check(
            "sealgate_key_lookups_total{source=\"ldap:corp \\\"east\\\"\",result=\"error\"}",
            1.0,
        );
        check("sealgate_key_cache_hits_total{layer=\"memory\"}", 2.0);
        check("sealgate_key_cache_hits_total{layer=\"store\"}", 1.0);
        check(
            "sealgate_key_source_circuit_open{source=\"ldap:corp \\\"east\\\"\"}",
            1.0,
        );
        check("sealgate_key_source_circuit_open{source=\"wkd\"}", 0.0);
        check("sealgate_smtp_sessions_open", 2.0);
        check("sealgate_inflight_bytes", 1300.0);

        drop(session);
        metrics.session_closed();
        metrics.set_circuit_open("ldap:corp \"east\"", false);
        let text = metrics.encode();
        assert_eq!(value(&text, "sealgate_smtp_sessions_open"), Some(0.0));
        assert_eq!(
            value(
                &text,
                "sealgate_key_source_circuit_open{source=\"ldap:corp \\\"east\\\"\"}"
            ),
            Some(0.0)
        );
    }

    #[test]
    fn a_key_source_can_be_shown_before_its_first_lookup() {
        let metrics = Metrics::new();
        metrics.init_key_source("keyserver:hkps://keys.example");
        let text = metrics.encode();
        for result in ["found", "none", "error"] {
            let series = format!(
                "sealgate_key_lookups_total{{source=\"keyserver:hkps://keys.example\",result=\"{result}\"}}"
            );
            assert_eq!(value(&text, &series), Some(0.0), "{series}");
        }
        assert_eq!(
            value(
                &text,
                "sealgate_key_source_circuit_open{source=\"keyserver:hkps://keys.example\"}"
            ),
            Some(0.0)
        );
    }

    #[test]
    fn registries_are_separate() {
        let a = Metrics::new();
        let b = Metrics::new();
        a.copy_built(CopyMethod::Smime);
        let series = "sealgate_copies_built_total{method=\"smime\"}";
        assert_eq!(value(&a.encode(), series), Some(1.0));
        assert_eq!(value(&b.encode(), series), Some(0.0));
    }

    #[test]
    fn prometheus_text_has_the_same_samples() {
        let metrics = Metrics::new();
        metrics.message_received(MessageOutcome::Deferred);
        metrics.set_inflight_bytes(42);
        let text = metrics.encode_prometheus();
        assert!(!text.contains("# EOF"));
        assert!(text.contains("# TYPE sealgate_messages_received_total counter\n"));
        assert_eq!(
            value(
                &text,
                "sealgate_messages_received_total{outcome=\"deferred\"}"
            ),
            Some(1.0)
        );
        assert_eq!(value(&text, "sealgate_inflight_bytes"), Some(42.0));
    }
}
