//! Prometheus metrics of one node. Labels have bounded cardinality: never a room or a user.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder, core::Collector,
};

/// Buckets of latency histograms (seconds): 100 µs to 10 s.
const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Why a connection closed (the `reason` label); a fixed set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client closed or went away.
    Normal,
    /// The outbound queue overflowed or a write timed out.
    SlowConsumer,
    /// No pong in time.
    PingTimeout,
    /// A frame over the size limit.
    FrameTooLarge,
    /// The node shut down.
    Shutdown,
    /// A transport or protocol error.
    Error,
    /// No `auth` frame in time.
    AuthTimeout,
    /// The token expired without a refresh.
    TokenExpired,
    /// The `auth` frame's token was refused.
    Unauthorized,
    /// The user was at the per-user connection limit.
    TooManyConnections,
    /// Too many refused commands.
    Flooding,
    /// The server API disconnected the user or revoked their tokens.
    Disconnected,
}

impl CloseReason {
    /// Every reason, so each series exists (at 0) from the start.
    const ALL: [Self; 12] = [
        Self::Normal,
        Self::SlowConsumer,
        Self::PingTimeout,
        Self::FrameTooLarge,
        Self::Shutdown,
        Self::Error,
        Self::AuthTimeout,
        Self::TokenExpired,
        Self::Unauthorized,
        Self::TooManyConnections,
        Self::Flooding,
        Self::Disconnected,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::SlowConsumer => "slow_consumer",
            Self::PingTimeout => "ping_timeout",
            Self::FrameTooLarge => "frame_too_large",
            Self::Shutdown => "shutdown",
            Self::Error => "error",
            Self::AuthTimeout => "auth_timeout",
            Self::TokenExpired => "token_expired",
            Self::Unauthorized => "unauthorized",
            Self::TooManyConnections => "too_many_connections",
            Self::Flooding => "flooding",
            Self::Disconnected => "disconnected",
        }
    }
}

/// The node's metrics, cheap to clone (every field is a shared handle).
#[derive(Clone)]
pub struct Metrics {
    /// Everything below, and the backplane's own, for `/metrics`.
    pub registry: Registry,
    /// Connections open now.
    pub connections_open: IntGauge,
    /// Connections accepted.
    pub connections_opened: IntCounter,
    /// Connections closed, by reason.
    connections_closed: IntCounterVec,
    /// Upgrades refused because the node was full.
    pub connections_refused: IntCounter,
    /// Rooms with at least one local member.
    pub rooms_local: IntGauge,
    /// Room subscriptions held on the backplane.
    pub subscriptions: IntGauge,
    /// Commands received from clients, valid or not.
    pub commands_received: IntCounter,
    /// Commands answered with an error.
    pub command_errors: IntCounter,
    /// Messages published to the backplane.
    pub messages_published: IntCounter,
    /// Messages read from the backplane.
    pub backplane_received: IntCounter,
    /// Envelopes that could not be decoded.
    pub backplane_undecodable: IntCounter,
    /// Frames queued to local clients.
    pub frames_delivered: IntCounter,
    /// Frames dropped because a client's queue had overflowed.
    pub outbox_drops: IntCounter,
    /// Typing indicators not queued: the member was catching up or behind (dropped first, by design).
    pub signals_dropped: IntCounter,
    /// Local recipients per message read from the backplane.
    pub fanout: Histogram,
    /// Tokens refused, by reason (a fixed set: see `AuthError::label`).
    auth_failures: IntCounterVec,
    /// Upgrades and authentications refused, by reason (a fixed set).
    refusals: IntCounterVec,
    /// Commands refused by a rate limit, by kind (`send` or `join`).
    rate_limited: IntCounterVec,
    /// Gaps in a room's sequence filled from history (a relayed message was lost).
    pub gap_repairs: IntCounter,
    /// Messages delivered to local members from history by gap repair.
    pub repaired_messages: IntCounter,
    /// Relayed messages dropped because they were already delivered (or stale).
    pub duplicates_dropped: IntCounter,
    /// Continuity breaks told to clients, by reason (a fixed set).
    resets: IntCounterVec,
    /// Joins that asked to resume, by result (`recovered`, `not_recovered`).
    resumes: IntCounterVec,
    /// Sends that repeated a known `client_msg_id` and were not stored again.
    pub duplicate_sends: IntCounter,
    /// `send` commands received from clients (before any check).
    pub messages_received: IntCounter,
    /// WebSocket payload bytes read from clients.
    pub bytes_received: IntCounter,
    /// WebSocket payload bytes written to clients.
    pub bytes_sent: IntCounter,
    /// From the publishing node's clock at publish to the write on this node.
    pub delivery_latency: Histogram,
    /// Time of one publish on the backplane (Redis round trip with the script).
    pub publish_latency: Histogram,
    /// 1 when the node reports ready, refreshed at each scrape and heartbeat.
    pub ready: IntGauge,
    /// 1 while the node drains for shutdown.
    pub draining: IntGauge,
    /// Nodes in the cluster view (this one included).
    pub cluster_nodes: IntGauge,
    /// Tasks alive in the node's runtime (connections, their helpers, the
    /// node's own): flat when nothing leaks.
    pub runtime_tasks: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric in a new registry, with the process's
    /// own metrics (CPU, memory, file descriptors) on Linux.
    pub fn new(node_id: &str) -> Self {
        let registry = Registry::new();
        #[cfg(target_os = "linux")]
        registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .expect("process metrics register once");
        let info = IntGaugeVec::new(
            Opts::new(
                "chorus_node_info",
                "Always 1; labels name the node and its version.",
            ),
            &["node", "version"],
        )
        .unwrap();
        info.with_label_values(&[node_id, env!("CARGO_PKG_VERSION")])
            .set(1);
        register(&registry, info);
        let counter =
            |name: &str, help: &str| register(&registry, IntCounter::new(name, help).unwrap());
        let gauge =
            |name: &str, help: &str| register(&registry, IntGauge::new(name, help).unwrap());
        let metrics = Self {
            connections_open: gauge("chorus_connections_open", "WebSocket connections open now."),
            connections_opened: counter(
                "chorus_connections_opened_total",
                "WebSocket connections accepted.",
            ),
            connections_closed: register(
                &registry,
                IntCounterVec::new(
                    Opts::new(
                        "chorus_connections_closed_total",
                        "WebSocket connections closed, by reason.",
                    ),
                    &["reason"],
                )
                .unwrap(),
            ),
            connections_refused: counter(
                "chorus_connections_refused_total",
                "Upgrades refused because the node was at --max-connections.",
            ),
            rooms_local: gauge(
                "chorus_rooms_local",
                "Rooms with at least one member on this node.",
            ),
            subscriptions: gauge(
                "chorus_backplane_subscriptions",
                "Room subscriptions held on the backplane.",
            ),
            commands_received: counter(
                "chorus_commands_received_total",
                "Commands received from clients.",
            ),
            command_errors: counter(
                "chorus_command_errors_total",
                "Commands answered with an error event.",
            ),
            messages_published: counter(
                "chorus_messages_published_total",
                "Messages published to the backplane.",
            ),
            backplane_received: counter(
                "chorus_backplane_messages_received_total",
                "Messages read from the backplane.",
            ),
            backplane_undecodable: counter(
                "chorus_backplane_undecodable_total",
                "Backplane messages that were not valid envelopes.",
            ),
            frames_delivered: counter(
                "chorus_frames_delivered_total",
                "Frames queued to local clients.",
            ),
            outbox_drops: counter(
                "chorus_outbox_drops_total",
                "Frames dropped for clients whose outbound queue overflowed.",
            ),
            signals_dropped: counter(
                "chorus_signals_dropped_total",
                "Typing indicators not queued because the client was catching up or falling behind.",
            ),
            fanout: register(
                &registry,
                Histogram::with_opts(
                    HistogramOpts::new("chorus_fanout_recipients", "Local recipients per message.")
                        .buckets(vec![
                            0.0, 1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1e3, 5e3, 1e4, 5e4, 1e5,
                        ]),
                )
                .unwrap(),
            ),
            auth_failures: counter_vec(
                &registry,
                "chorus_auth_failures_total",
                "Tokens refused, by reason.",
                "reason",
            ),
            refusals: counter_vec(
                &registry,
                "chorus_refusals_total",
                "Upgrades or authentications refused, by reason.",
                "reason",
            ),
            rate_limited: counter_vec(
                &registry,
                "chorus_rate_limited_total",
                "Commands refused by a rate limit, by kind.",
                "kind",
            ),
            gap_repairs: counter(
                "chorus_gap_repairs_total",
                "Gaps in a room's sequence filled from history.",
            ),
            repaired_messages: counter(
                "chorus_repaired_messages_total",
                "Messages delivered from history by gap repair.",
            ),
            duplicates_dropped: counter(
                "chorus_duplicate_deliveries_dropped_total",
                "Relayed messages dropped because they were already delivered.",
            ),
            resets: counter_vec(
                &registry,
                "chorus_room_resets_total",
                "Continuity breaks told to clients, by reason.",
                "reason",
            ),
            resumes: counter_vec(
                &registry,
                "chorus_resumes_total",
                "Joins that asked to resume, by result.",
                "result",
            ),
            duplicate_sends: counter(
                "chorus_duplicate_sends_total",
                "Sends that repeated a known client_msg_id.",
            ),
            messages_received: counter(
                "chorus_messages_received_total",
                "Send commands received from clients.",
            ),
            bytes_received: counter(
                "chorus_received_bytes_total",
                "WebSocket payload bytes read from clients.",
            ),
            bytes_sent: counter(
                "chorus_sent_bytes_total",
                "WebSocket payload bytes written to clients.",
            ),
            delivery_latency: latency(
                &registry,
                "chorus_delivery_latency_seconds",
                "From publish on the origin node to the write to a client here (clocks must agree).",
            ),
            publish_latency: latency(
                &registry,
                "chorus_backplane_publish_seconds",
                "Time to publish one message on the backplane (store and relay).",
            ),
            ready: gauge("chorus_ready", "1 when the node reports ready."),
            draining: gauge("chorus_draining", "1 while the node drains for shutdown."),
            cluster_nodes: gauge(
                "chorus_cluster_nodes",
                "Nodes alive in the cluster view, this one included.",
            ),
            runtime_tasks: gauge(
                "chorus_runtime_tasks",
                "Tasks alive in the node's runtime (read at each scrape).",
            ),
            registry,
        };
        metrics.initialize_labels();
        metrics
    }

    /// Creates every series of the fixed label sets at 0, so they are scraped (and
    /// `rate()` works) before the first event.
    fn initialize_labels(&self) {
        for reason in CloseReason::ALL {
            self.connections_closed.with_label_values(&[reason.label()]);
        }
        for reason in crate::auth::AuthError::LABELS {
            self.auth_failures.with_label_values(&[reason]);
        }
        for reason in [
            "node_full",
            "origin",
            "shutting_down",
            "too_many_connections",
            "unauthorized",
        ] {
            self.refusals.with_label_values(&[reason]);
        }
        for kind in ["send", "join"] {
            self.rate_limited.with_label_values(&[kind]);
        }
        for reason in ["epoch_changed", "history_trimmed", "history_rewound"] {
            self.resets.with_label_values(&[reason]);
        }
        for result in ["recovered", "not_recovered"] {
            self.resumes.with_label_values(&[result]);
        }
    }

    /// Counts a continuity break told to a room's members.
    pub fn reset(&self, reason: &'static str) {
        self.resets.with_label_values(&[reason]).inc();
    }

    /// Counts a resume attempt.
    pub fn resumed(&self, recovered: bool) {
        let result = if recovered {
            "recovered"
        } else {
            "not_recovered"
        };
        self.resumes.with_label_values(&[result]).inc();
    }

    /// Counts a refused token.
    pub fn auth_failed(&self, reason: &'static str) {
        self.auth_failures.with_label_values(&[reason]).inc();
    }

    /// Counts a refused upgrade or authentication.
    pub fn refused(&self, reason: &'static str) {
        self.refusals.with_label_values(&[reason]).inc();
    }

    /// Counts a command refused by a rate limit.
    pub fn rate_limited(&self, kind: &str) {
        let kind = if kind == "send" { "send" } else { "join" };
        self.rate_limited.with_label_values(&[kind]).inc();
    }

    /// Counts a closed connection.
    pub fn connection_closed(&self, reason: CloseReason) {
        self.connections_open.dec();
        self.connections_closed
            .with_label_values(&[reason.label()])
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .expect("text encoding of metrics");
        String::from_utf8(buf).expect("metrics text is UTF-8")
    }
}

fn counter_vec(registry: &Registry, name: &str, help: &str, label: &str) -> IntCounterVec {
    register(
        registry,
        IntCounterVec::new(Opts::new(name, help), &[label]).unwrap(),
    )
}

fn latency(registry: &Registry, name: &str, help: &str) -> Histogram {
    register(
        registry,
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()))
            .unwrap(),
    )
}

fn register<C: Collector + Clone + 'static>(registry: &Registry, collector: C) -> C {
    registry
        .register(Box::new(collector.clone()))
        .expect("metric names are unique");
    collector
}
