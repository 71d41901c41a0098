//! A visitor: joins with a name and writes to the operators.

use rand::rngs::StdRng;
use relay::protocol::{JoinRequest, event};

use super::{Compose, Directory, Draft, Script, Typing, content, outgoing};
use crate::record::{Observed, SentKind};

/// A visitor's script.
pub struct Visitor {
    /// In a sharded run, the tag this shard's visitors carry in their names.
    shard_tag: Option<String>,
}

impl Visitor {
    /// A visitor of this process's shard.
    pub fn new(shard_tag: Option<String>) -> Self {
        Self { shard_tag }
    }
}

impl Script for Visitor {
    fn join(&mut self, rng: &mut StdRng) -> JoinRequest {
        let name = match &self.shard_tag {
            Some(tag) => format!("{} {tag}", content::person(rng)),
            None => content::person(rng),
        };
        outgoing::visitor_join(&name)
    }

    fn compose(
        &mut self,
        c: &mut Compose<'_>,
        n: u32,
        typing: bool,
    ) -> Option<(Vec<Draft>, Option<Typing>)> {
        let typing = typing.then(|| Typing {
            packet: outgoing::client_typing(),
            to: None,
        });
        let drafts = (0..n)
            .map(|_| {
                let msg = c.next_msg();
                let body = content::body(msg, c.group, c.images, c.rng);
                Draft {
                    packet: outgoing::packet(event::CLIENT_MESSAGE, &body, Some(msg)),
                    msg,
                    kind: SentKind::ClientToOperators,
                }
            })
            .collect();
        Some((drafts, typing))
    }

    fn observe(&mut self, _what: &Observed, _visitors: &Directory) {}
}
