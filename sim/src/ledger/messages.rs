//! The message book: every message of this process awaiting its verdict, and a bitmap of
//! those already judged, so a long soak does not grow with its message count.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::bits::Bits;
use crate::record::{AckOutcome, MsgId, SentKind, SocketKey};

/// Message ids each shard may use: shard k numbers from `k × ID_SPACE + 1`.
pub const ID_SPACE: MsgId = 1 << 40;

/// One message in flight.
#[derive(Debug)]
pub struct Message {
    /// Its id.
    pub id: MsgId,
    /// Sending socket.
    pub sender: SocketKey,
    /// Path.
    pub kind: SentKind,
    /// Scheduled instant.
    pub intended: Instant,
    /// When it left.
    pub sent_at: Instant,
    /// What its ack said, and when.
    pub ack: Option<(AckOutcome, Instant)>,
    /// Sockets it reached (correct or not), in arrival order.
    pub received: Vec<SocketKey>,
    /// Whether its deliveries are owed at all (the rate-limit verdict decides at settling).
    pub owed: bool,
    /// Whether the rate budget had room for it (the rate-limit verdict, at settling): a
    /// refusal of a message without room is no violation, whatever its code.
    pub within_budget: bool,
}

impl Message {
    /// A message that just left.
    pub fn new(
        id: MsgId,
        sender: SocketKey,
        kind: SentKind,
        intended: Instant,
        sent_at: Instant,
    ) -> Self {
        Self {
            id,
            sender,
            kind,
            intended,
            sent_at,
            ack: None,
            received: Vec::new(),
            owed: true,
            within_budget: true,
        }
    }

    /// The visitor an operator's message is addressed to.
    pub fn to(&self) -> Option<&str> {
        match &self.kind {
            SentKind::OperatorToClient { to } => Some(to),
            SentKind::ClientToOperators => None,
        }
    }
}

/// Pending messages and judged ids.
#[derive(Debug)]
pub struct MessageBook {
    first_id: MsgId,
    pending: HashMap<MsgId, Message>,
    /// Judged ids, by offset from the first (ids are dense).
    settled: Bits,
}

impl MessageBook {
    /// A book for ids numbered from `first_id` (this shard's id space).
    pub fn new(first_id: MsgId) -> Self {
        Self {
            first_id,
            pending: HashMap::new(),
            settled: Bits::default(),
        }
    }

    /// True when `id` belongs to this process's id space.
    pub fn is_own(&self, id: MsgId) -> bool {
        id >= self.first_id && id - self.first_id < ID_SPACE
    }

    /// Starts awaiting a message.
    pub fn insert(&mut self, m: Message) {
        self.pending.insert(m.id, m);
    }

    /// A pending message.
    pub fn get(&self, id: MsgId) -> Option<&Message> {
        self.pending.get(&id)
    }

    /// A pending message, to note an ack or a receipt on.
    pub fn get_mut(&mut self, id: MsgId) -> Option<&mut Message> {
        self.pending.get_mut(&id)
    }

    /// True for an own id already judged.
    pub fn is_settled(&self, id: MsgId) -> bool {
        self.is_own(id) && self.settled.get(id - self.first_id)
    }

    /// Takes a message out for judging; its id counts as judged from now on.
    pub fn take(&mut self, id: MsgId) -> Option<Message> {
        let m = self.pending.remove(&id)?;
        self.settled.set(id - self.first_id);
        Some(m)
    }

    /// Ids of messages that left at least `after` before `now`, oldest id first (per
    /// sender, ids grow in send order).
    pub fn due(&self, now: Instant, after: Duration) -> Vec<MsgId> {
        let mut ids: Vec<MsgId> = self
            .pending
            .values()
            .filter(|m| now.saturating_duration_since(m.sent_at) >= after)
            .map(|m| m.id)
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Every pending id, oldest first.
    pub fn all(&self) -> Vec<MsgId> {
        let mut ids: Vec<MsgId> = self.pending.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// True while `id` awaits its verdict.
    pub fn is_pending(&self, id: MsgId) -> bool {
        self.pending.contains_key(&id)
    }

    /// Messages awaiting their verdict.
    pub fn count(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_judged_once_oldest_first() {
        let t0 = Instant::now();
        let mut book = MessageBook::new(1 + ID_SPACE);
        assert!(!book.is_own(1) && book.is_own(ID_SPACE + 5));
        for (id, ms) in [(ID_SPACE + 3, 30), (ID_SPACE + 1, 10), (ID_SPACE + 2, 20)] {
            let at = t0 + Duration::from_millis(ms);
            book.insert(Message::new(id, 0, SentKind::ClientToOperators, at, at));
        }
        let due = book.due(t0 + Duration::from_millis(1025), Duration::from_secs(1));
        assert_eq!(due, [ID_SPACE + 1, ID_SPACE + 2]);
        assert!(book.take(ID_SPACE + 1).is_some());
        assert!(book.is_settled(ID_SPACE + 1) && !book.is_settled(ID_SPACE + 2));
        assert!(book.take(ID_SPACE + 1).is_none());
        assert_eq!(book.all(), [ID_SPACE + 2, ID_SPACE + 3]);
    }
}
