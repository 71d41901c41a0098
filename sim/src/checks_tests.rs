//! Ledger unit tests on synthetic event streams: one per violation class.

use super::*;

struct World {
    ledger: Ledger,
    t0: Instant,
}

const OP_A: SocketKey = 0;
const OP_B: SocketKey = 1;
const V1: SocketKey = 2;
const V2: SocketKey = 3;

impl World {
    /// Two operators (ids 1 and 2) and two visitors, all joined at t0.
    fn new() -> Self {
        let t0 = Instant::now();
        let mut ledger = Ledger::new(t0);
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
                at: t0,
            });
            ledger.apply(Record::Joined { socket: k, at: t0 });
        }
        // every operator got every newChat
        for op in [OP_A, OP_B] {
            for v in ["v1", "v2"] {
                ledger.apply(Record::Received {
                    socket: op,
                    at: t0,
                    what: Observed::NewChat { client: v.into() },
                });
            }
        }
        Self { ledger, t0 }
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn send_to_v1(&mut self, msg: MsgId, ms: u64, predicted: RatePrediction) {
        let at = self.at(ms);
        self.ledger.apply(Record::Sent {
            socket: OP_A,
            msg,
            kind: SentKind::OperatorToClient { to: "v1".into() },
            intended: at,
            at,
            predicted,
        });
    }

    fn client_sends(&mut self, msg: MsgId, ms: u64) {
        let at = self.at(ms);
        self.ledger.apply(Record::Sent {
            socket: V1,
            msg,
            kind: SentKind::ClientToOperators,
            intended: at,
            at,
            predicted: RatePrediction::Accept,
        });
    }

    fn got_to_client(&mut self, socket: SocketKey, msg: MsgId, ms: u64) {
        let at = self.at(ms);
        self.ledger.apply(Record::Received {
            socket,
            at,
            what: Observed::ToClient {
                msg: Some(msg),
                from: "opA".into(),
                unsanitized: false,
            },
        });
    }

    fn broadcast(&mut self, socket: SocketKey, msg: MsgId, ms: u64, op: (u64, &str)) {
        let at = self.at(ms);
        self.ledger.apply(Record::Received {
            socket,
            at,
            what: Observed::Broadcast {
                msg: Some(msg),
                client: "v1".into(),
                operator_id: op.0,
                operator_name: op.1.into(),
                unsanitized: false,
            },
        });
    }

    fn got_from_client(&mut self, socket: SocketKey, msg: MsgId, ms: u64) {
        let at = self.at(ms);
        self.ledger.apply(Record::Received {
            socket,
            at,
            what: Observed::FromClient {
                msg: Some(msg),
                from: "v1".into(),
                unsanitized: false,
            },
        });
    }

    /// A correct delivery of operator message `msg`.
    fn deliver_ok(&mut self, msg: MsgId, ms: u64) {
        self.got_to_client(V1, msg, ms + 1);
        self.broadcast(OP_B, msg, ms + 1, (1, "Ann"));
    }

    fn finish(mut self) -> BTreeMap<String, u64> {
        self.ledger.finish();
        self.ledger.counters()
    }
}

fn only(counters: &BTreeMap<String, u64>, class: &str, n: u64) {
    assert_eq!(counters[class], n, "{class} in {counters:?}");
    assert_eq!(
        counters["violations"], n,
        "only {class} expected: {counters:?}"
    );
}

#[test]
fn clean_stream_has_no_violation() {
    let mut w = World::new();
    w.send_to_v1(1, 10, RatePrediction::Accept);
    w.deliver_ok(1, 10);
    w.client_sends(2, 20);
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
    w.send_to_v1(1, 10, RatePrediction::Accept);
    w.got_to_client(V1, 1, 11); // OP_B never gets the broadcast
    only(&w.finish(), "lost", 1);
}

#[test]
fn duplicated() {
    let mut w = World::new();
    w.send_to_v1(1, 10, RatePrediction::Accept);
    w.deliver_ok(1, 10);
    w.got_to_client(V1, 1, 12);
    only(&w.finish(), "duplicated", 1);
}

#[test]
fn leaked_to_another_visitor() {
    let mut w = World::new();
    w.send_to_v1(1, 10, RatePrediction::Accept);
    w.deliver_ok(1, 10);
    w.got_to_client(V2, 1, 11);
    only(&w.finish(), "leaked", 1);
}

#[test]
fn leaked_visitor_message_to_visitor() {
    let mut w = World::new();
    w.client_sends(2, 20);
    w.got_from_client(OP_A, 2, 21);
    w.got_from_client(OP_B, 2, 21);
    w.got_from_client(V2, 2, 21);
    only(&w.finish(), "leaked", 1);
}

#[test]
fn misattributed() {
    let mut w = World::new();
    w.send_to_v1(1, 10, RatePrediction::Accept);
    w.got_to_client(V1, 1, 11);
    w.broadcast(OP_B, 1, 11, (2, "Bob")); // claims Bob sent Ann's message
    only(&w.finish(), "misattributed", 1);
}

#[test]
fn echoed() {
    let mut w = World::new();
    w.send_to_v1(1, 10, RatePrediction::Accept);
    w.deliver_ok(1, 10);
    w.broadcast(OP_A, 1, 11, (1, "Ann"));
    only(&w.finish(), "echoed", 1);
}

#[test]
fn reordered() {
    let mut w = World::new();
    w.send_to_v1(1, 10, RatePrediction::Accept);
    w.send_to_v1(2, 11, RatePrediction::Accept);
    w.deliver_ok(2, 12);
    w.deliver_ok(1, 13);
    only(&w.finish(), "reordered", 2); // at both recipients
}

#[test]
fn delivered_although_rate_limited() {
    let mut w = World::new();
    w.send_to_v1(1, 10, RatePrediction::Reject);
    w.got_to_client(V1, 1, 11);
    only(&w.finish(), "rate_limit.wrongly_delivered", 1);
}

#[test]
fn rejected_although_within_budget() {
    let mut w = World::new();
    w.send_to_v1(1, 10, RatePrediction::Accept);
    w.ledger.apply(Record::Ack {
        socket: OP_A,
        msg: 1,
        outcome: AckOutcome::RateLimited,
    });
    only(&w.finish(), "rate_limit.wrongly_rejected", 1);
}

#[test]
fn rejected_within_budget_without_acks_by_count() {
    let mut w = World::new();
    w.send_to_v1(1, 10, RatePrediction::Reject);
    for _ in 0..3 {
        let at = w.at(11);
        w.ledger.apply(Record::Received {
            socket: OP_A,
            at,
            what: Observed::RateLimited,
        });
    }
    only(&w.finish(), "rate_limit.wrongly_rejected", 2);
}

#[test]
fn unsanitized() {
    let mut w = World::new();
    w.send_to_v1(1, 10, RatePrediction::Accept);
    w.broadcast(OP_B, 1, 11, (1, "Ann"));
    let at = w.at(11);
    w.ledger.apply(Record::Received {
        socket: V1,
        at,
        what: Observed::ToClient {
            msg: Some(1),
            from: "opA".into(),
            unsanitized: true,
        },
    });
    only(&w.finish(), "unsanitized", 1);
}

#[test]
fn presence_missed_and_duplicated() {
    let mut w = World::new();
    // v2 leaves; only OP_A hears chatEnded, twice
    w.ledger.apply(Record::Leaving {
        socket: V2,
        at: w.t0 + Duration::from_millis(5),
    });
    for _ in 0..2 {
        let at = w.at(6);
        w.ledger.apply(Record::Received {
            socket: OP_A,
            at,
            what: Observed::ChatEnded {
                client: "v2".into(),
            },
        });
    }
    let c = w.finish();
    assert_eq!(c["presence.missed"], 1, "{c:?}");
    assert_eq!(c["presence.duplicated"], 1, "{c:?}");
}

#[test]
fn late_joiner_is_not_expected_and_not_a_leak() {
    let mut w = World::new();
    w.send_to_v1(1, 10, RatePrediction::Accept);
    let late: SocketKey = 4;
    let at = w.at(11);
    w.ledger.apply(Record::Joining {
        socket: late,
        role: BotRole::Operator,
        sid: "late".into(),
        operator: Some((3, "Cy".into())),
        at,
    });
    w.ledger.apply(Record::Joined { socket: late, at });
    w.deliver_ok(1, 10);
    w.broadcast(late, 1, 12, (1, "Ann"));
    let c = w.finish();
    assert_eq!(c["violations"], 0, "{c:?}");
}

#[test]
fn settled_messages_leave_the_ledger() {
    let mut w = World::new();
    for id in 1..=100 {
        w.send_to_v1(id, id, RatePrediction::Accept);
        w.deliver_ok(id, id);
    }
    assert_eq!(w.ledger.pending_len(), 100);
    let later = w.t0 + SETTLE + Duration::from_secs(1);
    w.ledger.settle_due(later);
    assert_eq!(w.ledger.pending_len(), 0);
    // a copy arriving after settling is still caught
    w.got_to_client(V1, 5, 20_000);
    only(&w.finish(), "duplicated", 1);
}

#[test]
fn a_backend_closing_a_socket_is_a_violation_but_leaving_is_not() {
    let mut w = World::new();
    let at = w.at(5);
    w.ledger.apply(Record::Leaving { socket: V2, at });
    w.ledger.apply(Record::Closed {
        socket: V2,
        at,
        unexpected: false,
    });
    for op in [OP_A, OP_B] {
        w.ledger.apply(Record::Received {
            socket: op,
            at,
            what: Observed::ChatEnded {
                client: "v2".into(),
            },
        });
    }
    w.ledger.apply(Record::Closed {
        socket: V1,
        at,
        unexpected: true,
    });
    for op in [OP_A, OP_B] {
        w.ledger.apply(Record::Received {
            socket: op,
            at,
            what: Observed::ChatEnded {
                client: "v1".into(),
            },
        });
    }
    only(&w.finish(), "disconnected.unexpected", 1);
}

#[test]
fn malformed_payloads_are_counted() {
    let mut w = World::new();
    let at = w.at(5);
    w.ledger.apply(Record::Received {
        socket: OP_A,
        at,
        what: Observed::Malformed {
            event: "incomingMessage".into(),
        },
    });
    only(&w.finish(), "malformed", 1);
}

#[test]
fn an_unanswered_operators_list_is_a_mismatch() {
    let mut w = World::new();
    w.ledger.apply(Record::ListRequested { socket: OP_A });
    only(&w.finish(), "presence.list_mismatch", 1);
}

#[test]
fn the_operators_list_must_match_who_is_online() {
    let mut w = World::new();
    w.ledger.apply(Record::ListRequested { socket: OP_A });
    let at = w.at(5);
    w.ledger.apply(Record::FinalOperatorsList {
        socket: OP_A,
        at,
        ids: vec![1, 2],
    });
    let mut bad = World::new();
    bad.ledger.apply(Record::ListRequested { socket: OP_A });
    bad.ledger.apply(Record::FinalOperatorsList {
        socket: OP_A,
        at,
        ids: vec![1, 1, 2],
    });
    assert_eq!(w.finish()["violations"], 0);
    only(&bad.finish(), "presence.list_mismatch", 1);
}

#[test]
fn delivered_although_acked_as_rate_limited() {
    let mut w = World::new();
    w.send_to_v1(1, 10, RatePrediction::Ambiguous);
    w.ledger.apply(Record::Ack {
        socket: OP_A,
        msg: 1,
        outcome: AckOutcome::RateLimited,
    });
    w.got_to_client(V1, 1, 11);
    only(&w.finish(), "rate_limit.wrongly_delivered", 1);
}
