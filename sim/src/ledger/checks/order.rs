//! Order: each sender's messages reach each recipient in the order they were sent (ids
//! grow in each sender's send order).

use std::collections::HashMap;

use reports::model::Violation;

use super::{Check, Delivery, Flow};
use crate::ledger::tally::Tally;
use crate::record::{MsgId, SocketKey};

/// Per sender → recipient order.
#[derive(Debug, Default)]
pub struct Order {
    /// Highest id each recipient got from each sender, while that message is pending.
    last: HashMap<(SocketKey, SocketKey), MsgId>,
}

impl Order {
    /// Forgets pairs whose last message was judged: anything older arriving now is a
    /// duplicate or unknown, which other checks report. Keeps memory bounded by what is in
    /// flight, not by how many pairs ever talked.
    pub fn prune(&mut self, pending: impl Fn(MsgId) -> bool) {
        self.last.retain(|_, id| pending(*id));
    }
}

impl Check for Order {
    fn delivery(&mut self, d: &Delivery<'_>, tally: &mut Tally) -> Flow {
        let last = self.last.entry((d.message.sender, d.to)).or_insert(0);
        if d.id < *last {
            let later = *last;
            tally.violation(
                Violation::Reordered,
                Some(d.id),
                &d.to_info.sid,
                d.at,
                || format!("arrived after {later}, a later message of its sender"),
            );
        } else {
            *last = d.id;
        }
        Flow::Continue
    }
}
