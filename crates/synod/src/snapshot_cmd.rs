//! `synod snapshot`: what a backup file holds (`status`), and seeding a new cluster's data
//! directories from one (`restore`). Backups are taken with `etcdctl snapshot save`.

use crate::node_cmd::{self, NodeArgs};
use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use node::backup::{self, BackupInfo};
use std::path::PathBuf;

/// Subcommands of `synod snapshot`.
#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Verify a backup file and print what it holds.
    Status(StatusArgs),
    /// Seed one member's data directory of a new cluster from a backup file. Run it for every
    /// member, from the same file, with the flags each will start with (a new
    /// --initial-cluster-token), then start the members.
    Restore(Box<RestoreArgs>),
}

/// Flags of `synod snapshot status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The backup file (from `etcdctl snapshot save`).
    file: PathBuf,
    /// Output format.
    #[arg(short = 'w', long = "write-out", value_enum, default_value_t = Format::Table)]
    write_out: Format,
}

/// How `status` prints.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    /// A table, for people.
    Table,
    /// One JSON object with etcdctl's field names (hash, revision, totalKey, totalSize) and
    /// Synod's own (slot, compactRevision).
    Json,
}

/// Flags of `synod snapshot restore`: the backup, and the flags of `synod node` for the member
/// it seeds.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup file (from `etcdctl snapshot save`).
    file: PathBuf,
    #[command(flatten)]
    node: NodeArgs,
}

/// Runs a `synod snapshot` subcommand.
pub fn run(command: SnapshotCommand) -> anyhow::Result<bool> {
    match command {
        SnapshotCommand::Status(args) => {
            let (info, _) = backup::inspect(&args.file)?;
            match args.write_out {
                Format::Table => print!("{}", table(&info)),
                Format::Json => println!("{}", json(&info)),
            }
            Ok(true)
        }
        SnapshotCommand::Restore(args) => {
            let RestoreArgs { file, node } = *args;
            let config = node_cmd::resolve(node).context("invalid member flags")?;
            if config.cluster_token == node_cmd::DEFAULT_CLUSTER_TOKEN {
                anyhow::bail!(
                    "give --initial-cluster-token a value of its own: the restored cluster is a \
                     new cluster, and with the token (and members) of the one the backup came \
                     from, the two would take each other's members for their own"
                );
            }
            let info = backup::restore(&file, &config)?;
            println!(
                "restored {} (revision {}, {} keys) into {} for member {} of a new cluster; \
                 start it with the same flags",
                file.display(),
                info.revision,
                info.keys,
                config.data_dir.display(),
                config.name
            );
            Ok(true)
        }
    }
}

fn table(info: &BackupInfo) -> String {
    let rows = [
        ("HASH", format!("{:x}", info.body_crc)),
        ("REVISION", info.revision.to_string()),
        ("TOTAL KEYS", info.keys.to_string()),
        ("TOTAL SIZE", info.bytes.to_string()),
        ("SLOT", info.through.0.to_string()),
        ("COMPACT REVISION", info.compact_revision.to_string()),
    ];
    let mut out = String::new();
    for (name, value) in rows {
        out.push_str(&format!("{name:<17} {value}\n"));
    }
    out
}

fn json(info: &BackupInfo) -> String {
    serde_json::json!({
        "hash": info.body_crc,
        "revision": info.revision,
        "totalKey": info.keys,
        "totalSize": info.bytes,
        "slot": info.through.0,
        "compactRevision": info.compact_revision,
    })
    .to_string()
}
