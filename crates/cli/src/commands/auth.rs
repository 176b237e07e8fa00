//! `user ...`, `role ...` and `auth ...`, printed as etcdctl 3.4 prints them (whatever
//! `-w` says: etcdctl's simple lines are the format these commands have).

use std::io::Write;

use conclave_client::auth::{Permission, PermissionType};
use conclave_client::kv::prefix_end;
use conclave_client::Error as ClientError;

use super::Context;
use crate::args::{AuthCommand, KeyRangeArgs, RoleCommand, UserAddArgs, UserCommand, UserPasswdArgs};
use crate::error::CliError;
use crate::output::{self, auth as show};
use crate::prompt;

/// `user ...`.
pub async fn user(ctx: &Context, command: UserCommand, out: &mut dyn Write) -> Result<(), CliError> {
    let auth = ctx.client.auth();
    match command {
        UserCommand::Add(args) => {
            let (name, password) = user_add_password(&args)?;
            auth.user_add(&name, password.as_deref())
                .await
                .map_err(|e| refused(ctx, e))?;
            output::line(out, &format!("User {name} created"))
        }
        UserCommand::Delete { name } => {
            auth.user_delete(&name).await.map_err(|e| refused(ctx, e))?;
            output::line(out, &format!("User {name} deleted"))
        }
        UserCommand::Get { name, detail } => {
            let roles = auth.user_get(&name).await.map_err(|e| refused(ctx, e))?;
            if !detail {
                return output::write(out, show::user_get(&name, &roles).as_bytes());
            }
            output::line(out, &format!("User: {name}"))?;
            for role in roles {
                let perms = auth.role_get(&role).await.map_err(|e| refused(ctx, e))?;
                output::line(out, "")?;
                output::write(out, show::role_get(&role, &perms).as_bytes())?;
            }
            Ok(())
        }
        UserCommand::List => {
            for name in auth.user_list().await.map_err(|e| refused(ctx, e))? {
                output::line(out, &name)?;
            }
            Ok(())
        }
        UserCommand::Passwd(UserPasswdArgs { name, interactive }) => {
            let password = if interactive {
                prompt::new_password(&name)?
            } else {
                prompt::from_stdin()?
            };
            auth.user_change_password(&name, &password)
                .await
                .map_err(|e| refused(ctx, e))?;
            output::line(out, "Password updated")
        }
        UserCommand::GrantRole { name, role } => {
            auth.user_grant_role(&name, &role)
                .await
                .map_err(|e| refused(ctx, e))?;
            output::line(out, &format!("Role {role} is granted to user {name}"))
        }
        UserCommand::RevokeRole { name, role } => {
            auth.user_revoke_role(&name, &role)
                .await
                .map_err(|e| refused(ctx, e))?;
            output::line(out, &format!("Role {role} is revoked from user {name}"))
        }
    }
}

/// A refusal in etcdctl's words: the cluster's own text ("etcdserver: user name not
/// found"), which is what these commands' users know and scripts match on.
fn refused(ctx: &Context, error: ClientError) -> CliError {
    match error {
        ClientError::Server { message, .. } | ClientError::InvalidArgument(message) => {
            CliError::Failed(message)
        }
        other => ctx.fail(other),
    }
}

/// The name and password of `user add`: `name:password`, `--new-user-password`,
/// `--no-password`, or asked for (on the terminal, or from standard input).
fn user_add_password(args: &UserAddArgs) -> Result<(String, Option<String>), CliError> {
    if args.no_password {
        return Ok((args.name.clone(), None));
    }
    if let Some((name, password)) = args.name.split_once(':') {
        return Ok((name.to_string(), Some(password.to_string())));
    }
    let name = args.name.clone();
    let password = match &args.new_user_password {
        Some(password) => password.clone(),
        None if args.interactive => prompt::new_password(&name)?,
        None => prompt::from_stdin()?,
    };
    Ok((name, Some(password)))
}

/// `role ...`.
pub async fn role(ctx: &Context, command: RoleCommand, out: &mut dyn Write) -> Result<(), CliError> {
    let auth = ctx.client.auth();
    match command {
        RoleCommand::Add { name } => {
            auth.role_add(&name).await.map_err(|e| refused(ctx, e))?;
            output::line(out, &format!("Role {name} created"))
        }
        RoleCommand::Delete { name } => {
            auth.role_delete(&name).await.map_err(|e| refused(ctx, e))?;
            output::line(out, &format!("Role {name} deleted"))
        }
        RoleCommand::Get { name } => {
            let perms = auth.role_get(&name).await.map_err(|e| refused(ctx, e))?;
            output::write(out, show::role_get(&name, &perms).as_bytes())
        }
        RoleCommand::List => {
            for name in auth.role_list().await.map_err(|e| refused(ctx, e))? {
                output::line(out, &name)?;
            }
            Ok(())
        }
        RoleCommand::GrantPermission(args) => {
            let perm_type: PermissionType = args
                .perm_type
                .parse()
                .map_err(|e: ClientError| CliError::InvalidInput(e.to_string()))?;
            let (key, end) = key_range(&args.range);
            auth.role_grant_permission(&args.role, Permission::new(perm_type, key, end))
                .await
                .map_err(|e| refused(ctx, e))?;
            output::line(out, &format!("Role {} updated", args.role))
        }
        RoleCommand::RevokePermission(args) => {
            let (key, end) = key_range(&args.range);
            auth.role_revoke_permission(&args.role, key.clone(), end.clone())
                .await
                .map_err(|e| refused(ctx, e))?;
            output::write(out, show::permission_revoked(&args.role, &key, &end).as_bytes())
        }
    }
}

/// The `[key, end)` a permission command names (an empty end: the key alone).
fn key_range(range: &KeyRangeArgs) -> (Vec<u8>, Vec<u8>) {
    let key = range.key.as_bytes().to_vec();
    let end = if range.prefix {
        prefix_end(&key)
    } else if range.from_key {
        vec![0]
    } else {
        range.end.clone().unwrap_or_default().into_bytes()
    };
    (key, end)
}

/// `auth ...`.
pub async fn auth(ctx: &Context, command: AuthCommand, out: &mut dyn Write) -> Result<(), CliError> {
    let auth = ctx.client.auth();
    match command {
        AuthCommand::Enable => {
            enable(ctx).await?;
            output::line(out, "Authentication Enabled")
        }
        AuthCommand::Disable => {
            auth.disable().await.map_err(|e| refused(ctx, e))?;
            output::line(out, "Authentication Disabled")
        }
        AuthCommand::Status => {
            let status = auth.status().await.map_err(|e| refused(ctx, e))?;
            output::write(
                out,
                show::auth_status(status.enabled, status.auth_revision).as_bytes(),
            )
        }
    }
}

/// etcdctl's `auth enable`: when the cluster answers that root lacks the root role,
/// creates the role (if missing), grants it to root, and tries again.
async fn enable(ctx: &Context) -> Result<(), CliError> {
    let auth = ctx.client.auth();
    let mut granted = false;
    loop {
        match auth.enable().await {
            Ok(()) => return Ok(()),
            Err(ClientError::Server { message, .. })
                if message == conclave_client::errors::ROOT_ROLE_NOT_EXIST && !granted =>
            {
                match auth.role_add("root").await {
                    Ok(()) => {}
                    Err(ClientError::Server { message, .. })
                        if message == conclave_client::errors::ROLE_ALREADY_EXIST => {}
                    Err(error) => return Err(refused(ctx, error)),
                }
                auth.user_grant_role("root", "root")
                    .await
                    .map_err(|e| refused(ctx, e))?;
                granted = true;
            }
            Err(error) => return Err(refused(ctx, error)),
        }
    }
}
