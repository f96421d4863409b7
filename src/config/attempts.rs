//! [`AttemptConfig`]: the numbers of the attempt tracker.

use std::sync::Arc;
use std::time::Duration;

use super::DEFAULT_MAX_TRACKED_KEYS;
use crate::clock::{Clock, SystemClock};

/// Settings of an [`AttemptTracker`](crate::rate_limit::AttemptTracker).
///
/// The defaults: 5 attempts at one user from one client, or 20 at any users from one client,
/// within 15 minutes, and that client is refused (for that user, or for all) for 15 minutes;
/// from the 10th failure for one user within 15 minutes, from any clients, every login of that
/// user waits 250 ms, doubling per further failure, up to 2 s; 20 forged or malformed refresh
/// tokens from one client within 15 minutes refuse its refreshes for 15 minutes.
#[derive(Debug, Clone)]
#[must_use]
pub struct AttemptConfig {
    pub(crate) max_per_user_client: u32,
    pub(crate) max_per_ip: u32,
    pub(crate) max_refresh_per_ip: u32,
    pub(crate) user_delay_after: u32,
    pub(crate) max_user_delay: Duration,
    pub(crate) window: Duration,
    pub(crate) lockout: Duration,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) max_keys: u64,
    pub(crate) ipv6_prefix_len: u8,
}

impl Default for AttemptConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl AttemptConfig {
    /// The defaults.
    pub fn new() -> Self {
        Self {
            max_per_user_client: 5,
            max_per_ip: 20,
            max_refresh_per_ip: 20,
            user_delay_after: 10,
            max_user_delay: Duration::from_secs(2),
            window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
            clock: Arc::new(SystemClock),
            max_keys: DEFAULT_MAX_TRACKED_KEYS,
            ipv6_prefix_len: 64,
        }
    }

    /// Login attempts at one user from one client (one IP address, one IPv6 /64) within the
    /// window, not released by a success, after which that client is refused for that user.
    /// The default is 5; 0 never locks.
    pub fn max_failures_per_user_client(mut self, max: u32) -> Self {
        self.max_per_user_client = max;
        self
    }

    /// Login attempts from one client at any users within the window, not released by a
    /// success, after which that client is refused for every user. The default is 20; 0 never
    /// locks a client. Clients behind one NAT share it: a low value lets one of them lock the
    /// others out.
    pub fn max_failures_per_ip(mut self, max: u32) -> Self {
        self.max_per_ip = max;
        self
    }

    /// Forged or malformed refresh tokens from one client within the window after which its
    /// refreshes are refused (logins are not). The default is 20; 0 never locks.
    pub fn max_refresh_failures_per_ip(mut self, max: u32) -> Self {
        self.max_refresh_per_ip = max;
        self
    }

    /// Failed logins of one user, from any clients, within the window, from which every login
    /// of that user is slowed: the `n`th failure and later ones ask for a delay of 250 ms,
    /// doubling per further failure, up to [`max_user_delay`](Self::max_user_delay). The
    /// default is 10; 0 never slows.
    ///
    /// The delay never refuses anyone, so it cannot lock a user out; a low value lets anyone
    /// make the user's logins slow.
    pub fn user_delay_after(mut self, failures: u32) -> Self {
        self.user_delay_after = failures;
        self
    }

    /// The longest delay [`user_delay_after`](Self::user_delay_after) asks for. The default is
    /// 2 seconds; zero never slows. A long delay holds a connection per attempt and annoys the
    /// real user more than it costs a parallel attacker.
    pub fn max_user_delay(mut self, max: Duration) -> Self {
        self.max_user_delay = max;
        self
    }

    /// The window attempts are counted in, from a key's first attempt. The default is 15
    /// minutes.
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// How long a lock-out lasts. The default is 15 minutes.
    pub fn lockout(mut self, lockout: Duration) -> Self {
        self.lockout = lockout;
        self
    }

    /// The clock. The default is the system clock; tests use
    /// [`ManualClock`](crate::config::ManualClock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How many keys the default in-memory backend tracks at most. The default is 100 000.
    /// Ignored with another backend.
    pub fn max_tracked_keys(mut self, max: u64) -> Self {
        self.max_keys = max;
        self
    }

    /// IPv6 addresses are counted per network of this prefix length. The default is 64;
    /// values over 128 count as 128.
    pub fn ipv6_prefix_len(mut self, prefix_len: u8) -> Self {
        self.ipv6_prefix_len = prefix_len.min(128);
        self
    }
}
