//! The active controller's decisions, without I/O: which brokers to fence for missed
//! heartbeats, which to let back in, and when to move leadership back to preferred replicas.
//!
//! Contract: the driver calls [`Liveness::activate`] when its node becomes the Raft leader and
//! [`Liveness::deactivate`] when it stops being it; [`Liveness::heartbeat`] for every broker
//! heartbeat it receives while active; [`Liveness::tick`] periodically. Each returns the
//! commands to propose; the driver proposes them in order and waits for each, so the image it
//! passes to the next call already shows their effect.
//!
//! | situation (active controller)                                   | command                  |
//! |-----------------------------------------------------------------|--------------------------|
//! | unfenced broker silent longer than the session timeout          | `FenceBroker`            |
//! | (a new controller counts every session from its own start)      |                          |
//! | heartbeat from a fenced broker at its current epoch             | `UnfenceBroker`          |
//! | heartbeat at an old epoch, or from an unregistered broker       | none; answer `Stale`     |
//! | rebalance due, some leader is not its partition's preferred one | `ElectLeaders` preferred |

use std::collections::BTreeMap;

use super::command::Command;
use super::image::ClusterImage;
use super::rpc::HeartbeatReply;

/// Liveness tracking of the active controller.
#[derive(Debug)]
pub struct Liveness {
    session_timeout_ms: i64,
    rebalance_interval_ms: Option<i64>,
    /// Broker -> (epoch, last heard, ms).
    seen: BTreeMap<i32, (u64, i64)>,
    active_since: Option<i64>,
    last_rebalance: i64,
}

impl Liveness {
    /// Fence after `session_timeout_ms` of silence; rebalance leaders every
    /// `rebalance_interval_ms` (`None`: never, `auto.leader.rebalance.enable=false`).
    pub fn new(session_timeout_ms: i64, rebalance_interval_ms: Option<i64>) -> Self {
        Self { session_timeout_ms, rebalance_interval_ms, seen: BTreeMap::new(), active_since: None, last_rebalance: 0 }
    }

    /// Whether this node acts as controller.
    pub fn is_active(&self) -> bool {
        self.active_since.is_some()
    }

    /// This node became the controller at `now`.
    pub fn activate(&mut self, now: i64) {
        self.active_since = Some(now);
        self.last_rebalance = now;
        self.seen.clear();
    }

    /// This node is no longer the controller.
    pub fn deactivate(&mut self) {
        self.active_since = None;
        self.seen.clear();
    }

    /// A heartbeat from broker `id` at `epoch`: the answer, and a command to propose.
    pub fn heartbeat(
        &mut self,
        image: &ClusterImage,
        id: i32,
        epoch: u64,
        now: i64,
    ) -> (HeartbeatReply, Option<Command>) {
        match image.brokers.get(&id) {
            Some(b) if b.epoch == epoch => {
                self.seen.insert(id, (epoch, now));
                let unfence = b.fenced.then_some(Command::UnfenceBroker { id, epoch });
                (HeartbeatReply::Ok, unfence)
            }
            // A registration may still be on its way into this node's image: not stale yet.
            Some(b) if b.epoch < epoch => (HeartbeatReply::Ok, None),
            _ => (HeartbeatReply::Stale, None),
        }
    }

    /// Periodic decisions at `now`.
    pub fn tick(&mut self, image: &ClusterImage, now: i64) -> Vec<Command> {
        let Some(since) = self.active_since else { return Vec::new() };
        let mut out: Vec<Command> = image
            .brokers
            .values()
            .filter(|b| !b.fenced)
            .filter(|b| {
                let last = match self.seen.get(&b.id) {
                    Some((e, at)) if *e == b.epoch => *at,
                    _ => since,
                };
                now - last > self.session_timeout_ms
            })
            .map(|b| Command::FenceBroker { id: b.id, epoch: b.epoch })
            .collect();
        if let Some(every) = self.rebalance_interval_ms {
            if now - self.last_rebalance >= every {
                self.last_rebalance = now;
                let partitions: Vec<(String, i32)> = image
                    .topics
                    .iter()
                    .flat_map(|(name, t)| t.partitions.iter().enumerate().map(move |(i, p)| (name, i, p)))
                    .filter(|(_, _, p)| {
                        let want = p.replicas[0];
                        p.leader != want && p.isr.contains(&want) && image.is_live(want)
                    })
                    .map(|(name, i, _)| (name.clone(), i as i32))
                    .collect();
                if !partitions.is_empty() {
                    out.push(Command::ElectLeaders { partitions, preferred: true });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> ClusterImage {
        let mut img = ClusterImage::default();
        for id in 1..=3 {
            img.apply(id as u64, &Command::RegisterBroker { id, host: "h".into(), port: 1 });
        }
        img
    }

    #[test]
    fn silent_brokers_are_fenced_after_the_session_timeout() {
        let img = image();
        let mut l = Liveness::new(1000, None);
        assert!(l.tick(&img, 5000).is_empty(), "inactive controllers decide nothing");
        l.activate(10_000);
        assert_eq!(l.heartbeat(&img, 1, 1, 10_500), (HeartbeatReply::Ok, None));
        // Everyone gets a full session from activation; broker 1 from its heartbeat.
        assert!(l.tick(&img, 11_000).is_empty());
        assert_eq!(
            l.tick(&img, 11_001),
            vec![Command::FenceBroker { id: 2, epoch: 2 }, Command::FenceBroker { id: 3, epoch: 3 }]
        );
        assert_eq!(
            l.tick(&img, 11_501),
            vec![
                Command::FenceBroker { id: 1, epoch: 1 },
                Command::FenceBroker { id: 2, epoch: 2 },
                Command::FenceBroker { id: 3, epoch: 3 }
            ]
        );
    }

    #[test]
    fn heartbeats_unfence_and_stale_epochs_are_told() {
        let mut img = image();
        img.apply(4, &Command::FenceBroker { id: 2, epoch: 2 });
        let mut l = Liveness::new(1000, None);
        l.activate(0);
        assert_eq!(l.heartbeat(&img, 2, 2, 10), (HeartbeatReply::Ok, Some(Command::UnfenceBroker { id: 2, epoch: 2 })));
        assert_eq!(l.heartbeat(&img, 1, 0, 10), (HeartbeatReply::Stale, None));
        assert_eq!(l.heartbeat(&img, 9, 1, 10), (HeartbeatReply::Stale, None));
        // A newer registration not applied here yet is not stale.
        assert_eq!(l.heartbeat(&img, 1, 7, 10), (HeartbeatReply::Ok, None));
    }

    #[test]
    fn rebalance_moves_leaders_back_when_due() {
        let mut img = image();
        let cmd = Command::CreateTopic {
            name: "t".into(),
            partitions: 0,
            replication_factor: 0,
            assignments: Some(vec![vec![1, 2], vec![2, 1]]),
            configs: Default::default(),
        };
        img.apply(4, &cmd);
        img.topics.get_mut("t").unwrap().partitions[0].leader = 2;
        let mut l = Liveness::new(i64::MAX, Some(100));
        l.activate(0);
        assert!(l.tick(&img, 50).is_empty());
        assert_eq!(
            l.tick(&img, 100),
            vec![Command::ElectLeaders { partitions: vec![("t".into(), 0)], preferred: true }]
        );
        assert!(l.tick(&img, 150).is_empty());
    }
}
