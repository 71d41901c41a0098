//! Sanitizing: delivered text, visitor names and file names carry no markup.

use reports::model::Violation;

use super::{Check, Delivery, Flow};
use crate::ledger::tally::Tally;
use crate::record::Observed;

/// Markup delivered.
#[derive(Debug, Default)]
pub struct Sanitizing;

impl Check for Sanitizing {
    fn delivery(&mut self, d: &Delivery<'_>, tally: &mut Tally) -> Flow {
        let unsanitized = match d.what {
            Observed::ToClient { unsanitized, .. }
            | Observed::Broadcast { unsanitized, .. }
            | Observed::FromClient { unsanitized, .. } => *unsanitized,
            _ => false,
        };
        if unsanitized {
            tally.violation(
                Violation::Unsanitized,
                Some(d.id),
                &d.to_info.sid,
                d.at,
                || "markup delivered".into(),
            );
        }
        Flow::Continue
    }
}
