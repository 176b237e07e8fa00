//! The short seeded fault schedule that runs with every `make test`: a 3-member cluster
//! under kills, pauses and partitions for 40 s, judged for linearizability, lost writes
//! and watch continuity. (`make chaos` runs longer schedules on 3 and 5 members.)

use std::time::Duration;

use conclave_chaos::verdict::Verdict;
use conclave_chaos::{run, summary, Schedule};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_seeded_fault_schedule_stays_linearizable_and_loses_nothing() {
    let schedule = Schedule {
        bin: conclave_testkit::node_binary().expect("node binary"),
        size: 3,
        seed: 7,
        duration: Duration::from_secs(40),
        clients: 6,
        keys: 4,
    };
    let outcome = run(schedule).await.expect("schedule ran");
    let report = summary(&outcome);
    eprintln!("{report}");
    assert!(!outcome.injections.is_empty(), "no fault was injected");
    assert_eq!(outcome.verdict, Verdict::Linearizable, "{report}");
    assert!(outcome.watch.is_ok(), "{report}");
}
