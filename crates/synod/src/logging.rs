//! What a member says about itself: log lines (`--log-format`, `--log-level`) and, when
//! asked (`--experimental-enable-distributed-tracing`), spans exported to an OpenTelemetry
//! collector over OTLP/gRPC. Both are layers of the one tracing subscriber of the process.

use anyhow::{bail, Context};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

/// How log lines are written (`--log-format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line (time, level, target, fields), for log shippers.
    Json,
}

impl LogFormat {
    /// `text` (also etcd's `console`) or `json`.
    pub fn parse(s: &str) -> anyhow::Result<LogFormat> {
        match s {
            "text" | "console" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => bail!("--log-format {other:?}: expected `text` or `json`"),
        }
    }
}

/// Where spans go (etcd 3.5's `--experimental-distributed-tracing-*` flags).
#[derive(Clone, Debug)]
pub struct DistributedTracing {
    /// The collector, `host:port` as etcd takes it, or a URL.
    pub address: String,
    /// `service.name` of every span.
    pub service_name: String,
    /// `service.instance.id`, if given.
    pub instance_id: Option<String>,
}

/// The span exporter running in the background; [`Exporter::shutdown`] sends what it still
/// holds.
pub struct Exporter(SdkTracerProvider);

impl Exporter {
    /// Exports the spans still batched and stops. The SDK's shutdown blocks until its
    /// export ends, which needs the runtime's gRPC channel: so on a blocking thread.
    pub async fn shutdown(self) {
        let provider = self.0;
        match tokio::task::spawn_blocking(move || provider.shutdown()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("synod: the span exporter's shutdown failed: {e}"),
            Err(e) => eprintln!("synod: the span exporter's shutdown failed: {e}"),
        }
    }
}

/// The OTLP endpoint of `--experimental-distributed-tracing-address`: etcd takes
/// `host:port`, the exporter a URL.
fn endpoint(address: &str) -> String {
    if address.contains("://") {
        address.to_string()
    } else {
        format!("http://{address}")
    }
}

/// The exporter of spans to `to`: must be built inside the tokio runtime (its gRPC channel's
/// tasks live there).
fn exporter(to: &DistributedTracing) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint(&to.address))
        .build()
        .with_context(|| {
            format!(
                "--experimental-distributed-tracing-address {:?}",
                to.address
            )
        })?;
    let mut resource = Resource::builder_empty().with_service_name(to.service_name.clone());
    if let Some(id) = &to.instance_id {
        resource = resource.with_attribute(opentelemetry::KeyValue::new(
            "service.instance.id",
            id.clone(),
        ));
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// Logging from the flags (`--log-level`, `--log-format`), else `$SYNOD_LOG`, else info as
/// text on stderr. etcd's `panic` and `fatal` levels mean error here (the most severe we have).
/// With `distributed`, the spans of client writes (`node::otel`) are exported too; call it inside
/// the tokio runtime then, and shut the returned exporter down at exit.
pub fn init_logging_with(
    level: Option<&str>,
    format: LogFormat,
    distributed: Option<&DistributedTracing>,
) -> anyhow::Result<Option<Exporter>> {
    let filter = match level {
        Some(level) => {
            let level = match level {
                "panic" | "fatal" | "dpanic" => "error",
                other => other,
            };
            tracing_subscriber::EnvFilter::try_new(level).with_context(|| {
                format!("--log-level {level:?}: expected debug, info, warn or error")
            })?
        }
        None => tracing_subscriber::EnvFilter::try_from_env("SYNOD_LOG")
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    };
    let lines = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let lines: Box<dyn Layer<Registry> + Send + Sync> = match format {
        LogFormat::Text => lines.boxed(),
        LogFormat::Json => lines.json().flatten_event(true).boxed(),
    };
    let provider = distributed.map(exporter).transpose()?;
    // Only node's spans of writes go to the collector: not tonic's, h2's or any event.
    let spans = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("synod"))
            .with_filter(Targets::new().with_target(node::otel::SPAN_TARGET, tracing::Level::INFO))
    });
    // A second initialization (tests, `synod dev` after `node`) keeps the first.
    let installed = tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(spans)
        .try_init()
        .is_ok();
    if installed && provider.is_some() {
        node::otel::enable();
    }
    Ok(provider.filter(|_| installed).map(Exporter))
}

pub fn init_logging() {
    let _ = init_logging_with(None, LogFormat::Text, None);
}
