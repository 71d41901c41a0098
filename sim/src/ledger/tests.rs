//! The ledger on synthetic record streams: one test per violation class, the closing rule,
//! and bounded memory (the windows, the late classes and refusals have files of their own).

use super::*;
use crate::record::{AckOutcome, SentKind};
use crate::scenario::BotRole;

/// The backends' ping deadline in these tests: Engine.IO's default 25 s + 20 s.
pub(super) const PING_DEADLINE: Duration = Duration::from_secs(45);

/// A world of two operators (ids 1 and 2) and two visitors, all joined at t0, every
/// operator told of every visitor.
pub(super) struct World {
    pub ledger: Ledger,
    pub t0: Instant,
}

pub(super) const OP_A: SocketKey = 0;
pub(super) const OP_B: SocketKey = 1;
pub(super) const V1: SocketKey = 2;
pub(super) const V2: SocketKey = 3;

impl World {
    pub fn new() -> Self {
        Self::with_limit(100)
    }

    pub fn with_limit(limit: u32) -> Self {
        let t0 = Instant::now();
        let mut ledger = Ledger::new(t0, 1, limit, false);
        for (k, role, sid, op) in [
            (OP_A, BotRole::Operator, "opA", Some((1, "Ann".to_owned()))),
            (OP_B, BotRole::Operator, "opB", Some((2, "Bob".to_owned()))),
            (V1, BotRole::Client, "v1", None),
            (V2, BotRole::Client, "v2", None),
        ] {
            ledger.apply(Record::Joining {
                socket: k,
                role,
                sid: sid.into(),
                operator: op,
                node: 0,
                ping_deadline: PING_DEADLINE,
                at: t0,
            });
            ledger.apply(Record::Joined { socket: k, at: t0 });
        }
        let mut w = Self { ledger, t0 };
        for op in [OP_A, OP_B] {
            for v in ["v1", "v2"] {
                w.got(
                    op,
                    1,
                    Observed::NewChat {
                        client: v.into(),
                        username: v.into(),
                    },
                );
            }
        }
        w
    }

    pub fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    pub fn got(&mut self, socket: SocketKey, ms: u64, what: Observed) {
        let at = self.at(ms);
        self.ledger.apply(Record::Received { socket, at, what });
    }

    pub fn send(&mut self, socket: SocketKey, msg: MsgId, ms: u64, kind: SentKind) {
        let at = self.at(ms);
        self.ledger.apply(Record::Sent {
            socket,
            msg,
            kind,
            intended: at,
            at,
        });
    }

    pub fn send_to_v1(&mut self, msg: MsgId, ms: u64) {
        self.send(
            OP_A,
            msg,
            ms,
            SentKind::OperatorToClient { to: "v1".into() },
        );
    }

    pub fn got_to_client(&mut self, socket: SocketKey, msg: MsgId, ms: u64) {
        self.got(
            socket,
            ms,
            Observed::ToClient {
                msg: Some(msg),
                from: "opA".into(),
                unsanitized: false,
            },
        );
    }

    pub fn broadcast(&mut self, socket: SocketKey, msg: MsgId, ms: u64, op: (u64, &str)) {
        self.got(
            socket,
            ms,
            Observed::Broadcast {
                msg: Some(msg),
                client: "v1".into(),
                operator_id: op.0,
                operator_name: op.1.into(),
                unsanitized: false,
            },
        );
    }

    pub fn got_from_client(&mut self, socket: SocketKey, msg: MsgId, ms: u64) {
        self.got(
            socket,
            ms,
            Observed::FromClient {
                msg: Some(msg),
                from: "v1".into(),
                unsanitized: false,
            },
        );
    }

    /// A correct delivery of operator message `msg`.
    pub fn deliver_ok(&mut self, msg: MsgId, ms: u64) {
        self.got_to_client(V1, msg, ms + 1);
        self.broadcast(OP_B, msg, ms + 1, (1, "Ann"));
    }

    pub fn ack(&mut self, socket: SocketKey, msg: MsgId, ms: u64, outcome: AckOutcome) {
        let at = self.at(ms);
        self.ledger.apply(Record::Ack {
            socket,
            msg,
            outcome,
            at,
        });
    }

    pub fn leave(&mut self, socket: SocketKey, ms: u64) {
        let at = self.at(ms);
        self.ledger.apply(Record::Leaving { socket, at });
        self.ledger.apply(Record::Closed {
            socket,
            at,
            unexpected: false,
            broken: None,
            local: Vec::new(),
        });
    }

    pub fn finish(mut self) -> BTreeMap<String, u64> {
        self.ledger.finish();
        self.ledger.counters()
    }
}

pub(super) fn only(counters: &BTreeMap<String, u64>, class: Violation, n: u64) {
    assert_eq!(counters[class.name()], n, "{class} in {counters:?}");
    assert_eq!(
        counters["violations"], n,
        "only {class} expected: {counters:?}"
    );
}

#[test]
fn clean_stream_has_no_violation() {
    let mut w = World::new();
    w.send_to_v1(1, 10);
    w.deliver_ok(1, 10);
    w.send(V1, 2, 20, SentKind::ClientToOperators);
    w.got_from_client(OP_A, 2, 21);
    w.got_from_client(OP_B, 2, 21);
    let c = w.finish();
    assert_eq!(c["violations"], 0, "{c:?}");
    assert_eq!(c["delivered"], 4);
    assert_eq!(c["expected_deliveries"], 4);
}

#[test]
fn lost() {
    let mut w = World::new();
    w.send_to_v1(1, 10);
    w.got_to_client(V1, 1, 11); // OP_B never gets the broadcast
    only(&w.finish(), Violation::Lost, 1);
}

#[test]
fn duplicated() {
    let mut w = World::new();
    w.send_to_v1(1, 10);
    w.deliver_ok(1, 10);
    w.got_to_client(V1, 1, 12);
    only(&w.finish(), Violation::Duplicated, 1);
}

#[test]
fn leaked_to_another_visitor() {
    let mut w = World::new();
    w.send_to_v1(1, 10);
    w.deliver_ok(1, 10);
    w.got_to_client(V2, 1, 11);
    only(&w.finish(), Violation::Leaked, 1);
}

#[test]
fn leaked_visitor_message_to_visitor() {
    let mut w = World::new();
    w.send(V1, 2, 20, SentKind::ClientToOperators);
    w.got_from_client(OP_A, 2, 21);
    w.got_from_client(OP_B, 2, 21);
    w.got_from_client(V2, 2, 21);
    only(&w.finish(), Violation::Leaked, 1);
}

#[test]
fn presence_events_at_a_visitor_are_leaks() {
    let mut w = World::new();
    w.got(V1, 5, Observed::OperatorConnected { operator_id: 1 });
    w.got(OP_A, 5, Observed::OperatorTyping);
    only(&w.finish(), Violation::Leaked, 2);
}

#[test]
fn operator_typing_nobody_sent_to_a_visitor_is_a_leak() {
    let mut w = World::new();
    let at = w.at(5);
    w.ledger.apply(Record::TypingSent {
        socket: OP_A,
        to: Some("v1".into()),
        at,
    });
    w.got(V1, 6, Observed::OperatorTyping);
    w.got(V2, 6, Observed::OperatorTyping); // nobody typed to v2
    only(&w.finish(), Violation::Leaked, 1);
}

#[test]
fn misattributed() {
    let mut w = World::new();
    w.send_to_v1(1, 10);
    w.got_to_client(V1, 1, 11);
    w.broadcast(OP_B, 1, 11, (2, "Bob")); // claims Bob sent Ann's message
    only(&w.finish(), Violation::Misattributed, 1);
}

#[test]
fn a_broadcast_naming_the_wrong_visitor_is_misattributed() {
    let mut w = World::new();
    w.send(OP_A, 1, 10, SentKind::OperatorToClient { to: "v2".into() });
    w.got(
        V2,
        11,
        Observed::ToClient {
            msg: Some(1),
            from: "opA".into(),
            unsanitized: false,
        },
    );
    w.broadcast(OP_B, 1, 11, (1, "Ann")); // says v1
    only(&w.finish(), Violation::Misattributed, 1);
}

#[test]
fn echoed() {
    let mut w = World::new();
    w.send_to_v1(1, 10);
    w.deliver_ok(1, 10);
    w.broadcast(OP_A, 1, 11, (1, "Ann"));
    only(&w.finish(), Violation::Echoed, 1);
}

#[test]
fn reordered() {
    let mut w = World::new();
    w.send_to_v1(1, 10);
    w.send_to_v1(2, 10);
    w.deliver_ok(2, 12);
    w.deliver_ok(1, 13);
    only(&w.finish(), Violation::Reordered, 2); // at both recipients
}

#[test]
fn unsanitized() {
    let mut w = World::new();
    w.send_to_v1(1, 10);
    w.broadcast(OP_B, 1, 11, (1, "Ann"));
    w.got(
        V1,
        11,
        Observed::ToClient {
            msg: Some(1),
            from: "opA".into(),
            unsanitized: true,
        },
    );
    only(&w.finish(), Violation::Unsanitized, 1);
}

#[test]
fn delivered_over_the_budget() {
    let mut w = World::with_limit(2);
    for (id, ms) in [(1, 10), (2, 20), (3, 30)] {
        w.send_to_v1(id, ms);
        w.deliver_ok(id, ms);
    }
    // the third is over a budget of 2 a minute, at both recipients
    only(&w.finish(), Violation::RateLimitWronglyDelivered, 2);
}

#[test]
fn refused_within_budget() {
    let mut w = World::new();
    w.send_to_v1(1, 10);
    w.ack(OP_A, 1, 12, AckOutcome::RateLimited);
    only(&w.finish(), Violation::RateLimitWronglyRejected, 1);
}

#[test]
fn refused_within_budget_without_acks_by_count() {
    let mut w = World::with_limit(2);
    for (id, ms) in [(1, 10), (2, 20), (3, 30)] {
        w.send_to_v1(id, ms);
        if id < 3 {
            w.deliver_ok(id, ms);
        }
    }
    for _ in 0..3 {
        w.got(OP_A, 31, Observed::RateLimited);
    }
    // one refusal was due; three came
    only(&w.finish(), Violation::RateLimitWronglyRejected, 2);
}

#[test]
fn delivered_although_acked_as_rate_limited() {
    let mut w = World::new();
    w.send_to_v1(1, 10);
    w.ack(OP_A, 1, 11, AckOutcome::RateLimited);
    w.got_to_client(V1, 1, 11);
    let c = w.finish();
    assert_eq!(c[Violation::RateLimitWronglyDelivered.name()], 1, "{c:?}");
}

#[test]
fn chat_presence_missed_and_duplicated() {
    let mut w = World::new();
    // v2 leaves; only OP_A hears chatEnded, twice
    w.leave(V2, 5);
    for _ in 0..2 {
        w.got(
            OP_A,
            6,
            Observed::ChatEnded {
                client: "v2".into(),
            },
        );
    }
    let c = w.finish();
    assert_eq!(c["presence.missed"], 1, "{c:?}");
    assert_eq!(c["presence.duplicated"], 1, "{c:?}");
}

#[test]
fn a_late_joiner_is_owed_nothing_sent_before_and_is_no_leak() {
    let mut w = World::new();
    w.send_to_v1(1, 10);
    let late: SocketKey = 4;
    let at = w.at(11);
    w.ledger.apply(Record::Joining {
        socket: late,
        role: BotRole::Operator,
        sid: "late".into(),
        operator: Some((3, "Cy".into())),
        node: 0,
        ping_deadline: PING_DEADLINE,
        at,
    });
    w.ledger.apply(Record::Joined { socket: late, at });
    for op in [OP_A, OP_B] {
        w.got(op, 12, Observed::OperatorConnected { operator_id: 3 });
    }
    w.deliver_ok(1, 10);
    w.broadcast(late, 1, 12, (1, "Ann"));
    // it arrived after v1 and v2: their newChat is not owed to it, and it was told of 1 and 2
    let c = w.finish();
    assert_eq!(c["violations"], 0, "{c:?}");
}

#[test]
fn obligations_end_when_a_socket_starts_to_close() {
    let mut w = World::new();
    w.send_to_v1(1, 10);
    w.got_to_client(V1, 1, 11);
    // OP_B starts closing right after the send: the broadcast in flight is not owed
    w.leave(OP_B, 12);
    w.got(OP_A, 13, Observed::OperatorDisconnected { operator_id: 2 });
    let c = w.finish();
    assert_eq!(c["violations"], 0, "{c:?}");
    assert_eq!(c["expected_deliveries"], 1);
}

#[test]
fn the_rate_window_tolerance_grows_with_the_slowest_delivery() {
    // budget 1: the second message leaves 60.2 s after the first, but a backend that took
    // 0.6 s to take the first in still counts it and refuses; only a run that saw such
    // delays may leave that refusal unjudged
    let run = |delay_ms: u64| {
        let mut w = World::with_limit(1);
        w.send_to_v1(1, 0);
        w.got_to_client(V1, 1, delay_ms);
        w.broadcast(OP_B, 1, delay_ms, (1, "Ann"));
        w.send_to_v1(2, 60_200);
        w.ack(OP_A, 2, 60_200 + delay_ms, AckOutcome::RateLimited);
        w.finish()
    };
    assert_eq!(run(600)["violations"], 0, "a slow backend is not accused");
    assert_eq!(
        run(2)[Violation::RateLimitWronglyRejected.name()],
        1,
        "a fast one is"
    );
}

#[test]
fn settled_messages_leave_the_ledger() {
    let mut w = World::new();
    for id in 1..=100 {
        w.send_to_v1(id, id);
        w.deliver_ok(id, id);
    }
    assert_eq!(w.ledger.pending_len(), 100);
    w.got(OP_A, 11_000, Observed::Other("tick".into()));
    w.ledger.settle_due_now();
    assert_eq!(w.ledger.pending_len(), 0);
    // a delivery arriving after its message was judged is caught, as late
    w.got_to_client(V1, 5, 11_001);
    only(&w.finish(), Violation::DeliveryLate, 1);
}

#[test]
fn a_backend_closing_a_socket_is_a_violation_but_leaving_is_not() {
    let mut w = World::new();
    w.leave(V2, 5);
    for op in [OP_A, OP_B] {
        w.got(
            op,
            5,
            Observed::ChatEnded {
                client: "v2".into(),
            },
        );
    }
    let at = w.at(5);
    w.ledger.apply(Record::Closed {
        socket: V1,
        at,
        unexpected: true,
        broken: None,
        local: Vec::new(),
    });
    for op in [OP_A, OP_B] {
        w.got(
            op,
            5,
            Observed::ChatEnded {
                client: "v1".into(),
            },
        );
    }
    only(&w.finish(), Violation::DisconnectedUnexpected, 1);
}

#[test]
fn malformed_payloads_are_counted() {
    let mut w = World::new();
    w.got(
        OP_A,
        5,
        Observed::Malformed {
            event: "incomingMessage".into(),
            error: "missing field `from`".into(),
        },
    );
    only(&w.finish(), Violation::Malformed, 1);
}

#[test]
fn an_unanswered_operators_list_is_a_mismatch() {
    let mut w = World::new();
    let at = w.at(5);
    w.ledger.apply(Record::ListRequested { socket: OP_A, at });
    only(&w.finish(), Violation::PresenceListMismatch, 1);
}

#[test]
fn the_operators_list_must_match_who_is_online() {
    let list = |ids: Vec<u64>| {
        let mut w = World::new();
        let at = w.at(5);
        w.ledger.apply(Record::ListRequested { socket: OP_A, at });
        w.ledger.apply(Record::FinalOperatorsList {
            socket: OP_A,
            at,
            ids,
        });
        w.finish()
    };
    assert_eq!(list(vec![1, 2])["violations"], 0);
    only(&list(vec![1, 1, 2]), Violation::PresenceListMismatch, 1);
    only(&list(vec![1]), Violation::PresenceListMismatch, 1);
}

#[test]
fn the_closing_phase_counts_the_chat_ended_still_owed() {
    let mut w = World::new();
    let since = w.at(100);
    w.leave(V1, 100);
    w.leave(V2, 100);
    assert_eq!(w.ledger.outstanding_chat_ended(since), 4);
    w.got(
        OP_A,
        101,
        Observed::ChatEnded {
            client: "v1".into(),
        },
    );
    w.got(
        OP_B,
        101,
        Observed::ChatEnded {
            client: "v1".into(),
        },
    );
    w.got(
        OP_A,
        101,
        Observed::ChatEnded {
            client: "v2".into(),
        },
    );
    assert_eq!(w.ledger.outstanding_chat_ended(since), 1);
    // an operator that starts to close is owed nothing more
    w.leave(OP_B, 102);
    assert_eq!(w.ledger.outstanding_chat_ended(since), 0);
}

#[path = "presence_tests.rs"]
mod presence;

#[path = "fault_tests.rs"]
mod fault_tests;

#[path = "window_tests.rs"]
mod window_tests;

#[path = "refusal_tests.rs"]
mod refusal_tests;
