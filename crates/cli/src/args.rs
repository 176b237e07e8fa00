//! The command line: global flags and every command's arguments (clap derive). Names,
//! defaults and flag spellings follow etcdctl 3.4 so that muscle memory and scripts carry
//! over.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod auth;
mod election;
mod group;
mod tls;

pub use auth::{AuthCommand, KeyRangeArgs, RoleCommand, UserAddArgs, UserCommand, UserPasswdArgs};
pub use election::{
    ElectArgs, ElectCommand, ElectLsArgs, ElectPingArgs, ElectRunArgs, ElectStatusArgs, ElectStepdownArgs,
    SupervisorArgs,
};
pub use group::{GroupCommand, GroupSettingsArgs};
pub use tls::TlsArgs;

/// conclavectl: a command line for Conclave clusters (and any etcd v3 server).
#[derive(Debug, Parser)]
#[command(
    name = "conclavectl",
    version,
    about = "A command line for Conclave clusters (and any etcd v3 server), etcdctl style",
    after_help = "Exit codes: 0 success, 1 the request failed, 2 bad usage or a refused user name or password, \
                  3 no member could be reached, 4 a write's outcome is unknown (it may have applied), \
                  5 the named group or group member does not exist, 6 a group leave timed out."
)]
pub struct Cli {
    /// Client URLs of the members, comma-separated (host:port, http://host:port or
    /// https://host:port).
    #[arg(
        long,
        global = true,
        env = "CONCLAVE_ENDPOINTS",
        default_value = "127.0.0.1:2379",
        value_delimiter = ','
    )]
    pub endpoints: Vec<String>,

    /// Output format.
    #[arg(short = 'w', long = "write-out", global = true, value_enum, default_value_t = Format::Simple)]
    pub write_out: Format,

    /// How long to wait for a connection to a member (e.g. 2s, 500ms).
    #[arg(long, global = true, default_value = "2s", value_parser = parse_duration)]
    pub dial_timeout: Duration,

    /// How long a short command may take, retries on other members included (not
    /// watch, elect, lock, keep-alive, snapshot streams, group watch or group leave's wait).
    #[arg(long, global = true, default_value = "5s", value_parser = parse_duration)]
    pub command_timeout: Duration,

    /// The user to log in as: `name` or `name:password` (the password is asked for on
    /// the terminal when it is given neither here nor with --password).
    #[arg(long, global = true, env = "CONCLAVE_USER")]
    pub user: Option<String>,

    /// The password of --user (then --user must not include one).
    #[arg(long, global = true, env = "CONCLAVE_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,

    /// TLS: --cacert, --cert, --key, --insecure-skip-tls-verify, --insecure-transport.
    #[command(flatten)]
    pub tls: TlsArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// How results are written to standard output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// etcdctl's plain text (key and value lines, "OK", ...).
    Simple,
    /// JSON, shaped like etcdctl's (keys and values base64-encoded).
    Json,
    /// ASCII tables where a table makes sense (member list, endpoint status, get, ...);
    /// otherwise the simple format.
    Table,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Gets a key or a range of keys.
    Get(GetArgs),
    /// Puts a key (the value is read from standard input when omitted).
    Put(PutArgs),
    /// Deletes a key or a range of keys.
    Del(DelArgs),
    /// Runs a transaction read from standard input, in etcdctl's txn format.
    Txn(TxnArgs),
    /// Watches a key or a range of keys and prints every change until interrupted.
    Watch(WatchArgs),
    /// Lease commands.
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// Membership commands.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Per-endpoint health and status.
    #[command(subcommand)]
    Endpoint(EndpointCommand),
    /// Saves a snapshot of a member, or prepares a new member's data dir from one.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Campaigns in an election (holding leadership until interrupted), or observes it.
    Elect(ElectArgs),
    /// Acquires a lock, then runs a command under it or holds it until interrupted.
    Lock(LockArgs),
    /// Compacts the key-value history below a revision.
    Compaction(CompactionArgs),
    /// Defragments the storage of each endpoint.
    Defrag(DefragArgs),
    /// Alarm commands.
    #[command(subcommand)]
    Alarm(AlarmCommand),
    /// Partition groups: create and configure them, read their map and routes, drain
    /// and remove members, follow the map's changes.
    #[command(subcommand)]
    Group(GroupCommand),
    /// User commands (auth).
    #[command(subcommand)]
    User(UserCommand),
    /// Role commands (auth).
    #[command(subcommand)]
    Role(RoleCommand),
    /// Enables or disables authentication.
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Prints a shell completion script.
    Completion(CompletionArgs),
    /// The supervisor process of `elect run` (started by it, not by hand).
    #[command(hide = true)]
    ElectSupervisor(SupervisorArgs),
}

/// Linearizable or serializable reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Linearizable: confirmed with a quorum.
    L,
    /// Serializable: served from the member's local state, may be stale.
    S,
}

/// Sort order of a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum Order {
    /// Smallest first.
    Ascend,
    /// Largest first.
    Descend,
}

/// Sort target of a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum SortBy {
    /// Creation revision.
    Create,
    /// Key.
    Key,
    /// Modification revision.
    Modify,
    /// Value.
    Value,
    /// Version.
    Version,
}

/// `get`.
#[derive(Clone, Debug, Args)]
pub struct GetArgs {
    /// The key (or the start of the range).
    pub key: String,
    /// The end of the range (exclusive).
    #[arg(conflicts_with_all = ["prefix", "from_key"])]
    pub end: Option<String>,
    /// Get every key with this prefix.
    #[arg(long, conflicts_with = "from_key")]
    pub prefix: bool,
    /// Get every key greater than or equal to the key.
    #[arg(long)]
    pub from_key: bool,
    /// Maximum number of results (0 = no limit).
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Read at this revision (0 = the latest).
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// Get only the keys.
    #[arg(long)]
    pub keys_only: bool,
    /// Get only the count of keys.
    #[arg(long)]
    pub count_only: bool,
    /// Linearizable (l) or serializable (s).
    #[arg(long, value_enum, default_value_t = Consistency::L)]
    pub consistency: Consistency,
    /// Order of results (ascending by default).
    #[arg(long, value_enum, ignore_case = true)]
    pub order: Option<Order>,
    /// What to sort by.
    #[arg(long, value_enum, ignore_case = true)]
    pub sort_by: Option<SortBy>,
    /// Write only the values (simple format).
    #[arg(long)]
    pub print_value_only: bool,
}

/// `put`.
#[derive(Clone, Debug, Args)]
pub struct PutArgs {
    /// The key.
    pub key: String,
    /// The value; read from standard input (all of it, as is) when omitted.
    pub value: Option<String>,
    /// Attach the key to this lease (hex ID).
    #[arg(long)]
    pub lease: Option<String>,
    /// Print the previous key-value.
    #[arg(long)]
    pub prev_kv: bool,
    /// Keep the current value (change only the lease).
    #[arg(long)]
    pub ignore_value: bool,
    /// Keep the current lease (change only the value).
    #[arg(long)]
    pub ignore_lease: bool,
}

/// `del`.
#[derive(Clone, Debug, Args)]
pub struct DelArgs {
    /// The key (or the start of the range).
    pub key: String,
    /// The end of the range (exclusive).
    #[arg(conflicts_with_all = ["prefix", "from_key"])]
    pub end: Option<String>,
    /// Delete every key with this prefix.
    #[arg(long, conflicts_with = "from_key")]
    pub prefix: bool,
    /// Delete every key greater than or equal to the key.
    #[arg(long)]
    pub from_key: bool,
    /// Print the deleted key-values.
    #[arg(long)]
    pub prev_kv: bool,
}

/// `txn`.
#[derive(Clone, Debug, Args)]
#[command(
    after_help = "Standard input holds three blocks separated by blank lines:\n  \
    compares, one per line:  mod(\"k\") > \"0\"   value(\"k\") = \"v\"   version(\"k\") = \"1\"   create(\"k\") = \"0\"\n  \
    operations if every compare holds:  put k v | get k [end] [--prefix] | del k [end] [--prefix]\n  \
    operations otherwise\n\
    Example:\n  printf 'value(\"k\") = \"v\"\\n\\nput k w\\n\\nget k\\n' | conclavectl txn"
)]
pub struct TxnArgs {
    /// Prompt for each block (when typing the transaction by hand).
    #[arg(short, long)]
    pub interactive: bool,
}

/// `watch`.
#[derive(Clone, Debug, Args)]
pub struct WatchArgs {
    /// The key (or the start of the range).
    pub key: String,
    /// The end of the range (exclusive).
    #[arg(conflicts_with_all = ["prefix", "from_key"])]
    pub end: Option<String>,
    /// Watch every key with this prefix.
    #[arg(long, conflicts_with = "from_key")]
    pub prefix: bool,
    /// Watch every key greater than or equal to the key.
    #[arg(long)]
    pub from_key: bool,
    /// Start from this revision (replaying history) instead of now.
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// Print each key's previous value too.
    #[arg(long)]
    pub prev_kv: bool,
}

/// `lease ...`.
#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Grants a lease of TTL seconds.
    Grant {
        /// Time to live, in seconds.
        ttl: i64,
    },
    /// Revokes a lease, deleting the keys attached to it.
    Revoke {
        /// The lease ID (hex).
        id: String,
    },
    /// Shows a lease's remaining time.
    #[command(name = "timetolive")]
    TimeToLive {
        /// The lease ID (hex).
        id: String,
        /// List the keys attached to the lease.
        #[arg(long)]
        keys: bool,
    },
    /// Lists every live lease.
    List,
    /// Keeps a lease alive until interrupted (or once).
    KeepAlive {
        /// The lease ID (hex).
        id: String,
        /// Renew once and exit.
        #[arg(long)]
        once: bool,
    },
}

/// `member ...`.
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// Lists the members.
    List,
    /// Adds a member; then start it with the printed settings.
    Add {
        /// The new member's name.
        name: String,
        /// Its peer URLs, comma-separated.
        #[arg(long, required = true, value_delimiter = ',')]
        peer_urls: Vec<String>,
        /// Add it as a non-voting learner.
        #[arg(long)]
        learner: bool,
    },
    /// Removes a member.
    Remove {
        /// The member ID (hex).
        id: String,
    },
    /// Promotes a caught-up learner to voter.
    Promote {
        /// The member ID (hex).
        id: String,
    },
    /// Changes a member's peer URLs.
    Update {
        /// The member ID (hex).
        id: String,
        /// The new peer URLs, comma-separated.
        #[arg(long, required = true, value_delimiter = ',')]
        peer_urls: Vec<String>,
    },
}

/// `endpoint ...`.
#[derive(Debug, Subcommand)]
pub enum EndpointCommand {
    /// Checks that each endpoint serves a linearizable read.
    Health(EndpointArgs),
    /// Shows each endpoint's status (member, leader, Raft indexes, database size).
    Status(EndpointArgs),
}

/// Which endpoints a per-endpoint command asks.
#[derive(Clone, Debug, Args)]
pub struct EndpointArgs {
    /// Ask every member's client URLs from the member list, not just --endpoints.
    #[arg(long)]
    pub cluster: bool,
}

/// `snapshot ...`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Streams a snapshot of a member's store into a file.
    Save {
        /// Where to write it (written to a temporary file first, then renamed).
        file: PathBuf,
    },
    /// Prepares a new member's data dir from a snapshot, offline; the member restores
    /// from it at its first start.
    Restore(RestoreArgs),
}

/// `snapshot restore`.
#[derive(Clone, Debug, Args)]
pub struct RestoreArgs {
    /// The snapshot file (from `snapshot save`).
    pub file: PathBuf,
    /// The new member's data dir (must not exist, or be empty).
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The new member's name.
    #[arg(long, default_value = "default")]
    pub name: String,
    /// The new cluster's members, name=peerURL,... (default: this member alone).
    #[arg(long, default_value = "")]
    pub initial_cluster: String,
    /// The new cluster's token (use a new one per restored cluster).
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,
    /// This member's peer URLs, comma-separated.
    #[arg(long, default_value = "http://localhost:2380")]
    pub initial_advertise_peer_urls: String,
    /// Client URLs the member will listen on (written to its config; default: the
    /// node's own default, or whatever flag it is started with).
    #[arg(long)]
    pub listen_client_urls: Option<String>,
    /// Peer URLs the member will listen on (default: the advertised peer URLs).
    #[arg(long)]
    pub listen_peer_urls: Option<String>,
}

/// `lock`.
#[derive(Clone, Debug, Args)]
pub struct LockArgs {
    /// The lock's name.
    pub name: String,
    /// A command to run while holding the lock (after `--`); without one, the lock is
    /// held until interrupted.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// TTL of the session lease, in seconds: how long a holder that dies holds on.
    #[arg(long, default_value_t = 10)]
    pub ttl: u64,
}

/// `compaction`.
#[derive(Clone, Debug, Args)]
pub struct CompactionArgs {
    /// Compact history below this revision.
    pub rev: i64,
    /// Wait until the compaction is applied on the member.
    #[arg(long)]
    pub physical: bool,
}

/// `defrag`.
#[derive(Clone, Debug, Args)]
pub struct DefragArgs {
    /// Defragment every member (from the member list), not just --endpoints.
    #[arg(long)]
    pub cluster: bool,
}

/// `alarm ...`.
#[derive(Debug, Subcommand)]
pub enum AlarmCommand {
    /// Lists raised alarms.
    List,
    /// Disarms every raised alarm.
    Disarm,
}

/// `completion`.
#[derive(Clone, Debug, Args)]
pub struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Parses etcdctl-style durations: `5s`, `500ms`, `1m`, `1h`, `250us`; a bare number is
/// seconds. Fractions are allowed (`1.5s`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (use e.g. 5s or 500ms)"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "ns" => value / 1e9,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {text:?} (use ns, us, ms, s, m or h)"
            ))
        }
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("{text:?} is not a duration"));
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("{text:?} is too long a duration"))
}

/// Parses a lease ID as etcdctl prints it (hex, with or without `0x`).
pub fn parse_lease_id(text: &str) -> Result<i64, String> {
    let digits = text.trim().trim_start_matches("0x");
    i64::from_str_radix(digits, 16).map_err(|_| {
        format!("bad lease ID {text:?}: expected hex as `lease grant` prints it (e.g. 694d77aa9e38260f)")
    })
}

/// Parses a member ID as etcdctl prints it (hex, with or without `0x`).
pub fn parse_member_id(text: &str) -> Result<u64, String> {
    let digits = text.trim().trim_start_matches("0x");
    u64::from_str_radix(digits, 16).map_err(|_| {
        format!("bad member ID {text:?}: expected hex as `member list` prints it (e.g. 8e9e05c52164694d)")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_follow_etcdctl() {
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        assert!(
            parse_duration("99999999999999999999").is_err(),
            "too long: an error, not a panic"
        );
    }

    #[test]
    fn ids_are_hex() {
        assert_eq!(parse_lease_id("694d77aa9e38260f"), Ok(0x694d77aa9e38260f));
        assert_eq!(parse_lease_id("0x10"), Ok(16));
        assert!(parse_lease_id("zz").is_err());
        assert_eq!(parse_member_id("fef47939cadfe7c7"), Ok(0xfef47939cadfe7c7));
    }

    #[test]
    fn global_flags_go_anywhere_and_endpoints_split_on_commas() {
        let cli =
            Cli::try_parse_from(["conclavectl", "get", "k", "--endpoints", "a:1,b:2", "-w", "json"]).unwrap();
        assert_eq!(cli.endpoints, vec!["a:1", "b:2"]);
        assert_eq!(cli.write_out, Format::Json);
        let cli = Cli::try_parse_from([
            "conclavectl",
            "get",
            "k",
            "--sort-by",
            "modify",
            "--order",
            "DESCEND",
        ])
        .unwrap();
        let Command::Get(get) = cli.command else {
            panic!("not a get")
        };
        assert_eq!(get.sort_by, Some(SortBy::Modify));
        assert_eq!(get.order, Some(Order::Descend));
    }

    #[test]
    fn lock_takes_the_command_after_double_dash() {
        let cli = Cli::try_parse_from(["conclavectl", "lock", "l", "--", "sh", "-c", "echo hi"]).unwrap();
        let Command::Lock(lock) = cli.command else {
            panic!("not a lock")
        };
        assert_eq!(lock.command, vec!["sh", "-c", "echo hi"]);
    }
}
