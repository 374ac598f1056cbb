//! Compiles `proto/` into Rust at build time with no `protoc` on the machine:
//! `protox` (a protobuf compiler written in Rust) parses the `.proto` files into
//! a `FileDescriptorSet`, and `tonic-prost-build` generates the prost messages
//! and tonic services from that set instead of running `protoc` itself.

use std::path::PathBuf;

use prost::Message;

/// Roots handed to the compiler. `rpc.proto` imports `mvccpb/kv.proto`, and the
/// Lock and Election services import both, so every package comes out of one
/// compilation and cross-package references resolve to `super::mvccpb::...`.
const PROTOS: &[&str] = &[
    "proto/mvccpb/kv.proto",
    "proto/authpb/auth.proto",
    "proto/etcdserverpb/rpc.proto",
    "proto/v3lockpb/v3lock.proto",
    "proto/v3electionpb/v3election.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Cargo would otherwise rerun this script on any change in the package;
    // only the .proto files (and this script) affect the output.
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    println!("cargo:rerun-if-changed=build.rs");

    let fds = protox::compile(PROTOS, ["proto"])?;

    // Kept for a gRPC reflection service or for debugging with grpcurl; it is
    // the same set the code below is generated from.
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("etcd_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Synod serves only part of each service (no Snapshot or Downgrade at
        // first, for instance); a method it leaves out must answer
        // UNIMPLEMENTED, which is what the default stubs do, rather than force
        // every implementation to spell out the same refusal.
        .generate_default_stubs(true)
        .compile_fds(fds)?;
    Ok(())
}
