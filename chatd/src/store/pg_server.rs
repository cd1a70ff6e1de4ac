//! A throw-away PostgreSQL server for tests: `initdb` in a temp dir, a free port on 127.0.0.1,
//! its socket in the temp dir; stopped and removed on drop. The binaries come from `PATH` or
//! the newest `/usr/lib/postgresql/*/bin` (`scripts/setup.sh --tests` installs Debian's
//! `postgresql`). As root, the server runs as the `postgres` user, which PostgreSQL requires.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TOOLS: [&str; 3] = ["initdb", "postgres", "pg_ctl"];

/// A private PostgreSQL server.
pub(crate) struct PgServer {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// The directory holding `initdb`, `postgres` and `pg_ctl`.
fn bin_dir() -> PathBuf {
    let has_tools = |dir: &Path| TOOLS.iter().all(|t| dir.join(t).is_file());
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(dir) = std::env::split_paths(&path).find(|d| has_tools(d)) {
        return dir;
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            Some((version, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_tools(bin))
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL not found (initdb, postgres, pg_ctl on PATH or in \
             /usr/lib/postgresql/*/bin): run scripts/setup.sh --tests"
        ),
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

impl PgServer {
    /// Initialises a cluster in a new temp dir and starts it; returns once it accepts
    /// connections.
    pub(crate) fn new() -> PgServer {
        let dir = std::env::temp_dir().join(format!("chatd-pg-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let as_postgres = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
        let mut server = PgServer {
            dir,
            bin: bin_dir(),
            port: 0,
            as_postgres,
        };
        if as_postgres {
            let out = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(&server.dir)
                .output()
                .expect("chown");
            assert!(out.status.success(), "chown: {}", text(&out));
        }
        let out = server
            .command("initdb")
            .arg("-D")
            .arg(server.dir.join("data"))
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .expect("initdb");
        assert!(out.status.success(), "initdb failed:\n{}", text(&out));
        // Another process may take the port between choosing and binding it: choose again.
        for _ in 0..5 {
            server.port = free_port();
            match server.try_start() {
                Ok(()) => return server,
                Err(log) if log.contains("already in use") => continue,
                Err(log) => panic!("PostgreSQL did not start:\n{log}"),
            }
        }
        panic!("no free port for PostgreSQL");
    }

    /// A command run as the server's owner.
    fn command(&self, tool: &str) -> Command {
        let program = self.bin.join(tool);
        if self.as_postgres {
            let mut cmd = Command::new("runuser");
            cmd.args(["-u", "postgres", "--"]).arg(program);
            cmd
        } else {
            Command::new(program)
        }
    }

    /// `pg_ctl start -w`: back once the server accepts connections, or its log.
    fn try_start(&self) -> Result<(), String> {
        let log = self.dir.join("log");
        let _ = std::fs::remove_file(&log);
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60",
            self.port,
            self.dir.display()
        );
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "-o", &options, "start"])
            .output()
            .map_err(|e| format!("pg_ctl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            let log = std::fs::read_to_string(&log).unwrap_or_default();
            Err(format!("{}{log}", text(&out)))
        }
    }

    /// Starts the stopped server again, on the same port with the same data.
    pub(crate) fn start(&self) {
        if let Err(log) = self.try_start() {
            panic!("PostgreSQL did not start again:\n{log}");
        }
    }

    /// Stops the server (fast shutdown: sessions are ended, data kept); back once it is down.
    pub(crate) fn stop(&self) {
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "stop"])
            .output()
            .expect("pg_ctl stop");
        assert!(out.status.success(), "pg_ctl stop: {}", text(&out));
    }

    /// Stops and starts the server.
    #[allow(dead_code)]
    pub(crate) fn restart(&self) {
        self.stop();
        self.start();
    }

    /// The URL of database `db` on this server.
    pub(crate) fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name` and returns its URL.
    pub(crate) async fn database(&self, name: &str) -> String {
        let (client, connection) =
            tokio_postgres::connect(&self.url("postgres"), tokio_postgres::NoTls)
                .await
                .expect("connect to PostgreSQL");
        let connection = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("CREATE DATABASE");
        drop(client);
        let _ = connection.await;
        self.url(name)
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
