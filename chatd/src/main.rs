//! The `chatd` binary: `chatd --help` lists the settings and the commands.

use std::path::PathBuf;
use std::process::ExitCode;

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;

use chatd::accounts::Accounts;
use chatd::app::{open_store, App};
use chatd::config::{Cli, LogFormat, Settings, StoreKind};
use chatd::store::{AccountStore, PostgresStore, SqliteStore, Store, StoreError};
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
    /// Accounts: add one (the first administrator), set a password, list them.
    User {
        #[command(subcommand)]
        command: UserCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Invite codes, for `--registration invite`.
    Invite {
        #[command(subcommand)]
        command: InviteCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// The database of the accounts commands: the server's settings.
#[derive(clap::Args)]
struct StoreArgs {
    /// The server's TOML file (its `data-dir` and `store` apply).
    #[arg(long, env = "CHATD_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// The server's data directory (SQLite).
    #[arg(long, env = "CHATD_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    /// `sqlite` or the server's `postgres://` URL.
    #[arg(long, env = "CHATD_STORE", global = true)]
    store: Option<StoreKind>,
}

#[derive(Subcommand)]
enum UserCommand {
    /// Adds an account; its password is read from standard input (one line).
    Add {
        /// The account name.
        name: String,
        /// A server-wide administrator.
        #[arg(long)]
        admin: bool,
    },
    /// Sets an account's password (read from standard input) and ends all its sessions.
    Passwd {
        /// The account name.
        name: String,
    },
    /// Lists the accounts: name, role, creation time (ms since the epoch).
    List,
}

#[derive(Subcommand)]
enum InviteCommand {
    /// Makes an invite code, printed once.
    Create {
        /// Hours the code is valid.
        #[arg(long, default_value_t = chatd::accounts::INVITE_HOURS)]
        hours: u64,
    },
}

/// Opens the accounts of the server's store (not the memory store: it keeps nothing).
async fn open_accounts(args: StoreArgs) -> Result<(Accounts, Arc<dyn Store>), String> {
    let cli = Cli {
        config: args.config,
        data_dir: args.data_dir,
        store: args.store,
        ..Cli::default()
    };
    let settings = Settings::from_cli(cli)?;
    let (accounts, store): (Arc<dyn AccountStore>, Arc<dyn Store>) = match &settings.store {
        StoreKind::Memory => return Err("the memory store keeps no accounts".into()),
        StoreKind::Postgres(url) => {
            let store = Arc::new(PostgresStore::open(url).await.map_err(|e| e.to_string())?);
            (store.clone(), store)
        }
        StoreKind::Sqlite => {
            std::fs::create_dir_all(&settings.data_dir)
                .map_err(|e| format!("cannot create {}: {e}", settings.data_dir.display()))?;
            let path = settings.data_dir.join("chat.db");
            let store = Arc::new(
                SqliteStore::open(&path)
                    .map_err(|e| format!("cannot open {}: {e}", path.display()))?,
            );
            (store.clone(), store)
        }
    };
    Ok((Accounts::new(accounts, &settings), store))
}

/// A password from standard input: its first line.
fn read_password() -> Result<String, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password (shown as typed): ");
        let _ = std::io::stderr().flush();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password: {e}"))?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// A command on the accounts of the server's store.
enum AccountsCommand {
    User(UserCommand),
    Invite(InviteCommand),
}

async fn accounts_command(store_args: StoreArgs, command: AccountsCommand) -> ExitCode {
    let (accounts, store) = match open_accounts(store_args).await {
        Ok(opened) => opened,
        Err(e) => {
            eprintln!("chatd: {e}");
            return ExitCode::FAILURE;
        }
    };
    let done = match command {
        AccountsCommand::User(c) => user_command(accounts, c).await,
        AccountsCommand::Invite(c) => invite_command(accounts, c).await,
    };
    store.close().await;
    match done {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chatd: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn user_command(accounts: Accounts, command: UserCommand) -> Result<String, String> {
    {
        match command {
            UserCommand::Add { name, admin } => {
                let password = read_password()?;
                let account = accounts
                    .create(&name, &password, admin, None)
                    .await
                    .map_err(|e| e.message)?;
                let role = if account.admin {
                    "administrator"
                } else {
                    "user"
                };
                Ok(format!("added {} ({role})", account.name))
            }
            UserCommand::Passwd { name } => {
                let password = read_password()?;
                let account = accounts
                    .reset_password(&name, &password)
                    .await
                    .map_err(|e| e.message)?;
                Ok(format!(
                    "password of {} changed; its sessions ended",
                    account.name
                ))
            }
            UserCommand::List => {
                let list = accounts.list().await.map_err(|e| e.message)?;
                Ok(list
                    .iter()
                    .map(|a| {
                        let role = if a.admin { "admin" } else { "user" };
                        format!("{}\t{role}\t{}", a.name, a.created_at)
                    })
                    .collect::<Vec<_>>()
                    .join("\n"))
            }
        }
    }
}

async fn invite_command(accounts: Accounts, command: InviteCommand) -> Result<String, String> {
    {
        let InviteCommand::Create { hours } = command;
        let (code, expires_at) = accounts.invite("cli", hours).await.map_err(|e| e.message)?;
        Ok(format!(
            "{code}\nexpires at {expires_at} (ms since the epoch)"
        ))
    }
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
    match args.command {
        Some(Command::MigrateSqliteToPostgres { data_dir, to }) => {
            return migrate_sqlite_to_postgres(data_dir, &to).await;
        }
        Some(Command::User { command, store }) => {
            return accounts_command(store, AccountsCommand::User(command)).await;
        }
        Some(Command::Invite { command, store }) => {
            return accounts_command(store, AccountsCommand::Invite(command)).await;
        }
        None => {}
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
    let admin_listen = settings.admin_listen.0;
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
    let admin = match admin_listen {
        Some(addr) => match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => Some(l),
            Err(e) => {
                tracing::error!("cannot listen on {addr} (--admin-listen): {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    // The admin address first: whoever waits for the second line has both.
    if let Some(Ok(addr)) = admin.as_ref().map(|l| l.local_addr()) {
        tracing::info!("chatd admin listener on http://{addr}/");
        println!("admin listening on http://{addr}/");
    }
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
    match app.serve(listener, admin, shutdown).await {
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
        let args = Args::parse_from(["chatd", "user", "add", "root", "--admin", "--data-dir", "d"]);
        let Some(Command::User {
            command: UserCommand::Add { name, admin },
            store,
        }) = args.command
        else {
            panic!("no user command");
        };
        assert_eq!((name.as_str(), admin), ("root", true));
        assert_eq!(store.data_dir, Some("d".into()));
        assert!(Args::try_parse_from(["chatd", "user", "list", "--store", "nope"]).is_err());
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
