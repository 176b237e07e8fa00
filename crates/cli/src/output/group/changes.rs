//! What changed in a group: its history and the map events `group watch` prints.

use conclave_client::group::{HistoryEntry, MapEvent, PartitionId};
use serde_json::{json, Value};

use super::{
    endpoints_text, holdings, map_heading, map_json, member_json, member_line, partition_json,
    partition_line, state_name, NONE,
};
use crate::output::table;

/// Unix milliseconds as an RFC 3339 UTC time, `2026-01-02T03:04:05.678Z`.
fn utc_time(unix_ms: u64) -> String {
    let seconds = unix_ms / 1000;
    let days = (seconds / 86_400) as i64;
    let in_day = seconds % 86_400;
    // Days since 1970-01-01 to a civil date (proleptic Gregorian), in 400-year eras.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        in_day / 3600,
        in_day % 3600 / 60,
        in_day % 60,
        unix_ms % 1000
    )
}

fn partition_ids(ids: &[PartitionId]) -> Vec<u32> {
    ids.iter().map(|p| p.0).collect()
}

fn partitions_text(ids: &[PartitionId]) -> String {
    if ids.is_empty() {
        return NONE.into();
    }
    ids.iter()
        .map(PartitionId::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A history entry as JSON.
pub fn history_json(entry: &HistoryEntry) -> Value {
    json!({
        "generation": entry.generation,
        "revision": entry.revision,
        "written_unix_ms": entry.written_unix_ms,
        "changed": partition_ids(&entry.changed),
        "new_leaders": partition_ids(&entry.new_leaders),
    })
}

/// A history entry on one line: generation, revision, time, what it changed.
pub fn history_line(entry: &HistoryEntry) -> String {
    format!(
        "{}, {}, {}, changed {}, new leaders {}",
        entry.generation,
        entry.revision,
        utc_time(entry.written_unix_ms),
        partitions_text(&entry.changed),
        partitions_text(&entry.new_leaders)
    )
}

/// History entries as a table.
pub fn history_table(entries: &[HistoryEntry]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                e.generation.to_string(),
                e.revision.to_string(),
                utc_time(e.written_unix_ms),
                partitions_text(&e.changed),
                partitions_text(&e.new_leaders),
            ]
        })
        .collect();
    table(
        &["GENERATION", "REVISION", "WRITTEN", "CHANGED", "NEW LEADERS"],
        &rows,
    )
}

/// A map event as one JSON object: `snapshot` (the whole map), `change` (one
/// generation's partitions, whole) or `members` (registered or changed, and left).
pub fn event_json(event: &MapEvent) -> Value {
    match event {
        MapEvent::Snapshot(map) => json!({
            "type": "snapshot",
            "generation": map.generation,
            "map": map_json(map),
        }),
        MapEvent::Change {
            generation,
            revision,
            partitions,
        } => json!({
            "type": "change",
            "generation": generation,
            "revision": revision,
            "partitions": partitions.iter().map(partition_json).collect::<Vec<_>>(),
        }),
        MapEvent::Members {
            generation,
            updated,
            left,
        } => json!({
            "type": "members",
            "generation": generation,
            "updated": updated.iter().map(|m| member_json(m, None)).collect::<Vec<_>>(),
            "left": left.iter().map(|m| m.0.clone()).collect::<Vec<_>>(),
        }),
    }
}

/// A map event as text lines, in the style of `watch`: the kind (`SNAPSHOT`, `MAP`,
/// `MEMBERS`) with the generation, then one line per partition or member.
pub fn event_lines(event: &MapEvent) -> Vec<String> {
    match event {
        MapEvent::Snapshot(map) => {
            let mut lines = vec![format!("SNAPSHOT {}", map_heading(map))];
            lines.extend(map.partitions.iter().map(partition_line));
            let held = holdings(map);
            lines.extend(map.members.values().map(|m| {
                format!(
                    "member {}",
                    member_line(m, held.get(&m.id).copied().unwrap_or_default())
                )
            }));
            lines
        }
        MapEvent::Change {
            generation,
            revision,
            partitions,
        } => {
            let mut lines = vec![format!("MAP generation {generation}, revision {revision}")];
            lines.extend(partitions.iter().map(partition_line));
            lines
        }
        MapEvent::Members {
            generation,
            updated,
            left,
        } => {
            let mut lines = vec![format!("MEMBERS generation {generation}")];
            lines.extend(updated.iter().map(|m| {
                let mut line = format!("updated {}, {}, weight {}", m.id, state_name(m.state), m.weight);
                let endpoints = endpoints_text(m);
                if !endpoints.is_empty() {
                    line.push_str(&format!(", {endpoints}"));
                }
                line
            }));
            lines.extend(left.iter().map(|m| format!("left {m}")));
            lines
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{map, member, moving};
    use super::*;
    use conclave_client::group::MemberId;

    #[test]
    fn history_times_are_utc_rfc3339() {
        assert_eq!(utc_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_time(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc_time(1_767_323_045_678), "2026-01-02T03:04:05.678Z");
        assert_eq!(utc_time(4_107_542_399_999), "2100-02-28T23:59:59.999Z");
    }

    #[test]
    fn map_events_print_their_kind_and_generation_first() {
        let change = MapEvent::Change {
            generation: 8,
            revision: 91,
            partitions: vec![moving()],
        };
        assert_eq!(
            event_lines(&change),
            vec![
                "MAP generation 8, revision 91",
                "2, 45, m1, m1 m2(syncing replaces m1)"
            ]
        );
        assert_eq!(event_json(&change)["type"], "change");
        let members = MapEvent::Members {
            generation: 8,
            updated: vec![member("m3")],
            left: vec![MemberId::from("m1")],
        };
        assert_eq!(
            event_lines(&members),
            vec![
                "MEMBERS generation 8",
                "updated m3, active, weight 1, http http://m3:8080",
                "left m1"
            ]
        );
        let snapshot = event_json(&MapEvent::Snapshot(map()));
        assert_eq!(snapshot["type"], "snapshot");
        assert_eq!(snapshot["map"]["partitions"][1]["id"], 3);
    }
}
