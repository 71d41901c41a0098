//! Refusals: a valid request refused through its ack or a `relayError` is `refused`, once,
//! unless the visitor it named left around the send, the budget had no room, or the
//! socket's own join was refused (counted there).

use super::*;

fn refused(code: &str) -> AckOutcome {
    AckOutcome::Refused(code.into())
}

fn relay_error(w: &mut World, socket: SocketKey, ms: u64, event: &str, code: &str) {
    w.got(
        socket,
        ms,
        Observed::RelayError {
            event: event.into(),
            code: code.into(),
        },
    );
}

fn typing_to(w: &mut World, visitor: &str, ms: u64) {
    let at = w.at(ms);
    w.ledger.apply(Record::TypingSent {
        socket: OP_A,
        to: Some(visitor.into()),
        at,
    });
}

#[test]
fn a_reply_refused_while_its_visitor_is_online_is_refused_not_lost() {
    let mut w = World::new();
    w.send_to_v1(1, 1_000);
    w.ack(OP_A, 1, 1_002, refused("unknown_client"));
    relay_error(&mut w, OP_A, 1_002, "operatorMessage", "unknown_client");
    let c = w.finish();
    only(&c, Violation::Refused, 1);
    assert_eq!(c["relay_errors"], 1, "the reply is still counted: {c:?}");
}

#[test]
fn a_refusal_around_the_visitors_departure_is_excused_and_after_it_is_right() {
    for (left_ms, sent_ms) in [(1_000, 1_010), (1_000, 990), (1_000, 5_000)] {
        let mut w = World::new();
        w.leave(V1, left_ms);
        for o in [OP_A, OP_B] {
            w.got(
                o,
                left_ms + 1,
                Observed::ChatEnded {
                    client: "v1".into(),
                },
            );
        }
        w.send_to_v1(1, sent_ms);
        w.ack(OP_A, 1, sent_ms + 2, refused("unknown_client"));
        let c = w.finish();
        assert_eq!(c["violations"], 0, "left {left_ms}, sent {sent_ms}: {c:?}");
    }
}

#[test]
fn any_other_code_for_a_valid_message_is_refused() {
    for code in [
        "forbidden",
        "invalid_payload",
        "not_joined",
        "payload_too_large",
    ] {
        let mut w = World::new();
        w.send(V1, 1, 1_000, SentKind::ClientToOperators);
        w.ack(V1, 1, 1_001, refused(code));
        only(&w.finish(), Violation::Refused, 1);
    }
}

#[test]
fn a_message_over_budget_may_be_refused_with_any_code() {
    let mut w = World::with_limit(1);
    w.send(V1, 1, 1_000, SentKind::ClientToOperators);
    w.got_from_client(OP_A, 1, 1_001);
    w.got_from_client(OP_B, 1, 1_001);
    w.send(V1, 2, 2_000, SentKind::ClientToOperators);
    w.ack(V1, 2, 2_001, refused("forbidden"));
    assert_eq!(w.finish()["violations"], 0);
}

#[test]
fn a_refused_join_is_refused_once_and_excuses_what_follows() {
    let mut w = World::new();
    let at = w.at(10);
    w.ledger.apply(Record::Joining {
        socket: 9,
        role: BotRole::Client,
        sid: "v9".into(),
        operator: None,
        node: 0,
        ping_deadline: PING_DEADLINE,
        at,
    });
    let at = w.at(12);
    w.ledger.apply(Record::JoinRefused {
        socket: 9,
        at,
        code: "forbidden".into(),
    });
    relay_error(&mut w, 9, 12, "join", "forbidden");
    relay_error(&mut w, 9, 500, "clientTyping", "not_joined");
    let c = w.finish();
    only(&c, Violation::Refused, 1);
}

#[test]
fn a_typing_indicator_refused_as_unknown_client_is_judged_by_its_visitor() {
    // to a visitor online: refused
    let mut w = World::new();
    typing_to(&mut w, "v1", 1_000);
    relay_error(&mut w, OP_A, 1_001, "operatorTyping", "unknown_client");
    only(&w.finish(), Violation::Refused, 1);
    // to a visitor that had just left: excused
    let mut w = World::new();
    w.leave(V1, 1_000);
    for o in [OP_A, OP_B] {
        w.got(
            o,
            1_001,
            Observed::ChatEnded {
                client: "v1".into(),
            },
        );
    }
    typing_to(&mut w, "v1", 1_005);
    relay_error(&mut w, OP_A, 1_006, "operatorTyping", "unknown_client");
    assert_eq!(w.finish()["violations"], 0);
}

#[test]
fn the_operators_list_and_a_visitors_typing_are_never_refused() {
    let mut w = World::new();
    relay_error(&mut w, OP_A, 1_000, "getConnectedOperators", "forbidden");
    relay_error(&mut w, V1, 1_000, "clientTyping", "invalid_payload");
    only(&w.finish(), Violation::Refused, 2);
}

#[test]
fn a_refusal_waits_for_its_verdict_until_a_broken_visitor_could_be_known() {
    let mut w = World::new();
    w.send_to_v1(1, 1_000);
    w.ack(OP_A, 1, 1_002, refused("unknown_client"));
    // judged only once the refusal has waited: at 40 s the verdict is still open...
    w.got(OP_A, 40_000, Observed::Other("tick".into()));
    w.ledger.settle_due_now();
    assert_eq!(w.ledger.counter(Counter::Violations), 0);
    // ...and V1's link, found broken at 50 s, was silent since before the send: excused
    w.proxy_cut(V1, 0, 900);
    w.broke(V1, 900, 50_000);
    for o in [OP_A, OP_B] {
        w.got(
            o,
            51_000,
            Observed::ChatEnded {
                client: "v1".into(),
            },
        );
    }
    w.got(OP_A, 62_000, Observed::Other("tick".into()));
    w.ledger.settle_due_now();
    assert_eq!(w.finish()["violations"], 0);
}

#[test]
fn without_acks_a_message_relay_error_is_paired_with_the_message_that_reached_nobody() {
    // a backend that never acks refuses the reply to V1, online: refused, and not lost
    let mut w = World::new();
    w.send_to_v1(1, 1_000);
    relay_error(&mut w, OP_A, 1_002, "operatorMessage", "unknown_client");
    w.send_to_v1(2, 2_000);
    w.deliver_ok(2, 2_000);
    only(&w.finish(), Violation::Refused, 1);
    // the same to a visitor that had just left: right, and owed to nobody either
    let mut w = World::new();
    w.leave(V1, 990);
    for o in [OP_A, OP_B] {
        w.got(
            o,
            991,
            Observed::ChatEnded {
                client: "v1".into(),
            },
        );
    }
    w.send_to_v1(1, 1_000);
    relay_error(&mut w, OP_A, 1_002, "operatorMessage", "unknown_client");
    assert_eq!(w.finish()["violations"], 0);
}

#[test]
fn without_acks_a_message_over_budget_may_be_refused_by_relay_error() {
    let mut w = World::with_limit(1);
    w.send(V1, 1, 1_000, SentKind::ClientToOperators);
    w.got_from_client(OP_A, 1, 1_001);
    w.got_from_client(OP_B, 1, 1_001);
    w.send(V1, 2, 2_000, SentKind::ClientToOperators);
    relay_error(&mut w, V1, 2_001, "clientMessage", "forbidden");
    assert_eq!(w.finish()["violations"], 0);
}

#[test]
fn a_relay_error_before_the_first_ack_is_not_counted_twice() {
    let mut w = World::new();
    w.send_to_v1(1, 1_000);
    relay_error(&mut w, OP_A, 1_001, "operatorMessage", "unknown_client");
    w.ack(OP_A, 1, 1_002, refused("unknown_client"));
    only(&w.finish(), Violation::Refused, 1);
}
