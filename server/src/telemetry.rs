//! Logs and traces of the process: the tracing subscriber (text or JSON lines on stderr, no
//! colour codes unless stderr is a terminal), and, with an OTLP endpoint, an OpenTelemetry
//! pipeline that exports the RPC spans (children of the caller's `traceparent`, see
//! [`crate::rpc`]) and their database statements as child spans ([`QuerySpans`]).
//!
//! This is process-wide (one global subscriber and tracer provider), so the binary sets it up
//! once; the server library itself only creates spans and events.
//!
//! A leaf: it imports nothing of the server; `db` hands its connections [`QuerySpans`].

use std::collections::VecDeque;
use std::io::IsTerminal as _;

use diesel::connection::{Instrumentation, InstrumentationEvent};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The service name spans carry (`service.name`).
pub const SERVICE_NAME: &str = "client-info";
/// Tracing target of the database statement spans.
pub const QUERY_TARGET: &str = "client_info_server::db::query";

/// Keeps the log writer and the trace exporter alive; dropping it flushes the log lines and
/// the spans not yet written.
#[must_use = "dropping the guard stops logging and exporting traces"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
    _log_writer: tracing_appender::non_blocking::WorkerGuard,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("warning: traces not flushed: {e}");
        }
    }
}

/// Checks an OTLP endpoint (`http://collector:4317`, gRPC), naming the flag when it is unusable.
pub fn parse_otlp_endpoint(value: &str) -> Result<String, String> {
    let uri: http::Uri = value
        .parse()
        .map_err(|e| format!("--otlp-endpoint {value:?}: not a URL: {e}"))?;
    match (uri.scheme_str(), uri.authority()) {
        (Some("http" | "https"), Some(_)) => Ok(value.to_owned()),
        _ => Err(format!(
            "--otlp-endpoint {value:?}: expected an http:// or https:// URL of an OTLP/gRPC collector, e.g. http://127.0.0.1:4317"
        )),
    }
}

/// Installs the global subscriber: `filter` (EnvFilter syntax) for the log lines, JSON or text,
/// and with `otlp_endpoint` the span exporter. Must run inside a Tokio runtime (the exporter's
/// gRPC channel lives on it).
pub fn init(
    filter: &str,
    json: bool,
    otlp_endpoint: Option<&str>,
) -> Result<TelemetryGuard, String> {
    let env_filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| format!("--log-level {filter:?}: {e}"))?;
    let ansi = std::io::stderr().is_terminal();
    // Lines are written by a thread of their own, buffered while requests come faster than
    // it writes (flushed whenever it catches up), so an RPC never waits on a write to stderr
    // and a busy server writes in large chunks. Never lossy: when 128k lines wait, logging
    // waits too rather than drop access-log lines.
    let (writer, log_writer) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .thread_name("client-info-log")
        .finish(std::io::BufWriter::with_capacity(
            64 * 1024,
            std::io::stderr(),
        ));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    let fmt = if json {
        fmt.json().boxed()
    } else {
        fmt.boxed()
    };
    let (otel, provider) = match otlp_endpoint {
        None => (None, None),
        Some(endpoint) => {
            let endpoint = parse_otlp_endpoint(endpoint)?;
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint)
                .build()
                .map_err(|e| format!("--otlp-endpoint: {e}"))?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name(SERVICE_NAME)
                        .build(),
                )
                .build();
            opentelemetry::global::set_text_map_propagator(
                opentelemetry_sdk::propagation::TraceContextPropagator::new(),
            );
            opentelemetry::global::set_tracer_provider(provider.clone());
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer(SERVICE_NAME))
                .with_filter(
                    tracing_subscriber::filter::Targets::new()
                        .with_target("client_info_server", tracing::Level::INFO)
                        .with_target(QUERY_TARGET, tracing::Level::DEBUG),
                );
            (Some(layer), Some(provider))
        }
    };
    tracing_subscriber::registry()
        .with(fmt.with_filter(env_filter))
        .with(otel)
        .try_init()
        .map_err(|e| format!("cannot set up logging: {e}"))?;
    Ok(TelemetryGuard {
        provider,
        _log_writer: log_writer,
    })
}

/// Opens a span per database statement (target [`QUERY_TARGET`], level DEBUG, so it costs
/// nothing unless traces are exported), child of whatever span is current when the statement
/// starts: the RPC's. The span carries the SQL text, never its bound values (which hold
/// phone numbers and names). Pipelined statements finish in the order they started.
///
/// It also tells whether a statement is still in flight: started, and never finished because
/// the future running it was dropped ([`QuerySpans::in_flight`]; the pool drops such a
/// connection, see [`crate::db`]).
#[derive(Debug, Default)]
pub struct QuerySpans {
    open: VecDeque<tracing::Span>,
}

impl QuerySpans {
    /// True while a statement started on the connection has not finished: between its start
    /// and its end, or for good once the future running it was dropped (a request's deadline
    /// passed, its client went away). Such a connection may still owe that statement's answer,
    /// or never answer again (a half-open connection).
    pub fn in_flight(&self) -> bool {
        !self.open.is_empty()
    }
}

impl Instrumentation for QuerySpans {
    fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
        match event {
            InstrumentationEvent::StartQuery { query, .. } => {
                let span = tracing::debug_span!(
                    target: QUERY_TARGET,
                    "db.query",
                    otel.kind = "client",
                    db.system = "postgresql",
                    db.statement = tracing::field::Empty,
                    otel.status_code = tracing::field::Empty,
                );
                if !span.is_disabled() {
                    let text = query.to_string();
                    let sql = text.split(" -- binds: ").next().unwrap_or_default();
                    span.record("db.statement", sql);
                }
                self.open.push_back(span);
            }
            InstrumentationEvent::FinishQuery { error, .. } => {
                if let Some(span) = self.open.pop_front()
                    && error.is_some()
                {
                    span.record("otel.status_code", "ERROR");
                }
            }
            _ => {}
        }
    }
}
