//! What start-up waits for before the C++ sequence can run: `database_config.json` to exist
//! (Debian's redis-server.service has `RuntimeDirectory=redis`, so every Redis restart deletes
//! `/var/run/redis/sonic-db/` until the database service writes it again) and the Redis
//! socket to accept us. While waiting, systemd hears why (`STATUS=`) and that we are alive
//! (`EXTEND_TIMEOUT_USEC=`, so a long wait is not a start timeout). A file that exists but is
//! malformed is still fatal (exit 78, once: the unit does not restart on 78). A socket our
//! privileges cannot open is logged at error with its owner, its mode and what to change.

use crate::dbconfig::{DbConfig, SonicDbs};
use crate::error::Result;
use crate::notify::Notifier;
use crate::sockaccess::{self, Access};
use crate::store::Store;
use std::path::Path;
use std::time::{Duration, Instant};
use tracing::{error, warn};

/// How often a wait that has not changed its reason is logged again.
const LOG_EVERY: Duration = Duration::from_secs(30);

/// Logs a wait when its reason changes, or every `LOG_EVERY` while it stays the same.
#[derive(Default)]
struct WaitLog {
    last: Option<(Instant, &'static str)>,
}

impl WaitLog {
    fn due(&mut self, class: &'static str) -> bool {
        let due = match self.last {
            Some((at, c)) => c != class || at.elapsed() >= LOG_EVERY,
            None => true,
        };
        if due {
            self.last = Some((Instant::now(), class));
        }
        due
    }
}

/// Load and check `database_config.json`, waiting (at most one log line per 30 s) while the
/// file does not exist. Malformed content, a missing DB or a socket path that is not a socket
/// are configuration errors.
pub async fn db_config(path: &Path, notifier: &Notifier) -> Result<SonicDbs> {
    let mut log = WaitLog::default();
    while let Err(e) = std::fs::metadata(path) {
        if e.kind() != std::io::ErrorKind::NotFound {
            break; // DbConfig::load reports it with the file name
        }
        if log.due("missing") {
            warn!(
                "Waiting for {}: {e} (the database service writes it when Redis starts)",
                path.display()
            );
        }
        notifier.waiting(&format!("waiting for {}", path.display()));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cfg = DbConfig::load(path)?;
    let dbs = cfg.sonic_dbs()?;
    for db in [&dbs.appl, &dbs.config, &dbs.state] {
        cfg.check_socket(db)?;
    }
    Ok(dbs)
}

/// Connect to the three databases and load the scripts, waiting for Redis to come up.
pub async fn connect(dbs: &SonicDbs, timeout: Duration, notifier: &Notifier) -> Store {
    let mut delay = Duration::from_millis(100);
    let mut log = WaitLog::default();
    loop {
        let err = match Store::connect(dbs.clone(), timeout).await {
            Ok(mut store) => match store.load_scripts().await {
                Ok(()) => return store,
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        let socket = &dbs.appl.socket;
        let denied = sockaccess::owner_of(socket)
            .filter(|o| sockaccess::decide(*o, &sockaccess::current()) == Access::Denied);
        match denied {
            Some(owner) => {
                if log.due("denied") {
                    let why = sockaccess::explain(
                        socket,
                        owner,
                        &sockaccess::current(),
                        &sockaccess::Names::load(),
                    );
                    error!("Waiting for redis at {}: {err}: {why}", socket.display());
                }
                notifier.waiting(&format!(
                    "waiting for redis at {}: permission denied (mode {:04o}; see journalctl -p err)",
                    socket.display(),
                    owner.mode & 0o7777
                ));
            }
            None => {
                if log.due("down") {
                    warn!("Waiting for redis at {}: {err}", socket.display());
                }
                notifier.waiting(&format!("waiting for redis at {}: {err}", socket.display()));
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_logged_once_per_reason_until_it_changes() {
        let mut log = WaitLog::default();
        assert!(log.due("down"));
        assert!(!log.due("down"));
        assert!(log.due("denied"));
        assert!(!log.due("denied"));
        assert!(log.due("down"));
    }
}
