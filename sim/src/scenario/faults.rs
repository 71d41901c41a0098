//! `[reconnect]` and `[[faults]]`: how bots come back, and what the run breaks on purpose.

use toml::Spanned;

use super::raw::{RawFault, RawNetwork, RawReconnect};
use super::resolve::Resolver;
use super::{Fault, FaultAction, Reconnect, ScenarioError, Target, Toxic};

impl Resolver<'_> {
    pub(super) fn reconnect(
        &self,
        raw: Option<Spanned<RawReconnect>>,
    ) -> Result<Reconnect, ScenarioError> {
        let mut r = Reconnect::default();
        let Some(raw) = raw.map(Spanned::into_inner) else {
            return Ok(r);
        };
        r.enabled = raw.enabled.unwrap_or(true);
        if let Some(d) = raw.delay {
            if d.get_ref().0.is_zero() {
                return Err(self.err(d.span(), "reconnect.delay", "must be more than 0s"));
            }
            r.delay = d.get_ref().0;
        }
        if let Some(d) = raw.max_delay {
            if d.get_ref().0 < r.delay {
                return Err(self.err(
                    d.span(),
                    "reconnect.max_delay",
                    "must be at least reconnect.delay",
                ));
            }
            r.max_delay = d.get_ref().0;
        }
        if let Some(x) = raw.randomization {
            if !(0.0..=1.0).contains(x.get_ref()) {
                return Err(self.err(x.span(), "reconnect.randomization", "must be 0 to 1"));
            }
            r.randomization = *x.get_ref();
        }
        Ok(r)
    }

    pub(super) fn network(
        &self,
        raw: Option<Spanned<RawNetwork>>,
    ) -> Result<Vec<Toxic>, ScenarioError> {
        let Some(raw) = raw.map(Spanned::into_inner) else {
            return Ok(Vec::new());
        };
        raw.toxics
            .into_iter()
            .enumerate()
            .map(|(i, t)| self.toxic(&format!("network.toxics[{i}]"), t))
            .collect()
    }

    pub(super) fn faults(
        &self,
        raw: Vec<Spanned<RawFault>>,
        target: &Target,
        duration: std::time::Duration,
    ) -> Result<Vec<Fault>, ScenarioError> {
        let relays = match target {
            Target::Embedded { relays } => Some(*relays),
            Target::External { .. } | Target::Process => None,
        };
        let nodes = match target {
            Target::Embedded { relays } => *relays,
            Target::External { urls, .. } => u32::try_from(urls.len()).unwrap_or(u32::MAX),
            Target::Process => 1,
        };
        let mut faults = Vec::with_capacity(raw.len());
        for (i, f) in raw.into_iter().enumerate() {
            let span = f.span();
            let f = f.into_inner();
            let field = |name: &str| format!("faults[{i}].{name}");
            let at = f.at.get_ref().0;
            if at >= duration {
                return Err(self.err(
                    f.at.span(),
                    field("at"),
                    "must fall within scenario.duration",
                ));
            }
            let set = usize::from(f.kill_relay.is_some())
                + usize::from(f.restart_relay.is_some())
                + usize::from(f.restart_redis.is_some())
                + usize::from(f.command.is_some())
                + usize::from(f.restart.is_some())
                + usize::from(f.network_outage.is_some())
                + usize::from(f.toxic.is_some());
            if set != 1 {
                return Err(self.err(
                    span,
                    format!("faults[{i}]"),
                    "needs exactly one of kill_relay, restart_relay, restart_redis, command, \
                     restart, network_outage, toxic",
                ));
            }
            if let (Some(n), None, None) = (&f.node, &f.command, &f.restart) {
                return Err(self.err(n.span(), field("node"), "is for command or restart"));
            }
            if let (Some(l), None) = (&f.lasting, &f.toxic) {
                return Err(self.err(l.span(), field("lasting"), "is for a toxic"));
            }
            if let Some(o) = f.network_outage {
                if o.get_ref().0.is_zero() {
                    return Err(self.err(
                        o.span(),
                        field("network_outage"),
                        "must be more than 0s",
                    ));
                }
                faults.push(Fault {
                    at,
                    action: FaultAction::NetworkOutage(o.get_ref().0),
                });
                continue;
            }
            if let Some(t) = f.toxic {
                let toxic = self.toxic(&field("toxic"), t)?;
                let lasting = f.lasting.map(|l| l.get_ref().0).unwrap_or_default();
                faults.push(Fault {
                    at,
                    action: FaultAction::Toxic { toxic, lasting },
                });
                continue;
            }
            let relay = |n: Spanned<u32>, name: &str| match relays {
                Some(r) if r >= 2 && (1..=r).contains(n.get_ref()) => Ok(n.get_ref() - 1),
                Some(r) if r >= 2 => {
                    Err(self.err(n.span(), field(name), format!("names relay 1 to {r}")))
                }
                _ => Err(self.err(
                    n.span(),
                    field(name),
                    "needs an embedded cluster ([target] relays = 2 or more); \
                     for an external target use command",
                )),
            };
            let action = if let Some(n) = f.kill_relay {
                FaultAction::KillRelay(relay(n, "kill_relay")?)
            } else if let Some(n) = f.restart_relay {
                FaultAction::RestartRelay(relay(n, "restart_relay")?)
            } else if let Some(b) = f.restart_redis {
                if !*b.get_ref() || relays.is_none_or(|r| r < 2) {
                    return Err(self.err(
                        b.span(),
                        field("restart_redis"),
                        "is `true`, for an embedded cluster ([target] relays = 2 or more)",
                    ));
                }
                FaultAction::RestartRedis
            } else {
                let restart = f.restart.is_some();
                let command = f
                    .command
                    .or(f.restart)
                    .unwrap_or_else(|| Spanned::new(0..0, String::new()));
                if command.get_ref().trim().is_empty() {
                    let name = if restart { "restart" } else { "command" };
                    return Err(self.err(command.span(), field(name), "is empty"));
                }
                let node = match f.node {
                    Some(n) if *n.get_ref() == 0 || *n.get_ref() > nodes => {
                        return Err(self.err(
                            n.span(),
                            field("node"),
                            format!(
                                "names a node of the target, 1 to {nodes} (the target has \
                                 {nodes})"
                            ),
                        ));
                    }
                    None if restart => {
                        return Err(self.err(
                            command.span(),
                            field("restart"),
                            "brings a node back: name it with node = 1, 2, …",
                        ));
                    }
                    n => n.map(|n| n.get_ref() - 1),
                };
                FaultAction::Command {
                    run: command.into_inner(),
                    node,
                    restart,
                }
            };
            faults.push(Fault { at, action });
        }
        faults.sort_by_key(|f| f.at);
        Ok(faults)
    }
}
