//! Real members in this process, on loopback, driven through etcd's gRPC API with the generated
//! clients (and the real etcdctl where a test says so).
//!
//! Every file that was once its own test binary is a module here, so the suite compiles and
//! links once. Run one file's tests with its module name as the filter, e.g.
//! `cargo test -p synod-node --test members watch::`. Tests of different modules now run side by
//! side (two at a time): each member takes an address of its own from `common::free_port`.

mod common;

mod auth;
mod authority;
mod bad_input;
mod http;
mod lease;
mod single_member;
mod three_members;
mod watch;
