//! A member process that dies (`kill -9`) or stops (SIGSTOP) while leading partitions:
//! its partitions get new leaders once its session ends, and writes guarded by its old
//! leaderships are refused by the store — replayed after it is gone, or sent by the
//! stopped process after it wakes up.

mod common;

use std::time::{Duration, Instant};

use common::{client, start_cluster, wait_settled, Kv, GROUP, SESSION_TTL_SECS};
use conclave_client::group::{GroupMap, MemberId, PartitionId};
use conclave_client::{Compare, Op};
use conclave_contract::groups::GroupKeys;

/// The partitions `member` leads in `map`, with their epochs.
fn led_by(map: &GroupMap, member: &str) -> Vec<(PartitionId, i64)> {
    map.partitions
        .iter()
        .filter(|p| p.leader.as_ref().is_some_and(|l| l.0 == member))
        .map(|p| (p.id, p.epoch.0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_members_partitions_get_new_leaders_and_its_old_guards_are_refused() {
    let cluster = start_cluster();
    let temp = tempfile::tempdir().expect("temp dir");
    let sdk = client(&cluster).await;
    let mut members = vec![
        Kv::start(&cluster, temp.path(), "kv-a").await,
        Kv::start(&cluster, temp.path(), "kv-b").await,
        Kv::start(&cluster, temp.path(), "kv-c").await,
    ];
    let mut router = sdk.group(GROUP).router().await.expect("router");
    let mut live: Vec<String> = members.iter().map(|m| m.id.clone()).collect();
    let mut map = wait_settled(&mut router, &ids(&live), Duration::from_secs(30)).await;
    let keys = GroupKeys::new(GROUP);
    let mut took = Vec::new();
    for round in 0..3 {
        // The member leading the most partitions dies.
        let victim = live
            .iter()
            .max_by_key(|id| led_by(&map, id).len())
            .cloned()
            .expect("a member");
        let led = led_by(&map, &victim);
        assert!(!led.is_empty(), "{victim} leads something");
        let member_revision = map.members[&MemberId(victim.clone())].create_revision;
        let index = members.iter().position(|m| m.id == victim).expect("member");
        let killed_at = Instant::now();
        members[index].process.kill().expect("kill -9");
        let after = router
            .wait_for(Duration::from_secs(SESSION_TTL_SECS + 20), |m| {
                led.iter().all(|(p, epoch)| {
                    m.partition(*p).is_some_and(|now| {
                        now.leader.as_ref().is_some_and(|l| l.0 != victim) && now.epoch.0 > *epoch
                    })
                })
            })
            .await
            .expect("new leaders for the dead member's partitions");
        took.push(killed_at.elapsed());

        // Its guarded write, replayed now, is refused by the store.
        let (p, epoch) = led[0];
        let replay = sdk
            .txn()
            .when([
                Compare::mod_revision(keys.leader(p)).eq(epoch),
                Compare::create_revision(keys.member(&MemberId(victim.clone()))).eq(member_revision),
            ])
            .then([Op::put(format!("/fenced/{victim}"), "late write")])
            .await
            .expect("txn");
        assert!(!replay.succeeded, "a dead leader's guarded write applied");
        assert!(after.partition(p).is_some_and(|now| now.epoch.0 > epoch));

        // Replace it, and let the map settle again.
        live.retain(|id| *id != victim);
        let fresh = format!("kv-r{round}");
        members.push(Kv::start(&cluster, temp.path(), &fresh).await);
        live.push(fresh);
        map = wait_settled(
            &mut router,
            &ids(&live),
            Duration::from_secs(SESSION_TTL_SECS + 60),
        )
        .await;
    }
    took.sort();
    println!(
        "kill -9 of a leading member -> new leaders for all its partitions: median {:?} over {} kills ({took:?}), session TTL {}s",
        took[took.len() / 2],
        took.len(),
        SESSION_TTL_SECS
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paused_leader_that_wakes_up_cannot_write_at_its_old_epoch() {
    let cluster = start_cluster();
    let temp = tempfile::tempdir().expect("temp dir");
    let sdk = client(&cluster).await;
    let members = [
        Kv::start(&cluster, temp.path(), "kv-a").await,
        Kv::start(&cluster, temp.path(), "kv-b").await,
        Kv::start(&cluster, temp.path(), "kv-c").await,
    ];
    let mut router = sdk.group(GROUP).router().await.expect("router");
    let map = wait_settled(&mut router, &["kv-a", "kv-b", "kv-c"], Duration::from_secs(30)).await;
    let sleeper = &members[0];
    let led = led_by(&map, &sleeper.id);
    let (p, epoch) = *led.first().expect("kv-a leads a partition");
    // A key of that partition.
    let key = (0..10_000)
        .map(|i| format!("paused-{i}"))
        .find(|k| map.partition_for(k.as_bytes()) == p)
        .expect("a key of the partition");

    sleeper.process.pause().expect("SIGSTOP");
    // A write sent to the stopped leader, as if forwarded to it (so it cannot pass it on):
    // it is answered only after the process wakes up.
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("http");
    let url = format!("{}/kv/{key}", sleeper.http);
    let pending = tokio::spawn({
        let http = http.clone();
        let key = key.clone();
        async move { http.put(url).header("x-kv-forwarded", "1").body(key).send().await }
    });
    router
        .wait_for(Duration::from_secs(SESSION_TTL_SECS + 20), |m| {
            m.partition(p).is_some_and(|now| {
                now.leader.as_ref().is_some_and(|l| l.0 != sleeper.id) && now.epoch.0 > epoch
            })
        })
        .await
        .expect("a new leader while kv-a sleeps");
    sleeper.process.resume().expect("SIGCONT");
    let answer = pending.await.expect("task").expect("an answer");
    assert!(
        !answer.status().is_success(),
        "the woken leader accepted a write at its old epoch: {}",
        answer.status()
    );
    let logged = std::fs::read_to_string(&sleeper.log).unwrap_or_default();
    assert!(
        !logged.contains(&key),
        "the woken leader logged the write as accepted"
    );
    println!("paused leader woke up: its write answered {}", answer.status());
}

fn ids(live: &[String]) -> Vec<&str> {
    live.iter().map(String::as_str).collect()
}
