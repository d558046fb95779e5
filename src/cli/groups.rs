//! `rill groups list|describe|reset-offsets|delete`, shaped like `kafka-consumer-groups.sh`.
//!
//! Tables go to stdout and nothing else does, so scripts can read them; notes and progress go to
//! stderr.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use rill_core::client::{Admin, Client, ClientConfig, GroupOffsets, EARLIEST, LATEST};

use super::timefmt;

/// Arguments of `rill groups`.
#[derive(Debug, Args)]
pub struct GroupsArgs {
    /// Broker to talk to.
    #[arg(long, default_value = "127.0.0.1:9092", global = true)]
    bootstrap: String,
    #[command(subcommand)]
    command: GroupsCommand,
}

#[derive(Debug, Subcommand)]
enum GroupsCommand {
    /// List group ids.
    List,
    /// Show a group's committed offsets, log end offsets, lag and members.
    Describe {
        /// Group id.
        #[arg(long)]
        group: String,
    },
    /// Move a group's committed offsets (the group must have no members to --execute).
    ResetOffsets(ResetArgs),
    /// Delete groups that have no members, with their committed offsets.
    Delete {
        /// Group id (repeatable).
        #[arg(long = "group", required = true)]
        groups: Vec<String>,
    },
}

/// `rill groups reset-offsets`: which partitions, to where, and whether to do it.
#[derive(Debug, Args)]
struct ResetArgs {
    /// Group id.
    #[arg(long)]
    group: String,
    /// `TOPIC` (every partition) or `TOPIC:P,P,...` (repeatable).
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long)]
    all_topics: bool,
    /// To the log start offset.
    #[arg(long)]
    to_earliest: bool,
    /// To the log end offset.
    #[arg(long)]
    to_latest: bool,
    /// To the committed offset (the log end offset where none is committed).
    #[arg(long)]
    to_current: bool,
    /// To this offset.
    #[arg(long, allow_hyphen_values = true)]
    to_offset: Option<String>,
    /// By this many (negative: back) from the committed offset.
    #[arg(long, allow_hyphen_values = true)]
    shift_by: Option<String>,
    /// To the first record at or after `YYYY-MM-DDTHH:mm:SS.sss` (local time unless it ends in
    /// `Z` or `+HH:MM`).
    #[arg(long)]
    to_datetime: Option<String>,
    /// To the first record at or after now minus an ISO-8601 duration (`PnDTnHnMnS`).
    #[arg(long)]
    by_duration: Option<String>,
    /// Print the new offsets, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Commit the new offsets.
    #[arg(long)]
    execute: bool,
}

/// Where reset-offsets moves each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Strategy {
    Earliest,
    Latest,
    Current,
    Offset(i64),
    Shift(i64),
    /// First offset with a timestamp at or after this one (ms since the epoch).
    Timestamp(i64),
}

impl ResetArgs {
    /// The one strategy given, or a one-line error.
    fn strategy(&self) -> anyhow::Result<Strategy> {
        let mut chosen = Vec::new();
        if self.to_earliest {
            chosen.push(Strategy::Earliest);
        }
        if self.to_latest {
            chosen.push(Strategy::Latest);
        }
        if self.to_current {
            chosen.push(Strategy::Current);
        }
        if let Some(s) = &self.to_offset {
            let n: i64 =
                s.trim().parse().map_err(|_| anyhow!("--to-offset '{s}' is not an offset (a whole number)"))?;
            if n < 0 {
                bail!("--to-offset {n} is negative; offsets start at 0");
            }
            chosen.push(Strategy::Offset(n));
        }
        if let Some(s) = &self.shift_by {
            let n = s.trim().parse().map_err(|_| anyhow!("--shift-by '{s}' is not a whole number (e.g. 10 or -10)"))?;
            chosen.push(Strategy::Shift(n));
        }
        if let Some(s) = &self.to_datetime {
            chosen.push(Strategy::Timestamp(timefmt::parse_datetime(s)?));
        }
        if let Some(s) = &self.by_duration {
            let back = timefmt::parse_duration(s)?;
            chosen.push(Strategy::Timestamp(timefmt::now_ms() - back));
        }
        match chosen.len() {
            1 => Ok(chosen[0]),
            0 => bail!(
                "reset-offsets needs a strategy: --to-earliest, --to-latest, --to-current, --to-offset N, \
                 --shift-by N, --to-datetime T or --by-duration D"
            ),
            _ => bail!("reset-offsets takes one strategy, got {}", chosen.len()),
        }
    }
}

pub async fn run(a: GroupsArgs) -> anyhow::Result<()> {
    let client = Client::connect(ClientConfig::new(&a.bootstrap)).await?;
    let admin = Admin::new(&client);
    match a.command {
        GroupsCommand::List => {
            let mut out = std::io::stdout().lock();
            for g in admin.list_groups().await? {
                writeln!(out, "{}", g.group_id)?;
            }
        }
        GroupsCommand::Describe { group } => describe(&client, &admin, &group).await?,
        GroupsCommand::ResetOffsets(r) => reset(&client, &admin, &r).await?,
        GroupsCommand::Delete { groups } => {
            admin.delete_groups(&groups).await?;
            for g in groups {
                println!("Deleted group {g}.");
            }
        }
    }
    Ok(())
}

/// Log start and end offsets of `partitions`, with a progress line per topic on stderr when
/// there are many. Without `want_start` (describe), partitions whose end cannot be read are
/// left out rather than failing.
async fn watermarks(
    client: &Client,
    partitions: &BTreeSet<(String, i32)>,
    want_start: bool,
) -> anyhow::Result<BTreeMap<(String, i32), (i64, i64)>> {
    let noisy = partitions.len() >= 100;
    let mut out = BTreeMap::new();
    let mut topic = "";
    for (t, p) in partitions {
        if noisy && t != topic {
            let n = partitions.iter().filter(|(u, _)| u == t).count();
            eprintln!("reading offsets of {t} ({n} partitions)");
            topic = t;
        }
        let end = match client.list_offset(t, *p, LATEST).await {
            Ok(end) => end,
            // A describe still shows the other partitions (`-` here), e.g. of a deleted topic.
            Err(_) if !want_start => continue,
            Err(e) => return Err(e).with_context(|| format!("log end offset of {t}-{p}")),
        };
        let start = if want_start {
            client.list_offset(t, *p, EARLIEST).await.with_context(|| format!("log start offset of {t}-{p}"))?
        } else {
            0
        };
        out.insert((t.clone(), *p), (start, end));
    }
    Ok(out)
}

async fn describe(client: &Client, admin: &Admin<'_>, group: &str) -> anyhow::Result<()> {
    let desc = admin.describe_groups(&[group.to_string()]).await?.remove(0);
    let committed = admin.list_consumer_group_offsets(group).await?;
    if desc.state == "Dead" && committed.is_empty() {
        bail!("consumer group '{group}' does not exist");
    }
    let mut owner = BTreeMap::new();
    for m in &desc.members {
        for tp in &m.assignment {
            owner.insert(tp.clone(), m);
        }
    }
    let partitions: BTreeSet<(String, i32)> = committed.keys().chain(owner.keys()).cloned().collect();
    let marks = watermarks(client, &partitions, false).await?;
    let dash = || "-".to_string();
    let mut rows = Vec::new();
    for tp in &partitions {
        let current = committed.get(tp).copied();
        let end = marks.get(tp).map(|m| m.1);
        let m = owner.get(tp);
        rows.push(vec![
            group.to_string(),
            tp.0.clone(),
            tp.1.to_string(),
            current.map_or_else(dash, |c| c.to_string()),
            end.map_or_else(dash, |e| e.to_string()),
            match (current, end) {
                (Some(c), Some(e)) => (e - c).max(0).to_string(),
                _ => dash(),
            },
            m.map_or_else(dash, |m| m.member_id.clone()),
            m.map_or_else(dash, |m| m.host.clone()),
            m.map_or_else(dash, |m| m.client_id.clone()),
        ]);
    }
    // Members that own nothing still show, as kafka-consumer-groups.sh shows them.
    for m in desc.members.iter().filter(|m| m.assignment.is_empty()) {
        rows.push(vec![
            group.to_string(),
            dash(),
            dash(),
            dash(),
            dash(),
            dash(),
            m.member_id.clone(),
            m.host.clone(),
            m.client_id.clone(),
        ]);
    }
    if desc.members.is_empty() {
        eprintln!("Consumer group '{group}' has no active members.");
    }
    let headers =
        ["GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST", "CLIENT-ID"];
    print_table(&headers, &[15, 15, 10, 15, 15, 15, 15, 15, 0], &rows)
}

/// `TOPIC` or `TOPIC:P,P,...` into (topic, partitions or None for all).
fn parse_topic_arg(s: &str) -> anyhow::Result<(String, Option<Vec<i32>>)> {
    let (topic, parts) = match s.split_once(':') {
        Some((t, ps)) => {
            let parts = ps
                .split(',')
                .map(|p| {
                    p.trim()
                        .parse::<i32>()
                        .ok()
                        .filter(|&n| n >= 0)
                        .ok_or_else(|| anyhow!("--topic '{s}': '{p}' is not a partition number"))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            (t, Some(parts))
        }
        None => (s, None),
    };
    if topic.is_empty() {
        bail!("--topic '{s}' names no topic (use TOPIC or TOPIC:0,1)");
    }
    Ok((topic.to_string(), parts))
}

async fn reset(client: &Client, admin: &Admin<'_>, r: &ResetArgs) -> anyhow::Result<()> {
    let strategy = r.strategy()?;
    match (r.dry_run, r.execute) {
        (true, true) => bail!("give either --dry-run or --execute, not both"),
        (false, false) => bail!("give --dry-run to see the new offsets or --execute to commit them"),
        _ => {}
    }
    // Exactly one of the two: both given, or neither, is an error.
    if r.all_topics != r.topics.is_empty() {
        bail!("name the partitions to reset with --topic TOPIC[:P,P] or --all-topics (one of the two)");
    }
    let desc = admin.describe_groups(std::slice::from_ref(&r.group)).await?.remove(0);
    if r.execute && !desc.members.is_empty() {
        bail!(
            "group '{}' is active ({}, {} members); stop its consumers first",
            r.group,
            desc.state,
            desc.members.len()
        );
    }
    let committed = admin.list_consumer_group_offsets(&r.group).await?;
    let mut partitions = BTreeSet::new();
    if r.all_topics {
        if committed.is_empty() {
            bail!("group '{}' has no committed offsets; name the topics with --topic", r.group);
        }
        partitions.extend(committed.keys().cloned());
    } else {
        for arg in &r.topics {
            let (topic, wanted) = parse_topic_arg(arg)?;
            let md = client.metadata(Some(std::slice::from_ref(&topic)), false).await?;
            let info = md.topics.iter().find(|t| t.name == topic && t.error_code == 0);
            let info = info.ok_or_else(|| anyhow!("topic '{topic}' does not exist"))?;
            let all: Vec<i32> = info.partitions.iter().map(|p| p.partition).collect();
            for p in wanted.unwrap_or_else(|| all.clone()) {
                if !all.contains(&p) {
                    bail!("topic '{topic}' has no partition {p} (it has {})", all.len());
                }
                partitions.insert((topic.clone(), p));
            }
        }
    }
    let marks = watermarks(client, &partitions, true).await?;
    let mut new_offsets = GroupOffsets::new();
    for tp in &partitions {
        let (start, end) = marks[tp];
        let current = committed.get(tp).copied();
        let target = match strategy {
            Strategy::Earliest => start,
            Strategy::Latest => end,
            Strategy::Current => current.unwrap_or(end),
            Strategy::Offset(n) => n,
            Strategy::Shift(n) => current.unwrap_or(end).saturating_add(n),
            Strategy::Timestamp(ts) => match client.list_offset(&tp.0, tp.1, ts).await? {
                -1 => end,
                o => o,
            },
        };
        new_offsets.insert(tp.clone(), target.clamp(start, end.max(start)));
    }
    let rows: Vec<Vec<String>> =
        new_offsets.iter().map(|((t, p), o)| vec![r.group.clone(), t.clone(), p.to_string(), o.to_string()]).collect();
    if r.execute {
        admin.alter_consumer_group_offsets(&r.group, &new_offsets).await?;
    }
    print_table(&["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"], &[15, 15, 10, 0], &rows)
}

/// Left-aligned columns separated by a space, each as wide as its widest cell (at least
/// `min`), the last unpadded: the layout of `kafka-consumer-groups.sh`.
fn print_table(headers: &[&str], min: &[usize], rows: &[Vec<String>]) -> anyhow::Result<()> {
    let widths: Vec<usize> = (0..headers.len())
        .map(|i| rows.iter().map(|r| r[i].len()).chain([headers[i].len(), min[i]]).max().unwrap_or(0))
        .collect();
    let mut out = std::io::stdout().lock();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$} ", w = widths[i]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_arguments() {
        assert_eq!(parse_topic_arg("t").unwrap(), ("t".to_string(), None));
        assert_eq!(parse_topic_arg("t:0,2").unwrap(), ("t".to_string(), Some(vec![0, 2])));
        assert!(parse_topic_arg("t:x").unwrap_err().to_string().contains("'x'"));
        assert!(parse_topic_arg(":1").is_err());
    }
}
