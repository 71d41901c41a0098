//! An operator: joins with its identity, learns visitors from `newChat` (and forgets them
//! at `chatEnded`) as the frontend does, and writes to one of them at a time.

use rand::RngExt;
use rand::rngs::StdRng;
use relay::auth::OperatorIdentity;
use relay::protocol::{JoinRequest, event};

use super::{Compose, Directory, Draft, Script, Typing, content, outgoing};
use crate::record::{Observed, SentKind};

/// An operator's script.
pub struct Operator {
    who: OperatorIdentity,
    /// In a sharded run, only visitors whose names carry this tag are this shard's.
    shard_tag: Option<String>,
    /// Visitors heard of, as directory indexes.
    known: Vec<u32>,
}

impl Operator {
    /// The script of operator `who`.
    pub fn new(who: OperatorIdentity, shard_tag: Option<String>) -> Self {
        Self {
            who,
            shard_tag,
            known: Vec::new(),
        }
    }
}

impl Script for Operator {
    fn join(&mut self, _rng: &mut StdRng) -> JoinRequest {
        outgoing::operator_join(&self.who)
    }

    fn confirms_with_list(&self) -> bool {
        true
    }

    fn compose(
        &mut self,
        c: &mut Compose<'_>,
        n: u32,
        typing: bool,
    ) -> Option<(Vec<Draft>, Option<Typing>)> {
        if self.known.is_empty() {
            return None;
        }
        let pick = self.known[c.rng.random_range(0..self.known.len())];
        let to = c.shared.visitors.get(pick)?;
        let typing = typing.then(|| Typing {
            packet: outgoing::operator_typing(&to),
            to: Some(to.to_string()),
        });
        let drafts = (0..n)
            .map(|_| {
                let msg = c.next_msg();
                let body = content::body(msg, c.group, c.images, c.rng);
                let m = outgoing::operator_message(&to, body, &self.who);
                Draft {
                    packet: outgoing::packet(event::OPERATOR_MESSAGE, &m, Some(msg)),
                    msg,
                    kind: SentKind::OperatorToClient { to: to.to_string() },
                }
            })
            .collect();
        Some((drafts, typing))
    }

    fn observe(&mut self, what: &Observed, visitors: &Directory) {
        match what {
            Observed::NewChat { client, username } => {
                // the adversary's visitors are not for the chat's operators to answer
                let mine = !username.contains(crate::adversary::ADVERSARY_TAG)
                    && self
                        .shard_tag
                        .as_ref()
                        .is_none_or(|tag| username.contains(tag.as_str()));
                if mine {
                    self.known.push(visitors.intern(client));
                }
            }
            Observed::ChatEnded { client } => {
                let gone = visitors.intern(client);
                self.known.retain(|k| *k != gone);
            }
            _ => {}
        }
    }

    fn reset(&mut self) {
        self.known.clear();
    }
}
