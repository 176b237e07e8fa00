//! Graceful step-down through `Candidate`: leadership moves to the other candidate in
//! well under a lease TTL, the cooldown keeps the stepped-down candidate out, and hooks
//! arrive in order.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{client_of_all, leader, median, start_cluster};
use conclave_client::kv::Get;
use conclave_client::{Candidate, CandidateHandle, ElectionHooks, Epoch, Error, LeaderInfo, Leadership};
use tokio::time::Instant;

#[derive(Clone, Debug, PartialEq)]
enum Hook {
    Elected(Epoch),
    Lost(Epoch),
    LeaderChange(Option<String>),
}

#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<(Instant, Hook)>>>,
}

impl ElectionHooks for Recorder {
    fn on_elected(&mut self, leadership: &Leadership) {
        self.events
            .lock()
            .expect("lock")
            .push((Instant::now(), Hook::Elected(leadership.epoch())));
    }
    fn on_lost(&mut self, epoch: Epoch, _reason: &Error) {
        self.events
            .lock()
            .expect("lock")
            .push((Instant::now(), Hook::Lost(epoch)));
    }
    fn on_leader_change(&mut self, leader: Option<&LeaderInfo>) {
        let value = leader.map(|l| String::from_utf8_lossy(&l.value).into_owned());
        self.events
            .lock()
            .expect("lock")
            .push((Instant::now(), Hook::LeaderChange(value)));
    }
}

impl Recorder {
    fn events(&self) -> Vec<(Instant, Hook)> {
        self.events.lock().expect("lock").clone()
    }
}

const TTL: Duration = Duration::from_secs(6);
const COOLDOWN: Duration = Duration::from_secs(2);

async fn elected(handle: &mut CandidateHandle) -> (Epoch, Instant) {
    let epoch = tokio::time::timeout(Duration::from_secs(30), handle.elected())
        .await
        .expect("elected in time")
        .expect("candidate running");
    (epoch, Instant::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn step_down_hands_over_fast_and_honours_the_cooldown() {
    let cluster = start_cluster(3);
    leader(&cluster).await;
    let client_a = client_of_all(&cluster).await;
    let client_b = client_of_all(&cluster).await;
    let (hooks_a, hooks_b) = (Recorder::default(), Recorder::default());
    let mut a = Candidate::new(client_a.election("/elect/s"), "A")
        .lease_ttl(TTL)
        .start(hooks_a.clone())
        .expect("a valid id");
    let (mut epoch, _) = elected(&mut a).await;
    let mut b = Candidate::new(client_b.election("/elect/s"), "B")
        .lease_ttl(TTL)
        .start(hooks_b.clone())
        .expect("a valid id");
    // B is queued behind A.
    conclave_testkit::wait_until("B to queue", Duration::from_secs(10), || {
        let c = client_a.clone();
        async move { (c.range(Get::prefix("/elect/s/")).await.ok()?.count == 2).then_some(()) }
    })
    .await
    .expect("two contenders");

    let mut handovers = Vec::new();
    let mut stepped_down: Vec<(&str, Instant)> = Vec::new();
    // A -> B -> A -> B: each hand-over after the previous holder's step-down.
    for round in 0..3 {
        let (from, to) = if round % 2 == 0 {
            (&mut a, &mut b)
        } else {
            (&mut b, &mut a)
        };
        let asked = Instant::now();
        from.step_down(COOLDOWN).await.expect("step down");
        stepped_down.push((if round % 2 == 0 { "A" } else { "B" }, asked));
        let (next, at) = elected(to).await;
        assert!(next > epoch, "epoch went backwards");
        epoch = next;
        handovers.push(at - asked);
        // During the cooldown the stepped-down candidate is not even queued.
        let queued = client_a
            .range(Get::prefix("/elect/s/"))
            .await
            .expect("range")
            .count;
        assert_eq!(
            queued, 1,
            "the stepped-down candidate campaigned during its cooldown"
        );
        // Wait out the cooldown so it queues again for the next round.
        conclave_testkit::wait_until(
            "the cooldown to end and the candidate to queue",
            Duration::from_secs(10),
            || {
                let c = client_a.clone();
                async move { (c.range(Get::prefix("/elect/s/")).await.ok()?.count == 2).then_some(()) }
            },
        )
        .await
        .expect("re-queued");
        assert!(
            Instant::now() >= asked + COOLDOWN,
            "re-queued before the cooldown ended"
        );
    }
    a.stop().await;
    b.stop().await;

    // Hooks: per candidate, Elected/Lost alternate with the same epoch, epochs increase,
    // and no election lands inside that candidate's own cooldown.
    for (name, recorder) in [("A", &hooks_a), ("B", &hooks_b)] {
        let mine: Vec<_> = recorder
            .events()
            .into_iter()
            .filter(|(_, h)| !matches!(h, Hook::LeaderChange(_)))
            .collect();
        assert!(!mine.is_empty());
        for pair in mine.chunks(2) {
            match pair {
                [(_, Hook::Elected(e)), (_, Hook::Lost(l))] => assert_eq!(e, l, "{name}: {mine:?}"),
                other => panic!("{name}: hooks out of order: {other:?}"),
            }
        }
        for &(who, asked) in &stepped_down {
            if who == name {
                assert!(
                    !mine.iter().any(|(at, h)| matches!(h, Hook::Elected(_))
                        && *at > asked
                        && *at < asked + COOLDOWN),
                    "{name} was elected during its cooldown"
                );
            }
        }
        let changes: Vec<_> = recorder
            .events()
            .into_iter()
            .filter_map(|(_, h)| match h {
                Hook::LeaderChange(v) => Some(v),
                _ => None,
            })
            .collect();
        assert!(
            changes.contains(&Some("A".into())) && changes.contains(&Some("B".into())),
            "{name}: {changes:?}"
        );
    }
    assert!(
        handovers.iter().all(|h| *h < TTL),
        "a hand-over took a whole TTL: {handovers:?}"
    );
    eprintln!(
        "step-down hand-over: median {:?} over {} rounds ({handovers:?}); lease TTL {TTL:?}",
        median(handovers.clone()),
        handovers.len()
    );
}
