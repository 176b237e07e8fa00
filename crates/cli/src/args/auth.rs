//! `user`, `role` and `auth` arguments, spelled as etcdctl 3.4 spells them (its boolean
//! flags also accept `--flag=true|false`, as Go's flag package does).

use clap::{Args, Subcommand};

/// `user ...`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Adds a user (`name` or `name:password`; the password is asked for otherwise).
    Add(UserAddArgs),
    /// Deletes a user.
    Delete {
        /// The user name.
        name: String,
    },
    /// Shows a user's roles (with --detail, each role's permissions).
    Get {
        /// The user name.
        name: String,
        /// Show the permissions of each role too.
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
              default_value_t = false, action = clap::ArgAction::Set)]
        detail: bool,
    },
    /// Lists every user.
    List,
    /// Changes a user's password (asked for on the terminal, or read from standard input
    /// with --interactive=false).
    Passwd(UserPasswdArgs),
    /// Grants a role to a user.
    GrantRole {
        /// The user name.
        name: String,
        /// The role.
        role: String,
    },
    /// Revokes a role from a user.
    RevokeRole {
        /// The user name.
        name: String,
        /// The role.
        role: String,
    },
}

/// `user add`.
#[derive(Clone, Debug, Args)]
pub struct UserAddArgs {
    /// `name`, or `name:password`.
    #[arg(value_name = "NAME[:PASSWORD]")]
    pub name: String,
    /// Ask for the password on the terminal (twice); with `false`, read it from the first
    /// line of standard input.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = true, action = clap::ArgAction::Set)]
    pub interactive: bool,
    /// The password, given on the command line.
    #[arg(long)]
    pub new_user_password: Option<String>,
    /// Create the user without a password (it cannot log in with one: for users that
    /// authenticate by TLS client certificate).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, action = clap::ArgAction::Set)]
    pub no_password: bool,
}

/// `user passwd`.
#[derive(Clone, Debug, Args)]
pub struct UserPasswdArgs {
    /// The user name.
    pub name: String,
    /// Ask for the password on the terminal (twice); with `false`, read it from the first
    /// line of standard input.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = true, action = clap::ArgAction::Set)]
    pub interactive: bool,
}

/// `role ...`.
#[derive(Debug, Subcommand)]
pub enum RoleCommand {
    /// Adds a role.
    Add {
        /// The role name.
        name: String,
    },
    /// Deletes a role (and revokes it from every user).
    Delete {
        /// The role name.
        name: String,
    },
    /// Shows a role's permissions.
    Get {
        /// The role name.
        name: String,
    },
    /// Lists every role.
    List,
    /// Grants a role access to a key, a range, a prefix or every key from one on.
    GrantPermission(PermissionArgs),
    /// Revokes a role's access to exactly that key or range.
    RevokePermission(RevokePermissionArgs),
}

/// Which keys a permission covers: `key`, `[key, end)`, `--prefix` or `--from-key`.
#[derive(Clone, Debug, Args)]
pub struct KeyRangeArgs {
    /// The key (or the start of the range).
    pub key: String,
    /// The end of the range (exclusive).
    #[arg(conflicts_with_all = ["prefix", "from_key"])]
    pub end: Option<String>,
    /// Every key with the key as prefix.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, action = clap::ArgAction::Set)]
    pub prefix: bool,
    /// Every key greater than or equal to the key.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value_t = false, action = clap::ArgAction::Set)]
    pub from_key: bool,
}

/// `role grant-permission`.
#[derive(Clone, Debug, Args)]
pub struct PermissionArgs {
    /// The role name.
    pub role: String,
    /// read, write or readwrite.
    pub perm_type: String,
    #[command(flatten)]
    pub range: KeyRangeArgs,
}

/// `role revoke-permission`.
#[derive(Clone, Debug, Args)]
pub struct RevokePermissionArgs {
    /// The role name.
    pub role: String,
    #[command(flatten)]
    pub range: KeyRangeArgs,
}

/// `auth ...`.
#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Enables authentication (creating the root role and granting it to user root if
    /// needed, as etcdctl does).
    Enable,
    /// Disables authentication.
    Disable,
    /// Shows whether authentication is enabled, and the auth revision.
    Status,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::args::{Cli, Command};

    #[test]
    fn etcdctl_spellings_parse_and_names_do_not_clash_with_the_global_user() {
        let cli = Cli::try_parse_from([
            "conclavectl",
            "--user",
            "root:pw",
            "user",
            "add",
            "alice",
            "--interactive=false",
        ])
        .unwrap();
        assert_eq!(cli.user.as_deref(), Some("root:pw"));
        let Command::User(UserCommand::Add(add)) = cli.command else {
            panic!("not user add")
        };
        assert_eq!(add.name, "alice");
        assert!(!add.interactive && !add.no_password);

        for spelling in ["--prefix", "--prefix=true"] {
            let cli = Cli::try_parse_from([
                "conclavectl",
                "role",
                "grant-permission",
                "app",
                spelling,
                "readwrite",
                "/app/",
            ])
            .unwrap();
            let Command::Role(RoleCommand::GrantPermission(grant)) = cli.command else {
                panic!("not grant-permission")
            };
            assert!(grant.range.prefix && !grant.range.from_key, "{spelling}");
            assert_eq!(
                (grant.perm_type.as_str(), grant.range.key.as_str()),
                ("readwrite", "/app/")
            );
        }
        let cli =
            Cli::try_parse_from(["conclavectl", "role", "revoke-permission", "app", "/a", "/b"]).unwrap();
        let Command::Role(RoleCommand::RevokePermission(revoke)) = cli.command else {
            panic!("not revoke-permission")
        };
        assert_eq!(revoke.range.end.as_deref(), Some("/b"));
        assert!(Cli::try_parse_from([
            "conclavectl",
            "role",
            "revoke-permission",
            "app",
            "/a",
            "/b",
            "--prefix"
        ])
        .is_err());
    }
}
