//! The `chorus` binary: parse configuration, bind, serve until SIGTERM or ctrl-c.

use std::{net::SocketAddr, process::ExitCode};

use chorus_gateway::{
    Cli, CliCommand, Config, MigrateArgs, healthcheck, serve_with_admin, token_cmd,
};
use clap::Parser;
use tokio::net::{TcpListener, TcpSocket};
use tokio_util::sync::CancellationToken;

/// jemalloc rather than glibc's malloc: under hours of chat traffic glibc's RSS
/// grows by 6-20 MiB an hour while the live heap stays flat (fragmentation in
/// its per-thread arenas); jemalloc returns freed pages and stays flat
/// (docs/benchmarks.md, "Longer runs and the allocator").
#[cfg(unix)]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(CliCommand::Token(args)) = &cli.command {
        return match token_cmd::mint(args) {
            Ok(token) => {
                println!("{token}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("chorus token: {error}");
                ExitCode::from(2)
            }
        };
    }
    if let Some(CliCommand::ApiKey(args)) = &cli.command {
        return match token_cmd::api_key(args) {
            Ok(entry) => {
                print!("{entry}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("chorus api-key: {error}");
                ExitCode::from(2)
            }
        };
    }
    if let Some(CliCommand::Migrate(args)) = &cli.command {
        return migrate(&cli, args);
    }
    if let Some(CliCommand::Healthcheck(args)) = &cli.command {
        let listen = cli.ops.admin_listen.unwrap_or(cli.listen);
        return match healthcheck::probe(args, listen) {
            Ok(status) => {
                println!("{status}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("chorus healthcheck: {error}");
                ExitCode::FAILURE
            }
        };
    }
    init_tracing(&cli.log_format);
    let config = match Config::from_cli(&cli) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("chorus: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("chorus: cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(cli, config))
}

async fn run(cli: Cli, config: Config) -> ExitCode {
    let backlog = cli.ops.listen_backlog;
    let listener = match bind(cli.listen, backlog) {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("chorus: cannot listen on {}: {error}", cli.listen);
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        // Scripts and tests read this line to learn the port (with --listen 127.0.0.1:0).
        Ok(addr) => println!("chorus listening on http://{addr}"),
        Err(error) => {
            eprintln!("chorus: {error}");
            return ExitCode::FAILURE;
        }
    }
    let admin = match cli.ops.admin_listen {
        None => None,
        Some(addr) => match bind(addr, backlog) {
            Ok(admin) => {
                if let Ok(addr) = admin.local_addr() {
                    println!("chorus admin on http://{addr}");
                }
                Some(admin)
            }
            Err(error) => {
                eprintln!("chorus: cannot listen on {addr} (--admin-listen): {error}");
                return ExitCode::FAILURE;
            }
        },
    };
    let shutdown = CancellationToken::new();
    tokio::spawn(cancel_on_signal(shutdown.clone()));
    match serve_with_admin(listener, admin, config, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chorus: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Binds with our own accept-queue length: the standard library's 128 overflows
/// when a few hundred clients reconnect at once (each overflow costs the client
/// a 1 s SYN retry).
fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Drains on the first SIGTERM or ctrl-c; exits at once on the second.
async fn cancel_on_signal(shutdown: CancellationToken) {
    #[cfg(unix)]
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("installing the SIGTERM handler");
    for signals in 0.. {
        #[cfg(unix)]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        if signals == 0 {
            tracing::info!("shutdown requested; draining");
            shutdown.cancel();
        } else {
            tracing::warn!("second shutdown signal; exiting without finishing the drain");
            std::process::exit(130);
        }
    }
}

fn init_tracing(format: &str) {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// `chorus migrate`: the archive's schema up to date, then exit.
fn migrate(cli: &Cli, args: &MigrateArgs) -> ExitCode {
    init_tracing(&cli.log_format);
    let Some(url) = args.database_url.clone() else {
        eprintln!("chorus migrate: give --database-url (or CHORUS_DATABASE_URL)");
        return ExitCode::from(2);
    };
    let settings = chorus_archive::ArchiveSettings {
        pool_size: 1,
        language: cli.archive_language.clone(),
        connect_timeout: std::time::Duration::from_secs(10),
        ca_file: cli.database_ca_file.clone(),
        ..chorus_archive::ArchiveSettings::new(url)
    };
    let archive = match chorus_archive::Archive::new(&settings) {
        Ok(archive) => archive,
        Err(error) => {
            eprintln!("chorus migrate: --database-url: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    match runtime.block_on(archive.migrate()) {
        Ok(()) => {
            println!("the archive's schema is up to date");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("chorus migrate: {error}");
            ExitCode::FAILURE
        }
    }
}
