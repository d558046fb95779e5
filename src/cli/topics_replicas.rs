//! `rill topics elect-leaders|reassign|reassignments`: leaders and replica placement, as
//! Kafka's `kafka-leader-election.sh` and `kafka-reassign-partitions.sh` do them.

use anyhow::{anyhow, bail};
use rill_core::client::{Admin, PartitionOutcome};

/// ELECTION_NOT_NEEDED: the wanted leader already leads.
const ELECTION_NOT_NEEDED: i16 = 84;

fn list(v: &[i32]) -> String {
    v.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(",")
}

fn names(tps: &[(String, i32)]) -> String {
    tps.iter().map(|(t, p)| format!("{t}-{p}")).collect::<Vec<_>>().join(", ")
}

/// Parse `--replicas 3,1,2`.
pub fn parse_replicas(s: &str) -> anyhow::Result<Vec<i32>> {
    let ids: Result<Vec<i32>, _> = s.split(',').map(|x| x.trim().parse::<i32>()).collect();
    match ids {
        Ok(ids) if !ids.is_empty() && ids.iter().all(|i| *i >= 0) => Ok(ids),
        _ => {
            bail!("--replicas '{s}' is not a list of broker ids; give them separated by commas, e.g. --replicas 3,1,2")
        }
    }
}

/// `rill topics elect-leaders`.
pub async fn elect_leaders(
    admin: &Admin<'_>,
    topic: Option<String>,
    partition: Option<i32>,
    election_type: &str,
) -> anyhow::Result<()> {
    let preferred = match election_type {
        "preferred" => true,
        "unclean" => false,
        other => bail!("--election-type '{other}' is not known; use preferred or unclean"),
    };
    let kind = if preferred { "PREFERRED" } else { "UNCLEAN" };
    let partitions: Option<Vec<(String, i32)>> = match (topic, partition) {
        (None, _) => None,
        (Some(t), Some(p)) => Some(vec![(t, p)]),
        (Some(t), None) => {
            let d = admin.describe_topics(std::slice::from_ref(&t)).await?;
            let info = &d.first().ok_or_else(|| anyhow!("topic '{t}' does not exist"))?.info;
            Some(info.partitions.iter().map(|p| (t.clone(), p.partition)).collect())
        }
    };
    let outcomes: Vec<PartitionOutcome> = admin.elect_leaders(partitions.as_deref(), preferred).await?;
    let (mut elected, mut not_needed, mut failed) = (Vec::new(), Vec::new(), Vec::new());
    for (tp, r) in outcomes {
        match r {
            Ok(()) => elected.push(tp),
            Err(e) if e.code() == Some(ELECTION_NOT_NEEDED) => not_needed.push(tp),
            Err(e) => failed.push(format!("{}-{} ({e})", tp.0, tp.1)),
        }
    }
    if !elected.is_empty() {
        println!("Successfully completed leader election ({kind}) for partitions {}", names(&elected));
    }
    if !not_needed.is_empty() {
        println!("Valid replica already elected for partitions {}", names(&not_needed));
    }
    if !failed.is_empty() {
        bail!("leader election ({kind}) failed for {}", failed.join("; "));
    }
    if elected.is_empty() && not_needed.is_empty() {
        println!("No partition needed a leader election.");
    }
    Ok(())
}

/// `rill topics reassign`: start (`replicas`) or cancel (`None`) a move.
pub async fn reassign(
    admin: &Admin<'_>,
    topic: String,
    partition: i32,
    replicas: Option<Vec<i32>>,
) -> anyhow::Result<()> {
    let cancel = replicas.is_none();
    let outcomes = admin.alter_partition_reassignments(&[(topic.clone(), partition, replicas.clone())]).await?;
    for (_, r) in outcomes {
        r?;
    }
    if cancel {
        println!("Cancelled the reassignment of {topic}-{partition}.");
        return Ok(());
    }
    let target = list(replicas.as_deref().unwrap_or_default());
    let ongoing = admin.list_partition_reassignments().await?;
    match ongoing.iter().find(|r| r.topic == topic && r.partition == partition) {
        Some(r) => println!(
            "Reassignment of {topic}-{partition} to replicas {target} started: adding {}, removing {} once the added \
             replicas are in sync.",
            list(&r.adding_replicas),
            list(&r.removing_replicas)
        ),
        None => println!("Reassigned {topic}-{partition} to replicas {target}."),
    }
    Ok(())
}

/// `rill topics reassignments`: the moves in progress.
pub async fn reassignments(admin: &Admin<'_>) -> anyhow::Result<()> {
    let ongoing = admin.list_partition_reassignments().await?;
    if ongoing.is_empty() {
        println!("No partition reassignments found.");
    }
    for r in ongoing {
        println!(
            "{}-{}: replicas: {}. adding: {}. removing: {}.",
            r.topic,
            r.partition,
            list(&r.replicas),
            list(&r.adding_replicas),
            list(&r.removing_replicas)
        );
    }
    Ok(())
}
