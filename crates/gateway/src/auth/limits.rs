//! Flood protection and room-name rules: token buckets and their configuration.

use std::{num::NonZeroU32, str::FromStr, time::Duration};

use governor::{
    Quota, RateLimiter,
    clock::{Clock, MonotonicClock},
};

/// A sustained rate with a burst, written `10/s`, `600/m` or `10/s:30` (burst 30).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Sustained events per second.
    pub per_second: f64,
    /// Events allowed at once from a full bucket.
    pub burst: u32,
}

impl Rate {
    /// A rate of `per_second` with a burst of `burst`.
    pub const fn new(per_second: f64, burst: u32) -> Self {
        Self { per_second, burst }
    }

    /// The rate as a governor quota.
    pub fn quota(self) -> Quota {
        let period = Duration::from_secs_f64(1.0 / self.per_second);
        let burst = NonZeroU32::new(self.burst.max(1)).expect("burst is at least 1");
        Quota::with_period(period)
            .expect("a positive rate has a positive period")
            .allow_burst(burst)
    }
}

impl FromStr for Rate {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("{s:?} is not a rate like 10/s, 600/m or 10/s:30");
        let (rate, burst) = match s.split_once(':') {
            Some((rate, burst)) => (rate, Some(burst)),
            None => (s, None),
        };
        let (count, unit) = rate.split_once('/').ok_or_else(bad)?;
        let count: f64 = count.trim().parse().map_err(|_| bad())?;
        let seconds = match unit.trim() {
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        if !(count.is_finite() && count > 0.0) {
            return Err(bad());
        }
        let per_second = count / seconds;
        let burst = match burst {
            Some(b) => b.trim().parse::<u32>().map_err(|_| bad())?,
            None => count.ceil() as u32,
        };
        if burst == 0 || per_second > 1e6 {
            return Err(bad());
        }
        Ok(Self { per_second, burst })
    }
}

/// A token bucket (GCRA): a few words of state, no task, no allocation per check.
/// On the standard library's monotonic clock, which takes no room in the
/// bucket (quanta's takes 40 bytes, and every connection holds three buckets).
pub struct Bucket(
    RateLimiter<governor::state::NotKeyed, governor::state::InMemoryState, MonotonicClock>,
);

impl Bucket {
    /// A full bucket for `rate`.
    pub fn new(rate: Rate) -> Self {
        Self(RateLimiter::direct_with_clock(rate.quota(), MonotonicClock))
    }

    /// Takes one token, or says how long until one is available.
    pub fn take(&self) -> Result<(), Duration> {
        self.0
            .check()
            .map_err(|not_until| not_until.wait_time_from(MonotonicClock.now()))
    }
}

/// The rates of one node.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Sends per connection.
    pub send: Rate,
    /// Sends per user, across their connections on this node.
    pub user_send: Rate,
    /// Joins and leaves per connection.
    pub join: Rate,
    /// Joins and leaves per user, across their connections on this node.
    pub user_join: Rate,
    /// Refused commands a connection may accumulate (refilled one per second)
    /// before it is closed as a flood.
    pub flood_strikes: u32,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            send: Rate::new(10.0, 30),
            user_send: Rate::new(20.0, 60),
            join: Rate::new(10.0, 100),
            user_join: Rate::new(20.0, 200),
            flood_strikes: 20,
        }
    }
}

impl RateLimits {
    /// Effectively unlimited: for load tests and benchmarks.
    pub fn unlimited() -> Self {
        let huge = Rate::new(1e6, 1_000_000);
        Self {
            send: huge,
            user_send: huge,
            join: huge,
            user_join: huge,
            flood_strikes: 1_000_000,
        }
    }

    /// The bucket counting a connection's refused commands.
    pub fn strikes(&self) -> Bucket {
        Bucket::new(Rate::new(1.0, self.flood_strikes))
    }
}

/// Characters a room name may contain besides ASCII letters and digits, at most.
pub const ROOM_NAME_PUNCTUATION: &str = "-_.:@+=";

/// The node's rules for room names, within the protocol's outer bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRules {
    /// Longest name, in bytes (at most the protocol's 128).
    pub max_bytes: usize,
    /// Punctuation allowed besides letters and digits (a subset of `-_.:@+=`).
    pub punctuation: String,
}

impl Default for RoomRules {
    fn default() -> Self {
        Self {
            max_bytes: chorus_protocol::MAX_ROOM_NAME_BYTES,
            punctuation: ROOM_NAME_PUNCTUATION.to_owned(),
        }
    }
}

impl RoomRules {
    /// Why `room` breaks the rules, if it does.
    pub fn check(&self, room: &str) -> Result<(), String> {
        if room.len() > self.max_bytes {
            return Err(format!("room name is longer than {} bytes", self.max_bytes));
        }
        if let Some(c) = room
            .chars()
            .find(|c| !c.is_ascii_alphanumeric() && !self.punctuation.contains(*c))
        {
            return Err(format!(
                "room name may not contain {c:?}; allowed: letters, digits and {}",
                self.punctuation
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        assert_eq!("10/s".parse::<Rate>().unwrap(), Rate::new(10.0, 10));
        assert_eq!("10/s:30".parse::<Rate>().unwrap(), Rate::new(10.0, 30));
        assert_eq!("120/m".parse::<Rate>().unwrap(), Rate::new(2.0, 120));
        for bad in ["", "10", "0/s", "10/d", "x/s", "10/s:0", "-1/s"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }

    #[test]
    fn bucket_allows_the_burst_then_says_when() {
        let bucket = Bucket::new(Rate::new(1.0, 3));
        for _ in 0..3 {
            bucket.take().unwrap();
        }
        let wait = bucket.take().unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
    }

    #[test]
    fn room_rules() {
        let strict = RoomRules {
            max_bytes: 8,
            punctuation: "-".into(),
        };
        assert!(strict.check("team-1").is_ok());
        assert!(strict.check("team.1").is_err());
        assert!(strict.check("much-too-long").is_err());
        assert!(RoomRules::default().check("dm:a+b").is_ok());
    }
}
