//! The adversary: every attack of its group carried out against the target, each attempt
//! judged by what its witnesses see ([`arena`]), by whether the target still takes
//! connections and answers `/health`, and by how far its memory grew.
//!
//! Attacks run one after another (their attempts together), while the chat bots go on; the
//! half-open attack runs beside them from the start, since it waits out the target's own
//! ping deadline.

mod arena;
mod content;
mod hijack;
mod identity;
mod routing;
mod shape;
mod volume;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use relay::auth::OperatorIdentity;
use reports::attacks::{Attack, Family};
use reports::model::AttackReport;
use tokio::sync::watch;
use wire::Endpoint;

pub use arena::ADVERSARY_TAG;
use arena::Arena;

use crate::access::Access;
use crate::bots::Phase;
use crate::scenario::{Adversary, Limits};
use crate::tokens::Tokens;
use crate::watch as target_watch;

/// Examples kept per attack.
const EXAMPLES: usize = 5;

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The target withstood it.
    Blocked,
    /// It got through; what the oracle saw.
    Succeeded(String),
    /// It could not be judged; why.
    NotJudged(String),
}

/// What the adversary needs of the run.
pub struct Setup {
    /// The adversary group.
    pub plan: Adversary,
    /// Where to connect.
    pub endpoint: Endpoint,
    /// Every node (for `/health` and `/metrics`).
    pub nodes: Vec<SocketAddr>,
    /// Expected limits.
    pub limits: Limits,
    /// Where valid operator tokens come from.
    pub tokens: Arc<Tokens>,
    /// A tokens file's identities left for the adversary; `None`: any identity.
    pub identities: Option<Vec<OperatorIdentity>>,
    /// TLS trust and headers of the run.
    pub access: Access,
    /// The run's phase: attacks stop when sending ends.
    pub phase: watch::Receiver<Phase>,
}

/// Carries out every attack of `setup.plan` and reports each.
pub async fn run(setup: Setup) -> Vec<AttackReport> {
    let plan = setup.plan.clone();
    let mut reports: Vec<AttackReport> = plan.attacks.iter().map(|a| blank(*a)).collect();
    let arena = match Arena::open(
        setup.endpoint.clone(),
        setup.nodes.clone(),
        setup.limits,
        setup.tokens.clone(),
        setup.identities.clone(),
        setup.access.clone(),
    )
    .await
    {
        Ok(a) => Arc::new(a),
        Err(why) => {
            for r in &mut reports {
                for _ in 0..plan.attempts {
                    tally(r, &Outcome::NotJudged(why.clone()));
                }
            }
            return reports;
        }
    };
    let health_before = health(&arena.nodes).await;
    let bound = f64::from(plan.memory_bound_mib) * 1024.0 * 1024.0;

    let half_open = plan.attacks.contains(&Attack::HalfOpen).then(|| {
        let (arena, phase, attempts) = (arena.clone(), setup.phase.clone(), plan.attempts);
        tokio::spawn(async move { volume::half_open(&arena, attempts, phase).await })
    });
    let mut down: Option<Attack> = None;
    for (attack, report) in plan.attacks.iter().zip(reports.iter_mut()) {
        if *attack == Attack::HalfOpen {
            continue;
        }
        let skip = if let Some(d) = down {
            Some(format!("the target was down since {d}"))
        } else if !arena.witnesses_listening() {
            Some("a witness lost its connection: nothing more can be seen".to_owned())
        } else if *setup.phase.borrow() != Phase::Sending {
            Some("the sending phase ended first; make the scenario longer".to_owned())
        } else {
            None
        };
        if let Some(why) = skip {
            for _ in 0..plan.attempts {
                tally(report, &Outcome::NotJudged(why.clone()));
            }
            continue;
        }
        // each attack answers for the memory it adds, not for the run's own growth
        let memory_before = target_watch::resident_memory(&arena.nodes).await;
        let mut set = tokio::task::JoinSet::new();
        for n in 0..plan.attempts {
            let (arena, attack) = (arena.clone(), *attack);
            set.spawn(async move { attempt(&arena, attack, n).await });
        }
        let mut phase = setup.phase.clone();
        let ended = async move {
            let _ = phase.wait_for(|p| *p != Phase::Sending).await;
        };
        let mut outcomes = tokio::select! {
            o = set.join_all() => o,
            () = ended => {
                // the chat moves on to its checks: nothing of the adversary's may stay
                let why = "the sending phase ended during the attack; make the scenario longer";
                vec![Outcome::NotJudged(why.to_owned()); plan.attempts as usize]
            }
        };
        // what happened to the target is this attack's doing
        let mut harm = None;
        if !arena.alive().await {
            harm = Some("the target stopped taking connections".to_owned());
            down = Some(*attack);
        } else if health_before == Some(true) && health(&arena.nodes).await != Some(true) {
            harm = Some("the target's /health stopped answering 200".to_owned());
        } else if let (Some(before), Some(now)) = (
            memory_before,
            target_watch::resident_memory(&arena.nodes).await,
        ) && now - before > bound
        {
            harm = Some(format!(
                "the target's resident memory grew {:.0} MiB, past the bound of {} MiB",
                (now - before) / 1024.0 / 1024.0,
                plan.memory_bound_mib
            ));
        }
        if let Some(harm) = harm {
            for o in &mut outcomes {
                if *o == Outcome::Blocked {
                    *o = Outcome::Succeeded(harm.clone());
                }
            }
        }
        for o in &outcomes {
            tally(report, o);
        }
    }
    if let Some(task) = half_open {
        let outcomes = task.await.unwrap_or_default();
        if let Some(r) = reports
            .iter_mut()
            .find(|r| r.name == Attack::HalfOpen.name())
        {
            for o in &outcomes {
                tally(r, o);
            }
        }
    }
    arena.close().await;
    reports
}

/// One attempt of `attack`, the `n`th.
async fn attempt(arena: &Arena, attack: Attack, n: u32) -> Outcome {
    let outcome = match attack.family() {
        Family::Identity => identity::attempt(arena, attack, n).await,
        Family::Routing => routing::attempt(arena, attack, n).await,
        Family::Content => content::attempt(arena, attack, n).await,
        Family::Shape => shape::attempt(arena, attack, n).await,
        Family::Hijack => hijack::attempt(arena, attack, n).await,
        Family::Volume => volume::attempt(arena, attack, n).await,
    };
    outcome.unwrap_or_else(Outcome::NotJudged)
}

/// `Blocked` unless `evidence` says what got through.
fn judged(evidence: Option<String>) -> Result<Outcome, String> {
    Ok(evidence.map_or(Outcome::Blocked, Outcome::Succeeded))
}

fn blank(a: Attack) -> AttackReport {
    AttackReport {
        name: a.name().to_owned(),
        family: a.family().name().to_owned(),
        succeeds_when: a.succeeds_when().to_owned(),
        attempted: 0,
        blocked: 0,
        succeeded: 0,
        not_judged: 0,
        examples: Vec::new(),
    }
}

fn tally(r: &mut AttackReport, o: &Outcome) {
    r.attempted += 1;
    let example = match o {
        Outcome::Blocked => {
            r.blocked += 1;
            None
        }
        Outcome::Succeeded(e) => {
            r.succeeded += 1;
            Some(e.clone())
        }
        Outcome::NotJudged(e) => {
            r.not_judged += 1;
            Some(format!("not judged: {e}"))
        }
    };
    if let Some(e) = example
        && r.examples.len() < EXAMPLES
        && !r.examples.contains(&e)
    {
        r.examples.push(e);
    }
}

/// `Some(true)` when every node answers `/health` with 200, `Some(false)` when one does
/// not, `None` when none has a `/health` at all (404 or no answer from any).
async fn health(nodes: &[SocketAddr]) -> Option<bool> {
    let mut statuses = Vec::new();
    for &n in nodes {
        statuses.push(target_watch::http_status(n, "/health", Duration::from_secs(2)).await);
    }
    if statuses.iter().all(|s| matches!(s, None | Some(404))) {
        return None;
    }
    Some(statuses.iter().all(|s| *s == Some(200)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tally_counts_and_keeps_distinct_examples() {
        let mut r = blank(Attack::ForgedToken);
        tally(&mut r, &Outcome::Blocked);
        for _ in 0..3 {
            tally(&mut r, &Outcome::Succeeded("let in".into()));
        }
        tally(&mut r, &Outcome::NotJudged("down".into()));
        assert_eq!(
            (r.attempted, r.blocked, r.succeeded, r.not_judged),
            (5, 1, 3, 1)
        );
        assert_eq!(r.examples, ["let in", "not judged: down"]);
    }
}
