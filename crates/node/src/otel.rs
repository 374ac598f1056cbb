//! Distributed tracing: the spans of a client write, for OpenTelemetry export
//! (`--experimental-enable-distributed-tracing`, etcd 3.5's flag; off by default).
//!
//! The exporter itself (OTLP over gRPC) is set up by the `synod` command, which owns the
//! process's tracing subscriber; this module makes the spans and carries a write's trace
//! across members. A write that reaches a follower is forwarded to the leader inside
//! [`PeerMessage::ForwardsTraced`], beside its W3C trace context, so the leader's span of it
//! is a child of the follower's and both carry one trace id.
//!
//! A client that sends W3C trace context (`traceparent`, `tracestate` gRPC metadata, as
//! OpenTelemetry's gRPC instrumentations do) gets the member's span of its write as a child of
//! its own span ([`client_context`]): read with OpenTelemetry's own `TraceContextPropagator`.
//!
//! Off (the default), [`write_span`] returns a disabled span after one atomic load, the core
//! tracks nothing and sends the plain [`PeerMessage::Forwards`]: no cost and no wire change.

use crate::peer::{PeerMessage, TraceContext};
use kv::KvCommand;
use member::{Member, RequestId};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use paxos::multi::{Command, CommandId};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The target of every span made here: the `synod` command's exporter layer takes only
/// these, so the spans of tonic, h2 and the rest never reach the collector.
pub const SPAN_TARGET: &str = "synod::trace";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Spans are exported from now on (called once the exporter's layer is installed).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether spans are exported.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// etcd's gRPC method name of a write, as its spans are named.
fn method(cmd: &KvCommand) -> &'static str {
    match cmd {
        KvCommand::Put(_) => "etcdserverpb.KV/Put",
        KvCommand::DeleteRange(_) => "etcdserverpb.KV/DeleteRange",
        KvCommand::Txn(_) => "etcdserverpb.KV/Txn",
        KvCommand::Compact(_) => "etcdserverpb.KV/Compact",
        _ => "synod.Write",
    }
}

/// A request's gRPC metadata, read by OpenTelemetry's propagators.
struct Metadata<'a>(&'a tonic::metadata::MetadataMap);

impl Extractor for Metadata<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}

/// The client's span, from the W3C trace context in its request's metadata, to be the
/// parent of the member's span of the request; `None` when spans are not exported (nothing
/// is read then) or the client sent no valid context.
pub(crate) fn client_context(
    metadata: &tonic::metadata::MetadataMap,
) -> Option<opentelemetry::Context> {
    if !enabled() {
        return None;
    }
    let cx = TraceContextPropagator::new()
        .extract_with_context(&opentelemetry::Context::new(), &Metadata(metadata));
    let valid = cx.span().span_context().is_valid();
    valid.then_some(cx)
}

/// The span of one write on the member the client sent it to, from the handler's proposal
/// to its answer, a child of the client's span if it sent one (`parent`, from
/// [`client_context`]); disabled when spans are not exported.
pub(crate) fn write_span(cmd: &KvCommand, parent: Option<opentelemetry::Context>) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(target: SPAN_TARGET, "write", otel.name = method(cmd), otel.kind = "server");
    if let Some(parent) = parent {
        // Set before anything starts the span; a refusal only loses the link to the trace.
        if let Err(e) = span.set_parent(parent) {
            tracing::debug!(error = %e, "a client's write span kept no parent");
        }
    }
    span
}

/// The W3C context of `span`, to send beside its write; `None` if it is not exported.
pub(crate) fn context_of(span: &Span) -> Option<TraceContext> {
    if span.is_none() {
        return None;
    }
    let cx = span.context();
    let sc = cx.span().span_context().clone();
    sc.is_valid().then(|| TraceContext {
        trace_id: sc.trace_id().to_bytes(),
        span_id: sc.span_id().to_bytes(),
        flags: sc.trace_flags().to_u8(),
    })
}

/// The leader's span of a write forwarded by member `from` with `trace`: a child of the
/// sender's span, so both carry one trace id. It covers taking the write and proposing it.
pub(crate) fn forwarded_span(trace: &TraceContext, from: u64, command: CommandId) -> Span {
    if !enabled() {
        return Span::none();
    }
    let span = tracing::info_span!(
        target: SPAN_TARGET,
        "forwarded write",
        otel.name = "synod.ForwardedWrite",
        otel.kind = "server",
        from = format!("{from:x}"),
        client = command.client.0,
        seq = command.seq,
    );
    let parent = SpanContext::new(
        TraceId::from_bytes(trace.trace_id),
        SpanId::from_bytes(trace.span_id),
        TraceFlags::new(trace.flags),
        true,
        TraceState::default(),
    );
    // Set before anything starts the span; a refusal only loses the link to the trace.
    if let Err(e) = span.set_parent(opentelemetry::Context::new().with_remote_span_context(parent))
    {
        tracing::debug!(error = %e, "a forwarded write's span kept no parent");
    }
    span
}

/// The trace contexts of this member's writes still waiting for their answer, by the command
/// id the member gave each, so a forward of them carries them ([`ForwardTraces::tag`]).
/// Bounded by the writes waiting (each entry goes with its answer).
#[derive(Default)]
pub(crate) struct ForwardTraces {
    by_command: HashMap<CommandId, TraceContext>,
    by_request: HashMap<RequestId, CommandId>,
}

impl ForwardTraces {
    /// Notes the contexts of writes `asked` that the member just took (before its outputs,
    /// a forward among them, are sent).
    pub(crate) fn track(&mut self, member: &Member, asked: Vec<(RequestId, TraceContext)>) {
        if asked.is_empty() {
            return;
        }
        let ids: BTreeSet<RequestId> = asked.iter().map(|(r, _)| *r).collect();
        let commands: HashMap<RequestId, CommandId> =
            member.write_commands(&ids).into_iter().collect();
        for (request, trace) in asked {
            // A write answered at once (refused) has no command waiting: nothing to carry.
            if let Some(command) = commands.get(&request) {
                self.by_command.insert(*command, trace);
                self.by_request.insert(request, *command);
            }
        }
        debug_assert_eq!(self.by_command.len(), self.by_request.len());
    }

    /// Request `id` was answered: its write is no longer forwarded.
    pub(crate) fn answered(&mut self, id: RequestId) {
        if let Some(command) = self.by_request.remove(&id) {
            self.by_command.remove(&command);
        }
    }

    /// `message` as it goes out: a forward of traced writes becomes
    /// [`PeerMessage::ForwardsTraced`]; `None` when it goes as it is.
    pub(crate) fn tag(&self, message: &PeerMessage) -> Option<PeerMessage> {
        if self.by_command.is_empty() {
            return None;
        }
        let commands: &[Command] = match message {
            PeerMessage::Forward(c) => std::slice::from_ref(c),
            PeerMessage::Forwards(cs) => cs,
            _ => return None,
        };
        let traces: Vec<(CommandId, TraceContext)> = commands
            .iter()
            .filter_map(|c| self.by_command.get(&c.id).map(|t| (c.id, *t)))
            .collect();
        (!traces.is_empty()).then(|| PeerMessage::ForwardsTraced {
            commands: commands.to_vec(),
            traces,
        })
    }
}
