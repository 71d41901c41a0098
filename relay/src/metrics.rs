//! The relay's counters and gauges, exported at `/metrics` in the Prometheus text format.
//!
//! Handles to every labelled series are resolved once at start-up, so counting on the hot
//! path is one atomic add.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::protocol::{ErrorCode, event};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabel {
    event: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CodeLabel {
    code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// Inbound events whose relaying is counted.
const RELAYED_EVENTS: [&str; 5] = [
    event::OPERATOR_MESSAGE,
    event::CLIENT_MESSAGE,
    event::OPERATOR_TYPING,
    event::CLIENT_TYPING,
    event::GET_CONNECTED_OPERATORS,
];

/// Every metric the relay exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Sockets connected to the namespace.
    pub sockets: Gauge,
    /// Distinct operators online (one per operatorId).
    pub operators: Gauge,
    /// Operator sockets (tabs) online.
    pub operator_sockets: Gauge,
    /// Visitors online.
    pub clients: Gauge,
    relayed: Vec<(&'static str, Counter)>,
    errors: Vec<(ErrorCode, Counter)>,
    /// Messages refused by the rate limit.
    pub rate_limited_messages: Counter,
    /// Typing events dropped by their budget.
    pub rate_limited_typing: Counter,
    /// Emits dropped because a socket's outgoing buffer was full.
    pub emit_dropped: Counter,
    /// Inbound events dropped because a socket's queue was full.
    pub inbound_dropped: Counter,
    /// Events refused as larger than `MAX_PAYLOAD_BYTES`.
    pub oversized: Counter,
    /// Events whose handler panicked (caught; the socket's clean-up still ran).
    pub handler_panics: Counter,
    /// 1 while this node cannot reach its cluster's Redis (it serves its own sockets only).
    pub cluster_degraded: Gauge,
    /// Cross-node messages dropped: this node's bus buffer was full, or its outbox was.
    pub cluster_dropped: Counter,
    /// Cross-node messages waiting in this node's outbox for Redis to return.
    pub cluster_held: Gauge,
    /// Broadcasts that could not be published to the cluster (delivered on this node only).
    pub cluster_publish_failed: Counter,
    /// Times this node found it no longer heard its own subscription and subscribed again.
    pub cluster_resubscribed: Counter,
    /// Departures of dead nodes' operators (last socket) and visitors this node announced.
    pub cluster_reaped: Counter,
    /// Cluster-wide: nodes alive, operators, operator sockets and visitors online.
    pub cluster: ClusterGauges,
}

/// Cluster-wide presence gauges, refreshed by each node's upkeep loop.
#[derive(Debug, Clone, Default)]
pub struct ClusterGauges {
    /// Nodes alive.
    pub nodes: Gauge,
    /// Distinct operators online on any node.
    pub operators: Gauge,
    /// Operator sockets online on any node.
    pub operator_sockets: Gauge,
    /// Visitors online on any node.
    pub clients: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every series at zero.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let gauge = |registry: &mut Registry, name: &str, help: &str| {
            let g = Gauge::default();
            registry.register(name, help, g.clone());
            g
        };
        let sockets = gauge(
            &mut registry,
            "relay_connected_sockets",
            "Sockets connected",
        );
        let operators = gauge(
            &mut registry,
            "relay_connected_operators",
            "Distinct operators online",
        );
        let operator_sockets = gauge(
            &mut registry,
            "relay_connected_operator_sockets",
            "Operator sockets (tabs) online",
        );
        let clients = gauge(&mut registry, "relay_connected_clients", "Visitors online");

        let relayed_family = Family::<EventLabel, Counter>::default();
        registry.register(
            "relay_messages_relayed",
            "Inbound events relayed, by event",
            relayed_family.clone(),
        );
        let relayed = RELAYED_EVENTS
            .iter()
            .map(|&event| {
                (
                    event,
                    relayed_family.get_or_create(&EventLabel { event }).clone(),
                )
            })
            .collect();

        let error_family = Family::<CodeLabel, Counter>::default();
        registry.register(
            "relay_errors",
            "relayError answers, by code",
            error_family.clone(),
        );
        let errors = ErrorCode::ALL
            .iter()
            .map(|&code| {
                (
                    code,
                    error_family
                        .get_or_create(&CodeLabel {
                            code: code.as_str(),
                        })
                        .clone(),
                )
            })
            .collect();

        let limited_family = Family::<KindLabel, Counter>::default();
        registry.register(
            "relay_rate_limited",
            "Events refused by a rate limit, by kind",
            limited_family.clone(),
        );
        let rate_limited_messages = limited_family
            .get_or_create(&KindLabel { kind: "message" })
            .clone();
        let rate_limited_typing = limited_family
            .get_or_create(&KindLabel { kind: "typing" })
            .clone();

        let counter = |registry: &mut Registry, name: &str, help: &str| {
            let c = Counter::default();
            registry.register(name, help, c.clone());
            c
        };
        let emit_dropped = counter(
            &mut registry,
            "relay_emit_dropped",
            "Emits dropped because a socket's outgoing buffer was full",
        );
        let inbound_dropped = counter(
            &mut registry,
            "relay_inbound_dropped",
            "Inbound events dropped because a socket's queue was full",
        );
        let oversized = counter(
            &mut registry,
            "relay_oversized_events",
            "Events over MAX_PAYLOAD_BYTES",
        );
        let handler_panics = counter(
            &mut registry,
            "relay_handler_panics",
            "Events whose handler panicked (caught and logged)",
        );
        let cluster_degraded = gauge(
            &mut registry,
            "relay_cluster_degraded",
            "1 while this node cannot reach its cluster's Redis and serves its own sockets only",
        );
        let cluster_dropped = counter(
            &mut registry,
            "relay_cluster_dropped",
            "Cross-node messages dropped: bus buffer or outbox full",
        );
        let cluster_held = gauge(
            &mut registry,
            "relay_cluster_held",
            "Cross-node messages waiting in this node's outbox for Redis to return",
        );
        let cluster_publish_failed = counter(
            &mut registry,
            "relay_cluster_publish_failed",
            "Broadcasts not published to the cluster (delivered on this node only)",
        );
        let cluster_resubscribed = counter(
            &mut registry,
            "relay_cluster_resubscribed",
            "Times this node stopped hearing its own subscription and subscribed again",
        );
        let cluster_reaped = counter(
            &mut registry,
            "relay_cluster_departures_announced",
            "Departures of dead nodes' operators (last socket) and visitors announced by this node",
        );
        registry.register_collector(Box::new(crate::process::ProcessCollector));
        let cluster = ClusterGauges {
            nodes: gauge(
                &mut registry,
                "relay_cluster_nodes",
                "Relay nodes alive in the cluster",
            ),
            operators: gauge(
                &mut registry,
                "relay_cluster_operators",
                "Distinct operators online on any node",
            ),
            operator_sockets: gauge(
                &mut registry,
                "relay_cluster_operator_sockets",
                "Operator sockets online on any node",
            ),
            clients: gauge(
                &mut registry,
                "relay_cluster_clients",
                "Visitors online on any node",
            ),
        };
        Self {
            registry,
            sockets,
            operators,
            operator_sockets,
            clients,
            relayed,
            errors,
            rate_limited_messages,
            rate_limited_typing,
            emit_dropped,
            inbound_dropped,
            oversized,
            handler_panics,
            cluster_degraded,
            cluster_dropped,
            cluster_held,
            cluster_publish_failed,
            cluster_resubscribed,
            cluster_reaped,
            cluster,
        }
    }

    /// Counts one relayed inbound event.
    pub fn relayed(&self, event: &str) {
        if let Some((_, c)) = self.relayed.iter().find(|(e, _)| *e == event) {
            c.inc();
        }
    }

    /// Counts one `relayError` answer.
    pub fn error(&self, code: ErrorCode) {
        if let Some((_, c)) = self.errors.iter().find(|(k, _)| *k == code) {
            c.inc();
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_series_at_zero() {
        let m = Metrics::new();
        let text = m.render();
        for needle in [
            "relay_connected_sockets 0",
            "relay_connected_operators 0",
            "relay_connected_clients 0",
            "relay_messages_relayed_total{event=\"operatorMessage\"} 0",
            "relay_errors_total{code=\"not_joined\"} 0",
            "relay_rate_limited_total{kind=\"message\"} 0",
            "relay_emit_dropped_total 0",
            "relay_cluster_degraded 0",
            "relay_cluster_dropped_total 0",
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
            "process_open_fds ",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in\n{text}");
        }
    }

    #[test]
    fn counts_by_label() {
        let m = Metrics::new();
        m.relayed(event::CLIENT_MESSAGE);
        m.error(ErrorCode::UnknownClient);
        m.error(ErrorCode::UnknownClient);
        let text = m.render();
        assert!(text.contains("relay_messages_relayed_total{event=\"clientMessage\"} 1"));
        assert!(text.contains("relay_errors_total{code=\"unknown_client\"} 2"));
    }
}
