//! Building a [`Config`] from the command line: every flag read once, the
//! backplane and the token rules assembled, then validated.

use chorus_backplane::{HistorySettings, MemoryBus, RedisMode, RedisSettings};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};

use super::{
    ArchiveSettings, BackplaneConfig, Cli, Config, ConfigError, FilesConfig, HistoryConfig,
    Operations, PublishHookConfig, S3Settings, WebhooksConfig, check, random_node_id, valid_id,
};
use crate::auth::{
    ApiKeys, AuthConfig, Minter, Origins, Patterns, RateLimits, RoomPolicy, RoomRules, Verifier,
};

impl Config {
    /// Builds and validates the configuration from the command line.
    pub fn from_cli(cli: &Cli) -> Result<Self, ConfigError> {
        let node_id = cli.node_id.clone().unwrap_or_else(random_node_id);
        let history = HistoryConfig {
            bounds: HistorySettings {
                max_len: cli.history_max_len,
                max_age: cli.history_max_age,
                dedup_window: cli.dedup_window,
                state_ttl: cli.room_state_ttl,
                unarchived_max: 0,
            },
            on_join: cli.history_on_join,
            page_max: cli.history_page_max,
            resume_max: cli.resume_max,
            position_check: cli.position_check_interval,
        };
        let backplane = match &cli.redis_url {
            None => {
                check(
                    cli.redis_mode == "standalone"
                        && cli.redis_sentinel_master.is_none()
                        && cli.redis_wait_replicas == 0,
                    "--redis-mode, --redis-sentinel-master and --redis-wait-replicas need --redis-url",
                )?;
                BackplaneConfig::InProcess(MemoryBus::with_history(history.bounds))
            }
            Some(url) => {
                let settings = RedisSettings {
                    url: url.clone(),
                    tls_ca: cli.redis_tls_ca.clone(),
                    prefix: cli.redis_prefix.clone(),
                    command_timeout: cli.redis_timeout,
                    connect_timeout: cli.redis_timeout,
                    probe_interval: cli.ops.readiness_probe_interval,
                    mode: redis_mode(cli)?,
                    wait_replicas: cli.redis_wait_replicas,
                };
                check(
                    settings.wait_replicas <= MAX_WAIT_REPLICAS,
                    "--redis-wait-replicas must be at most 16",
                )?;
                settings
                    .validate()
                    .map_err(|e| ConfigError(format!("--redis-url: {e}")))?;
                BackplaneConfig::Redis(settings)
            }
        };
        let config = Self {
            node_id,
            backplane,
            ping_interval: cli.ping_interval,
            pong_timeout: cli.pong_timeout,
            max_frame_bytes: cli.max_frame_bytes,
            max_body_bytes: cli.max_body_bytes,
            max_rooms: cli.max_rooms,
            max_connections: cli.max_connections,
            outbox_bytes: cli.outbox_bytes,
            write_timeout: cli.write_timeout,
            unsubscribe_delay: cli.unsubscribe_delay,
            shutdown_timeout: cli.shutdown_timeout,
            auth: auth_from_cli(cli)?,
            max_connections_per_user: cli.max_connections_per_user,
            rate_limits: RateLimits {
                send: cli.send_rate,
                user_send: cli.user_send_rate,
                join: cli.join_rate,
                user_join: cli.user_join_rate,
                flood_strikes: cli.flood_strikes,
            },
            room_rules: RoomRules {
                max_bytes: cli.max_room_name_bytes,
                punctuation: cli.room_name_punctuation.clone(),
            },
            history,
            ops: Operations::from_args(&cli.ops),
            api_keys: match &cli.api_keys_file {
                None => ApiKeys::default(),
                Some(path) => ApiKeys::load(path, cli.api_key_rate)
                    .map_err(|e| ConfigError(format!("--api-keys-file: {e}")))?,
            },
            files: FilesConfig {
                dir: cli.files_dir.clone(),
                s3: cli.s3_bucket.clone().map(|bucket| S3Settings {
                    bucket,
                    endpoint: cli.s3_endpoint.clone(),
                    region: cli.s3_region.clone(),
                    access_key_id: cli.s3_access_key_id.clone(),
                    secret_access_key: cli.s3_secret_access_key.clone(),
                }),
                max_upload_bytes: cli.max_upload_bytes,
                upload_rate: cli.upload_rate,
                unattached_ttl: cli.unattached_file_ttl,
                max_concurrent_uploads: cli.max_concurrent_uploads,
            },
            archive: match &cli.database_url {
                None => None,
                Some(url) => {
                    check(
                        cli.archive_backlog_max >= 1,
                        "--archive-backlog-max must be at least 1",
                    )?;
                    let retention = match &cli.archive_retention {
                        None => Vec::new(),
                        Some(rules) => chorus_archive::RetentionRule::parse_list(rules)
                            .map_err(|e| ConfigError(format!("--archive-retention: {e}")))?,
                    };
                    check(
                        cli.archive_retention_interval >= std::time::Duration::from_secs(1),
                        "--archive-retention-interval must be at least 1s",
                    )?;
                    let settings = ArchiveSettings {
                        pool_size: cli.archive_pool_size.max(1),
                        language: cli.archive_language.clone(),
                        unarchived_max: cli.archive_backlog_max,
                        retention,
                        retention_every: cli.archive_retention_interval,
                        ca_file: cli.database_ca_file.clone(),
                        ..ArchiveSettings::new(url.clone())
                    };
                    // The URL is checked now (nothing connects yet): a bad one stops the start.
                    chorus_archive::Archive::new(&settings)
                        .map_err(|e| ConfigError(format!("--database-url: {e}")))?;
                    Some(settings)
                }
            },
            webhooks: match &cli.webhooks_file {
                None => None,
                Some(path) => Some(
                    WebhooksConfig::load(path, cli.webhook_give_up_after, cli.webhook_timeout)
                        .map_err(|e| ConfigError(format!("--webhooks-file: {e}")))?,
                ),
            },
            publish_hook: match &cli.publish_hook_url {
                None => None,
                Some(url) => Some(
                    PublishHookConfig::new(
                        url,
                        cli.publish_hook_timeout,
                        &cli.publish_hook_failure,
                        cli.publish_hook_secret.as_deref(),
                    )
                    .map_err(ConfigError)?,
                ),
            },
        };
        if let BackplaneConfig::Redis(settings) = &config.backplane {
            check(
                valid_id(&settings.prefix),
                "--redis-prefix must be 1-64 letters, digits, - _ .",
            )?;
        }
        config.validate()?;
        Ok(config)
    }
}

/// Most replicas a send may wait for.
const MAX_WAIT_REPLICAS: u32 = 16;

/// The Redis topology from `--redis-mode` and `--redis-sentinel-master`.
fn redis_mode(cli: &Cli) -> Result<RedisMode, ConfigError> {
    match (cli.redis_mode.as_str(), &cli.redis_sentinel_master) {
        ("sentinel", Some(master)) => Ok(RedisMode::Sentinel {
            master: master.clone(),
            password: cli.redis_sentinel_password.clone(),
        }),
        ("sentinel", None) => Err(ConfigError(
            "--redis-mode sentinel needs --redis-sentinel-master".into(),
        )),
        (_, Some(_)) => Err(ConfigError(
            "--redis-sentinel-master needs --redis-mode sentinel".into(),
        )),
        ("cluster", None) => Ok(RedisMode::Cluster),
        (_, None) => Ok(RedisMode::Standalone),
    }
}

/// Builds the token rules from the JWT flags.
fn auth_from_cli(cli: &Cli) -> Result<AuthConfig, ConfigError> {
    let err = |m: String| ConfigError(m);
    let explicit_algorithm = cli.jwt.algorithm().map_err(err)?;
    let keyed = cli.jwt.jwt_secret.is_some() || cli.jwt_public_key.is_some();
    let dev_login = match cli.dev_login.as_str() {
        "on" => true,
        "off" => false,
        _ => !keyed && cli.redis_url.is_none(),
    };
    let mut auth = if let Some(secret) = &cli.jwt.jwt_secret {
        check(
            secret.len() >= 32,
            "--jwt-secret must be at least 32 bytes (use a random string)",
        )?;
        check(
            matches!(explicit_algorithm, None | Some(Algorithm::HS256)),
            "--jwt-secret goes with --jwt-algorithm HS256",
        )?;
        let algorithm = Algorithm::HS256;
        AuthConfig {
            verifier: Verifier::new(
                algorithm,
                DecodingKey::from_secret(secret.as_bytes()),
                cli.jwt.jwt_issuer.as_deref(),
                cli.jwt.jwt_audience.as_deref(),
                cli.jwt_leeway,
            ),
            minter: Some(Minter::new(
                algorithm,
                EncodingKey::from_secret(secret.as_bytes()),
                cli.jwt.jwt_issuer.clone(),
                cli.jwt.jwt_audience.clone(),
            )),
            ..AuthConfig::shared_secret(secret.as_bytes())
        }
    } else if let Some(path) = &cli.jwt_public_key {
        let pem = std::fs::read(path)
            .map_err(|e| err(format!("--jwt-public-key {}: {e}", path.display())))?;
        let (algorithm, key) = public_key(&pem, explicit_algorithm)
            .map_err(|e| err(format!("--jwt-public-key {}: {e}", path.display())))?;
        check(
            !dev_login,
            "--dev-login needs --jwt-secret: it signs guest tokens",
        )?;
        AuthConfig {
            verifier: Verifier::new(
                algorithm,
                key,
                cli.jwt.jwt_issuer.as_deref(),
                cli.jwt.jwt_audience.as_deref(),
                cli.jwt_leeway,
            ),
            minter: None,
            ..AuthConfig::development()
        }
    } else if cli.redis_url.is_some() {
        return Err(err(
            "a cluster (--redis-url) needs a key every node shares: --jwt-secret or --jwt-public-key"
                .into(),
        ));
    } else {
        AuthConfig::development()
    };
    auth.dev_login = dev_login;
    auth.auth_timeout = cli.auth_timeout;
    auth.origins =
        Origins::parse(&cli.allowed_origins).map_err(|e| err(format!("--allowed-origins: {e}")))?;
    auth.policy = RoomPolicy {
        public: Patterns::parse(&cli.public_rooms)
            .map_err(|e| err(format!("--public-rooms: {e}")))?,
        read_only: Patterns::parse(&cli.read_only_rooms)
            .map_err(|e| err(format!("--read-only-rooms: {e}")))?,
    };
    Ok(auth)
}

/// Reads a PEM public key as RSA or EC, checking it against an explicit algorithm.
fn public_key(pem: &[u8], explicit: Option<Algorithm>) -> Result<(Algorithm, DecodingKey), String> {
    match explicit {
        Some(Algorithm::HS256) => Err("HS256 needs --jwt-secret, not a public key".into()),
        Some(Algorithm::ES256) => DecodingKey::from_ec_pem(pem)
            .map(|k| (Algorithm::ES256, k))
            .map_err(|e| format!("not an EC public key: {e}")),
        Some(_) => DecodingKey::from_rsa_pem(pem)
            .map(|k| (Algorithm::RS256, k))
            .map_err(|e| format!("not an RSA public key: {e}")),
        None => DecodingKey::from_rsa_pem(pem)
            .map(|k| (Algorithm::RS256, k))
            .or_else(|_| DecodingKey::from_ec_pem(pem).map(|k| (Algorithm::ES256, k)))
            .map_err(|_| "not a PEM RSA or EC (P-256) public key".into()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;

    fn parse(args: &[&str]) -> Result<Config, ConfigError> {
        let cli =
            Cli::try_parse_from(std::iter::once("chorus").chain(args.iter().copied())).unwrap();
        Config::from_cli(&cli)
    }

    #[test]
    fn defaults_are_a_single_in_process_node() {
        let config = parse(&[]).unwrap();
        assert!(matches!(config.backplane, BackplaneConfig::InProcess(_)));
        assert_eq!(config.ping_interval, Duration::from_secs(25));
        assert!(config.node_id.starts_with("node-"));
    }

    #[test]
    fn sentinel_flags_name_the_sentinels_and_the_primary() {
        let config = parse(&[
            "--redis-url",
            "redis://app:pw@10.0.0.1:26379,10.0.0.2:26379",
            "--redis-mode",
            "sentinel",
            "--redis-sentinel-master",
            "main",
            "--redis-wait-replicas",
            "1",
            "--jwt-secret",
            "0123456789abcdef0123456789abcdef",
        ])
        .unwrap();
        let BackplaneConfig::Redis(settings) = &config.backplane else {
            panic!("not a Redis backplane");
        };
        assert_eq!(
            settings.mode,
            RedisMode::Sentinel {
                master: "main".into(),
                password: None
            }
        );
        assert_eq!(settings.wait_replicas, 1);
    }

    #[test]
    fn cluster_mode_lists_seed_nodes() {
        let config = parse(&[
            "--redis-url",
            "redis://10.0.0.1:7000,10.0.0.2:7000",
            "--redis-mode",
            "cluster",
            "--jwt-secret",
            "0123456789abcdef0123456789abcdef",
        ])
        .unwrap();
        let BackplaneConfig::Redis(settings) = &config.backplane else {
            panic!("not a Redis backplane");
        };
        assert_eq!(settings.mode, RedisMode::Cluster);
    }

    #[test]
    fn flag_defaults_match_config_default() {
        let from_flags = parse(&[]).unwrap();
        let default = Config::default();
        let settings = |c: &Config| {
            (
                c.ping_interval,
                c.pong_timeout,
                c.max_frame_bytes,
                c.max_body_bytes,
                c.max_rooms,
                c.max_connections,
                c.outbox_bytes,
                c.write_timeout,
                c.unsubscribe_delay,
                c.shutdown_timeout,
            )
        };
        let limits = |c: &Config| {
            (
                c.max_connections_per_user,
                c.rate_limits,
                c.room_rules.clone(),
                c.auth.auth_timeout,
                c.auth.dev_login,
                c.auth.origins.clone(),
            )
        };
        assert_eq!(settings(&from_flags), settings(&default));
        assert_eq!(limits(&from_flags), limits(&default));
    }

    #[test]
    fn rejects_bad_values_with_the_flag_name() {
        for (args, flag) in [
            (&["--node-id", "has space"][..], "--node-id"),
            (&["--redis-url", "ftp://nope"][..], "--redis-url"),
            (&["--max-body-bytes", "70000"][..], "--max-body-bytes"),
            (&["--outbox-bytes", "10"][..], "--outbox-bytes"),
            (&["--ping-interval", "0s"][..], "--ping-interval"),
            (&["--jwt-secret", "short"][..], "--jwt-secret"),
            (&["--redis-url", "redis://127.0.0.1:1"][..], "--redis-url"),
            (&["--allowed-origins", "evil.com"][..], "--allowed-origins"),
            (
                &["--room-name-punctuation", "/"][..],
                "--room-name-punctuation",
            ),
            (&["--jwt-algorithm", "none"][..], "--jwt-algorithm"),
            (
                &["--redis-url", "redis://h:26379", "--redis-mode", "sentinel"][..],
                "--redis-sentinel-master",
            ),
            (
                &["--redis-url", "redis://h", "--redis-sentinel-master", "m"][..],
                "--redis-mode sentinel",
            ),
            (
                &["--redis-url", "redis://h", "--redis-wait-replicas", "17"][..],
                "--redis-wait-replicas",
            ),
            (&["--redis-wait-replicas", "1"][..], "need --redis-url"),
            (&["--redis-mode", "cluster"][..], "need --redis-url"),
            (
                &["--redis-url", "redis://h:7000/2", "--redis-mode", "cluster"][..],
                "--redis-url",
            ),
        ] {
            let err = parse(args).unwrap_err().to_string();
            assert!(err.contains(flag), "{args:?}: {err}");
        }
    }
}
