//! The UI's control events, as Node's `registerFeatureHandlers` maps them onto the target
//! namespace's adapter (so they act on every node of a cluster):
//!
//! | event | arguments | does |
//! | --- | --- | --- |
//! | `emit` | nsp, filter, event, args… | `of(nsp).to(filter).emit(event, args…)` |
//! | `join` | nsp, room, filter | `of(nsp).to(filter).sockets_join(room)` |
//! | `leave` | nsp, room, filter | `of(nsp).to(filter).sockets_leave(room)` |
//! | `_disconnect` | nsp, close, filter | `of(nsp).to(filter).disconnect_sockets(close)` |
//!
//! A missing, `null` or empty filter means the whole namespace. Only namespaces that exist on
//! this node are reached (Node would create one by that name). Malformed events are dropped
//! with a debug log line. In read-only mode none of this is registered.

use std::sync::Weak;

use serde_json::Value;

use crate::args::Args;
use crate::broadcast::BroadcastOperator;
use crate::packet::Data;
use crate::server::ServerInner;
use crate::socket::Socket;
use crate::Namespace;

/// The control events, as registered on each admin socket.
pub(crate) const EVENTS: [&str; 4] = ["emit", "join", "leave", "_disconnect"];

/// A control event, checked.
#[derive(Debug, PartialEq)]
pub(crate) enum Command {
    Emit {
        nsp: String,
        filter: Option<String>,
        event: String,
        args: Args,
    },
    Join {
        nsp: String,
        room: String,
        filter: Option<String>,
    },
    Leave {
        nsp: String,
        room: String,
        filter: Option<String>,
    },
    Disconnect {
        nsp: String,
        close: bool,
        filter: Option<String>,
    },
}

fn string(args: &Args, i: usize, what: &str) -> Result<String, String> {
    match args.json(i) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(format!("argument {i} ({what}) must be a string")),
    }
}

/// A room filter: absent, `null`, `false` and `""` mean none (JavaScript falsy), as in Node.
fn filter(args: &Args, i: usize) -> Result<Option<String>, String> {
    match args.data(i) {
        None | Some(Data::Json(Value::Null | Value::Bool(false))) => Ok(None),
        Some(Data::Json(Value::String(s))) if s.is_empty() => Ok(None),
        Some(Data::Json(Value::String(s))) => Ok(Some(s.clone())),
        _ => Err(format!("argument {i} (room filter) must be a string")),
    }
}

/// Checks a control event's arguments.
pub(crate) fn parse(name: &str, args: Args) -> Result<Command, String> {
    let nsp = string(&args, 0, "namespace")?;
    match name {
        "emit" => {
            let filter = filter(&args, 1)?;
            let event = string(&args, 2, "event")?;
            let rest = Args(args.0.into_iter().skip(3).collect());
            Ok(Command::Emit {
                nsp,
                filter,
                event,
                args: rest,
            })
        }
        "join" | "leave" => {
            let room = string(&args, 1, "room")?;
            let filter = filter(&args, 2)?;
            Ok(if name == "join" {
                Command::Join { nsp, room, filter }
            } else {
                Command::Leave { nsp, room, filter }
            })
        }
        "_disconnect" => {
            // JavaScript truthiness of the `close` argument.
            let close = match args.data(1) {
                Some(Data::Json(v)) => match v {
                    Value::Null => false,
                    Value::Bool(b) => *b,
                    Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                    Value::String(s) => !s.is_empty(),
                    _ => true,
                },
                Some(_) => true,
                None => false,
            };
            let filter = filter(&args, 2)?;
            Ok(Command::Disconnect { nsp, close, filter })
        }
        other => Err(format!("unknown control event {other:?}")),
    }
}

fn select(ns: &Namespace, filter: Option<String>) -> BroadcastOperator {
    match filter {
        Some(room) => ns.to(room),
        None => ns.to(Vec::<String>::new()),
    }
}

/// Carries out a command on the namespace it names, if it exists here.
pub(crate) fn apply(server: &ServerInner, command: Command) {
    let nsp = match &command {
        Command::Emit { nsp, .. }
        | Command::Join { nsp, .. }
        | Command::Leave { nsp, .. }
        | Command::Disconnect { nsp, .. } => nsp.clone(),
    };
    let Some(ns) = server.existing_namespace(&nsp).map(Namespace) else {
        tracing::debug!(%nsp, "admin control event for a namespace that does not exist here");
        return;
    };
    match command {
        Command::Emit {
            filter,
            event,
            args,
            ..
        } => {
            if let Err(err) = select(&ns, filter).emit(&event, args) {
                tracing::debug!(%nsp, %err, "admin emit refused");
            }
        }
        Command::Join { room, filter, .. } => select(&ns, filter).sockets_join(room),
        Command::Leave { room, filter, .. } => select(&ns, filter).sockets_leave(room),
        Command::Disconnect { close, filter, .. } => select(&ns, filter).disconnect_sockets(close),
    }
}

/// Registers the control events on an admin socket.
pub(crate) fn register(socket: &Socket, server: Weak<ServerInner>) {
    for name in EVENTS {
        let server = server.clone();
        socket.on(name, move |_socket, event| {
            let server = server.clone();
            async move {
                match parse(&event.name, event.args) {
                    Ok(command) => {
                        if let Some(server) = server.upgrade() {
                            apply(&server, command);
                        }
                    }
                    Err(err) => {
                        tracing::debug!(event = %event.name, %err, "admin control event dropped")
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Args {
        Args::from_array(Data::Json(v))
    }

    #[test]
    fn parses_the_ui_events() {
        assert_eq!(
            parse("emit", args(json!(["/", null, "hello", 1, {"a": 2}]))),
            Ok(Command::Emit {
                nsp: "/".into(),
                filter: None,
                event: "hello".into(),
                args: args(json!([1, {"a": 2}])),
            })
        );
        assert_eq!(
            parse("emit", args(json!(["/chat", "lobby", "hi"]))),
            Ok(Command::Emit {
                nsp: "/chat".into(),
                filter: Some("lobby".into()),
                event: "hi".into(),
                args: Args::new(),
            })
        );
        assert_eq!(
            parse("join", args(json!(["/", "room1", "AAAAAAAAAAAAAAAAAAAA"]))),
            Ok(Command::Join {
                nsp: "/".into(),
                room: "room1".into(),
                filter: Some("AAAAAAAAAAAAAAAAAAAA".into()),
            })
        );
        assert_eq!(
            parse("leave", args(json!(["/", "room1"]))),
            Ok(Command::Leave {
                nsp: "/".into(),
                room: "room1".into(),
                filter: None,
            })
        );
        assert_eq!(
            parse("_disconnect", args(json!(["/", true, ""]))),
            Ok(Command::Disconnect {
                nsp: "/".into(),
                close: true,
                filter: None,
            })
        );
        assert_eq!(
            parse("_disconnect", args(json!(["/", false, "x"]))),
            Ok(Command::Disconnect {
                nsp: "/".into(),
                close: false,
                filter: Some("x".into()),
            })
        );
    }

    #[test]
    fn refuses_malformed_events() {
        for (name, a) in [
            ("emit", json!([])),
            ("emit", json!([1, null, "x"])),
            ("emit", json!(["/", null])),
            ("emit", json!(["/", 5, "x"])),
            ("join", json!(["/"])),
            ("join", json!(["/", {"room": 1}])),
            ("leave", json!(["/", "r", ["x"]])),
            ("_disconnect", json!([null, true])),
            ("other", json!(["/"])),
        ] {
            assert!(parse(name, args(a.clone())).is_err(), "{name} {a}");
        }
    }
}
