//! Operators' presence: `operatorConnected` on the first tab, `operatorDisconnected` after
//! the last, judged from which tabs' joins were confirmed and when.

use super::*;

/// Operator 3 ("Cy") opens a tab as socket `key`: its join left at `ms`, confirmed 1 ms later.
fn tab(w: &mut World, key: SocketKey, ms: u64) {
    tab_on(w, key, 0, ms);
}

/// The same on target node `node`.
pub(super) fn tab_on(w: &mut World, key: SocketKey, node: u32, ms: u64) {
    let at = w.at(ms);
    w.ledger.apply(Record::Joining {
        socket: key,
        role: BotRole::Operator,
        sid: format!("cy{key}"),
        operator: Some((3, "Cy".into())),
        node,
        ping_deadline: PING_DEADLINE,
        at,
    });
    let at = w.at(ms + 1);
    w.ledger.apply(Record::Joined { socket: key, at });
}

/// `observers` are told at `ms` that operator 3 arrived (`online`) or left.
pub(super) fn told(w: &mut World, observers: &[SocketKey], ms: u64, online: bool) {
    for &o in observers {
        let what = if online {
            Observed::OperatorConnected { operator_id: 3 }
        } else {
            Observed::OperatorDisconnected { operator_id: 3 }
        };
        w.got(o, ms, what);
    }
}

#[test]
fn arrival_and_departure_are_owed_to_every_other_operator() {
    let mut w = World::new();
    tab(&mut w, 10, 100);
    told(&mut w, &[OP_A, OP_B], 102, true);
    w.leave(10, 1_000);
    told(&mut w, &[OP_A, OP_B], 1_002, false);
    assert_eq!(w.finish()["violations"], 0);
}

#[test]
fn a_skipped_departure_is_missed_at_each_operator() {
    let mut w = World::new();
    tab(&mut w, 10, 100);
    told(&mut w, &[OP_A, OP_B], 102, true);
    w.leave(10, 1_000);
    told(&mut w, &[OP_A], 1_002, false);
    only(&w.finish(), Violation::PresenceMissed, 1);
}

#[test]
fn a_skipped_arrival_is_missed() {
    let mut w = World::new();
    tab(&mut w, 10, 100);
    told(&mut w, &[OP_B], 102, true);
    only(&w.finish(), Violation::PresenceMissed, 1);
}

#[test]
fn two_tabs_make_one_arrival_and_one_departure() {
    let mut w = World::new();
    tab(&mut w, 10, 100);
    tab(&mut w, 11, 100);
    told(&mut w, &[OP_A, OP_B], 102, true);
    w.leave(10, 500);
    w.leave(11, 900);
    told(&mut w, &[OP_A, OP_B], 902, false);
    assert_eq!(w.finish()["violations"], 0);
}

#[test]
fn an_arrival_per_tab_is_a_duplicate() {
    let mut w = World::new();
    tab(&mut w, 10, 100);
    told(&mut w, &[OP_A, OP_B], 102, true);
    tab(&mut w, 11, 300);
    told(&mut w, &[OP_A], 302, true);
    only(&w.finish(), Violation::PresenceDuplicated, 1);
}

#[test]
fn a_tab_that_leaves_and_comes_back_is_two_spans_when_the_gap_is_clear() {
    let mut w = World::new();
    tab(&mut w, 10, 100);
    told(&mut w, &[OP_A, OP_B], 102, true);
    w.leave(10, 1_000);
    told(&mut w, &[OP_A, OP_B], 1_002, false);
    tab(&mut w, 11, 2_000);
    told(&mut w, &[OP_A, OP_B], 2_002, true);
    assert_eq!(w.finish()["violations"], 0);
    // the second arrival missed at OP_B
    let mut w = World::new();
    tab(&mut w, 10, 100);
    told(&mut w, &[OP_A, OP_B], 102, true);
    w.leave(10, 1_000);
    told(&mut w, &[OP_A, OP_B], 1_002, false);
    tab(&mut w, 11, 2_000);
    told(&mut w, &[OP_A], 2_002, true);
    only(&w.finish(), Violation::PresenceMissed, 1);
}

#[test]
fn a_tab_switch_within_the_grace_may_or_may_not_be_announced() {
    // the first tab leaves 10 ms before the second joins: the backend may have counted zero
    // tabs in between, or not; either answer is right
    for announced in [false, true] {
        let mut w = World::new();
        tab(&mut w, 10, 100);
        told(&mut w, &[OP_A, OP_B], 102, true);
        w.leave(10, 1_000);
        tab(&mut w, 11, 1_010);
        if announced {
            told(&mut w, &[OP_A, OP_B], 1_003, false);
            told(&mut w, &[OP_A, OP_B], 1_012, true);
        }
        assert_eq!(w.finish()["violations"], 0, "announced: {announced}");
    }
}

#[test]
fn an_operator_with_an_unconfirmed_tab_is_not_judged() {
    let mut w = World::new();
    let at = w.at(100);
    w.ledger.apply(Record::Joining {
        socket: 10,
        role: BotRole::Operator,
        sid: "cy".into(),
        operator: Some((3, "Cy".into())),
        node: 0,
        ping_deadline: PING_DEADLINE,
        at,
    });
    // never confirmed, never announced: not a miss
    assert_eq!(w.finish()["violations"], 0);
}
