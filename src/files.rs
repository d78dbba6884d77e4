//! Who may read the files the process holds: member data at rest (the SQLite snapshot) and
//! secrets (tokens, the OAuth private key). Unix permissions only; elsewhere these are no-ops.

use std::path::Path;

use tracing::warn;

use crate::config::Config;

/// Sets the process umask to 077, so every file it creates (the snapshot and its -wal/-shm
/// included) is readable by its owner only. Called once at start by the binary.
pub fn restrict_umask() {
    #[cfg(unix)]
    {
        rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    }
}

/// Makes `path` (if it exists) readable and writable by its owner only; `Ok(true)` when it was
/// more open before (a snapshot created by an older version or under another umask).
pub fn make_private(path: &Path) -> std::io::Result<bool> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(e),
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 == 0 {
            return Ok(false);
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o700))?;
        Ok(true)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        Ok(false)
    }
}

/// The permission bits of `path` when others may read it, or a group other than the
/// process's own (a Kubernetes secret volume with `fsGroup` is group-readable by the pod's own
/// group, which is needed because root owns the files).
pub fn readable_by_others(path: &Path) -> Option<u32> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        // Through symlinks: Kubernetes mounts secrets as links to the real files.
        let meta = std::fs::metadata(path).ok()?;
        let mode = meta.permissions().mode() & 0o777;
        let own_group = meta.gid() == rustix::process::getegid().as_raw();
        let loose = mode & 0o004 != 0 || (mode & 0o040 != 0 && !own_group);
        loose.then_some(mode)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

/// The secret files the configuration names (`okta.api_token_file`, `okta.private_key_file`,
/// `server.admin_token_file`, `state.url_file`), by key.
pub fn secret_files(config: &Config) -> Vec<(&'static str, &Path)> {
    [
        (
            "okta.api_token_file",
            config
                .okta
                .as_ref()
                .and_then(|o| o.api_token_file.as_deref()),
        ),
        (
            "okta.private_key_file",
            config
                .okta
                .as_ref()
                .and_then(|o| o.private_key_file.as_deref()),
        ),
        (
            "scim.token_file",
            config.scim.as_ref().and_then(|s| s.token_file.as_deref()),
        ),
        (
            "server.admin_token_file",
            config.server.admin_token_file.as_deref(),
        ),
        ("state.url_file", config.state.url_file.as_deref()),
    ]
    .into_iter()
    .filter_map(|(key, path)| path.map(|p| (key, p)))
    .collect()
}

/// Warns about every secret file group or others may read; returns how many.
pub fn warn_readable_secrets(config: &Config) -> usize {
    let mut loose = 0;
    for (key, path) in secret_files(config) {
        if let Some(mode) = readable_by_others(path) {
            loose += 1;
            warn!(
                key,
                path = %path.display(),
                mode = format!("{mode:04o}"),
                "a secret file is readable by group or others: chmod 600 it (Kubernetes: defaultMode 0400 on the secret volume)"
            );
        }
    }
    loose
}
