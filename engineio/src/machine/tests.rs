//! Every transition and every timer of the machine, without sockets or clocks.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use super::*;
use crate::config::SlowConsumerPolicy;
use crate::packet::{DecodeError, Message, Packet};

const I: Duration = Duration::from_secs(25);
const T: Duration = Duration::from_secs(20);
const GRACE: Duration = Duration::from_secs(2);
const LIMIT: usize = 1 << 20;
const DROP: SlowConsumerPolicy = SlowConsumerPolicy::DropMessage;

fn machine(protocol: Protocol, transport: TransportKind, now: Instant) -> Machine {
    Machine::new(protocol, transport, now, I, T)
}

fn polling(now: Instant) -> Machine {
    machine(Protocol::V4, TransportKind::Polling, now)
}

fn websocket(now: Instant) -> Machine {
    machine(Protocol::V4, TransportKind::Websocket, now)
}

fn text(s: &str) -> Frame {
    Frame::from(Message::text(s))
}

fn push(s: &mut Machine, f: Frame) -> Push {
    s.push([f], LIMIT, DROP)
}

fn get(s: &mut Machine, now: Instant) -> Option<Vec<Frame>> {
    s.begin_get(now).unwrap();
    let mut out = Vec::new();
    let answered = s.poll_get(&mut out);
    s.end_get(now, answered);
    answered.then_some(out)
}

fn closed(reason: CloseReason) -> Closed {
    Closed {
        reason,
        linger_until: None,
    }
}

// ---- opening ------------------------------------------------------------------------------

#[test]
fn a_new_session_arms_its_first_timer_one_interval_later() {
    let now = Instant::now();
    for protocol in [Protocol::V3, Protocol::V4] {
        let s = machine(protocol, TransportKind::Polling, now);
        assert_eq!(s.armed(), Some(now + I));
        assert_eq!(s.protocol(), protocol);
        assert_eq!(s.transport(), TransportKind::Polling);
        assert_eq!(s.closed(), None);
    }
}

// ---- packets from the client ----------------------------------------------------------------

#[test]
fn packets_map_to_the_same_effects_on_both_transports() {
    let now = Instant::now();
    for mut s in [polling(now), websocket(now)] {
        let m = Message::text("hi");
        assert_eq!(
            s.on_packet(now, Ok(Packet::Message(m.clone()))),
            Received::Deliver(m)
        );
        for ignored in [Packet::Open, Packet::Upgrade, Packet::Noop, Packet::Pong] {
            assert_eq!(s.on_packet(now, Ok(ignored)), Received::Nothing);
        }
        assert_eq!(s.closed(), None);
    }
}

#[test]
fn close_packet_closes_with_transport_close() {
    let now = Instant::now();
    let mut s = polling(now);
    assert_eq!(
        s.on_packet(now, Ok(Packet::Close)),
        Received::Closed(closed(CloseReason::TransportClose))
    );
    // After the close nothing more is delivered.
    let m = Packet::Message(Message::text("late"));
    assert_eq!(s.on_packet(now, Ok(m)), Received::Nothing);
}

#[test]
fn undecodable_packet_closes_with_parse_error() {
    let now = Instant::now();
    let mut s = websocket(now);
    assert_eq!(
        s.on_packet(now, Err(DecodeError::Empty)),
        Received::Closed(closed(CloseReason::ParseError))
    );
    assert_eq!(s.closed(), Some(CloseReason::ParseError));
}

#[test]
fn a_v4_client_ping_is_a_transport_error() {
    let now = Instant::now();
    let mut s = polling(now);
    assert_eq!(
        s.on_packet(now, Ok(Packet::Ping { probe: false })),
        Received::Closed(closed(CloseReason::TransportError))
    );
}

#[test]
fn a_v3_client_ping_is_answered_and_moves_the_deadline() {
    let now = Instant::now();
    let mut s = machine(Protocol::V3, TransportKind::Polling, now);
    let ping = now + I;
    assert_eq!(
        s.on_packet(ping, Ok(Packet::Ping { probe: false })),
        Received::Wake
    );
    assert_eq!(
        s.on_packet(ping, Ok(Packet::Ping { probe: true })),
        Received::Wake
    );
    assert_eq!(
        get(&mut s, ping),
        Some(vec![Frame::PONG, Frame::PONG_PROBE])
    );
    assert!(!s.expired(now + I + T));
    assert!(s.expired(ping + I + T));
    // A pong from a v3 client changes nothing.
    assert_eq!(s.on_packet(ping, Ok(Packet::Pong)), Received::Nothing);
}

#[test]
fn a_packet_past_the_pong_deadline_closes_with_ping_timeout() {
    let now = Instant::now();
    let mut s = websocket(now);
    let m = Packet::Message(Message::text("late"));
    assert_eq!(
        s.on_packet(now + I + T, Ok(m)),
        Received::Closed(closed(CloseReason::PingTimeout))
    );
}

#[test]
fn the_pong_rearms_the_timer_for_the_next_ping() {
    let now = Instant::now();
    let mut s = websocket(now);
    assert_eq!(s.on_timer(now + I, now + I), Tick::Ping(now + I + T));
    let pong = now + I + Duration::from_secs(1);
    assert_eq!(
        s.on_packet(pong, Ok(Packet::Pong)),
        Received::Rearm(pong + I)
    );
    assert_eq!(s.armed(), Some(pong + I));
    // The entry for the old pong deadline is stale now.
    assert_eq!(s.on_timer(now + I + T, now + I + T), Tick::Stale);
    // A second pong answers nothing.
    assert_eq!(s.on_packet(pong, Ok(Packet::Pong)), Received::Nothing);
}

// ---- polling requests -------------------------------------------------------------------------

#[test]
fn get_returns_everything_buffered_or_waits() {
    let now = Instant::now();
    let mut s = polling(now);
    push(&mut s, text("a"));
    push(&mut s, text("b"));
    assert_eq!(get(&mut s, now), Some(vec![text("a"), text("b")]));
    s.begin_get(now).unwrap();
    let mut out = Vec::new();
    assert!(!s.poll_get(&mut out));
    push(&mut s, text("c"));
    assert!(s.poll_get(&mut out));
    assert_eq!(s.end_get(now, true), GetEnd::Done);
    assert_eq!(out, vec![text("c")]);
}

#[test]
fn overlapping_get_closes_with_transport_error() {
    let now = Instant::now();
    let mut s = polling(now);
    s.begin_get(now).unwrap();
    assert_eq!(
        s.begin_get(now),
        Err(Refusal::Overlap(closed(CloseReason::TransportError)))
    );
}

#[test]
fn overlapping_post_closes_with_transport_error() {
    let now = Instant::now();
    let mut s = polling(now);
    s.begin_post(now, false).unwrap();
    assert_eq!(
        s.begin_post(now, false),
        Err(Refusal::Overlap(closed(CloseReason::TransportError)))
    );
    assert_eq!(s.begin_post(now, false), Err(Refusal::Unknown));
}

#[test]
fn post_after_post_is_fine() {
    let now = Instant::now();
    let mut s = polling(now);
    s.begin_post(now, false).unwrap();
    s.end_post();
    s.begin_post(now, false).unwrap();
}

#[test]
fn a_binary_post_is_refused_on_v4_only() {
    let now = Instant::now();
    let mut s = polling(now);
    assert_eq!(
        s.begin_post(now, true),
        Err(Refusal::Binary(closed(CloseReason::TransportError)))
    );
    let mut v3 = machine(Protocol::V3, TransportKind::Polling, now);
    assert_eq!(v3.begin_post(now, true), Ok(()));
}

#[test]
fn an_empty_post_is_a_parse_error() {
    let now = Instant::now();
    let mut s = polling(now);
    assert_eq!(s.empty_post(now), Some(closed(CloseReason::ParseError)));
    assert_eq!(s.empty_post(now), None);
}

#[test]
fn requests_past_the_deadline_close_with_ping_timeout() {
    let now = Instant::now();
    let late = now + I + T;
    let expired = Err(Refusal::Expired(closed(CloseReason::PingTimeout)));
    let mut s = polling(now);
    assert_eq!(s.begin_get(late), expired);
    let mut s = polling(now);
    assert_eq!(s.begin_post(late, false), expired);
    let mut s = polling(now);
    assert_eq!(s.alive(late), Err(Some(closed(CloseReason::PingTimeout))));
    assert_eq!(s.alive(late), Err(None));
}

#[test]
fn polling_requests_on_a_websocket_session_are_refused() {
    let now = Instant::now();
    let mut s = websocket(now);
    assert_eq!(s.begin_get(now), Err(Refusal::Mismatch));
    assert_eq!(s.begin_post(now, false), Err(Refusal::Mismatch));
    assert_eq!(s.closed(), None);
}

#[test]
fn a_get_dropped_unanswered_closes_with_transport_close() {
    let now = Instant::now();
    let mut s = polling(now);
    s.begin_get(now).unwrap();
    assert_eq!(
        s.end_get(now, false),
        GetEnd::Closed(closed(CloseReason::TransportClose))
    );
    // Dropped again once closed: nothing more to do.
    s.begin_get(now).unwrap();
    assert_eq!(s.end_get(now, false), GetEnd::Done);
}

// ---- the outgoing queue -----------------------------------------------------------------------

#[test]
fn queue_limit_and_volatile() {
    let now = Instant::now();
    let mut s = polling(now);
    assert_eq!(s.push_volatile([text("v")]), Push::Dropped);
    assert_eq!(s.push([text("a")], 30, DROP), Push::Queued { wake: true });
    assert_eq!(s.push([text("b")], 30, DROP), Push::Full);
    s.begin_get(now).unwrap();
    let mut out = Vec::new();
    s.poll_get(&mut out);
    assert_eq!(s.push_volatile([text("v")]), Push::Queued { wake: true });
    s.close(now, CloseReason::ForcedClose, GRACE);
    assert_eq!(push(&mut s, text("late")), Push::Closed);
    assert_eq!(s.push_volatile([text("late")]), Push::Closed);
}

#[test]
fn a_full_queue_closes_a_slow_consumer_under_the_disconnect_policy() {
    let now = Instant::now();
    let mut s = websocket(now);
    let disconnect = SlowConsumerPolicy::Disconnect;
    assert_eq!(
        s.push([text("a")], 30, disconnect),
        Push::Queued { wake: true }
    );
    assert_eq!(s.push([text("b")], 30, disconnect), Push::Disconnected);
    assert_eq!(s.closed(), Some(Closed::SLOW_CONSUMER.reason));
    // A failure: what was queued is dropped, and nothing more is taken.
    let mut batch = VecDeque::new();
    assert!(s.take_frames(&mut batch));
    assert!(batch.is_empty());
    assert_eq!(s.push([text("c")], 30, disconnect), Push::Closed);
}

#[test]
fn frames_being_written_count_against_the_limit() {
    let now = Instant::now();
    let mut s = websocket(now);
    assert_eq!(s.push([text("a")], 30, DROP), Push::Queued { wake: true });
    let mut batch = VecDeque::new();
    assert!(!s.take_frames(&mut batch));
    // The writer holds "a" (18 bytes counted): the queue is empty, the limit is not.
    assert_eq!(s.pending(), 18);
    assert_eq!(s.push([text("bbbb")], 30, DROP), Push::Full);
    assert_eq!(s.push_volatile([text("v")]), Push::Dropped);
    s.written();
    assert_eq!(s.pending(), 0);
    assert_eq!(
        s.push([text("bbbb")], 30, DROP),
        Push::Queued { wake: true }
    );
    // An oversized unit goes out alone, never next to anything pending.
    s.take_frames(&mut batch);
    let big = Frame::from(Message::binary(vec![0u8; 100]));
    assert_eq!(s.push([big.clone()], 30, DROP), Push::Full);
    s.written();
    assert_eq!(s.push([big], 30, DROP), Push::Queued { wake: true });
}

#[test]
fn room_in_the_queue_follows_what_is_queued_and_written() {
    let now = Instant::now();
    let mut s = websocket(now);
    assert!(s.has_room(1000, 30));
    push(&mut s, text("a"));
    assert!(s.has_room(12, 30) && !s.has_room(13, 30));
    let mut batch = VecDeque::new();
    s.take_frames(&mut batch);
    assert!(!s.has_room(13, 30));
    s.written();
    assert!(s.has_room(1000, 30));
}

#[test]
fn a_single_oversized_message_still_fits_an_empty_queue() {
    let now = Instant::now();
    let mut s = polling(now);
    let big = Frame::from(Message::binary(vec![0u8; 100]));
    assert_eq!(s.push([big], 10, DROP), Push::Queued { wake: true });
}

#[test]
fn only_the_first_frame_into_an_empty_queue_asks_for_a_wake_up() {
    let now = Instant::now();
    let mut s = websocket(now);
    assert_eq!(push(&mut s, text("a")), Push::Queued { wake: true });
    assert_eq!(push(&mut s, text("b")), Push::Queued { wake: false });
    let mut batch = VecDeque::new();
    s.take_frames(&mut batch);
    assert_eq!(batch.len(), 2);
    assert_eq!(push(&mut s, text("c")), Push::Queued { wake: true });
    // Frames taken while the writer still holds some are appended.
    s.take_frames(&mut batch);
    assert_eq!(batch.len(), 3);
}

// ---- the close sequence ---------------------------------------------------------------------

#[test]
fn server_close_delivers_queued_then_close_packet_then_forgets() {
    let now = Instant::now();
    let mut s = polling(now);
    push(&mut s, text("bye"));
    let c = s.close(now, CloseReason::ForcedClose, GRACE);
    assert_eq!(
        c,
        Some(Closed {
            reason: CloseReason::ForcedClose,
            linger_until: Some(now + GRACE)
        })
    );
    assert_eq!(s.armed(), Some(now + GRACE));
    assert_eq!(s.close(now, CloseReason::ForcedClose, GRACE), None);
    s.begin_get(now).unwrap();
    let mut out = Vec::new();
    assert!(s.poll_get(&mut out));
    assert_eq!(out, vec![text("bye")]);
    assert_eq!(s.end_get(now, true), GetEnd::Done);
    s.begin_get(now).unwrap();
    out.clear();
    assert!(s.poll_get(&mut out));
    assert_eq!(out, vec![Frame::CLOSE]);
    assert_eq!(s.end_get(now, true), GetEnd::Forget);
    assert_eq!(s.begin_get(now), Err(Refusal::Unknown));
}

#[test]
fn a_failed_polling_session_delivers_queued_and_close_together() {
    let now = Instant::now();
    let mut s = polling(now);
    push(&mut s, text("late"));
    assert_eq!(
        s.close(now, CloseReason::PingTimeout, GRACE),
        Some(closed(CloseReason::PingTimeout))
    );
    assert_eq!(get(&mut s, now), Some(vec![text("late"), Frame::CLOSE]));
}

#[test]
fn a_second_get_after_the_close_packet_gets_a_noop() {
    let now = Instant::now();
    let mut s = polling(now);
    s.begin_get(now).unwrap();
    s.close(now, CloseReason::ServerShuttingDown, GRACE);
    let mut out = Vec::new();
    assert!(s.poll_get(&mut out));
    assert_eq!(out, vec![Frame::CLOSE]);
    // Another GET was already waiting (overlap is not checked once closed): a noop.
    out.clear();
    assert!(s.poll_get(&mut out));
    assert_eq!(out, vec![Frame::NOOP]);
}

#[test]
fn websocket_close_flushes_only_on_an_orderly_close() {
    let now = Instant::now();
    for (reason, kept) in [
        (CloseReason::ForcedClose, true),
        (CloseReason::ServerShuttingDown, true),
        (CloseReason::PingTimeout, false),
        (CloseReason::TransportError, false),
        (CloseReason::TransportClose, false),
        (CloseReason::ParseError, false),
    ] {
        let mut s = websocket(now);
        push(&mut s, text("bye"));
        // A WebSocket session never lingers: its close frame goes out on the connection.
        assert_eq!(s.close(now, reason, GRACE), Some(closed(reason)));
        let mut batch = VecDeque::new();
        assert!(s.take_frames(&mut batch));
        assert_eq!(batch.len(), usize::from(kept), "{reason}");
    }
}

#[test]
fn client_close_answers_pending_get_with_noop() {
    let now = Instant::now();
    let mut s = polling(now);
    s.begin_get(now).unwrap();
    push(&mut s, text("lost"));
    // A pending GET would already have taken "lost"; here it was not woken yet.
    s.close(now, CloseReason::TransportClose, GRACE);
    let mut out = Vec::new();
    assert!(s.poll_get(&mut out));
    assert_eq!(out, vec![Frame::NOOP]);
    assert_eq!(s.end_get(now, true), GetEnd::Forget);
}

#[test]
fn transport_end_is_a_ping_timeout_past_the_deadline() {
    let now = Instant::now();
    let mut s = websocket(now);
    assert_eq!(
        s.transport_ended(now + I + T, CloseReason::TransportClose),
        Some(closed(CloseReason::PingTimeout))
    );
    let mut s = websocket(now);
    assert_eq!(
        s.transport_ended(now, CloseReason::TransportError),
        Some(closed(CloseReason::TransportError))
    );
    assert_eq!(s.transport_ended(now, CloseReason::TransportClose), None);
}

// ---- timers ---------------------------------------------------------------------------------

#[test]
fn heartbeat_timer_waits_pings_then_times_out() {
    let now = Instant::now();
    let mut s = websocket(now);
    // A timer that fires early looks again at the ping time.
    assert_eq!(s.on_timer(now + I, now), Tick::Wait(now + I));
    assert_eq!(s.on_timer(now + I, now + I), Tick::Ping(now + I + T));
    let mut batch = VecDeque::new();
    s.take_frames(&mut batch);
    assert_eq!(batch, VecDeque::from(vec![Frame::PING]));
    assert_eq!(
        s.on_timer(now + I + T, now + I + T),
        Tick::Closed(closed(CloseReason::PingTimeout))
    );
    assert_eq!(s.armed(), None);
}

#[test]
fn a_late_timer_gives_no_extra_time() {
    let now = Instant::now();
    let mut s = polling(now);
    let late = now + I + Duration::from_secs(5);
    assert_eq!(s.on_timer(now + I, late), Tick::Ping(now + I + T));
    assert!(s.expired(now + I + T));
    assert_eq!(get(&mut s, late), Some(vec![Frame::PING]));
}

#[test]
fn a_stale_timer_entry_does_nothing() {
    let now = Instant::now();
    let mut s = polling(now);
    assert_eq!(s.on_timer(now, now + I), Tick::Stale);
    assert_eq!(s.on_timer(now + I + T, now + I + T), Tick::Stale);
    assert_eq!(s.closed(), None);
}

#[test]
fn the_grace_timer_of_a_closed_session_forgets_it() {
    let now = Instant::now();
    let mut s = polling(now);
    let c = s.close(now, CloseReason::ForcedClose, GRACE);
    let until = c.and_then(|c| c.linger_until).unwrap();
    // The heartbeat entry armed before the close is stale.
    assert_eq!(s.on_timer(now + I, now + I), Tick::Stale);
    assert_eq!(s.on_timer(until, until), Tick::Forget);
    assert_eq!(s.armed(), None);
}

#[test]
fn v3_timer_never_pings_and_follows_the_client() {
    let now = Instant::now();
    let mut s = machine(Protocol::V3, TransportKind::Websocket, now);
    assert_eq!(s.on_timer(now + I, now + I), Tick::Wait(now + I + T));
    let ping = now + I + Duration::from_secs(1);
    assert_eq!(
        s.on_packet(ping, Ok(Packet::Ping { probe: false })),
        Received::Wake
    );
    // The old deadline passes: the timer looks again at the new one.
    assert_eq!(
        s.on_timer(now + I + T, now + I + T),
        Tick::Wait(ping + I + T)
    );
    assert_eq!(
        s.on_timer(ping + I + T, ping + I + T),
        Tick::Closed(closed(CloseReason::PingTimeout))
    );
}

// ---- the upgrade ------------------------------------------------------------------------------

#[test]
fn upgrade_probe_then_five() {
    let now = Instant::now();
    let mut s = polling(now);
    assert_eq!(
        s.begin_probe(now, Duration::from_secs(10)),
        Ok(now + Duration::from_secs(10))
    );
    assert_eq!(
        s.begin_probe(now, Duration::from_secs(10)),
        Err(ProbeRefusal::Busy)
    );
    s.begin_get(now).unwrap();
    push(&mut s, text("kept"));
    assert_eq!(s.on_probe_text("2probe"), ProbeStep::Answer("3probe"));
    // Until `3probe` went out, a GET still gets what is queued.
    assert_eq!(s.upgrade, Upgrade::Probing);
    s.probe_answered();
    let mut out = Vec::new();
    assert!(s.poll_get(&mut out));
    assert_eq!(out, vec![Frame::NOOP]);
    s.end_get(now, true);
    // Volatile messages wait for the upgrade to end.
    assert_eq!(s.push_volatile([text("v")]), Push::Dropped);
    assert_eq!(s.on_probe_text("5"), ProbeStep::Upgraded);
    assert_eq!(s.transport(), TransportKind::Websocket);
    assert_eq!(s.begin_get(now), Err(Refusal::Mismatch));
    let mut batch = VecDeque::new();
    assert!(!s.take_frames(&mut batch));
    assert_eq!(batch, VecDeque::from(vec![text("kept")]));
    assert_eq!(s.begin_probe(now, GRACE), Err(ProbeRefusal::Busy));
}

#[test]
fn a_get_still_pending_when_the_upgrade_completes_gets_a_noop() {
    let now = Instant::now();
    let mut s = polling(now);
    s.begin_get(now).unwrap();
    s.begin_probe(now, GRACE).unwrap();
    assert_eq!(s.on_probe_text("5"), ProbeStep::Upgraded);
    push(&mut s, text("for the websocket"));
    let mut out = Vec::new();
    assert!(s.poll_get(&mut out));
    assert_eq!(out, vec![Frame::NOOP]);
    assert_eq!(s.end_get(now, true), GetEnd::Done);
}

#[test]
fn upgrade_with_five_straight_away() {
    let now = Instant::now();
    let mut s = polling(now);
    s.begin_probe(now, GRACE).unwrap();
    assert_eq!(s.on_probe_text("5"), ProbeStep::Upgraded);
    assert_eq!(s.transport(), TransportKind::Websocket);
}

#[test]
fn anything_else_on_the_probe_fails_and_polling_goes_on() {
    let now = Instant::now();
    for script in [
        &["hello"][..],
        &["2probe", "2probe"],
        &["2probe", "4x"],
        &["3probe"],
    ] {
        let mut s = polling(now);
        s.begin_probe(now, GRACE).unwrap();
        let mut last = ProbeStep::Failed;
        for text in script {
            last = s.on_probe_text(text);
            if let ProbeStep::Answer(_) = last {
                s.probe_answered();
            }
        }
        assert_eq!(last, ProbeStep::Failed, "{script:?}");
        assert_eq!(s.transport(), TransportKind::Polling);
        // A new probe may start.
        s.begin_probe(now, GRACE).unwrap();
    }
}

#[test]
fn a_probe_that_times_out_is_aborted() {
    let now = Instant::now();
    let mut s = polling(now);
    s.begin_probe(now, GRACE).unwrap();
    s.on_probe_text("2probe");
    s.probe_answered();
    s.abort_upgrade();
    assert_eq!(s.upgrade, Upgrade::Idle);
    push(&mut s, text("a"));
    assert_eq!(get(&mut s, now), Some(vec![text("a")]));
}

#[test]
fn the_upgrade_fails_when_the_session_closed_meanwhile() {
    let now = Instant::now();
    let mut s = polling(now);
    s.begin_probe(now, GRACE).unwrap();
    s.close(now, CloseReason::ForcedClose, GRACE);
    assert_eq!(s.on_probe_text("5"), ProbeStep::Failed);
    assert_eq!(s.transport(), TransportKind::Polling);
}

#[test]
fn a_probe_on_a_closed_or_expired_session_is_refused() {
    let now = Instant::now();
    let mut s = polling(now);
    assert_eq!(
        s.begin_probe(now + I + T, GRACE),
        Err(ProbeRefusal::Unknown)
    );
    s.close(now, CloseReason::ForcedClose, GRACE);
    assert_eq!(s.begin_probe(now, GRACE), Err(ProbeRefusal::Unknown));
    let mut ws = websocket(now);
    assert_eq!(ws.begin_probe(now, GRACE), Err(ProbeRefusal::Busy));
}

#[test]
fn the_machine_is_no_larger_than_the_state_it_replaces() {
    // Every session holds one: the session state the machine replaced took 152 bytes (64-bit).
    let size = std::mem::size_of::<Machine>();
    assert!(size <= 152, "{size}");
}

// ---- any sequence of inputs ---------------------------------------------------------------------

mod sequences {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Input {
        Packet(u8),
        Get(bool),
        Post(bool),
        Push(usize),
        Volatile,
        Take,
        Written,
        Timer,
        Probe,
        ProbeText(u8),
        ProbeAnswered,
        Abort,
        Close(u8),
        TransportEnded,
    }

    fn input() -> impl Strategy<Value = Input> {
        prop_oneof![
            (0u8..8).prop_map(Input::Packet),
            any::<bool>().prop_map(Input::Get),
            any::<bool>().prop_map(Input::Post),
            (0usize..64).prop_map(Input::Push),
            Just(Input::Volatile),
            Just(Input::Take),
            Just(Input::Written),
            Just(Input::Timer),
            Just(Input::Probe),
            (0u8..3).prop_map(Input::ProbeText),
            Just(Input::ProbeAnswered),
            Just(Input::Abort),
            (0u8..6).prop_map(Input::Close),
            Just(Input::TransportEnded),
        ]
    }

    const REASONS: [CloseReason; 6] = [
        CloseReason::TransportClose,
        CloseReason::TransportError,
        CloseReason::PingTimeout,
        CloseReason::ParseError,
        CloseReason::ForcedClose,
        CloseReason::ServerShuttingDown,
    ];

    fn packet(kind: u8) -> Result<Packet, DecodeError> {
        match kind {
            0 => Ok(Packet::Message(Message::text("m"))),
            1 => Ok(Packet::Pong),
            2 => Ok(Packet::Ping { probe: false }),
            3 => Ok(Packet::Ping { probe: true }),
            4 => Ok(Packet::Close),
            5 => Ok(Packet::Noop),
            6 => Ok(Packet::Upgrade),
            _ => Err(DecodeError::Empty),
        }
    }

    proptest! {
        #[test]
        fn any_inputs_keep_the_machine_consistent(
            v3 in any::<bool>(),
            ws in any::<bool>(),
            steps in proptest::collection::vec((input(), 0u64..30_000), 1..64),
        ) {
            let protocol = if v3 { Protocol::V3 } else { Protocol::V4 };
            let transport = if ws { TransportKind::Websocket } else { TransportKind::Polling };
            let t0 = Instant::now();
            let mut now = t0;
            let mut s = machine(protocol, transport, now);
            let mut reason = None;
            let mut batch = VecDeque::new();
            for (input, advance) in steps {
                now += Duration::from_millis(advance);
                let was = s.transport();
                match input {
                    Input::Packet(kind) => {
                        if let Received::Closed(c) = s.on_packet(now, packet(kind)) {
                            prop_assert!(reason.is_none());
                            reason = Some(c.reason);
                        }
                    }
                    Input::Get(answered) => {
                        if s.begin_get(now).is_ok() {
                            let mut out = Vec::new();
                            let polled = s.poll_get(&mut out);
                            prop_assert_eq!(polled, !out.is_empty());
                            s.end_get(now, answered && polled);
                        }
                    }
                    Input::Post(binary) => {
                        if s.begin_post(now, binary).is_ok() {
                            s.end_post();
                        }
                    }
                    Input::Push(n) => {
                        let _ = s.push([text(&"x".repeat(n))], 64, DROP);
                    }
                    Input::Volatile => {
                        let _ = s.push_volatile([text("v")]);
                    }
                    Input::Take => {
                        s.take_frames(&mut batch);
                    }
                    Input::Written => {
                        batch.clear();
                        s.written();
                    }
                    Input::Timer => {
                        if let Some(at) = s.armed() {
                            let fired = now.max(at);
                            if let Tick::Closed(c) = s.on_timer(at, fired) {
                                prop_assert_eq!(c.reason, CloseReason::PingTimeout);
                            }
                        }
                    }
                    Input::Probe => {
                        let _ = s.begin_probe(now, GRACE);
                    }
                    Input::ProbeText(k) => {
                        let _ = s.on_probe_text(["2probe", "5", "x"][usize::from(k)]);
                    }
                    Input::ProbeAnswered => s.probe_answered(),
                    Input::Abort => s.abort_upgrade(),
                    Input::Close(k) => {
                        let _ = s.close(now, REASONS[usize::from(k)], GRACE);
                    }
                    Input::TransportEnded => {
                        let _ = s.transport_ended(now, CloseReason::TransportClose);
                    }
                }
                // A close is final, and the transport only ever moves to WebSocket.
                if let Some(r) = reason {
                    prop_assert_eq!(s.closed(), Some(r));
                }
                reason = s.closed();
                prop_assert!(was == s.transport() || s.transport() == TransportKind::Websocket);
                // Queued bytes are counted exactly while frames are queued.
                prop_assert_eq!(s.frames.is_empty(), s.queued_bytes == 0);
                if s.closed().is_some() {
                    prop_assert_eq!(s.push([text("late")], usize::MAX, DROP), Push::Closed);
                }
            }
        }
    }
}
