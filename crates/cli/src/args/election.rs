//! `elect`: etcdctl's campaign and observe form, and the registry and control
//! subcommands (`ls`, `status`, `ping`, `stepdown`) and the leader-only daemon (`run`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};

use super::parse_duration;

/// `elect`.
#[derive(Clone, Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ElectArgs {
    /// A registry or control subcommand instead of campaigning (an election called like
    /// a subcommand is campaigned for with `elect -- NAME PROPOSAL`).
    #[command(subcommand)]
    pub action: Option<ElectCommand>,
    /// The election's name.
    #[arg(required = true)]
    pub name: Option<String>,
    /// The value to proclaim as leader (required unless --listen).
    pub proposal: Option<String>,
    /// Observe: print every leader change instead of campaigning.
    #[arg(short, long)]
    pub listen: bool,
    /// TTL of the session lease, in seconds: how long a leader that dies holds on.
    #[arg(long, default_value_t = 10)]
    pub ttl: u64,
}

/// The `elect` subcommands.
#[derive(Clone, Debug, Subcommand)]
pub enum ElectCommand {
    /// Lists the election's registered candidates: id, state, epoch, since, address.
    Ls(ElectLsArgs),
    /// Asks a candidate (default: the leader) for its status; the candidate answers.
    Status(ElectStatusArgs),
    /// Pings a candidate through the store and prints the round-trip time.
    Ping(ElectPingArgs),
    /// Asks the leader (or --candidate) to step down, and waits for the next leader.
    Stepdown(ElectStepdownArgs),
    /// Runs a command only while this process leads the election.
    Run(ElectRunArgs),
}

/// `elect ls`.
#[derive(Clone, Debug, Args)]
pub struct ElectLsArgs {
    /// The election's name.
    pub name: String,
    /// Keep printing registry changes (one line per change) until interrupted.
    #[arg(long)]
    pub watch: bool,
}

/// `elect status`.
#[derive(Clone, Debug, Args)]
pub struct ElectStatusArgs {
    /// The election's name.
    pub name: String,
    /// The candidate id (default: the one leading).
    pub candidate: Option<String>,
    /// How long to wait for the candidate's answer.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `elect ping`.
#[derive(Clone, Debug, Args)]
pub struct ElectPingArgs {
    /// The election's name.
    pub name: String,
    /// The candidate id.
    pub candidate: String,
    /// How many pings to send (one after the other).
    #[arg(short = 'c', long, default_value_t = 1)]
    pub count: u32,
    /// How long to wait for each answer.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `elect stepdown`.
#[derive(Clone, Debug, Args)]
pub struct ElectStepdownArgs {
    /// The election's name.
    pub name: String,
    /// The candidate that must step down (it must lead); default: whoever leads.
    #[arg(long)]
    pub candidate: Option<String>,
    /// How long the candidate stays out (default: its own configured cooldown).
    #[arg(long, value_parser = parse_duration)]
    pub cooldown: Option<Duration>,
    /// How long to wait for the answer and for the next leader.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// `elect run`.
#[derive(Clone, Debug, Args)]
pub struct ElectRunArgs {
    /// The election's name.
    pub name: String,
    /// The command to run while leading (after `--`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
    /// A shell command run on election, before the command starts (e.g. add a virtual IP).
    #[arg(long)]
    pub on_elected: Option<String>,
    /// A shell command run after the command stopped, when leadership ends (e.g. remove
    /// the virtual IP).
    #[arg(long)]
    pub on_lost: Option<String>,
    /// The candidate id in the registry (default: the config file's, or HOSTNAME-PID).
    #[arg(long)]
    pub id: Option<String>,
    /// The address shown in the registry.
    #[arg(long)]
    pub address: Option<String>,
    /// The value to proclaim as leader (default: the candidate id).
    #[arg(long)]
    pub proposal: Option<String>,
    /// TTL of the session lease, in seconds (default: the config file's, or 10).
    #[arg(long)]
    pub ttl: Option<u64>,
    /// How long to stay out after a step-down asked without a cooldown.
    #[arg(long, value_parser = parse_duration)]
    pub cooldown: Option<Duration>,
    /// How long the command gets between SIGTERM and SIGKILL when leadership ends.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub stop_grace: Duration,
    /// A client settings file (TOML or JSON; see docs/sdk.md) with a [candidate] table.
    #[arg(long)]
    pub config: Option<PathBuf>,
}

/// `elect-supervisor` (hidden): started by `elect run`, runs its command.
#[derive(Clone, Debug, Args)]
pub struct SupervisorArgs {
    /// The election (for the command's environment).
    #[arg(long)]
    pub election: String,
    /// The candidate id (for the command's environment).
    #[arg(long)]
    pub candidate: String,
    /// Between SIGTERM and SIGKILL, in milliseconds.
    #[arg(long)]
    pub grace_ms: u64,
    /// The on-elected hook.
    #[arg(long)]
    pub on_elected: Option<String>,
    /// The on-lost hook.
    #[arg(long)]
    pub on_lost: Option<String>,
    /// The command.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}
