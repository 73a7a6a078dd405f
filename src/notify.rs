//! systemd's notification protocol through the sd-notify crate: `READY=1` once start-up is
//! done (PortConfigDone written, stale netdevs enumerated), `STATUS=` one human line,
//! `WATCHDOG=1` from the event loop itself (so a wedged loop gets restarted), `STOPPING=1` on
//! shutdown; while start-up waits for Redis, `STATUS=` says so and `EXTEND_TIMEOUT_USEC=`
//! keeps systemd's start timeout from firing. Without `NOTIFY_SOCKET` (supervisord) every call is a no-op.

use sd_notify::NotifyState;
use std::time::Duration;
use tracing::debug;

#[derive(Debug, Clone)]
pub struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
}

impl Notifier {
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
            watchdog: sd_notify::watchdog_enabled(),
        }
    }

    /// How often the loop should tick: half the watchdog period, or every `default`.
    pub fn tick(&self, default: Duration) -> Duration {
        self.watchdog
            .map(|w| (w / 2).min(default))
            .unwrap_or(default)
            .max(Duration::from_millis(10))
    }

    fn send(&self, states: &[NotifyState]) {
        if self.enabled {
            if let Err(e) = sd_notify::notify(states) {
                debug!("sd_notify: {e}");
            }
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// The periodic heartbeat: `WATCHDOG=1` when systemd asked for one, and the status line.
    pub fn alive(&self, status: &str) {
        if self.watchdog.is_some() {
            self.send(&[NotifyState::Watchdog, NotifyState::Status(status)]);
        } else {
            self.send(&[NotifyState::Status(status)]);
        }
    }

    /// Start-up is waiting (for database_config.json or Redis): say why, and push systemd's
    /// start timeout out so a long wait is not a failed start. Sent on every retry (≤ 2 s).
    pub fn waiting(&self, status: &str) {
        const EXTEND: Duration = Duration::from_secs(15);
        self.send(&[
            NotifyState::Status(status),
            NotifyState::ExtendTimeoutUsec(EXTEND.as_micros() as u32),
        ]);
    }

    pub fn stopping(&self) {
        self.send(&[NotifyState::Stopping]);
    }
}
