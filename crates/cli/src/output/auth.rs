//! etcdctl 3.4's simple output of the `user`, `role` and `auth` commands, line for line
//! (its `printer_simple.go`).

use conclave_client::auth::{Permission, PermissionType};
use conclave_client::kv::prefix_end;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `role get`: the role, then its read and its write permissions, one per line after a
/// tab: a single key as is, a range as `[key, end)` or `[key, <open ended>`, followed by
/// ` (prefix key)` when the range is exactly the key's prefix range.
pub fn role_get(role: &str, perms: &[Permission]) -> String {
    let mut out = format!("Role {role}\nKV Read:\n");
    let line = |perm: &Permission, out: &mut String| {
        let key = text(&perm.key);
        if perm.range_end.is_empty() {
            out.push_str(&format!("\t{key}\n"));
            return;
        }
        if perm.range_end == [0] {
            out.push_str(&format!("\t[{key}, <open ended>"));
        } else {
            out.push_str(&format!("\t[{key}, {})", text(&perm.range_end)));
        }
        if prefix_end(&perm.key) == perm.range_end {
            out.push_str(&format!(" (prefix {key})"));
        }
        out.push('\n');
    };
    for perm in perms {
        if matches!(perm.perm_type, PermissionType::Read | PermissionType::ReadWrite) {
            line(perm, &mut out);
        }
    }
    out.push_str("KV Write:\n");
    for perm in perms {
        if matches!(perm.perm_type, PermissionType::Write | PermissionType::ReadWrite) {
            line(perm, &mut out);
        }
    }
    out
}

/// `role revoke-permission`.
pub fn permission_revoked(role: &str, key: &[u8], end: &[u8]) -> String {
    let key = text(key);
    if end.is_empty() {
        format!("Permission of key {key} is revoked from role {role}\n")
    } else if end == [0] {
        format!("Permission of range [{key}, <open ended> is revoked from role {role}\n")
    } else {
        format!(
            "Permission of range [{key}, {}) is revoked from role {role}\n",
            text(end)
        )
    }
}

/// `user get` without `--detail`.
pub fn user_get(name: &str, roles: &[String]) -> String {
    let mut out = format!("User: {name}\nRoles:");
    for role in roles {
        out.push(' ');
        out.push_str(role);
    }
    out.push('\n');
    out
}

/// `auth status` (etcdctl 3.5's lines; 3.4 has no such command).
pub fn auth_status(enabled: bool, revision: u64) -> String {
    format!("Authentication Status: {enabled}\nAuthRevision: {revision}\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_get_prints_as_etcdctl() {
        // The permissions of the etcdctl 3.4 session in docs/cli.md, as etcd returns
        // them (sorted by key).
        let perms = vec![
            Permission::new(PermissionType::Write, "/a", "/b"),
            Permission::prefix(PermissionType::ReadWrite, "/app/"),
            Permission::key(PermissionType::Read, "/k1"),
            Permission::from_key(PermissionType::ReadWrite, "/z"),
        ];
        assert_eq!(
            role_get("app", &perms),
            "Role app\nKV Read:\n\t[/app/, /app0) (prefix /app/)\n\t/k1\n\t[/z, <open ended>\n\
             KV Write:\n\t[/a, /b) (prefix /a)\n\t[/app/, /app0) (prefix /app/)\n\t[/z, <open ended>\n"
        );
        assert_eq!(role_get("root", &[]), "Role root\nKV Read:\nKV Write:\n");
    }

    #[test]
    fn revocations_and_users_print_as_etcdctl() {
        assert_eq!(
            permission_revoked("app", b"/k1", b""),
            "Permission of key /k1 is revoked from role app\n"
        );
        assert_eq!(
            permission_revoked("app", b"/app/", b"/app0"),
            "Permission of range [/app/, /app0) is revoked from role app\n"
        );
        assert_eq!(
            permission_revoked("app", b"/z", b"\0"),
            "Permission of range [/z, <open ended> is revoked from role app\n"
        );
        assert_eq!(
            user_get("alice", &["app".into(), "ops".into()]),
            "User: alice\nRoles: app ops\n"
        );
        assert_eq!(user_get("bob", &[]), "User: bob\nRoles:\n");
    }
}
