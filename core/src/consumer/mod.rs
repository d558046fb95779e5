//! The consumer side of consumer groups.
//!
//! - [`assignor`]: how the group leader divides partitions among members (range, roundrobin,
//!   cooperative-sticky) and the ConsumerProtocol metadata carried in JoinGroup and SyncGroup.

pub mod assignor;
