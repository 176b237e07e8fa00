//! Elections you can see and steer, with real processes: three `conclavectl elect run`
//! candidates (each a separate process with its supervisor and command) against a real
//! three-member cluster. The registry (`elect ls`, `status`, `ping`), remote step-down
//! and its cooldown, a paused (SIGSTOP) leader, kills, connection loss through a client
//! proxy, commands that never overlap, and a virtual IP moving between network
//! namespaces.

mod common;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{ctl, Ctl, WAIT};
use conclave_client::{CandidateEntry, CandidateState, Client};
use conclave_testkit::{leader_index, node_binary, wait_until, ClientProxy, Cluster, ClusterOptions};
use serde_json::Value;

/// The default session TTL of `elect run` (and of the SDK).
const DEFAULT_TTL: Duration = Duration::from_secs(10);

struct Env {
    _cluster: Cluster,
    ctl: Ctl,
    endpoints: Vec<String>,
    client: Client,
    dir: tempfile::TempDir,
}

/// One `conclavectl elect run` process; its standard error (the hook events) goes to a
/// file. Dropping it kills the process (SIGKILL), which its supervisor answers by
/// stopping the command.
struct Runner {
    id: String,
    child: tokio::process::Child,
    events: PathBuf,
}

impl Runner {
    fn start(endpoints: &str, election: &str, id: &str, flags: &[&str], command: &str, dir: &Path) -> Runner {
        // Appended to: a replacement process with the same id adds to the same file.
        let events = dir.join(format!("{election}-{id}.events").replace('/', "_"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&events)
            .expect("events file");
        let mut args = vec!["elect", "run", election, "--id", id];
        args.extend_from_slice(flags);
        args.extend_from_slice(&["--", "sh", "-c", command]);
        let mut command = ctl(endpoints, &args);
        command.stdout(Stdio::null()).stderr(file);
        let child = command.spawn().expect("start conclavectl elect run");
        Runner {
            id: id.to_string(),
            child,
            events,
        }
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.id().expect("still running")).expect("pid")
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        let sent = unsafe { libc::kill(self.pid(), signal) };
        assert_eq!(sent, 0, "kill({}, {signal})", self.pid());
    }

    /// The hook events it logged so far, in order.
    fn events(&self) -> Vec<String> {
        std::fs::read_to_string(&self.events)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    async fn wait_for_event(&self, what: &str) {
        let id = self.id.clone();
        wait_until(&format!("{id} to log {what:?}"), WAIT, || {
            let found = self.events().iter().any(|e| e.contains(what));
            async move { found.then_some(()) }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", self.events()));
    }
}

/// The command every runner runs: appends `EPOCH ID NANOS` to `log` every 50 ms.
fn ticker(log: &Path) -> String {
    format!(
        "while :; do echo \"$CONCLAVE_EPOCH $CONCLAVE_CANDIDATE_ID $(date +%s%N)\" >> {}; sleep 0.05; done",
        log.display()
    )
}

/// A ticker that ignores SIGTERM and does its work in a child process: stopping it takes
/// the SIGKILL to its whole process group after the grace period.
fn stubborn_ticker(log: &Path) -> String {
    format!("trap '' TERM; ( {} ) & wait", ticker(log))
}

/// The pid of the child of `parent` whose command line contains `what`.
fn child_of(parent: i32, what: &str) -> i32 {
    let children =
        std::fs::read_to_string(format!("/proc/{parent}/task/{parent}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .filter_map(|pid| pid.parse::<i32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|cmdline| String::from_utf8_lossy(&cmdline).contains(what))
                .unwrap_or(false)
        })
        .unwrap_or_else(|| panic!("no child of {parent} runs {what:?} (children: {children:?})"))
}

/// Checks a ticker log: one interval per epoch, intervals in epoch order, none
/// overlapping another. Returns the epochs seen, in order.
fn assert_no_overlap(log: &Path) -> Vec<(i64, String)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut spans: BTreeMap<i64, (String, u128, u128)> = BTreeMap::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [epoch, id, nanos] = parts[..] else { continue };
        let (Ok(epoch), Ok(nanos)) = (epoch.parse::<i64>(), nanos.parse::<u128>()) else {
            continue;
        };
        let span = spans.entry(epoch).or_insert((id.to_string(), nanos, nanos));
        assert_eq!(span.0, id, "epoch {epoch} ran under two candidates");
        span.1 = span.1.min(nanos);
        span.2 = span.2.max(nanos);
    }
    let mut previous: Option<(i64, u128)> = None;
    for (epoch, (id, first, last)) in &spans {
        if let Some((before, end)) = previous {
            assert!(
                *first > end,
                "the command of epoch {epoch} ({id}) started at {first} before that of epoch {before} ended at {end}:\n{text}"
            );
        }
        previous = Some((*epoch, *last));
    }
    spans.into_iter().map(|(epoch, (id, _, _))| (epoch, id)).collect()
}

impl Env {
    fn endpoints(&self) -> String {
        self.endpoints.join(",")
    }

    async fn entries(&self, election: &str) -> Vec<CandidateEntry> {
        self.client
            .election(election)
            .candidates()
            .await
            .unwrap_or_default()
    }

    /// Waits until the registry has exactly `ids` with one leader whose epoch is the
    /// election's; returns the leader's id and epoch.
    async fn settled(&self, election: &str, ids: &[&str]) -> (String, i64) {
        let want: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        wait_until(
            &format!("{election}: {ids:?} registered with one leader"),
            WAIT,
            || async {
                let entries = self.entries(election).await;
                let have: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
                let leaders: Vec<&CandidateEntry> = entries
                    .iter()
                    .filter(|e| e.state == CandidateState::Leader)
                    .collect();
                let leader = self.client.election(election).leader().await.ok()??;
                match leaders[..] {
                    [one] if have == want && one.epoch == Some(leader.epoch.0) => {
                        Some((one.id.clone(), leader.epoch.0))
                    }
                    _ => None,
                }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"))
    }
}

type Scenario = fn(Arc<Env>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        [$((stringify!($name), (|env| Box::pin($name(env))) as Scenario)),*]
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn candidates_are_seen_steered_and_never_overlap() {
    let bin = node_binary().expect("the conclave binary (cargo build --release -p conclave-server)");
    let options = ClusterOptions {
        size: 3,
        heartbeat_ms: Some(50),
        election_timeout_ms: Some(400),
        ..ClusterOptions::default()
    };
    let cluster = Cluster::start(&bin, options).expect("start cluster");
    leader_index(&cluster, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", cluster.log_dump()));
    let endpoints = cluster.client_endpoints();
    let client = Client::connect(&endpoints).await.expect("client");
    let env = Arc::new(Env {
        _cluster: cluster,
        ctl: Ctl {
            endpoints: endpoints.join(","),
        },
        endpoints,
        client,
        dir: tempfile::tempdir().expect("tempdir"),
    });
    // ELECTIONS_ONLY=name runs one scenario (when debugging one).
    let only = std::env::var("ELECTIONS_ONLY").ok();
    let mut failed = Vec::new();
    for (name, scenario) in scenarios![
        registry_status_ping_and_remote_step_down,
        a_paused_leader_is_replaced_by_a_higher_epoch,
        the_command_never_runs_twice_across_kills_pauses_and_step_downs,
        connection_loss_and_recovery_reach_the_hooks_in_order,
        a_virtual_ip_moves_between_namespaces_and_is_never_in_two,
    ] {
        if only.as_deref().is_some_and(|only| only != name) {
            continue;
        }
        eprintln!("--- {name}");
        if let Err(panic) = tokio::spawn(scenario(env.clone())).await {
            eprintln!("--- {name} FAILED: {panic}");
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "failed scenarios: {failed:?}");
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// `ls` shows three candidates with one leader and its epoch; `status` and `ping` are
/// answered by the candidates; step-down moves leadership well within a TTL and a
/// stepped-down candidate stays out for its cooldown.
async fn registry_status_ping_and_remote_step_down(env: Arc<Env>) {
    let election = "e-steer";
    let log = env.dir.path().join("steer.log");
    // c3 reads its settings from a file (its endpoints replace the command line's, which
    // point nowhere for it): labels and the address come from there.
    let settings = env.dir.path().join("c3.toml");
    let listed_endpoints: Vec<String> = env.endpoints.iter().map(|e| format!("{e:?}")).collect();
    std::fs::write(
        &settings,
        format!(
            "endpoints = [{}]\n[candidate]\naddress = \"10.0.0.3:80\"\ncooldown = 5000\nmetadata = {{ zone = \"z3\" }}\n",
            listed_endpoints.join(", ")
        ),
    )
    .expect("settings file");
    let settings = settings.display().to_string();
    let runners: Vec<Runner> = ["c1", "c2", "c3"]
        .iter()
        .map(|id| {
            let address = format!("10.0.0.{}:80", &id[1..]);
            let (endpoints, flags) = if *id == "c3" {
                ("127.0.0.1:1".to_string(), vec!["--config", settings.as_str()])
            } else {
                (env.endpoints(), vec!["--address", address.as_str()])
            };
            Runner::start(&endpoints, election, id, &flags, &ticker(&log), env.dir.path())
        })
        .collect();
    let (leader, epoch) = env.settled(election, &["c1", "c2", "c3"]).await;

    // ls, as JSON and as a table.
    let listed = env.ctl.json(&["elect", "ls", election, "-w", "json"]).await;
    let listed = listed.as_array().expect("an array").clone();
    assert_eq!(listed.len(), 3, "{listed:?}");
    let leaders: Vec<&Value> = listed.iter().filter(|e| e["state"] == "leader").collect();
    assert_eq!(leaders.len(), 1, "{listed:?}");
    assert_eq!(leaders[0]["id"], leader.as_str());
    assert_eq!(leaders[0]["epoch"], epoch);
    for entry in &listed {
        assert_eq!(
            entry["address"],
            format!("10.0.0.{}:80", &entry["id"].as_str().unwrap_or("c0")[1..])
        );
        assert!(
            entry["version"].as_str().is_some_and(|v| !v.is_empty()),
            "{entry}"
        );
    }
    let c3 = listed.iter().find(|e| e["id"] == "c3").expect("c3 listed");
    assert_eq!(c3["metadata"]["zone"], "z3", "{c3}");
    let table = env.ctl.ok(&["elect", "ls", election, "-w", "table"]).await;
    assert!(
        table.contains("STATE") && table.contains(&format!("| {leader} |")),
        "{table}"
    );

    // status: answered by the leader itself.
    let status = env.ctl.json(&["elect", "status", election, "-w", "json"]).await;
    assert_eq!(status["candidate"]["id"], leader.as_str(), "{status}");
    assert_eq!(status["candidate"]["state"], "leader", "{status}");
    assert_eq!(status["leader_epoch"], epoch, "{status}");
    assert_eq!(status["connected"], true, "{status}");
    // ping: every candidate answers.
    for id in ["c1", "c2", "c3"] {
        let pong = env.ctl.ok(&["elect", "ping", election, id, "-c", "3"]).await;
        assert_eq!(pong.matches(&format!("pong from {id} in")).count(), 3, "{pong}");
    }
    let unknown = env.ctl.fails(&["elect", "ping", election, "nobody"], 1).await;
    assert!(unknown.contains("no candidate \"nobody\""), "{unknown}");
    let refused = env
        .ctl
        .fails(
            &[
                "elect",
                "stepdown",
                election,
                "--candidate",
                if leader == "c1" { "c2" } else { "c1" },
            ],
            1,
        )
        .await;
    assert!(refused.contains("not the leader"), "{refused}");

    // Step-downs with a short cooldown, each once all three campaign again.
    let mut times = Vec::new();
    let mut last_epoch = epoch;
    for _ in 0..7 {
        env.settled(election, &["c1", "c2", "c3"]).await;
        wait_until("every candidate back in the race", WAIT, || async {
            let entries = env.entries(election).await;
            entries
                .iter()
                .all(|e| e.state != CandidateState::Follower)
                .then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        let before = env
            .client
            .election(election)
            .leader()
            .await
            .expect("leader")
            .expect("one");
        let moved = env
            .ctl
            .json(&["elect", "stepdown", election, "--cooldown", "1s", "-w", "json"])
            .await;
        let new_epoch = moved["new_leader"]["epoch"].as_i64().expect("new epoch");
        assert!(new_epoch > before.epoch.0 && new_epoch > last_epoch, "{moved}");
        assert_ne!(moved["new_leader"]["candidate"], moved["candidate"], "{moved}");
        last_epoch = new_epoch;
        times.push(moved["elapsed_ms"].as_f64().expect("elapsed"));
    }
    let median_ms = median(times.clone());
    eprintln!(
        "remote step-down to a new leader: median {median_ms:.1} ms over {} ({times:?})",
        times.len()
    );
    // A step-down resigns: it must not wait out the lease (10 s).
    assert!(median_ms < DEFAULT_TTL.as_secs_f64() * 1000.0 / 2.0, "{times:?}");

    // The cooldown is honoured: X and then Y step down for 60 s; Z must lead next, and
    // then nobody can take over from Z.
    env.settled(election, &["c1", "c2", "c3"]).await;
    let first = env
        .ctl
        .json(&["elect", "stepdown", election, "--cooldown", "60s", "-w", "json"])
        .await;
    let second = env
        .ctl
        .json(&["elect", "stepdown", election, "--cooldown", "60s", "-w", "json"])
        .await;
    let out: Vec<&str> = [&first, &second]
        .iter()
        .filter_map(|m| m["candidate"].as_str())
        .collect();
    let third = second["new_leader"]["candidate"]
        .as_str()
        .expect("a third leader");
    assert!(!out.contains(&third), "{first} {second}");
    let cooling = env.entries(election).await;
    for entry in cooling.iter().filter(|e| out.contains(&e.id.as_str())) {
        assert_eq!(entry.state, CandidateState::Follower, "{cooling:?}");
        assert!(entry.cooldown_until_unix_ms.is_some(), "{cooling:?}");
    }
    let stuck = env
        .ctl
        .fails(&["elect", "stepdown", election, "--timeout", "2s"], 1)
        .await;
    assert!(stuck.contains("no other leader was elected"), "{stuck}");
    drop(runners);
    assert_no_overlap(&log);
}

/// SIGSTOP of the leader's process at the default TTL: its entry goes when its leases
/// expire, and another candidate leads with a higher epoch; the paused leader's command
/// was stopped by its supervisor before that.
async fn a_paused_leader_is_replaced_by_a_higher_epoch(env: Arc<Env>) {
    let election = "e-pause";
    let log = env.dir.path().join("pause.log");
    let runners: Vec<Runner> = ["p1", "p2", "p3"]
        .iter()
        .map(|id| Runner::start(&env.endpoints(), election, id, &[], &ticker(&log), env.dir.path()))
        .collect();
    let (leader, epoch) = env.settled(election, &["p1", "p2", "p3"]).await;
    let paused = runners
        .iter()
        .find(|r| r.id == leader)
        .expect("the leader's runner");
    paused.wait_for_event("started the command").await;
    let stopped_at = Instant::now();
    paused.signal(libc::SIGSTOP);
    let (new_leader, new_epoch) = wait_until("a new leader after the pause", DEFAULT_TTL * 3, || async {
        let leader = env.client.election(election).leader().await.ok()??;
        (leader.epoch.0 > epoch).then_some(leader)
    })
    .await
    .map(|l| (l.key, l.epoch.0))
    .unwrap_or_else(|e| panic!("{e}"));
    let took = stopped_at.elapsed();
    eprintln!("SIGSTOP of the leader to a new leader (default TTL {DEFAULT_TTL:?}): {took:?}");
    assert!(new_epoch > epoch, "{new_leader} {new_epoch}");
    wait_until("the paused leader's entry to go", DEFAULT_TTL * 2, || async {
        let entries = env.entries(election).await;
        (!entries.iter().any(|e| e.id == leader)).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    paused.signal(libc::SIGCONT);
    paused.wait_for_event("lost leadership").await;
    // It registers again, as a follower of the new leader.
    wait_until("the resumed candidate to register again", WAIT, || async {
        let entries = env.entries(election).await;
        entries
            .iter()
            .any(|e| e.id == leader && e.state != CandidateState::Leader)
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    drop(runners);
    let epochs = assert_no_overlap(&log);
    assert!(epochs.len() >= 2, "{epochs:?}");
}

/// `elect run` never runs two copies of its command: across kill -9 of the leader's
/// process, a pause, step-downs and kill -9 of its supervisor — with a command that
/// ignores SIGTERM and works in a child process — the shared log shows one epoch at a time.
async fn the_command_never_runs_twice_across_kills_pauses_and_step_downs(env: Arc<Env>) {
    let election = "e-once";
    let log = env.dir.path().join("once.log");
    let flags = ["--ttl", "4"];
    let start = |id: &str| {
        Runner::start(
            &env.endpoints(),
            election,
            id,
            &flags,
            &stubborn_ticker(&log),
            env.dir.path(),
        )
    };
    // A lease too short for the grace is refused up front.
    let refused = env
        .ctl
        .fails(&["elect", "run", election, "--ttl", "3", "--", "true"], 1)
        .await;
    assert!(refused.contains("needs a lease TTL of at least 4s"), "{refused}");
    let mut runners: Vec<Runner> = ["o1", "o2", "o3"].iter().map(|id| start(id)).collect();
    for round in 0..8 {
        let ids: Vec<String> = runners.iter().map(|r| r.id.clone()).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        let (leader, epoch) = env.settled(election, &ids).await;
        let index = runners
            .iter()
            .position(|r| r.id == leader)
            .expect("leader runner");
        runners[index].wait_for_event("started the command").await;
        match round % 4 {
            // kill -9: the supervisor stops the command at once; a successor takes over
            // when the lease expires. A fresh process takes the dead one's place.
            0 => {
                let mut dead = runners.remove(index);
                dead.signal(libc::SIGKILL);
                let _ = dead.child.wait().await;
                runners.push(start(&format!("{}k{round}", dead.id)));
                runners.sort_by(|a, b| a.id.cmp(&b.id));
            }
            // SIGSTOP: the supervisor stops the command at the lease deadline.
            1 => {
                runners[index].signal(libc::SIGSTOP);
                wait_until("a successor to a paused leader", WAIT, || async {
                    let leader = env.client.election(election).leader().await.ok()??;
                    (leader.epoch.0 > epoch).then_some(())
                })
                .await
                .unwrap_or_else(|e| panic!("{e}"));
                runners[index].signal(libc::SIGCONT);
                runners[index].wait_for_event("lost leadership").await;
            }
            2 => {
                env.ctl
                    .ok(&["elect", "stepdown", election, "--cooldown", "1s"])
                    .await;
            }
            // kill -9 of the supervisor: the command's leader dies with it, conclavectl
            // kills what is left of its group, resigns and exits 1.
            _ => {
                let supervisor = child_of(runners[index].pid(), "elect-supervisor");
                // SAFETY: kill(2) on the supervisor found among our child's children.
                assert_eq!(unsafe { libc::kill(supervisor, libc::SIGKILL) }, 0);
                let mut gone = runners.remove(index);
                let status = tokio::time::timeout(WAIT, gone.child.wait())
                    .await
                    .expect("conclavectl exits after its supervisor died")
                    .expect("wait");
                assert_eq!(status.code(), Some(1), "{:?}", gone.events());
                runners.push(start(&format!("{}s{round}", gone.id)));
                runners.sort_by(|a, b| a.id.cmp(&b.id));
            }
        }
    }
    drop(runners);
    let ran = assert_no_overlap(&log);
    assert!(ran.len() >= 8, "{ran:?}");
}

/// Cutting the candidate off from every member: `disconnected`, then (by the local lease
/// deadline) `lost leadership`; restoring the members: `reconnected`, then elected again.
async fn connection_loss_and_recovery_reach_the_hooks_in_order(env: Arc<Env>) {
    let election = "e-net";
    let mut proxies = Vec::new();
    for endpoint in &env.endpoints {
        let target: SocketAddr = endpoint
            .trim_start_matches("http://")
            .parse()
            .expect("a socket address");
        proxies.push(ClientProxy::start(target).await.expect("client proxy"));
    }
    let through: Vec<String> = proxies.iter().map(|p| p.addr().to_string()).collect();
    let log = env.dir.path().join("net.log");
    let runner = Runner::start(
        &through.join(","),
        election,
        "n1",
        &["--ttl", "4"],
        &ticker(&log),
        env.dir.path(),
    );
    env.settled(election, &["n1"]).await;
    runner.wait_for_event("started the command").await;
    for proxy in &proxies {
        proxy.cut();
    }
    runner.wait_for_event("disconnected").await;
    runner.wait_for_event("lost leadership").await;
    for proxy in &proxies {
        proxy.restore();
    }
    runner.wait_for_event("reconnected").await;
    wait_until("n1 to lead again", WAIT, || async {
        let events = runner.events();
        (events.iter().filter(|e| e.contains("elected with epoch")).count() >= 2).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: {:?}", runner.events()));
    let events = runner.events();
    let at = |what: &str| events.iter().position(|e| e.contains(what));
    let first_elected = at("elected with epoch").expect("elected");
    let disconnected = at("disconnected").expect("disconnected");
    let lost = at("lost leadership").expect("lost");
    let reconnected = at("reconnected").expect("reconnected");
    let elected_again = events
        .iter()
        .rposition(|e| e.contains("elected with epoch"))
        .expect("elected again");
    assert!(
        first_elected < disconnected
            && disconnected < lost
            && lost < reconnected
            && reconnected < elected_again,
        "hooks out of order: {events:?}"
    );
    drop(runner);
    assert_no_overlap(&log);
}

/// The VIP hooks of deploy/vip move an address between three network namespaces (each
/// with a veth pair) as leadership moves — step-down, kill -9, SIGSTOP — and a monitor
/// sampling every namespace never sees it in two at once.
async fn a_virtual_ip_moves_between_namespaces_and_is_never_in_two(env: Arc<Env>) {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        panic!("this scenario needs root (ip netns); CI runs as root");
    }
    let tag = std::process::id() % 10_000;
    let spaces: Vec<(String, String, String)> = (1..=3)
        .map(|i| {
            (
                format!("cvip{tag}n{i}"),
                format!("cv{tag}h{i}"),
                format!("cv{tag}v{i}"),
            )
        })
        .collect();
    let sh = |script: &str| {
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .status()
            .expect("sh");
        assert!(status.success(), "{script}");
    };
    let _cleanup = Cleanup(
        spaces
            .iter()
            .map(|(ns, host, _)| {
                format!("ip netns del {ns} 2>/dev/null; ip link del {host} 2>/dev/null; true")
            })
            .collect(),
    );
    for (ns, host, inner) in &spaces {
        sh(&format!(
            "ip netns add {ns} && ip link add {host} type veth peer name {inner} netns {ns} && \
             ip link set {host} up && ip -n {ns} link set {inner} up && ip -n {ns} link set lo up"
        ));
    }
    let vip = "10.213.0.100/32";
    let hook = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/vip/conclave-vip.sh");
    assert!(hook.exists(), "{}", hook.display());
    let log = env.dir.path().join("vip.log");
    let start = |i: usize| {
        let (ns, _, inner) = &spaces[i];
        let up = format!("ip netns exec {ns} {} up {vip} {inner}", hook.display());
        let down = format!("ip netns exec {ns} {} down {vip} {inner}", hook.display());
        Runner::start(
            &env.endpoints(),
            "e-vip",
            &format!("v{}", i + 1),
            &["--ttl", "4", "--on-elected", &up, "--on-lost", &down],
            &ticker(&log),
            env.dir.path(),
        )
    };
    let mut runners: Vec<Runner> = (0..3).map(start).collect();
    // The monitor: every namespace, every 20 ms.
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let names: Vec<(String, String)> = spaces
        .iter()
        .map(|(ns, _, inner)| (ns.clone(), inner.clone()))
        .collect();
    let monitor = tokio::task::spawn_blocking(move || {
        let mut samples = 0u64;
        let mut holders_seen = std::collections::BTreeSet::new();
        loop {
            // Stopped, or the scenario failed and dropped the sender.
            if !matches!(
                stop_rx.try_recv(),
                Err(tokio::sync::oneshot::error::TryRecvError::Empty)
            ) {
                return Ok((samples, holders_seen));
            }
            let holding: Vec<&str> = names
                .iter()
                .filter(|(ns, inner)| {
                    let out = std::process::Command::new("ip")
                        .args(["-n", ns, "-br", "addr", "show", "dev", inner])
                        .output()
                        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                        .unwrap_or_default();
                    out.contains("10.213.0.100")
                })
                .map(|(ns, _)| ns.as_str())
                .collect();
            if holding.len() > 1 {
                return Err(format!("the VIP is in {holding:?} at once"));
            }
            holders_seen.extend(holding.iter().map(|s| s.to_string()));
            samples += 1;
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let ids = ["v1", "v2", "v3"];
    let mut moves = 0;
    for round in 0..4 {
        let (leader, epoch) = env.settled("e-vip", &ids).await;
        let index = runners
            .iter()
            .position(|r| r.id == leader)
            .expect("leader runner");
        let holder = &spaces[index].0;
        wait_until("the VIP on the leader's namespace", WAIT, || async {
            let out = std::process::Command::new("ip")
                .args(["-n", holder, "-br", "addr"])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                .unwrap_or_default();
            out.contains("10.213.0.100").then_some(())
        })
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", runners[index].events()));
        match round {
            0 | 2 => {
                env.ctl
                    .ok(&["elect", "stepdown", "e-vip", "--cooldown", "1s"])
                    .await;
            }
            1 => {
                let mut dead = runners.remove(index);
                dead.signal(libc::SIGKILL);
                let _ = dead.child.wait().await;
                // Its replacement takes its id (and namespace): wait for the successor
                // first, so the dead one's entry is not mistaken for the new process's.
                wait_until("a successor to the killed VIP holder", WAIT, || async {
                    let leader = env.client.election("e-vip").leader().await.ok()??;
                    (leader.epoch.0 > epoch).then_some(())
                })
                .await
                .unwrap_or_else(|e| panic!("{e}"));
                runners.insert(index, start(index));
            }
            _ => {
                runners[index].signal(libc::SIGSTOP);
                wait_until("a successor to the paused VIP holder", WAIT, || async {
                    let leader = env.client.election("e-vip").leader().await.ok()??;
                    (leader.epoch.0 > epoch).then_some(())
                })
                .await
                .unwrap_or_else(|e| panic!("{e}"));
                runners[index].signal(libc::SIGCONT);
            }
        }
        moves += 1;
    }
    env.settled("e-vip", &ids).await;
    let _ = stop_tx.send(());
    let (samples, holders) = monitor.await.expect("monitor").unwrap_or_else(|e| panic!("{e}"));
    eprintln!("VIP: {moves} moves, {samples} samples, held by {holders:?}");
    assert!(holders.len() >= 2, "the VIP never moved: {holders:?}");
    drop(runners);
    assert_no_overlap(&log);
}

/// Runs shell commands when dropped (namespace clean-up, even after a failed assert).
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for script in &self.0 {
            let _ = std::process::Command::new("sh").arg("-c").arg(script).status();
        }
    }
}
