//! Adversary groups (`role = "adversary"`): which attacks, how many attempts of each, and
//! the bound the target's memory must stay under.

use reports::attacks::Attack;

use super::ScenarioError;
use super::raw::RawGroup;
use super::resolve::Resolver;

/// Threshold the default gate adds when a scenario has an adversary.
pub const ATTACKS_SUCCEEDED: &str = "attacks.succeeded";

/// Memory growth past which an attack counts as a success, MiB, when none is written.
const DEFAULT_MEMORY_BOUND_MIB: u32 = 256;

/// The adversary of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Adversary {
    /// Group name.
    pub name: String,
    /// Attacks to carry out, in catalogue order.
    pub attacks: Vec<Attack>,
    /// Attempts of each attack (the group's `count`).
    pub attempts: u32,
    /// Growth of the target's resident memory over its value before the attacks, MiB,
    /// past which the attack under way counts as a success.
    pub memory_bound_mib: u32,
}

impl Resolver<'_> {
    pub(super) fn adversary(&self, i: usize, g: RawGroup) -> Result<Adversary, ScenarioError> {
        let f = |name: &str| format!("bots[{i}].{name}");
        let attempts = *g.count.get_ref();
        if !(1..=100).contains(&attempts) {
            return Err(self.err(
                g.count.span(),
                f("count"),
                "is the attempts of each attack: 1 to 100",
            ));
        }
        let chat_only = [
            ("tabs", g.tabs.as_ref().map(|x| x.span())),
            ("transport", g.transport.map(|_| 0..0)),
            ("ramp_up", g.ramp_up.map(|_| 0..0)),
            ("offline", g.offline.map(|_| 0..0)),
            (
                "messages_per_minute",
                g.messages_per_minute.as_ref().map(|x| x.span()),
            ),
            ("burst", g.burst.as_ref().map(|x| x.span())),
            ("text_length", g.text_length.as_ref().map(|x| x.span())),
            (
                "markup_fraction",
                g.markup_fraction.as_ref().map(|x| x.span()),
            ),
            (
                "image_fraction",
                g.image_fraction.as_ref().map(|x| x.span()),
            ),
            ("image_bytes", g.image_bytes.as_ref().map(|x| x.span())),
            (
                "typing_probability",
                g.typing_probability.as_ref().map(|x| x.span()),
            ),
            ("lifetime", g.lifetime.as_ref().map(|x| x.span())),
            ("reconnects", g.reconnects.as_ref().map(|x| x.span())),
        ];
        for (name, span) in chat_only {
            if let Some(span) = span {
                let span = if span.is_empty() { g.role.span() } else { span };
                return Err(self.err(span, f(name), "is for chat bots, not adversaries"));
            }
        }
        let attacks = match g.attacks {
            None => Attack::ALL.to_vec(),
            Some(list) => {
                let span = list.span();
                let mut chosen = Vec::new();
                for (k, name) in list.into_inner().into_iter().enumerate() {
                    let found = match name.get_ref().as_str() {
                        "all" => Attack::ALL.to_vec(),
                        n => match Attack::from_name(n) {
                            Some(a) => vec![a],
                            None => {
                                return Err(self.err(
                                    name.span(),
                                    format!("bots[{i}].attacks[{k}]"),
                                    format!(
                                        "unknown attack {n:?}; known: all, {}",
                                        Attack::ALL
                                            .iter()
                                            .map(|a| a.name())
                                            .collect::<Vec<_>>()
                                            .join(", ")
                                    ),
                                ));
                            }
                        },
                    };
                    chosen.extend(found);
                }
                chosen.sort_unstable();
                chosen.dedup();
                if chosen.is_empty() {
                    return Err(self.err(span, f("attacks"), "names no attack"));
                }
                chosen
            }
        };
        let memory_bound_mib = match g.memory_bound_mib {
            Some(m) if *m.get_ref() == 0 => {
                return Err(self.err(m.span(), f("memory_bound_mib"), "must be at least 1"));
            }
            Some(m) => *m.get_ref(),
            None => DEFAULT_MEMORY_BOUND_MIB,
        };
        Ok(Adversary {
            name: g.name.unwrap_or_else(|| format!("adversary {i}")),
            attacks,
            attempts,
            memory_bound_mib,
        })
    }
}
