//! etcd's auth administration: enabling auth, users, roles and their key permissions.
//!
//! ```no_run
//! # async fn demo() -> conclave_client::Result<()> {
//! use conclave_client::auth::{Permission, PermissionType};
//! use conclave_client::{Client, ClientOptions};
//!
//! let admin = Client::connect(["127.0.0.1:2379"]).await?;
//! let auth = admin.auth();
//! auth.user_add("root", Some("root-pw")).await?;
//! auth.role_add("root").await?;
//! auth.user_grant_role("root", "root").await?;
//! auth.role_add("app").await?;
//! auth.role_grant_permission("app", Permission::prefix(PermissionType::ReadWrite, "/app/")).await?;
//! auth.user_add("app", Some("app-pw")).await?;
//! auth.user_grant_role("app", "app").await?;
//! auth.enable().await?;
//!
//! let app = Client::connect_with(["127.0.0.1:2379"], ClientOptions::default().credentials("app", "app-pw")).await?;
//! app.put("/app/mode", "blue").await?;
//! # Ok(()) }
//! ```
//!
//! Every call here needs the `root` role once auth is enabled (etcd's rule), except
//! [`Auth::authenticate`], which needs no token, and [`Auth::status`].
//!
//! Errors are etcd's: [`Error::PermissionDenied`] for a caller without `root`,
//! [`Error::Server`] with `FailedPrecondition` and etcd's text for an unknown or existing
//! user or role ("etcdserver: user name not found", "etcdserver: role name already
//! exists", ...), for enabling auth without a `root` user ("etcdserver: root user does not
//! exist"), and for revoking what was not granted.

use conclave_proto::authpb;
use conclave_proto::etcdserverpb::auth_client::AuthClient;
use conclave_proto::etcdserverpb::{
    AuthDisableRequest, AuthEnableRequest, AuthRoleAddRequest, AuthRoleDeleteRequest, AuthRoleGetRequest,
    AuthRoleGrantPermissionRequest, AuthRoleListRequest, AuthRoleRevokePermissionRequest, AuthStatusRequest,
    AuthUserAddRequest, AuthUserChangePasswordRequest, AuthUserDeleteRequest, AuthUserGetRequest,
    AuthUserGrantRoleRequest, AuthUserListRequest, AuthUserRevokeRoleRequest, AuthenticateRequest,
};

use crate::error::{Error, Result};
use crate::transport::{Channel, Idempotency};
use crate::Client;

/// The kind of access a permission grants (etcd's `authpb.Permission.Type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PermissionType {
    /// Range and watch.
    Read,
    /// Put and delete.
    Write,
    /// Both.
    ReadWrite,
}

impl PermissionType {
    fn to_pb(self) -> i32 {
        match self {
            PermissionType::Read => authpb::permission::Type::Read as i32,
            PermissionType::Write => authpb::permission::Type::Write as i32,
            PermissionType::ReadWrite => authpb::permission::Type::Readwrite as i32,
        }
    }

    fn from_pb(value: i32) -> PermissionType {
        match authpb::permission::Type::try_from(value) {
            Ok(authpb::permission::Type::Write) => PermissionType::Write,
            Ok(authpb::permission::Type::Readwrite) => PermissionType::ReadWrite,
            _ => PermissionType::Read,
        }
    }

    /// etcd's name: `READ`, `WRITE` or `READWRITE`.
    pub fn as_str(self) -> &'static str {
        match self {
            PermissionType::Read => "READ",
            PermissionType::Write => "WRITE",
            PermissionType::ReadWrite => "READWRITE",
        }
    }
}

impl std::str::FromStr for PermissionType {
    type Err = Error;

    /// Parses etcdctl's spelling, in any case: `read`, `write`, `readwrite`.
    fn from_str(s: &str) -> Result<PermissionType> {
        match s.to_ascii_lowercase().as_str() {
            "read" => Ok(PermissionType::Read),
            "write" => Ok(PermissionType::Write),
            "readwrite" => Ok(PermissionType::ReadWrite),
            _ => Err(Error::InvalidArgument(format!(
                "invalid permission type {s:?}: use read, write or readwrite"
            ))),
        }
    }
}

/// Access to a key or a key range `[key, range_end)`, as etcd stores it: an empty
/// `range_end` is the single key, `range_end` `[0]` means every key from `key` on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Permission {
    /// What it allows.
    pub perm_type: PermissionType,
    /// The first key.
    pub key: Vec<u8>,
    /// The end of the range (exclusive); empty for a single key.
    pub range_end: Vec<u8>,
}

impl Permission {
    /// Access to `key` and the keys up to `range_end` (exclusive; empty for `key` alone).
    pub fn new(
        perm_type: PermissionType,
        key: impl Into<Vec<u8>>,
        range_end: impl Into<Vec<u8>>,
    ) -> Permission {
        Permission {
            perm_type,
            key: key.into(),
            range_end: range_end.into(),
        }
    }

    /// Access to the single key `key`.
    pub fn key(perm_type: PermissionType, key: impl Into<Vec<u8>>) -> Permission {
        Permission::new(perm_type, key, Vec::new())
    }

    /// Access to every key starting with `prefix` (etcdctl's `--prefix`).
    pub fn prefix(perm_type: PermissionType, prefix: impl Into<Vec<u8>>) -> Permission {
        let key = prefix.into();
        let range_end = conclave_contract::keys::prefix_end(&key);
        Permission::new(perm_type, key, range_end)
    }

    /// Access to `key` and every key after it (etcdctl's `--from-key`).
    pub fn from_key(perm_type: PermissionType, key: impl Into<Vec<u8>>) -> Permission {
        Permission::new(perm_type, key, vec![0])
    }
}

/// Whether auth is enabled, and the auth store's revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthStatus {
    /// Whether requests need a token.
    pub enabled: bool,
    /// The revision of the auth store (bumped by every user, role or permission change).
    pub auth_revision: u64,
}

/// A token from `Authenticate`, with the header of the answer.
#[derive(Clone, PartialEq, Eq)]
pub struct AuthToken {
    /// The token, to send as gRPC metadata `token` (or to [`Client::with_token`]).
    pub token: String,
    /// The response header (cluster, member, revision, term).
    pub header: Option<conclave_proto::etcdserverpb::ResponseHeader>,
}

impl std::fmt::Debug for AuthToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A token is a credential: never printed.
        f.debug_struct("AuthToken")
            .field("token", &"<redacted>")
            .field("header", &self.header)
            .finish()
    }
}

/// The auth administration handle of a [`Client`] ([`Client::auth`]).
#[derive(Clone, Debug)]
pub struct Auth {
    client: Client,
}

impl Auth {
    pub(crate) fn new(client: Client) -> Auth {
        Auth { client }
    }

    async fn call<T, F, Fut>(&self, idempotency: Idempotency, call: F) -> Result<T>
    where
        F: Fn(AuthClient<Channel>) -> Fut,
        Fut: std::future::Future<Output = std::result::Result<tonic::Response<T>, tonic::Status>>,
    {
        self.client
            .pool()
            .call(idempotency, |channel| call(AuthClient::new(channel)))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Logs `user` in with `password` and returns the token, without changing what this
    /// client sends. Fails with [`Error::AuthenticationFailed`] for a wrong user or
    /// password, and with [`Error::Server`] `FailedPrecondition` ("etcdserver:
    /// authentication is not enabled") while auth is disabled.
    pub async fn authenticate(&self, user: &str, password: &str) -> Result<AuthToken> {
        let request = AuthenticateRequest {
            name: user.to_string(),
            password: password.to_string(),
        };
        let response = self
            .call(Idempotency::Idempotent, |mut c| {
                let request = request.clone();
                async move { c.authenticate(request).await }
            })
            .await?;
        Ok(AuthToken {
            token: response.token,
            header: response.header,
        })
    }

    /// Enables auth. Refused ("etcdserver: root user does not exist") unless a `root`
    /// user with the `root` role exists.
    pub async fn enable(&self) -> Result<()> {
        self.call(Idempotency::Idempotent, |mut c| async move {
            c.auth_enable(AuthEnableRequest {}).await
        })
        .await?;
        Ok(())
    }

    /// Disables auth (needs `root`).
    pub async fn disable(&self) -> Result<()> {
        self.call(Idempotency::Idempotent, |mut c| async move {
            c.auth_disable(AuthDisableRequest {}).await
        })
        .await?;
        Ok(())
    }

    /// Whether auth is enabled, and the auth revision.
    pub async fn status(&self) -> Result<AuthStatus> {
        let response = self
            .call(Idempotency::Idempotent, |mut c| async move {
                c.auth_status(AuthStatusRequest {}).await
            })
            .await?;
        Ok(AuthStatus {
            enabled: response.enabled,
            auth_revision: response.auth_revision,
        })
    }

    /// Creates user `name` with `password`, or with no password (`None`: etcd's
    /// `no_password`, for a user that authenticates by TLS certificate only).
    pub async fn user_add(&self, name: &str, password: Option<&str>) -> Result<()> {
        non_empty(name, conclave_contract::errors::USER_EMPTY)?;
        let request = AuthUserAddRequest {
            name: name.to_string(),
            password: password.unwrap_or_default().to_string(),
            options: Some(authpb::UserAddOptions {
                no_password: password.is_none(),
            }),
            hashed_password: String::new(),
        };
        self.call(Idempotency::NonIdempotent, |mut c| {
            let request = request.clone();
            async move { c.user_add(request).await }
        })
        .await?;
        Ok(())
    }

    /// The roles granted to user `name`.
    pub async fn user_get(&self, name: &str) -> Result<Vec<String>> {
        non_empty(name, conclave_contract::errors::USER_EMPTY)?;
        let request = AuthUserGetRequest {
            name: name.to_string(),
        };
        let response = self
            .call(Idempotency::Idempotent, |mut c| {
                let request = request.clone();
                async move { c.user_get(request).await }
            })
            .await?;
        Ok(response.roles)
    }

    /// Every user name, sorted (as etcd returns them).
    pub async fn user_list(&self) -> Result<Vec<String>> {
        let response = self
            .call(Idempotency::Idempotent, |mut c| async move {
                c.user_list(AuthUserListRequest {}).await
            })
            .await?;
        Ok(response.users)
    }

    /// Deletes user `name`.
    pub async fn user_delete(&self, name: &str) -> Result<()> {
        non_empty(name, conclave_contract::errors::USER_EMPTY)?;
        let request = AuthUserDeleteRequest {
            name: name.to_string(),
        };
        self.call(Idempotency::NonIdempotent, |mut c| {
            let request = request.clone();
            async move { c.user_delete(request).await }
        })
        .await?;
        Ok(())
    }

    /// Sets user `name`'s password; the tokens it holds become invalid.
    pub async fn user_change_password(&self, name: &str, password: &str) -> Result<()> {
        non_empty(name, conclave_contract::errors::USER_EMPTY)?;
        let request = AuthUserChangePasswordRequest {
            name: name.to_string(),
            password: password.to_string(),
            hashed_password: String::new(),
        };
        self.call(Idempotency::Idempotent, |mut c| {
            let request = request.clone();
            async move { c.user_change_password(request).await }
        })
        .await?;
        Ok(())
    }

    /// Grants `role` to `user`.
    pub async fn user_grant_role(&self, user: &str, role: &str) -> Result<()> {
        let request = AuthUserGrantRoleRequest {
            user: user.to_string(),
            role: role.to_string(),
        };
        self.call(Idempotency::Idempotent, |mut c| {
            let request = request.clone();
            async move { c.user_grant_role(request).await }
        })
        .await?;
        Ok(())
    }

    /// Revokes `role` from `user`.
    pub async fn user_revoke_role(&self, user: &str, role: &str) -> Result<()> {
        let request = AuthUserRevokeRoleRequest {
            name: user.to_string(),
            role: role.to_string(),
        };
        self.call(Idempotency::NonIdempotent, |mut c| {
            let request = request.clone();
            async move { c.user_revoke_role(request).await }
        })
        .await?;
        Ok(())
    }

    /// Creates role `name`.
    pub async fn role_add(&self, name: &str) -> Result<()> {
        non_empty(name, conclave_contract::errors::ROLE_EMPTY)?;
        let request = AuthRoleAddRequest {
            name: name.to_string(),
        };
        self.call(Idempotency::NonIdempotent, |mut c| {
            let request = request.clone();
            async move { c.role_add(request).await }
        })
        .await?;
        Ok(())
    }

    /// The permissions of role `name`.
    pub async fn role_get(&self, name: &str) -> Result<Vec<Permission>> {
        non_empty(name, conclave_contract::errors::ROLE_EMPTY)?;
        let request = AuthRoleGetRequest {
            role: name.to_string(),
        };
        let response = self
            .call(Idempotency::Idempotent, |mut c| {
                let request = request.clone();
                async move { c.role_get(request).await }
            })
            .await?;
        Ok(response
            .perm
            .into_iter()
            .map(|p| Permission {
                perm_type: PermissionType::from_pb(p.perm_type),
                key: p.key,
                range_end: p.range_end,
            })
            .collect())
    }

    /// Every role name, sorted.
    pub async fn role_list(&self) -> Result<Vec<String>> {
        let response = self
            .call(Idempotency::Idempotent, |mut c| async move {
                c.role_list(AuthRoleListRequest {}).await
            })
            .await?;
        Ok(response.roles)
    }

    /// Deletes role `name` (and revokes it from every user).
    pub async fn role_delete(&self, name: &str) -> Result<()> {
        non_empty(name, conclave_contract::errors::ROLE_EMPTY)?;
        let request = AuthRoleDeleteRequest {
            role: name.to_string(),
        };
        self.call(Idempotency::NonIdempotent, |mut c| {
            let request = request.clone();
            async move { c.role_delete(request).await }
        })
        .await?;
        Ok(())
    }

    /// Grants `permission` to `role` (a permission on the same range is replaced).
    pub async fn role_grant_permission(&self, role: &str, permission: Permission) -> Result<()> {
        let request = AuthRoleGrantPermissionRequest {
            name: role.to_string(),
            perm: Some(authpb::Permission {
                perm_type: permission.perm_type.to_pb(),
                key: permission.key,
                range_end: permission.range_end,
            }),
        };
        self.call(Idempotency::Idempotent, |mut c| {
            let request = request.clone();
            async move { c.role_grant_permission(request).await }
        })
        .await?;
        Ok(())
    }

    /// Revokes from `role` the permission on exactly `[key, range_end)`.
    pub async fn role_revoke_permission(
        &self,
        role: &str,
        key: impl Into<Vec<u8>>,
        range_end: impl Into<Vec<u8>>,
    ) -> Result<()> {
        let request = AuthRoleRevokePermissionRequest {
            role: role.to_string(),
            key: key.into(),
            range_end: range_end.into(),
        };
        self.call(Idempotency::NonIdempotent, |mut c| {
            let request = request.clone();
            async move { c.role_revoke_permission(request).await }
        })
        .await?;
        Ok(())
    }
}

/// Refuses an empty user or role name before sending, with etcd's text (the server would
/// answer the same; refusing here keeps "user name is empty" from reading as a missing
/// token, which etcd answers with the same text).
fn non_empty(name: &str, message: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::InvalidArgument(message.to_string()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_ranges_follow_etcdctl() {
        let prefix = Permission::prefix(PermissionType::ReadWrite, "/app/");
        assert_eq!(prefix.key, b"/app/");
        assert_eq!(prefix.range_end, b"/app0");
        assert_eq!(Permission::from_key(PermissionType::Read, "a").range_end, vec![0]);
        assert!(Permission::key(PermissionType::Write, "k").range_end.is_empty());
    }

    #[test]
    fn permission_types_parse_as_etcdctl_spells_them() {
        assert_eq!(
            "readwrite".parse::<PermissionType>().unwrap(),
            PermissionType::ReadWrite
        );
        assert_eq!("READ".parse::<PermissionType>().unwrap(), PermissionType::Read);
        assert!("all".parse::<PermissionType>().is_err());
        assert_eq!(PermissionType::Write.as_str(), "WRITE");
    }
}
