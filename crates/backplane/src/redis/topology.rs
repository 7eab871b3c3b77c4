//! Which Redis a node talks to: one server named by the URL, or the primary
//! of a Sentinel group (the URL lists the sentinels), followed across
//! failovers.

use fred::{prelude::Config, types::config::ServerConfig};

use super::reply::config_error;
use crate::BackplaneError;

/// The port a sentinel address without one is taken to use.
const SENTINEL_PORT: u16 = 26379;

/// How the Redis URL is read.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum RedisMode {
    /// One server: the URL's host.
    #[default]
    Standalone,
    /// The primary that a Sentinel group names `master`: the URL's host part
    /// lists the sentinels (`host:port,host:port`); its credentials, database
    /// and TLS apply to the primary. After a failover the node reconnects to
    /// the new primary the sentinels name.
    Sentinel {
        /// The name the sentinels monitor the primary under.
        master: String,
        /// The sentinels' own password (`default` user), when they ask for one.
        password: Option<String>,
    },
}

impl std::fmt::Debug for RedisMode {
    // The sentinels' password is never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Standalone => f.write_str("Standalone"),
            Self::Sentinel { master, password } => f
                .debug_struct("Sentinel")
                .field("master", master)
                .field("password", &password.as_ref().map(|_| "<hidden>"))
                .finish(),
        }
    }
}

/// The fred configuration for `url` in `mode`. Errors never echo the URL
/// (it may hold a password).
pub(super) fn fred_config(url: &str, mode: &RedisMode) -> Result<Config, BackplaneError> {
    match mode {
        RedisMode::Standalone => Config::from_url(url).map_err(config_error),
        RedisMode::Sentinel { master, password } => {
            let mut config = sentinel_config(url, master)?;
            if let ServerConfig::Sentinel {
                password: sentinels,
                ..
            } = &mut config.server
            {
                sentinels.clone_from(password);
            }
            Ok(config)
        }
    }
}

fn sentinel_config(url: &str, master: &str) -> Result<Config, BackplaneError> {
    if master.is_empty() {
        return Err(BackplaneError::Config(
            "sentinel mode needs the primary's name".into(),
        ));
    }
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| BackplaneError::Config("the URL has no scheme".into()))?;
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let (credentials, hosts) = match authority.rsplit_once('@') {
        Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
        None => (String::new(), authority),
    };
    let sentinels = hosts
        .split(',')
        .map(sentinel_address)
        .collect::<Result<Vec<_>, _>>()?;
    // The first address stands in for the host so that fred reads the
    // credentials, database and TLS the usual way; then the sentinels replace it.
    let (host, port) = &sentinels[0];
    let mut config = Config::from_url(&format!("{scheme}://{credentials}{host}:{port}{tail}"))
        .map_err(config_error)?;
    config.server = ServerConfig::new_sentinel(sentinels, master);
    Ok(config)
}

/// `host:port` or `host` (port 26379) of one sentinel.
fn sentinel_address(address: &str) -> Result<(String, u16), BackplaneError> {
    let bad = || BackplaneError::Config("each sentinel must be host or host:port".into());
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().map_err(|_| bad())?),
        None => (address, SENTINEL_PORT),
    };
    if host.is_empty() || port == 0 {
        return Err(bad());
    }
    Ok((host.to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sentinel(url: &str) -> Result<Config, BackplaneError> {
        fred_config(
            url,
            &RedisMode::Sentinel {
                master: "main".into(),
                password: Some("sentinel-pw".into()),
            },
        )
    }

    #[test]
    fn sentinel_urls_list_the_sentinels_and_keep_the_primarys_credentials() {
        let config = sentinel("redis://app:pw@10.0.0.1:26380,10.0.0.2,s3:1/2").unwrap();
        let ServerConfig::Sentinel {
            hosts,
            service_name,
            password,
            ..
        } = &config.server
        else {
            panic!("not a sentinel configuration: {:?}", config.server);
        };
        let hosts: Vec<_> = hosts.iter().map(|s| (&*s.host, s.port)).collect();
        assert_eq!(hosts, [("10.0.0.1", 26380), ("10.0.0.2", 26379), ("s3", 1)]);
        assert_eq!(service_name, "main");
        assert_eq!(password.as_deref(), Some("sentinel-pw"));
        assert_eq!(config.username.as_deref(), Some("app"));
        assert_eq!(config.password.as_deref(), Some("pw"));
        assert_eq!(config.database, Some(2));
    }

    #[test]
    fn bad_sentinel_settings_are_refused_without_echoing_the_url() {
        for url in [
            "redis://app:secret@h1:26379,:26379",
            "redis://app:secret@h1:x",
            "app:secret@h1",
        ] {
            let error = sentinel(url).unwrap_err().to_string();
            assert!(!error.contains("secret"), "{error}");
        }
        let nameless = fred_config(
            "redis://h1",
            &RedisMode::Sentinel {
                master: String::new(),
                password: None,
            },
        );
        assert!(nameless.is_err());
    }
}
