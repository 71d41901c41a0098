//! A supervisor: an operator who only watches, so it must see every fan-out.

use rand::rngs::StdRng;
use relay::auth::OperatorIdentity;
use relay::protocol::JoinRequest;

use super::{Compose, Directory, Draft, Script, Typing, outgoing};
use crate::record::Observed;

/// A supervisor's script.
pub struct Supervisor {
    who: OperatorIdentity,
}

impl Supervisor {
    /// The script of supervisor `who`.
    pub fn new(who: OperatorIdentity) -> Self {
        Self { who }
    }
}

impl Script for Supervisor {
    fn join(&mut self, _rng: &mut StdRng) -> JoinRequest {
        outgoing::operator_join(&self.who)
    }

    fn confirms_with_list(&self) -> bool {
        true
    }

    fn compose(
        &mut self,
        _c: &mut Compose<'_>,
        _n: u32,
        _typing: bool,
    ) -> Option<(Vec<Draft>, Option<Typing>)> {
        None
    }

    fn observe(&mut self, _what: &Observed, _visitors: &Directory) {}
}
