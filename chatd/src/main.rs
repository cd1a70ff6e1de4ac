//! The `chatd` binary: `chatd --help` lists the settings and the commands.

use std::path::PathBuf;
use std::process::ExitCode;

use chatd::app::{open_store, App};
use chatd::config::{Cli, LogFormat, Settings, StoreKind};
use chatd::store::StoreError;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// The server's flags, or a command instead of serving.
#[derive(Parser)]
#[command(
    name = "chatd",
    version,
    about = "A multi-room chat server on Socket.IO.",
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(flatten)]
    serve: Cli,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Copies a node's rooms and messages from its SQLite database into PostgreSQL.
    ///
    /// Same sequence numbers, ids and times, in one transaction; running it again changes
    /// nothing. Stop the node first.
    MigrateSqliteToPostgres {
        /// The node's data directory, holding chat.db.
        #[arg(long, env = "CHATD_DATA_DIR")]
        data_dir: PathBuf,
        /// The PostgreSQL database: postgres://user:password@host:port/db.
        #[arg(long)]
        to: String,
    },
}

async fn migrate_sqlite_to_postgres(data_dir: PathBuf, to: &str) -> ExitCode {
    if !matches!(to.parse(), Ok(StoreKind::Postgres(_))) {
        eprintln!("chatd: --to must be a postgres:// or postgresql:// URL");
        return ExitCode::from(2);
    }
    let db = data_dir.join("chat.db");
    match chatd::store::migrate_sqlite_to_postgres(&db, to).await {
        Ok(migrated) => {
            println!("from {}:\n{migrated}", db.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            let e = match e {
                StoreError::Database(e) => e,
                other => other.to_string(),
            };
            eprintln!("chatd: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(Command::MigrateSqliteToPostgres { data_dir, to }) = args.command {
        return migrate_sqlite_to_postgres(data_dir, &to).await;
    }
    let settings = match Settings::from_cli(args.serve) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("chatd: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(settings.log_format);
    let store = match open_store(&settings).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let listen = settings.listen;
    let app = match App::build(settings, store).await {
        Ok(app) => app,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!("cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => {
            tracing::info!("chatd listening on http://{addr}/");
            println!("listening on http://{addr}/");
        }
        Err(e) => tracing::warn!("{e}"),
    }
    let shutdown = async {
        engineio::shutdown_signal().await;
        tracing::info!("shutting down");
    };
    match app.serve(listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn flags_serve_and_the_migration_is_a_command_of_its_own() {
        Args::command().debug_assert();
        let args = Args::parse_from(["chatd", "--listen", "127.0.0.1:4000", "--store", "memory"]);
        assert!(args.command.is_none());
        let settings = Settings::from_cli(args.serve).unwrap();
        assert_eq!(settings.listen.port(), 4000);
        assert_eq!(settings.store, StoreKind::Memory);
        let args = Args::parse_from([
            "chatd",
            "migrate-sqlite-to-postgres",
            "--data-dir",
            "/var/lib/chatd",
            "--to",
            "postgres://db/chat",
        ]);
        let Some(Command::MigrateSqliteToPostgres { data_dir, to }) = args.command else {
            panic!("no command");
        };
        assert_eq!(
            (data_dir, to.as_str()),
            ("/var/lib/chatd".into(), "postgres://db/chat")
        );
        // Server flags do not apply to the command.
        assert!(Args::try_parse_from([
            "chatd",
            "--listen",
            "127.0.0.1:4000",
            "migrate-sqlite-to-postgres",
            "--data-dir",
            "d",
            "--to",
            "postgres://db/chat",
        ])
        .is_err());
    }
}
