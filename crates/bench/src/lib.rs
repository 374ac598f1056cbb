//! A load generator for any etcd v3 gRPC endpoints (Synod or etcd).
