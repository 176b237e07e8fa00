//! `etcdserverpb.Auth`: AuthEnable/Disable/Status, Authenticate, and the user and role
//! administration, with etcd's rules and error texts (see `crate::auth` for where the
//! state lives and how tokens work).
//!
//! Every change is decided against the state read after a linearizable barrier and
//! proposed as one txn guarded by that state's mod revision; a change that lost a race
//! with another is decided again. Once auth is on, changes and listings need the root
//! role; a user may read its own record and the roles it holds.

use conclave_contract::errors;
use conclave_mvcc::WriteResponse;
use conclave_proto::authpb;
use conclave_proto::etcdserverpb as pb;
use conclave_proto::etcdserverpb::auth_server::Auth as AuthRpc;
use tonic::{Request, Response, Status};

use super::EtcdApi;
use crate::auth::records::{Change, Perm, PermissionRecord, RoleRecord, StateRecord, UserRecord};
use crate::auth::{new_signing_key, AuthState, Caller, Credentials, ROOT};

/// Attempts of a change that keeps losing races before giving up.
const CHANGE_ATTEMPTS: usize = 16;

/// Longest user or role name.
const MAX_NAME_BYTES: usize = 1024;

type Decision = (StateRecord, Vec<Change>);

fn precondition(text: &str) -> Status {
    Status::failed_precondition(text)
}

fn check_name(name: &str, empty: &'static str) -> Result<(), Status> {
    if name.is_empty() {
        return Err(Status::invalid_argument(empty));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Status::invalid_argument(format!(
            "{empty}: names are at most {MAX_NAME_BYTES} bytes"
        )));
    }
    Ok(())
}

fn perm_of(t: i32) -> Result<Perm, Status> {
    match authpb::permission::Type::try_from(t) {
        Ok(authpb::permission::Type::Read) => Ok(Perm::Read),
        Ok(authpb::permission::Type::Write) => Ok(Perm::Write),
        Ok(authpb::permission::Type::Readwrite) => Ok(Perm::ReadWrite),
        Err(_) => Err(Status::invalid_argument(errors::INVALID_AUTH_MGMT)),
    }
}

fn perm_to_pb(p: &PermissionRecord) -> authpb::Permission {
    authpb::Permission {
        perm_type: match p.perm {
            Perm::Read => authpb::permission::Type::Read,
            Perm::Write => authpb::permission::Type::Write,
            Perm::ReadWrite => authpb::permission::Type::Readwrite,
        } as i32,
        key: p.key.clone(),
        range_end: p.range_end.clone(),
    }
}

/// etcd 3.5's `isValidPermissionRange`: a key, and a range_end that is empty (one key),
/// `"\0"` (from the key on) or after the key.
fn valid_permission_range(key: &[u8], range_end: &[u8]) -> bool {
    !key.is_empty() && (range_end.is_empty() || range_end == [0] || range_end > key)
}

/// A bcrypt hash as etcd 3.5's `hashedPassword` carries it: `$2a$`/`$2b$`/`$2y$`, cost,
/// 53 characters of salt and hash.
fn looks_like_bcrypt(hash: &str) -> bool {
    hash.len() == 60 && ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p))
}

impl EtcdApi {
    /// Decides a change against the fresh state (the caller's rights included) and
    /// proposes it; `Ok(None)` from `decide` means nothing to change. Returns the revision
    /// for the response header.
    async fn auth_change(
        &self,
        credentials: &Credentials,
        decide: impl Fn(&AuthState, &Caller) -> Result<Option<Decision>, Status>,
    ) -> Result<i64, Status> {
        for _ in 0..CHANGE_ATTEMPTS {
            let state = self.auth.fresh_state().await?;
            let caller = self.auth.caller_in(&state, credentials)?;
            let Some((next, changes)) = decide(&state, &caller)? else {
                return Ok(self.node.store().current_revision());
            };
            let txn = state
                .change(&next, changes)
                .map_err(|e| Status::internal(format!("encoding an auth record: {e}")))?;
            let (response, revision) = self.replicate(txn).await?;
            if let WriteResponse::Txn(r) = response {
                if r.succeeded {
                    return Ok(revision);
                }
            }
            tracing::debug!("auth change raced with another; deciding again");
        }
        Err(Status::unavailable(errors::TIMEOUT))
    }

    /// The fresh state, for reads that need `admin` or `allowed`.
    async fn auth_read(
        &self,
        credentials: &Credentials,
        allowed: impl Fn(&AuthState, &Caller) -> bool,
    ) -> Result<std::sync::Arc<AuthState>, Status> {
        let state = self.auth.fresh_state().await?;
        let caller = self.auth.caller_in(&state, credentials)?;
        if !caller.is_admin() && !allowed(&state, &caller) {
            return Err(Status::permission_denied(errors::PERMISSION_DENIED));
        }
        Ok(state)
    }

    fn auth_header(&self, revision: i64) -> Option<pb::ResponseHeader> {
        self.header(revision)
    }
}

fn admin(caller: &Caller) -> Result<(), Status> {
    caller.check_admin()
}

fn user<'a>(state: &'a AuthState, name: &str) -> Result<&'a UserRecord, Status> {
    state
        .users
        .get(name)
        .ok_or_else(|| precondition(errors::USER_NOT_FOUND))
}

fn role<'a>(state: &'a AuthState, name: &str) -> Result<&'a RoleRecord, Status> {
    state
        .roles
        .get(name)
        .ok_or_else(|| precondition(errors::ROLE_NOT_FOUND))
}

#[tonic::async_trait]
impl AuthRpc for EtcdApi {
    async fn auth_enable(
        &self,
        request: Request<pb::AuthEnableRequest>,
    ) -> Result<Response<pb::AuthEnableResponse>, Status> {
        let credentials = Credentials::of(&request);
        let key = new_signing_key()?;
        let revision = self
            .auth_change(&credentials, |state, caller| {
                if state.state.enabled {
                    admin(caller)?;
                    return Ok(None);
                }
                if !state.users.contains_key(ROOT) {
                    return Err(precondition(errors::ROOT_USER_NOT_EXIST));
                }
                if !state.is_root(ROOT) {
                    return Err(precondition(errors::ROOT_ROLE_NOT_EXIST));
                }
                let signing_key = if state.state.signing_key.is_empty() {
                    key.clone()
                } else {
                    state.state.signing_key.clone()
                };
                Ok(Some((
                    StateRecord {
                        enabled: true,
                        signing_key,
                        ..state.state.clone()
                    },
                    Vec::new(),
                )))
            })
            .await?;
        tracing::info!("authentication enabled");
        Ok(Response::new(pb::AuthEnableResponse {
            header: self.auth_header(revision),
        }))
    }

    async fn auth_disable(
        &self,
        request: Request<pb::AuthDisableRequest>,
    ) -> Result<Response<pb::AuthDisableResponse>, Status> {
        let credentials = Credentials::of(&request);
        let revision = self
            .auth_change(&credentials, |state, caller| {
                if !state.state.enabled {
                    return Ok(None);
                }
                admin(caller)?;
                Ok(Some((
                    StateRecord {
                        enabled: false,
                        ..state.state.clone()
                    },
                    Vec::new(),
                )))
            })
            .await?;
        tracing::info!("authentication disabled");
        Ok(Response::new(pb::AuthDisableResponse {
            header: self.auth_header(revision),
        }))
    }

    async fn auth_status(
        &self,
        _: Request<pb::AuthStatusRequest>,
    ) -> Result<Response<pb::AuthStatusResponse>, Status> {
        let state = self.auth.fresh_state().await?;
        Ok(Response::new(pb::AuthStatusResponse {
            header: self.auth_header(self.node.store().current_revision()),
            enabled: state.state.enabled,
            auth_revision: state.state.revision,
        }))
    }

    async fn authenticate(
        &self,
        request: Request<pb::AuthenticateRequest>,
    ) -> Result<Response<pb::AuthenticateResponse>, Status> {
        let addr = request.remote_addr().map(|a| a.ip());
        let request = request.into_inner();
        self.check_size(&request)?;
        let token = self
            .auth
            .authenticate(&request.name, &request.password, addr)
            .await?;
        Ok(Response::new(pb::AuthenticateResponse {
            header: self.auth_header(self.node.store().current_revision()),
            token,
        }))
    }

    async fn user_add(
        &self,
        request: Request<pb::AuthUserAddRequest>,
    ) -> Result<Response<pb::AuthUserAddResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_size(&request)?;
        check_name(&request.name, errors::USER_EMPTY)?;
        let no_password = request.options.is_some_and(|o| o.no_password);
        let hash = if no_password {
            None
        } else if !request.hashed_password.is_empty() {
            if !looks_like_bcrypt(&request.hashed_password) {
                return Err(Status::invalid_argument(
                    "etcdserver: hashed_password is not a bcrypt hash",
                ));
            }
            Some(request.hashed_password.clone())
        } else {
            Some(self.auth.hash_password(&request.password).await?)
        };
        let revision = self
            .auth_change(&credentials, |state, caller| {
                admin(caller)?;
                if state.users.contains_key(&request.name) {
                    return Err(precondition(errors::USER_ALREADY_EXIST));
                }
                let record = UserRecord {
                    password_hash: hash.clone(),
                    roles: Vec::new(),
                    password_revision: state.state.revision + 1,
                };
                Ok(Some((
                    state.state.clone(),
                    vec![Change::PutUser(request.name.clone(), record)],
                )))
            })
            .await?;
        Ok(Response::new(pb::AuthUserAddResponse {
            header: self.auth_header(revision),
        }))
    }

    async fn user_get(
        &self,
        request: Request<pb::AuthUserGetRequest>,
    ) -> Result<Response<pb::AuthUserGetResponse>, Status> {
        let credentials = Credentials::of(&request);
        let name = request.into_inner().name;
        let state = self
            .auth_read(&credentials, |_, caller| caller.name() == Some(name.as_str()))
            .await?;
        let roles = user(&state, &name)?.roles.clone();
        Ok(Response::new(pb::AuthUserGetResponse {
            header: self.auth_header(self.node.store().current_revision()),
            roles,
        }))
    }

    async fn user_list(
        &self,
        request: Request<pb::AuthUserListRequest>,
    ) -> Result<Response<pb::AuthUserListResponse>, Status> {
        let credentials = Credentials::of(&request);
        let state = self.auth_read(&credentials, |_, _| false).await?;
        Ok(Response::new(pb::AuthUserListResponse {
            header: self.auth_header(self.node.store().current_revision()),
            users: state.users.keys().cloned().collect(),
        }))
    }

    async fn user_delete(
        &self,
        request: Request<pb::AuthUserDeleteRequest>,
    ) -> Result<Response<pb::AuthUserDeleteResponse>, Status> {
        let credentials = Credentials::of(&request);
        let name = request.into_inner().name;
        let revision = self
            .auth_change(&credentials, |state, caller| {
                admin(caller)?;
                user(state, &name)?;
                if state.state.enabled && name == ROOT {
                    return Err(Status::invalid_argument(errors::INVALID_AUTH_MGMT));
                }
                Ok(Some((
                    state.state.clone(),
                    vec![Change::DeleteUser(name.clone())],
                )))
            })
            .await?;
        Ok(Response::new(pb::AuthUserDeleteResponse {
            header: self.auth_header(revision),
        }))
    }

    async fn user_change_password(
        &self,
        request: Request<pb::AuthUserChangePasswordRequest>,
    ) -> Result<Response<pb::AuthUserChangePasswordResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_size(&request)?;
        let hash = if request.hashed_password.is_empty() {
            self.auth.hash_password(&request.password).await?
        } else {
            request.hashed_password.clone()
        };
        let revision = self
            .auth_change(&credentials, |state, caller| {
                // A user may change its own password (etcd asks for root).
                if caller.name() != Some(request.name.as_str()) {
                    admin(caller)?;
                }
                let mut record = user(state, &request.name)?.clone();
                record.password_hash = Some(hash.clone());
                record.password_revision = state.state.revision + 1;
                Ok(Some((
                    state.state.clone(),
                    vec![Change::PutUser(request.name.clone(), record)],
                )))
            })
            .await?;
        Ok(Response::new(pb::AuthUserChangePasswordResponse {
            header: self.auth_header(revision),
        }))
    }

    async fn user_grant_role(
        &self,
        request: Request<pb::AuthUserGrantRoleRequest>,
    ) -> Result<Response<pb::AuthUserGrantRoleResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        let revision = self
            .auth_change(&credentials, |state, caller| {
                admin(caller)?;
                let mut record = user(state, &request.user)?.clone();
                // As etcd, `root` can be granted without a role record.
                if request.role != ROOT {
                    role(state, &request.role)?;
                }
                if record.roles.contains(&request.role) {
                    return Ok(None);
                }
                record.roles.push(request.role.clone());
                record.roles.sort();
                Ok(Some((
                    state.state.clone(),
                    vec![Change::PutUser(request.user.clone(), record)],
                )))
            })
            .await?;
        Ok(Response::new(pb::AuthUserGrantRoleResponse {
            header: self.auth_header(revision),
        }))
    }

    async fn user_revoke_role(
        &self,
        request: Request<pb::AuthUserRevokeRoleRequest>,
    ) -> Result<Response<pb::AuthUserRevokeRoleResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        let revision = self
            .auth_change(&credentials, |state, caller| {
                admin(caller)?;
                let mut record = user(state, &request.name)?.clone();
                if state.state.enabled && request.name == ROOT && request.role == ROOT {
                    return Err(Status::invalid_argument(errors::INVALID_AUTH_MGMT));
                }
                let before = record.roles.len();
                record.roles.retain(|r| *r != request.role);
                if record.roles.len() == before {
                    return Err(precondition(errors::ROLE_NOT_GRANTED));
                }
                Ok(Some((
                    state.state.clone(),
                    vec![Change::PutUser(request.name.clone(), record)],
                )))
            })
            .await?;
        Ok(Response::new(pb::AuthUserRevokeRoleResponse {
            header: self.auth_header(revision),
        }))
    }

    async fn role_add(
        &self,
        request: Request<pb::AuthRoleAddRequest>,
    ) -> Result<Response<pb::AuthRoleAddResponse>, Status> {
        let credentials = Credentials::of(&request);
        let name = request.into_inner().name;
        check_name(&name, errors::ROLE_EMPTY)?;
        let revision = self
            .auth_change(&credentials, |state, caller| {
                admin(caller)?;
                if state.roles.contains_key(&name) {
                    return Err(precondition(errors::ROLE_ALREADY_EXIST));
                }
                Ok(Some((
                    state.state.clone(),
                    vec![Change::PutRole(name.clone(), RoleRecord::default())],
                )))
            })
            .await?;
        Ok(Response::new(pb::AuthRoleAddResponse {
            header: self.auth_header(revision),
        }))
    }

    async fn role_get(
        &self,
        request: Request<pb::AuthRoleGetRequest>,
    ) -> Result<Response<pb::AuthRoleGetResponse>, Status> {
        let credentials = Credentials::of(&request);
        let name = request.into_inner().role;
        let state = self
            .auth_read(&credentials, |state, caller| {
                caller
                    .name()
                    .and_then(|u| state.users.get(u))
                    .is_some_and(|u| u.roles.contains(&name))
            })
            .await?;
        let perm = role(&state, &name)?.permissions.iter().map(perm_to_pb).collect();
        Ok(Response::new(pb::AuthRoleGetResponse {
            header: self.auth_header(self.node.store().current_revision()),
            perm,
        }))
    }

    async fn role_list(
        &self,
        request: Request<pb::AuthRoleListRequest>,
    ) -> Result<Response<pb::AuthRoleListResponse>, Status> {
        let credentials = Credentials::of(&request);
        let state = self.auth_read(&credentials, |_, _| false).await?;
        Ok(Response::new(pb::AuthRoleListResponse {
            header: self.auth_header(self.node.store().current_revision()),
            roles: state.roles.keys().cloned().collect(),
        }))
    }

    async fn role_delete(
        &self,
        request: Request<pb::AuthRoleDeleteRequest>,
    ) -> Result<Response<pb::AuthRoleDeleteResponse>, Status> {
        let credentials = Credentials::of(&request);
        let name = request.into_inner().role;
        let revision = self
            .auth_change(&credentials, |state, caller| {
                admin(caller)?;
                role(state, &name)?;
                if state.state.enabled && name == ROOT {
                    return Err(Status::invalid_argument(errors::INVALID_AUTH_MGMT));
                }
                // As etcd, the role is revoked from every user that holds it.
                let mut changes = vec![Change::DeleteRole(name.clone())];
                for (user_name, record) in &state.users {
                    if record.roles.contains(&name) {
                        let mut record = record.clone();
                        record.roles.retain(|r| *r != name);
                        changes.push(Change::PutUser(user_name.clone(), record));
                    }
                }
                Ok(Some((state.state.clone(), changes)))
            })
            .await?;
        Ok(Response::new(pb::AuthRoleDeleteResponse {
            header: self.auth_header(revision),
        }))
    }

    async fn role_grant_permission(
        &self,
        request: Request<pb::AuthRoleGrantPermissionRequest>,
    ) -> Result<Response<pb::AuthRoleGrantPermissionResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        self.check_size(&request)?;
        let Some(perm) = request.perm else {
            return Err(Status::invalid_argument(errors::PERMISSION_NOT_GIVEN));
        };
        if !valid_permission_range(&perm.key, &perm.range_end) {
            return Err(Status::invalid_argument(errors::INVALID_AUTH_MGMT));
        }
        let granted = PermissionRecord {
            perm: perm_of(perm.perm_type)?,
            key: perm.key,
            range_end: perm.range_end,
        };
        let revision = self
            .auth_change(&credentials, |state, caller| {
                admin(caller)?;
                let mut record = role(state, &request.name)?.clone();
                // As etcd, a grant of the same range replaces its type.
                record.permissions.retain(|p| {
                    (p.key.as_slice(), p.range_end.as_slice()) != (&granted.key[..], &granted.range_end[..])
                });
                record.permissions.push(granted.clone());
                record
                    .permissions
                    .sort_by(|a, b| (&a.key, &a.range_end).cmp(&(&b.key, &b.range_end)));
                Ok(Some((
                    state.state.clone(),
                    vec![Change::PutRole(request.name.clone(), record)],
                )))
            })
            .await?;
        Ok(Response::new(pb::AuthRoleGrantPermissionResponse {
            header: self.auth_header(revision),
        }))
    }

    async fn role_revoke_permission(
        &self,
        request: Request<pb::AuthRoleRevokePermissionRequest>,
    ) -> Result<Response<pb::AuthRoleRevokePermissionResponse>, Status> {
        let credentials = Credentials::of(&request);
        let request = request.into_inner();
        let revision = self
            .auth_change(&credentials, |state, caller| {
                admin(caller)?;
                let mut record = role(state, &request.role)?.clone();
                let before = record.permissions.len();
                record.permissions.retain(|p| {
                    (p.key.as_slice(), p.range_end.as_slice()) != (&request.key[..], &request.range_end[..])
                });
                if record.permissions.len() == before {
                    return Err(precondition(errors::PERMISSION_NOT_GRANTED));
                }
                Ok(Some((
                    state.state.clone(),
                    vec![Change::PutRole(request.role.clone(), record)],
                )))
            })
            .await?;
        Ok(Response::new(pb::AuthRoleRevokePermissionResponse {
            header: self.auth_header(revision),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_ranges_follow_etcd_35() {
        assert!(valid_permission_range(b"a", b""));
        assert!(valid_permission_range(b"a", b"\0"));
        assert!(valid_permission_range(b"a", b"b"));
        assert!(!valid_permission_range(b"", b""));
        assert!(!valid_permission_range(b"b", b"a"));
        assert!(!valid_permission_range(b"a", b"a"));
    }
}
