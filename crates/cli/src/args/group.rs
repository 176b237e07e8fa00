//! `group ...`: the arguments of the partition-group commands.

use std::time::Duration;

use clap::{Args, Subcommand};

use super::parse_duration;

/// `group ...`.
#[derive(Debug, Subcommand)]
pub enum GroupCommand {
    /// Creates a partition group (unset settings take the cluster's defaults).
    Create {
        /// The group's name: 1 to 64 letters, digits, '.', '_' or '-'.
        name: String,
        /// How many partitions (1..=4096, default 16); fixed for the group's life.
        #[arg(long)]
        partitions: Option<u32>,
        #[command(flatten)]
        settings: GroupSettingsArgs,
    },
    /// Changes a group's settings (only those given; not its partition count).
    #[command(
        after_help = "The partition count cannot change (the routing hash depends on it): \
                            create a new group for another count."
    )]
    Update {
        /// The group.
        name: String,
        #[command(flatten)]
        settings: GroupSettingsArgs,
    },
    /// Deletes a group, its members' registrations and its map.
    Delete {
        /// The group.
        name: String,
    },
    /// Lists every group with its settings.
    List,
    /// Shows a group's settings and its members (labels, weight, state, endpoints, and
    /// how many replicas and leaderships each holds).
    Show {
        /// The group.
        name: String,
    },
    /// Prints the group's map: each partition's epoch, leader and replicas (syncing and
    /// releasing ones marked), and the map's generation.
    Map {
        /// The group.
        name: String,
    },
    /// Shows which partition owns a key, its leader (with endpoints), epoch and replicas.
    Route {
        /// The group.
        name: String,
        /// The key.
        key: String,
    },
    /// Moves a member's replicas and leaderships away while it stays registered (or, with
    /// --resume, lets it take partitions again).
    Drain {
        /// The group.
        name: String,
        /// The member's id.
        member: String,
        /// Take partitions again instead.
        #[arg(long)]
        resume: bool,
    },
    /// Makes a member leave gracefully: it hands everything over, then is deregistered.
    /// Its process must be running (and acknowledging) to hand over.
    Leave {
        /// The group.
        name: String,
        /// The member's id.
        member: String,
        /// How long to wait for the hand-over (e.g. 60s, 2m).
        #[arg(long, default_value = "60s", value_parser = parse_duration)]
        timeout: Duration,
    },
    /// Lists the latest map generations, newest first: what each one changed.
    History {
        /// The group.
        name: String,
        /// At most this many generations.
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Prints the map's changes as they happen, until interrupted.
    Watch {
        /// The group.
        name: String,
        /// Print the changes after this generation (default: the whole map first, then
        /// every change).
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
}

/// The settings `group create` and `group update` take; unset ones keep their default
/// (create) or current value (update).
#[derive(Clone, Debug, Default, Args)]
pub struct GroupSettingsArgs {
    /// Replicas per partition (1..=7, default 3).
    #[arg(long)]
    pub replicas: Option<u32>,
    /// Load slack: a member holds at most (1 + epsilon) times its share (0..=10, default 0.25).
    #[arg(long)]
    pub epsilon: Option<f64>,
    /// How long the member set must be stable before partitions move (default 5s).
    #[arg(long, value_parser = parse_duration)]
    pub rebalance_delay: Option<Duration>,
    /// Members' session TTL, whole seconds (default 10s): how soon a crashed member is
    /// replaced.
    #[arg(long, value_parser = parse_duration)]
    pub session_ttl: Option<Duration>,
    /// How long one hand-over step waits for a member's report (default 30s).
    #[arg(long, value_parser = parse_duration)]
    pub handoff_timeout: Option<Duration>,
    /// Moves in flight per member (default 4).
    #[arg(long)]
    pub max_moves_per_member: Option<u32>,
    /// Moves in flight in the group (default 64).
    #[arg(long)]
    pub max_moves_per_group: Option<u32>,
    /// The member label that places a partition's replicas apart (default "zone").
    #[arg(long)]
    pub zone_label: Option<String>,
}
