//! etcd's v3 gRPC API, as Synod serves it: the `.proto` files under `proto/`
//! compiled at build time (see `build.rs`; no `protoc` needed).
//!
//! - [`mvccpb`]: `KeyValue`, `Event`.
//! - [`etcdserverpb`]: the messages plus, for each service (`KV`, `Watch`,
//!   `Lease`, `Cluster`, `Maintenance`), a server module (e.g.
//!   [`etcdserverpb::kv_server::KvServer`] wrapping an implementation of
//!   [`etcdserverpb::kv_server::Kv`]) and a client module (e.g.
//!   [`etcdserverpb::kv_client::KvClient`]).
//! - [`v3lockpb`] and [`v3electionpb`]: the Lock and Election services.
//!
//! Server traits come with default methods answering `UNIMPLEMENTED`, so an
//! implementation overrides only the methods it serves.
//!
//! This crate holds wire types only; the core never sees them.

/// Generated from `proto/mvccpb/kv.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod mvccpb {
    include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
}

/// Generated from `proto/authpb/auth.proto`: etcd's auth records (users, roles, permissions).
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod authpb {
    include!(concat!(env!("OUT_DIR"), "/authpb.rs"));
}

/// Generated from `proto/etcdserverpb/rpc.proto`.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod etcdserverpb {
    include!(concat!(env!("OUT_DIR"), "/etcdserverpb.rs"));
}

/// Generated from `proto/v3lockpb/v3lock.proto`: the Lock service.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod v3lockpb {
    include!(concat!(env!("OUT_DIR"), "/v3lockpb.rs"));
}

/// Generated from `proto/v3electionpb/v3election.proto`: the Election service.
#[allow(clippy::all, clippy::pedantic, missing_docs, rustdoc::all)]
pub mod v3electionpb {
    include!(concat!(env!("OUT_DIR"), "/v3electionpb.rs"));
}

/// The encoded `FileDescriptorSet` of every package, for a gRPC reflection
/// service or tools such as grpcurl.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/etcd_descriptor.bin"));
