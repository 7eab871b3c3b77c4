//! Which Redis a node talks to: one server named by the URL, the primary of a
//! Sentinel group (the URL lists the sentinels), followed across failovers,
//! or a Redis Cluster (the URL lists seed nodes), followed across failovers
//! and resharding.

use fred::{prelude::Config, types::config::ServerConfig};

use super::reply::config_error;
use crate::BackplaneError;

/// The port a sentinel address without one is taken to use.
const SENTINEL_PORT: u16 = 26379;
/// The port a cluster seed address without one is taken to use.
const REDIS_PORT: u16 = 6379;

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
    /// A Redis Cluster: the URL's host part lists seed nodes
    /// (`host:port,host:port`), from which the node learns the others. Room
    /// channels are sharded (`SSUBSCRIBE`/`SPUBLISH`), so a message crosses
    /// only the shard that owns its room.
    Cluster,
}

impl RedisMode {
    /// Whether rooms are spread over the shards of a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster)
    }
}

impl std::fmt::Debug for RedisMode {
    // The sentinels' password is never shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Standalone => f.write_str("Standalone"),
            Self::Cluster => f.write_str("Cluster"),
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
        RedisMode::Cluster => {
            let (mut config, seeds) = listed_hosts(url, REDIS_PORT, "cluster seed")?;
            if config.database.is_some_and(|db| db != 0) {
                return Err(BackplaneError::Config(
                    "a Redis Cluster has only database 0: leave the database out of the URL".into(),
                ));
            }
            config.database = None;
            config.server = ServerConfig::new_clustered(seeds);
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
    let (mut config, sentinels) = listed_hosts(url, SENTINEL_PORT, "sentinel")?;
    config.server = ServerConfig::new_sentinel(sentinels, master);
    Ok(config)
}

/// Reads a URL whose host part lists several `host[:port]` (`default_port`
/// when left out): the configuration of its credentials, database and TLS,
/// and the hosts. `what` names one host in errors.
fn listed_hosts(
    url: &str,
    default_port: u16,
    what: &str,
) -> Result<(Config, Vec<(String, u16)>), BackplaneError> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| BackplaneError::Config("the URL has no scheme".into()))?;
    let (authority, tail) = rest.split_at(rest.find(['/', '?']).unwrap_or(rest.len()));
    let (credentials, hosts) = match authority.rsplit_once('@') {
        Some((credentials, hosts)) => (format!("{credentials}@"), hosts),
        None => (String::new(), authority),
    };
    let listed = hosts
        .split(',')
        .map(|address| host_address(address, default_port, what))
        .collect::<Result<Vec<_>, _>>()?;
    // The first address stands in for the host so that fred reads the
    // credentials, database and TLS the usual way; the caller then puts the
    // listed hosts in its place.
    let (host, port) = &listed[0];
    let config = Config::from_url(&format!("{scheme}://{credentials}{host}:{port}{tail}"))
        .map_err(config_error)?;
    Ok((config, listed))
}

/// `host:port` or `host` (`default_port`) of one listed host.
fn host_address(
    address: &str,
    default_port: u16,
    what: &str,
) -> Result<(String, u16), BackplaneError> {
    let bad = || BackplaneError::Config(format!("each {what} must be host or host:port"));
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) => (host, port.parse().map_err(|_| bad())?),
        None => (address, default_port),
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
    fn cluster_urls_list_seed_nodes_and_refuse_other_databases() {
        let config =
            fred_config("rediss://app:pw@r1:7000,r2,r3:7002", &RedisMode::Cluster).unwrap();
        let ServerConfig::Clustered { hosts, .. } = &config.server else {
            panic!("not a cluster configuration: {:?}", config.server);
        };
        let hosts: Vec<_> = hosts.iter().map(|s| (&*s.host, s.port)).collect();
        assert_eq!(hosts, [("r1", 7000), ("r2", 6379), ("r3", 7002)]);
        assert_eq!(config.password.as_deref(), Some("pw"));
        assert!(config.tls.is_some());
        assert!(fred_config("redis://r1:7000/0", &RedisMode::Cluster).is_ok());
        let error = fred_config("redis://app:secret@r1:7000/3", &RedisMode::Cluster)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("database 0") && !error.contains("secret"),
            "{error}"
        );
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
