//! Connections broken on purpose or by the backend: what is lost with them is reported
//! apart from loss on healthy sockets, and a killed node's sockets are not the backend's
//! fault.

use super::*;

/// The bot's end of socket `k`'s TCP connection (`n`: its first or second, as a polling
/// socket has two).
fn local(k: SocketKey, n: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 20_000 + 10 * k as u16 + n))
}

impl World {
    /// The backend (or a fault) cuts `socket` at `ms`.
    pub(super) fn cut(&mut self, socket: SocketKey, ms: u64) {
        let at = self.at(ms);
        self.ledger.apply(Record::Closed {
            socket,
            at,
            unexpected: true,
            broken: None,
            local: vec![local(socket, 0)],
        });
    }

    /// `socket`'s transport breaks: the bot finds out at `ms`, having last heard from the
    /// server at `heard_ms`.
    pub(super) fn broke(&mut self, socket: SocketKey, heard_ms: u64, ms: u64) {
        let (heard, at) = (self.at(heard_ms), self.at(ms));
        self.ledger.apply(Record::Closed {
            socket,
            at,
            unexpected: true,
            broken: Some(heard),
            local: vec![local(socket, 0), local(socket, 1)],
        });
    }

    /// The fault proxy notes a cut of `socket`'s `n`th TCP connection at `ms`.
    pub(super) fn proxy_cut(&mut self, socket: SocketKey, n: u16, ms: u64) {
        let at = self.at(ms);
        self.ledger.apply(Record::NetworkCut {
            at,
            peer: local(socket, n),
        });
    }
}

#[test]
fn a_recipient_cut_right_after_a_message_is_lost_disconnected_not_lost() {
    let mut w = World::new();
    w.send_to_v1(1, 10);
    w.got_to_client(V1, 1, 11);
    w.cut(OP_B, 12); // the broadcast to OP_B went down with its connection
    let c = w.finish();
    assert_eq!(c["lost"], 0, "{c:?}");
    assert_eq!(c["lost.disconnected"], 1, "{c:?}");
}

#[test]
fn a_sender_cut_before_its_ack_loses_nothing_on_healthy_sockets() {
    let mut w = World::new();
    w.send_to_v1(1, 10);
    w.cut(OP_A, 11); // no ack: the backend may never have taken it
    let c = w.finish();
    assert_eq!(c["lost"], 0, "{c:?}");
    assert_eq!(c["lost.disconnected"], 2, "both recipients: {c:?}");
}

#[test]
fn an_acknowledged_message_is_still_owed_after_its_sender_is_cut() {
    let mut w = World::new();
    w.send_to_v1(1, 10);
    w.ack(OP_A, 1, 11, AckOutcome::Accepted);
    w.cut(OP_A, 12);
    w.got_to_client(V1, 1, 13); // OP_B never gets it although the backend took it
    let c = w.finish();
    assert_eq!(c["lost"], 1, "{c:?}");
    assert_eq!(c["lost.disconnected"], 0, "{c:?}");
}

#[test]
fn a_socket_cut_long_before_a_message_is_owed_nothing_and_counted_nowhere() {
    let mut w = World::new();
    w.cut(OP_B, 5);
    w.send_to_v1(1, 5_000);
    w.got_to_client(V1, 1, 5_001);
    let c = w.finish();
    assert_eq!((c["lost"], c["lost.disconnected"]), (0, 0), "{c:?}");
}

#[test]
fn sockets_of_a_killed_node_are_disconnected_by_the_fault_others_unexpectedly() {
    let mut w = World::new();
    // OP_B sits on node 1, which a fault kills at 100 ms; V2 is on node 0
    let at = w.at(1);
    w.ledger.apply(Record::Joining {
        socket: 9,
        role: BotRole::Operator,
        sid: "opB2".into(),
        operator: Some((2, "Bob".into())),
        node: 1,
        ping_deadline: PING_DEADLINE,
        at,
    });
    let at = w.at(100);
    w.ledger.apply(Record::Fault {
        killed: Some(1),
        at,
    });
    w.cut(9, 101);
    w.cut(V2, 102);
    let c = w.finish();
    assert_eq!(c["disconnected.fault"], 1, "{c:?}");
    assert_eq!(c["disconnected.unexpected"], 1, "{c:?}");
}

#[test]
fn a_cut_explains_its_own_connection_only() {
    let mut w = World::new();
    // two cuts, of OP_B's and of OP_A's connections: OP_B's break is explained, V2's is
    // not (a spare cut of someone else's connection excuses nothing), nor V1's clean close
    w.proxy_cut(OP_B, 0, 100);
    w.proxy_cut(OP_A, 0, 100);
    w.broke(OP_B, 150, 150);
    w.broke(V2, 160, 160);
    w.cut(V1, 170);
    let c = w.finish();
    assert_eq!(c["disconnected.fault"], 1, "{c:?}");
    assert_eq!(c["disconnected.unexpected"], 2, "{c:?}");
}

#[test]
fn a_cut_of_a_polling_sockets_second_connection_explains_it() {
    let mut w = World::new();
    w.proxy_cut(OP_B, 1, 100); // the POST connection of a long-polling socket
    w.broke(OP_B, 150, 150);
    let c = w.finish();
    assert_eq!(c["disconnected.fault"], 1, "{c:?}");
    assert_eq!(c["disconnected.unexpected"], 0, "{c:?}");
}

#[test]
fn a_connection_dated_when_last_heard_is_explained_by_a_later_cut() {
    let mut w = World::new();
    w.proxy_cut(OP_B, 0, 5_000);
    w.broke(OP_B, 1_000, 6_000); // last heard 4 s before the cut, found dead after it
    let c = w.finish();
    assert_eq!(c["disconnected.fault"], 1, "{c:?}");
}

#[test]
fn a_cut_too_long_before_explains_nothing() {
    let mut w = World::new();
    w.proxy_cut(OP_B, 0, 1);
    w.broke(OP_B, 61_001, 61_001);
    let c = w.finish();
    assert_eq!(c["disconnected.unexpected"], 1, "{c:?}");
}

#[test]
fn a_broken_connection_excuses_what_it_missed_only_when_the_proxy_cut_it() {
    for cut in [false, true] {
        let mut w = World::new();
        w.send_to_v1(1, 1_000); // OP_B is owed the broadcast
        w.got_to_client(V1, 1, 1_001);
        if cut {
            w.proxy_cut(OP_B, 0, 1_500);
        }
        w.broke(OP_B, 500, 2_000); // last heard at 0.5 s, found broken at 2 s
        let c = w.finish();
        if cut {
            assert_eq!((c["lost"], c["lost.disconnected"]), (0, 1), "{c:?}");
            assert_eq!(c["disconnected.fault"], 1, "{c:?}");
        } else {
            // a crash or a killed link without the proxy: the loss is the backend's
            assert_eq!((c["lost"], c["lost.disconnected"]), (1, 0), "{c:?}");
            assert_eq!(c["disconnected.unexpected"], 1, "{c:?}");
        }
    }
}

#[test]
fn a_fault_that_failed_kills_nothing() {
    let mut w = World::new();
    let at = w.at(1);
    w.ledger.apply(Record::Joining {
        socket: 9,
        role: BotRole::Operator,
        sid: "opB2".into(),
        operator: Some((2, "Bob".into())),
        node: 1,
        ping_deadline: PING_DEADLINE,
        at,
    });
    let at = w.at(100);
    w.ledger.apply(Record::Fault {
        killed: Some(1),
        at,
    });
    let at = w.at(150);
    w.ledger.apply(Record::FaultFailed {
        why: "`kill -9 1234` exited with exit status: 1".into(),
        node: Some(1),
        at,
    });
    // node 1 lives on: the backend closing its socket now is the backend's doing
    w.cut(9, 200);
    let c = w.finish();
    assert_eq!(c["faults.failed"], 1, "{c:?}");
    assert_eq!(c["disconnected.fault"], 0, "{c:?}");
    assert_eq!(c["disconnected.unexpected"], 1, "{c:?}");
}

/// A node's "Session ID unknown" is counted apart, beside the broken connection's violation.
#[test]
fn sessions_a_balancer_broke_are_counted() {
    let mut w = World::new();
    for ms in [10, 20] {
        let at = w.at(ms);
        w.ledger.apply(Record::SessionUnknown { socket: 9, at });
    }
    let c = w.finish();
    assert_eq!(c["sessions.unknown"], 2, "{c:?}");
}

#[test]
fn a_slow_kill_is_timed_from_when_it_was_done() {
    // a `docker stop` that takes 8 s: the node's sockets close, and its departures are
    // announced 12 s after the fault began but 4 s after the node was dead for sure
    let mut w = World::new();
    let at = w.at(1);
    w.ledger.apply(Record::Joining {
        socket: 9,
        role: BotRole::Client,
        sid: "v9".into(),
        operator: None,
        node: 1,
        ping_deadline: PING_DEADLINE,
        at,
    });
    for o in [OP_A, OP_B] {
        w.got(
            o,
            2,
            Observed::NewChat {
                client: "v9".into(),
                username: "v9".into(),
            },
        );
    }
    let at = w.at(1_000);
    w.ledger.apply(Record::Fault {
        killed: Some(1),
        at,
    });
    w.cut(9, 8_500);
    let at = w.at(9_000);
    w.ledger.apply(Record::FaultDone { node: 1, at });
    for o in [OP_A, OP_B] {
        w.got(
            o,
            13_000,
            Observed::ChatEnded {
                client: "v9".into(),
            },
        );
    }
    let c = w.finish();
    assert_eq!(c["disconnected.fault"], 1, "{c:?}");
    assert_eq!(c["violations"], 0, "{c:?}");
}
