//! A private redis-server per test, on a free port (`REDIS_SERVER_BIN`, else
//! `/usr/bin/redis-server`; `scripts/setup.sh --tests` installs it).
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct RedisServer {
    child: Child,
    pub url: String,
}

impl RedisServer {
    /// Starts redis-server on a free port and returns once it accepts connections.
    pub fn start() -> RedisServer {
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            match Self::start_on(port) {
                Ok(server) => return server,
                Err(log) => assert!(
                    log.contains("Address already in use"),
                    "redis-server failed:\n{log}"
                ),
            }
        }
        panic!("no free port for redis-server");
    }

    /// Starts redis-server on `port`; its log if it does not get ready.
    pub fn start_on(port: u16) -> Result<RedisServer, String> {
        let bin = std::env::var("REDIS_SERVER_BIN").unwrap_or("/usr/bin/redis-server".into());
        let mut child = Command::new(&bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let mut log = String::new();
        // Until it is ready or exits (stdout closes).
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            log.push_str(&line);
            log.push('\n');
            if line.contains("Ready to accept connections") {
                return Ok(RedisServer {
                    child,
                    url: format!("redis://127.0.0.1:{port}/"),
                });
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(log)
    }

    pub fn port(&self) -> u16 {
        self.url
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in url")
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}
